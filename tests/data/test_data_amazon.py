"""Raw Amazon 2014 files: reviews_<Cat>_5.json.gz (JSON lines) + meta_<Cat>.json.gz (dict literals)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from sidrec.config import DataConfig
from sidrec.data.amazon import load_amazon2014
from sidrec.data.split import prepare


def review(user: str, asin: str, t: int) -> dict:
    return {
        "reviewerID": user,
        "asin": asin,
        "reviewerName": "Andrea",
        "helpful": [3, 4],
        "reviewText": "Very oily.",
        "overall": 1.0,
        "summary": "Don't waste your money",
        "unixReviewTime": t,
        "reviewTime": "01 30, 2014",
    }


REVIEWS = [
    review("u1", "i1", 3),
    review("u1", "i2", 1),
    review("u1", "i3", 2),
    review("u2", "i1", 5),
    review("u2", "i2", 5),  # tie with the line above: file order decides
    review("u2", "i3", 4),
    review("u3", "i1", 1),
    review("u3", "i4", 2),  # i4 has 1 review: dropped by the 2-core, then u3 (1 left) too
]
META = [
    # the real files hold Python dict literals (str(dict)), not JSON
    str({"asin": "i0", "title": "Unrelated", "categories": [["Beauty"]]}),
    str(
        {
            "asin": "i1",
            "title": "Gel &amp; Co",
            "price": 12.5,
            "salesRank": {"Beauty": 1},
            "categories": [["Beauty", "Hair Care"], ["Other"]],
            "brand": "Xtreme",
        }
    ),
    json.dumps({"asin": "i2", "title": 'Mom\'s "Best" Soap', "categories": [["Beauty", "Bath"]]}),
    str({"asin": "i4", "title": "Rare"}),
]


def gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return path


def make(tmp_path: Path, cat: str = "Beauty", reviews: list[str] | None = None, meta: list[str] | None = None):
    gz(tmp_path / f"reviews_{cat}_5.json.gz", reviews or [json.dumps(r) for r in REVIEWS])
    gz(tmp_path / f"meta_{cat}.json.gz", META if meta is None else meta)
    return tmp_path


def test_loads_with_kcore_and_metadata(tmp_path):
    raw = load_amazon2014(make(tmp_path), kcore=2)
    assert raw.interactions.select("user_id", "item_id", "time").rows() == [
        ("u1", "i1", 3),
        ("u1", "i2", 1),
        ("u1", "i3", 2),
        ("u2", "i1", 5),
        ("u2", "i2", 5),
        ("u2", "i3", 4),
    ]
    assert raw.timestamps and raw.interactions["action"].to_list() == [1] * 6  # the star rating ("overall")
    items = {row["item_id"]: row for row in raw.items.to_dicts()}
    assert set(items) == {"i1", "i2", "i3"}  # only interacted items; i0 and i4 are not kept
    assert items["i1"] == {
        "item_id": "i1",
        "title": "Gel & Co",
        "categories": ["Beauty", "Hair Care"],
        "brand": "Xtreme",
    }
    assert items["i2"]["title"] == 'Mom\'s "Best" Soap' and items["i2"]["brand"] is None
    assert items["i3"] == {"item_id": "i3", "title": None, "categories": None, "brand": None}
    prepared = prepare(raw, DataConfig(text_template="{title}; {categories}"))
    assert prepared.items["text"].to_list() == [
        "Gel & Co; Beauty > Hair Care",
        'Mom\'s "Best" Soap; Beauty > Bath',
        "i3",
    ]
    auto = prepare(raw, DataConfig())  # no template: built from the fields found, brand included
    assert auto.stats["text"]["template"] == "{title}; {categories}; {brand}"
    assert auto.items["text"].to_list()[:2] == [
        "Gel & Co; Beauty > Hair Care; Xtreme",
        'Mom\'s "Best" Soap; Beauty > Bath',
    ]
    assert auto.stats["text"]["items_without_text"] == 1
    seqs = dict(zip(prepared.sequences["user_id"], prepared.sequences["items"].to_list(), strict=True))
    assert seqs == {"u1": [2, 3, 1], "u2": [3, 1, 2]}


def test_kcore_off_keeps_everything(tmp_path):
    raw = load_amazon2014(make(tmp_path), kcore=0)
    assert raw.interactions.height == len(REVIEWS)
    assert raw.items.filter(raw.items["item_id"] == "i4")["title"].to_list() == ["Rare"]


def test_kcore_too_high(tmp_path):
    with pytest.raises(ValueError, match="no interactions left after the 5-core filter"):
        load_amazon2014(make(tmp_path), kcore=5)


def test_malformed_review_line(tmp_path):
    lines = [json.dumps(REVIEWS[0]), '{"reviewerID": "u9", "asin": ', json.dumps(REVIEWS[1])]
    with pytest.raises(ValueError, match=r"reviews_Beauty_5\.json\.gz, line 2: malformed line"):
        load_amazon2014(make(tmp_path, reviews=lines), kcore=0)


def test_review_without_time(tmp_path):
    lines = [json.dumps(REVIEWS[0]), json.dumps({"reviewerID": "u9", "asin": "i1"})]
    with pytest.raises(ValueError, match=r"line 2: missing field\(s\) \['unixReviewTime'\]"):
        load_amazon2014(make(tmp_path, reviews=lines), kcore=0)


def test_malformed_meta_line(tmp_path):
    meta = [META[1], "{'asin': 'i2', 'title': 'unterminated"]
    with pytest.raises(ValueError, match=r"meta_Beauty\.json\.gz, line 2: malformed line"):
        load_amazon2014(make(tmp_path, meta=meta), kcore=2)


def test_several_categories_and_file_path(tmp_path):
    make(tmp_path, "Beauty")
    make(tmp_path, "Toys_and_Games")
    with pytest.raises(ValueError, match=r"several review files .*Set data\.path to one of them"):
        load_amazon2014(tmp_path)
    raw = load_amazon2014(tmp_path / "reviews_Toys_and_Games_5.json.gz", kcore=2)
    assert raw.interactions.height == 6 and raw.source.endswith("reviews_Toys_and_Games_5.json.gz")


def test_missing_meta(tmp_path):
    make(tmp_path)
    (tmp_path / "meta_Beauty.json.gz").unlink()
    with pytest.raises(ValueError, match=r"no meta_Beauty\.json\.gz next to reviews_Beauty_5\.json\.gz"):
        load_amazon2014(tmp_path)
