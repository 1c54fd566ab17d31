"""Format detection, `load_dataset` dispatch, and the bundled Beauty data."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest

from sidrec.config import DataConfig
from sidrec.data.sources import detect_format, load_dataset
from sidrec.data.split import prepare


def touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("")
    return folder


@pytest.mark.parametrize(
    ("names", "fmt"),
    [
        (("interactions.csv", "items.jsonl"), "normalized"),
        (("interactions.csv.gz", "items.jsonl.gz", "PROVENANCE.md"), "normalized"),
        (("sequential_data.txt", "datamaps.json"), "p5"),
        (("reviews_Beauty_5.json.gz", "meta_Beauty.json.gz"), "amazon2014"),
        (("u.data", "u.item", "u.genre"), "movielens"),
        (("u1.base", "u1.test", "u.item"), "movielens"),
        (("ratings.dat", "movies.dat", "users.dat"), "movielens"),
    ],
)
def test_detect_folder(tmp_path, names, fmt):
    assert detect_format(touch(tmp_path / "d", *names)) == fmt


def test_detect_file(tmp_path):
    touch(tmp_path, "events.csv", "reviews_Beauty_5.json.gz", "sequential_data.txt")
    assert detect_format(tmp_path / "events.csv") == "table"
    assert detect_format(tmp_path / "reviews_Beauty_5.json.gz") == "amazon2014"
    assert detect_format(tmp_path / "sequential_data.txt") == "p5"


def test_detect_unknown_folder(tmp_path):
    with pytest.raises(ValueError, match=r"cannot tell the dataset format .*notes\.txt.*data\.format"):
        detect_format(touch(tmp_path / "d", "notes.txt"))


def test_load_dataset_dispatches(tmp_path):
    seq = tmp_path / "p5"
    touch(seq)
    (seq / "sequential_data.txt").write_text("1 1 2 3\n2 2 3 1\n")
    raw = load_dataset(DataConfig(path=str(seq)))
    assert raw.interactions.height == 6 and raw.source == str(seq)

    ml = touch(tmp_path / "ml")
    (ml / "ratings.dat").write_text("1::10::5::100\n1::11::4::90\n")
    assert load_dataset(DataConfig(path=str(ml))).interactions["time"].to_list() == [100, 90]

    amazon = touch(tmp_path / "amazon")
    with gzip.open(amazon / "reviews_Beauty_5.json.gz", "wt") as f:
        for user, asin in (("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b")):
            f.write(json.dumps({"reviewerID": user, "asin": asin, "unixReviewTime": 1}) + "\n")
    with gzip.open(amazon / "meta_Beauty.json.gz", "wt") as f:
        f.write(str({"asin": "a", "title": "A"}) + "\n")
    raw = load_dataset(DataConfig(path=str(amazon / "reviews_Beauty_5.json.gz"), kcore=2))
    assert raw.interactions.height == 4 and raw.items["title"].to_list() == ["A", None]

    table = tmp_path / "events.tsv"
    table.write_text("uid\tiid\tts\nu\ti1\t3\nu\ti2\t1\n")
    (tmp_path / "items.csv").write_text("iid,title\ni1,One\ni2,Two\n")
    cols = {"user_col": "uid", "item_col": "iid", "time_col": "ts", "item_key": "iid"}
    cfg = DataConfig(path=str(table), items_path=str(tmp_path / "items.csv"), **cols)
    raw = load_dataset(cfg)
    assert raw.interactions.rows() == [("u", "i1", 3), ("u", "i2", 1)]
    assert raw.items["title"].to_list() == ["One", "Two"]

    with pytest.raises(ValueError, match="unknown data.format 'excel'"):
        load_dataset(dataclasses.replace(cfg, format="excel"))
    with pytest.raises(ValueError, match="no such file or folder"):
        load_dataset(DataConfig(path=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="unknown bundled dataset 'nope'"):
        load_dataset(DataConfig(name="nope"))


def test_bundled_beauty():
    raw = load_dataset(DataConfig())
    prepared = prepare(raw, DataConfig())
    stats = prepared.stats
    assert (stats["users"], stats["items"], stats["interactions"]) == (22363, 12101, 198502)
    assert stats["dropped_users"] == 0
    first = prepared.sequences.filter(prepared.sequences["user_id"] == "A1YJEY40YUW4SE")["items"].to_list()[0]
    ids = dict(zip(prepared.items["item_idx"], prepared.items["item_id"], strict=True))
    assert [ids[i] for i in first] == ["B004756YJA", "B004ZT0SSG", "B0020YLEYK", "7806397051", "B002WLWX82"]
    text = prepared.items.filter(prepared.items["item_id"] == "7806397051")["text"].item()
    assert text.startswith("WAWO 15 Color") and text.endswith("Beauty > Makeup > Face > Concealers & Neutralizers")


def test_bundled_sports_loads_with_published_counts() -> None:
    from sidrec.config import DataConfig
    from sidrec.data.sources import load_dataset
    from sidrec.data.split import prepare

    cfg = DataConfig(name="sports")
    stats = prepare(load_dataset(cfg), cfg).stats
    assert (stats["users"], stats["items"], stats["interactions"]) == (35598, 18357, 296337)


@pytest.mark.parametrize(
    "name, counts",
    [("toys", (19412, 11924, 167597)), ("yelp", (30431, 20033, 316354))],
)
def test_bundled_toys_and_yelp_load_with_published_counts(name: str, counts: tuple[int, int, int]) -> None:
    from sidrec.config import DataConfig
    from sidrec.data.sources import load_dataset
    from sidrec.data.split import prepare

    cfg = DataConfig(name=name)
    stats = prepare(load_dataset(cfg), cfg).stats
    assert (stats["users"], stats["items"], stats["interactions"]) == counts


def test_a_format_without_a_path_is_refused():
    from sidrec.config import DataConfig
    from sidrec.data.sources import load_dataset

    with pytest.raises(ValueError, match="data.format=movielens reads data.path, which is empty"):
        load_dataset(DataConfig(format="movielens"))
