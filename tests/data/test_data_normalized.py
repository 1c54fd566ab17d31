"""The normalized folder format: interactions.csv + items.jsonl, plain or gzipped, and its errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from sidrec.config import DataConfig
from sidrec.data.normalized import load_normalized
from sidrec.data.split import prepare

ITEMS = [
    {"item_id": "B1", "title": "Gel", "categories": ["Beauty", "Hair"]},
    {"item_id": "B2", "title": None, "categories": ["Beauty"]},
    {"item_id": "B3", "title": "Soap", "categories": []},
]
CSV = "user_id,item_id,position\nA,B1,0\nA,B2,1\nA,B3,2\nB,B2,0\nB,B1,1\nB,B3,2\n"


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def folder(tmp_path: Path, csv: str = CSV, items: str | None = None, gz: bool = False) -> Path:
    ext = ".gz" if gz else ""
    write(tmp_path / f"interactions.csv{ext}", csv)
    write(tmp_path / f"items.jsonl{ext}", jsonl(ITEMS) if items is None else items)
    return tmp_path


@pytest.mark.parametrize("gz", [False, True])
def test_loads_plain_and_gzip(tmp_path, gz):
    raw = load_normalized(folder(tmp_path, gz=gz))
    assert raw.interactions.columns == ["user_id", "item_id", "time"]
    assert raw.interactions.height == 6
    assert raw.interactions["time"].to_list() == [0, 1, 2, 0, 1, 2]
    assert raw.items["item_id"].to_list() == ["B1", "B2", "B3"]
    prepared = prepare(raw, DataConfig())
    assert prepared.items["text"].to_list() == ["Gel; Beauty > Hair", "Beauty", "Soap"]


def test_timestamp_column_is_accepted(tmp_path):
    raw = load_normalized(folder(tmp_path, csv="user_id,item_id,timestamp\nA,B1,1700000000\n"))
    assert raw.interactions["time"].to_list() == [1700000000]


def test_ids_stay_strings(tmp_path):
    items = jsonl([{"item_id": "007", "title": "x"}])
    raw = load_normalized(folder(tmp_path, csv="user_id,item_id,position\n0012,007,0\n", items=items))
    assert raw.interactions.row(0) == ("0012", "007", 0)


def test_malformed_json_line_names_file_and_line(tmp_path):
    items = jsonl(ITEMS[:1]) + '{"item_id": "B2", "title": \n'
    with pytest.raises(ValueError, match=r"items\.jsonl, line 2: malformed JSON"):
        load_normalized(folder(tmp_path, items=items))


def test_item_without_id(tmp_path):
    items = jsonl(ITEMS[:2]) + jsonl([{"title": "no id"}])
    with pytest.raises(ValueError, match=r"items\.jsonl, line 3: no 'item_id' field"):
        load_normalized(folder(tmp_path, items=items))


def test_empty_items_file(tmp_path):
    with pytest.raises(ValueError, match=r"items\.jsonl: no items"):
        load_normalized(folder(tmp_path, items="\n"))


def test_mixed_field_types_are_reported(tmp_path):
    items = jsonl([{"item_id": "B1", "categories": ["a"]}, {"item_id": "B2", "categories": "b"}])
    with pytest.raises(ValueError, match=r"items\.jsonl: .*categories"):
        load_normalized(folder(tmp_path, items=items))


def test_missing_column_lists_found_and_config_key(tmp_path):
    with pytest.raises(ValueError, match=r"interactions\.csv: missing column\(s\) \['item_id'\]") as err:
        load_normalized(folder(tmp_path, csv="user_id,asin,position\nA,B1,0\n"))
    assert "found ['user_id', 'asin', 'position']" in str(err.value)
    assert "data.item_col" in str(err.value)


def test_non_numeric_time_names_line(tmp_path):
    csv = "user_id,item_id,position\nA,B1,0\nA,B2,yesterday\n"
    with pytest.raises(ValueError, match=r"interactions\.csv, line 3: 'position' value 'yesterday' is not a time"):
        load_normalized(folder(tmp_path, csv=csv))


def test_nan_time_is_not_a_number(tmp_path):
    with pytest.raises(ValueError, match=r"line 2: .*not a time"):
        load_normalized(folder(tmp_path, csv="user_id,item_id,position\nA,B1,nan\n"))


def test_empty_value_names_line_and_column(tmp_path):
    csv = "user_id,item_id,position\nA,B1,0\n,B2,1\n"
    with pytest.raises(ValueError, match=r"interactions\.csv, line 3: empty 'user_id' value"):
        load_normalized(folder(tmp_path, csv=csv))


def test_ragged_csv_line_is_located(tmp_path):
    csv = "user_id,item_id,position\nA,B1,0\nA,B2,1,extra\n"
    with pytest.raises(ValueError, match=r"interactions\.csv, line 3: not a readable CSV"):
        load_normalized(folder(tmp_path, csv=csv))


def test_header_only_and_empty_file(tmp_path):
    with pytest.raises(ValueError, match="no interactions"):
        load_normalized(folder(tmp_path, csv="user_id,item_id,position\n"))
    with pytest.raises(ValueError, match="not a readable CSV"):
        load_normalized(folder(tmp_path, csv=""))


def test_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"no interactions\.csv"):
        load_normalized(tmp_path)
    write(tmp_path / "interactions.csv", CSV)
    with pytest.raises(ValueError, match=r"no items\.jsonl"):
        load_normalized(tmp_path)


def test_unknown_item_is_reported_by_prepare(tmp_path):
    csv = CSV + "C,B9,0\n"
    raw = load_normalized(folder(tmp_path, csv=csv))
    with pytest.raises(ValueError, match=r"1 item id\(s\) missing from the items file, first 'B9'") as err:
        prepare(raw, DataConfig())
    assert str(tmp_path) in str(err.value)
    assert "interaction 7" in str(err.value)
