"""Item text: templates checked against the items' fields, built from them when empty, and counted."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest

from sidrec.config import DataConfig
from sidrec.data.movielens import GENRES_100K, load_movielens
from sidrec.data.schema import ITEM, RawDataset
from sidrec.data.sources import load_dataset
from sidrec.data.split import prepare
from sidrec.data.text import auto_template, render_texts, resolve_template, template_fields, text_report


def items(**cols) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    return pl.DataFrame({ITEM: [f"i{k}" for k in range(n)], **cols})


def test_bundled_beauty_auto_template_gives_the_published_texts():
    # The published records were made with "{title}; {categories}": the same texts give the same SIDs.
    raw = load_dataset(DataConfig())
    assert auto_template(raw.items) == "{title}; {categories}"
    assert render_texts(raw.items, auto_template(raw.items)) == render_texts(raw.items, "{title}; {categories}")


def test_bundled_sports_auto_template_uses_its_keywords():
    raw = load_dataset(DataConfig(name="sports"))  # titles null, categories empty: only keywords hold text
    assert auto_template(raw.items) == "{keywords}"


@pytest.mark.parametrize(
    ("cols", "template"),
    [
        ({"title": ["A"], "genres": [["Drama"]]}, "{title}; {genres}"),
        ({"name": ["A"], "brand": ["B"], "price": ["9"]}, "{name}; {brand}"),
        ({"description": ["d"], "title": ["t"], "categories": [["c"]]}, "{title}; {categories}; {description}"),
        ({"title": [None], "categories": [[]], "keywords": ["k"]}, "{keywords}"),
        ({"title": [None]}, ""),
    ],
)
def test_auto_template_picks_the_text_fields_found(cols, template):
    assert auto_template(items(**cols)) == template


def test_unknown_field_lists_the_fields_and_a_suggestion():
    with pytest.raises(ValueError) as err:
        resolve_template("{nmae}; {brand}", items(name=["A"], brand=["B"]), "my_items.csv")
    msg = str(err.value)
    assert "'nmae'" in msg and "my_items.csv" in msg and "'name', 'brand'" in msg
    assert 'Suggested: "data.text_template={name}; {brand}"' in msg


def test_template_without_any_text_field_says_how_to_add_one():
    with pytest.raises(ValueError, match="data.items_path"):
        resolve_template("{title}", pl.DataFrame({ITEM: ["a"]}), "clicks.csv")


@pytest.mark.parametrize("template", ["{", "{0}", "{}", "{title"])
def test_malformed_template_is_a_clear_error(template):
    with pytest.raises(ValueError, match="data.text_template"):
        template_fields(template)
        resolve_template(template, items(title=["A"]), "x")


def test_text_report_counts_items_whose_text_is_their_id():
    report = text_report(["a", "b", "c"], ["Gel", "b", ""], "{title}")
    assert report["items_without_text"] == 2 and report["share_without_text"] == pytest.approx(0.6667)
    assert report["examples"] == ["Gel", "b", ""]


def test_movielens_without_template_gets_its_genres(tmp_path: Path, caplog):
    flags = "|".join("1" if g in ("Comedy", "Drama") else "0" for g in GENRES_100K)
    (tmp_path / "u.item").write_text(f"1|Kolya (1996)|24-Jan-1997||http://x|{flags}\n", encoding="latin-1")
    (tmp_path / "u.data").write_text("".join(f"{u}\t1\t3\t{880000000 + u}\n" for u in range(1, 4)))
    with caplog.at_level(logging.INFO):
        prepared = prepare(load_movielens(tmp_path), DataConfig(min_interactions=1))
    assert prepared.items["text"].to_list() == ["Kolya (1996); Comedy > Drama"]
    assert "'{title}; {genres}'" in caplog.text and "item text example: Kolya (1996); Comedy > Drama" in caplog.text


def test_prepare_stats_and_log_name_every_drop(caplog):
    raw_items = pl.DataFrame({ITEM: ["a", "b", "c", "c", "z"], "title": ["A", "B", "C", "C2", "Z"]})
    inter = pl.DataFrame(
        {"user_id": ["u1"] * 4 + ["u2"] * 2, "item_id": ["a", "b", "c", "a", "a", "b"], "time": list(range(6))}
    )
    with caplog.at_level(logging.INFO):
        prepared = prepare(RawDataset(inter, raw_items, "src"), DataConfig())
    drops = prepared.stats["dropped"]
    assert drops["users_too_few_interactions"] == 1 and drops["items_never_interacted"] == 1
    assert drops["duplicate_item_rows"] == 1
    assert "dropped 1 users with < 3 interactions" in caplog.text
    assert "dropped 1 items in the items file that no interaction names" in caplog.text
    assert "duplicate item id" in caplog.text
