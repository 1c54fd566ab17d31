"""The P5 format: sequential_data.txt (CRLF or LF) + datamaps.json (+ optional items.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sidrec.config import DataConfig
from sidrec.data.p5 import load_p5
from sidrec.data.split import prepare

MAPS = {
    "user2id": {"A1YJEY40YUW4SE": "1", "A60XNB876KYML": "2"},
    "item2id": {"B004756YJA": "1", "B004ZT0SSG": "2", "B0020YLEYK": "3", "7806397051": "4"},
    "id2user": {"1": "A1YJEY40YUW4SE", "2": "A60XNB876KYML"},
    "id2item": {"1": "B004756YJA", "2": "B004ZT0SSG", "3": "B0020YLEYK", "4": "7806397051"},
    "attribute2id": {},
}


def make(tmp_path: Path, lines: list[str], eol: str = "\r\n", maps: dict | None = MAPS) -> Path:
    (tmp_path / "sequential_data.txt").write_bytes(eol.join(lines).encode() + eol.encode())
    if maps is not None:
        (tmp_path / "datamaps.json").write_text(json.dumps(maps))
    return tmp_path


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_loads_with_datamaps(tmp_path, eol):
    raw = load_p5(make(tmp_path, ["1 1 2 3 4", "2 4 2 1"], eol=eol))
    assert raw.interactions.rows()[:4] == [
        ("A1YJEY40YUW4SE", "B004756YJA", 0),
        ("A1YJEY40YUW4SE", "B004ZT0SSG", 1),
        ("A1YJEY40YUW4SE", "B0020YLEYK", 2),
        ("A1YJEY40YUW4SE", "7806397051", 3),
    ]
    assert raw.interactions["time"].to_list()[4:] == [0, 1, 2]
    assert raw.items.columns == ["item_id"]
    assert raw.items.height == 4
    prepared = prepare(raw, DataConfig())
    assert prepared.stats["users"] == 2 and prepared.stats["interactions"] == 7
    assert prepared.items["text"].to_list() == sorted(MAPS["id2item"].values())  # id fallback


def test_items_jsonl_gives_text(tmp_path):
    make(tmp_path, ["1 1 2 3", "2 3 2 1"])
    items = [{"item_id": a, "title": f"t{i}", "categories": ["Beauty"]} for i, a in MAPS["id2item"].items()]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    raw = load_p5(tmp_path)
    assert set(raw.items.columns) == {"item_id", "title", "categories"}
    texts = prepare(raw, DataConfig()).items["text"].to_list()
    assert texts == ["t3; Beauty", "t1; Beauty", "t2; Beauty"]  # by ASIN: B0020.., B00475.., B004Z..


def test_without_datamaps_the_integers_are_ids(tmp_path):
    raw = load_p5(make(tmp_path, ["1 10 20 30", "", "2 20 10 30"], maps=None))
    assert raw.interactions.rows()[:3] == [("1", "10", 0), ("1", "20", 1), ("1", "30", 2)]
    assert raw.interactions.height == 6


def test_path_of_the_sequence_file_works(tmp_path):
    make(tmp_path, ["1 1 2 3"])
    assert load_p5(tmp_path / "sequential_data.txt").interactions.height == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2 1 x 3", r"line 2: 'x' is not an integer id"),
        ("2 1 9 3", r"line 2: item 9 is not in datamaps\.json 'id2item'"),
        ("7 1 2 3", r"line 2: user 7 is not in datamaps\.json 'id2user'"),
        ("2", r"line 2: user 2 has no items"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    make(tmp_path, ["1 1 2 3", line])
    with pytest.raises(ValueError, match=r"sequential_data\.txt, " + message):
        load_p5(tmp_path)


def test_missing_files_and_bad_datamaps(tmp_path):
    with pytest.raises(ValueError, match=r"no sequential_data\.txt"):
        load_p5(tmp_path)
    make(tmp_path, ["1 1 2 3"], maps={"user2id": {}})
    with pytest.raises(ValueError, match=r"datamaps\.json: needs the objects 'id2user' and 'id2item'"):
        load_p5(tmp_path)
    (tmp_path / "datamaps.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"datamaps\.json: not valid JSON"):
        load_p5(tmp_path)
