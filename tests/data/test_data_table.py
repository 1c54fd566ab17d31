"""The `table` format: CSV / TSV / Parquet / JSONL interactions with configurable columns."""

from __future__ import annotations

import datetime
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from sidrec.config import DataConfig
from sidrec.data.split import prepare
from sidrec.data.table import load_table

COLS = {"user_col": "uid", "item_col": "asin", "time_col": "ts", "item_key": "asin"}
ROWS = [
    ("u1", "i1", 30),
    ("u1", "i2", 10),
    ("u1", "i3", 20),
    ("u2", "i2", 5),
    ("u2", "i3", 5),
    ("u2", "i1", 6),
]


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def delimited(sep: str) -> str:
    return sep.join(("uid", "asin", "ts")) + "\n" + "".join(f"{u}{sep}{i}{sep}{t}\n" for u, i, t in ROWS)


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def interaction_files(tmp_path: Path) -> dict[str, Path]:
    frame = pl.DataFrame({"uid": [r[0] for r in ROWS], "asin": [r[1] for r in ROWS], "ts": [r[2] for r in ROWS]})
    frame.write_parquet(tmp_path / "events.parquet")
    return {
        "csv": write(tmp_path / "events.csv", delimited(",")),
        "csv.gz": write(tmp_path / "events.csv.gz", delimited(",")),
        "tsv": write(tmp_path / "events.tsv", delimited("\t")),
        "tsv.gz": write(tmp_path / "events.tsv.gz", delimited("\t")),
        "parquet": tmp_path / "events.parquet",
        "jsonl": write(
            tmp_path / "events.jsonl", jsonl([dict(zip(("uid", "asin", "ts"), r, strict=True)) for r in ROWS])
        ),
        "jsonl.gz": write(
            tmp_path / "events.jsonl.gz",
            jsonl([dict(zip(("uid", "asin", "ts"), r, strict=True)) for r in ROWS]),
        ),
    }


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "tsv", "tsv.gz", "parquet", "jsonl", "jsonl.gz"])
def test_interaction_file_types(tmp_path, kind):
    raw = load_table(interaction_files(tmp_path)[kind], **COLS)
    assert raw.interactions.columns == ["user_id", "item_id", "time"]
    assert raw.interactions.rows() == ROWS
    assert raw.items.columns == ["item_id"]  # no items file: ids only
    assert sorted(raw.items["item_id"].to_list()) == ["i1", "i2", "i3"]
    prepared = prepare(raw, DataConfig())
    assert prepared.items["text"].to_list() == ["i1", "i2", "i3"]  # text falls back to the id
    seqs = dict(zip(prepared.sequences["user_id"], prepared.sequences["items"].to_list(), strict=True))
    assert seqs == {"u1": [2, 3, 1], "u2": [2, 3, 1]}  # time order; u2's tie at ts=5 keeps file order


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet", "jsonl"])
def test_items_file_types(tmp_path, kind):
    events = write(tmp_path / "events.csv", delimited(","))
    items = {"asin": ["i1", "i2", "i3"], "title": ["One", "Two", None], "brand": ["X", None, "Z"]}
    path = tmp_path / f"items.{kind}"
    if kind == "parquet":
        pl.DataFrame(items).write_parquet(path)
    elif kind == "jsonl":
        write(path, jsonl([dict(zip(items, v, strict=True)) for v in zip(*items.values(), strict=True)]))
    else:
        pl.DataFrame(items).write_csv(path, separator="," if kind == "csv" else "\t")
    raw = load_table(events, items_path=path, **COLS)
    assert raw.items.columns[0] == "item_id"
    assert set(raw.items.columns) == {"item_id", "title", "brand"}
    cfg = DataConfig(text_template="{title} by {brand}")
    assert prepare(raw, cfg).items["text"].to_list() == ["One by X", "Two by", "by Z"]


def test_parquet_items_keep_lists_and_int_keys(tmp_path):
    events = write(tmp_path / "e.csv", "uid,asin,ts\nu,1,0\nu,2,1\nu,3,2\n")
    pl.DataFrame({"asin": [1, 2, 3], "categories": [["A", "B"], ["A"], None]}).write_parquet(tmp_path / "i.pq")
    raw = load_table(events, items_path=tmp_path / "i.pq", **COLS)
    assert prepare(raw, DataConfig()).items["text"].to_list() == ["A > B", "A", "3"]


def test_parquet_datetime_time_becomes_unix_seconds(tmp_path):
    day = datetime.datetime(2014, 1, 30)
    pl.DataFrame({"uid": ["u"], "asin": ["i"], "ts": [day]}).write_parquet(tmp_path / "e.parquet")
    raw = load_table(tmp_path / "e.parquet", **COLS)
    assert raw.interactions["time"].to_list() == [1391040000]


def test_missing_column_lists_columns_and_key(tmp_path):
    for path in interaction_files(tmp_path).values():
        with pytest.raises(ValueError, match=r"missing (column|field)\(s\) \['when'\]") as err:
            load_table(path, **{**COLS, "time_col": "when"})
        assert str(path) in str(err.value)
        assert "ts" in str(err.value) and "data.time_col" in str(err.value)


def test_missing_item_key(tmp_path):
    events = write(tmp_path / "events.csv", delimited(","))
    write(tmp_path / "items.csv", "id,title\ni1,One\n")
    with pytest.raises(ValueError, match=r"items\.csv: no item id column 'asin'; found \['id', 'title'\]") as e:
        load_table(events, items_path=tmp_path / "items.csv", **COLS)
    assert "data.item_key" in str(e.value)


@pytest.mark.parametrize("content", ["", "asin,title\n"])
def test_empty_items_file(tmp_path, content):
    events = write(tmp_path / "events.csv", delimited(","))
    write(tmp_path / "items.csv", content)
    with pytest.raises(ValueError, match=r"items\.csv: no items"):
        load_table(events, items_path=tmp_path / "items.csv", **COLS)


def test_empty_item_key_value(tmp_path):
    events = write(tmp_path / "events.csv", delimited(","))
    write(tmp_path / "items.csv", "asin,title\ni1,One\n,Two\n")
    with pytest.raises(ValueError, match=r"items\.csv, line 3: empty 'asin' value"):
        load_table(events, items_path=tmp_path / "items.csv", **COLS)


def test_malformed_jsonl_items_line(tmp_path):
    events = write(tmp_path / "events.csv", delimited(","))
    write(tmp_path / "items.jsonl", '{"asin": "i1"}\n{"asin": "i2",\n')
    with pytest.raises(ValueError, match=r"items\.jsonl, line 2: malformed JSON"):
        load_table(events, items_path=tmp_path / "items.jsonl", **COLS)


def test_jsonl_interaction_errors(tmp_path):
    path = tmp_path / "e.jsonl"
    write(path, '{"uid": "u", "asin": "i", "ts": 1}\n\n{"uid": "u", "asin": "i", "ts": "soon"}\n')
    with pytest.raises(ValueError, match=r"e\.jsonl, line 3: 'ts' value 'soon' is not a time"):
        load_table(path, **COLS)
    write(path, '{"uid": "u", "asin": "i", "ts": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"e\.jsonl, line 2: malformed JSON"):
        load_table(path, **COLS)
    write(path, '{"uid": "u", "asin": "", "ts": 1}\n')
    with pytest.raises(ValueError, match=r"e\.jsonl, line 1: empty or non-scalar 'asin'"):
        load_table(path, **COLS)


def test_non_numeric_time_csv(tmp_path):
    path = write(tmp_path / "e.tsv", "uid\tasin\tts\nu\ti\t1\nu\ti\t2014-01-30\n")
    with pytest.raises(
        ValueError, match=r"e\.tsv, line 3: 'ts' value '2014-01-30' is not a time. Accepted, one kind per column"
    ):
        load_table(path, **COLS)


def test_parquet_bad_value_reports_row(tmp_path):
    pl.DataFrame({"uid": ["u", None], "asin": ["i", "j"], "ts": [1, 2]}).write_parquet(tmp_path / "e.parquet")
    with pytest.raises(ValueError, match=r"e\.parquet, row 2: empty 'uid' value"):
        load_table(tmp_path / "e.parquet", **COLS)


def test_bad_paths(tmp_path):
    write(tmp_path / "e.xlsx", "x")
    with pytest.raises(ValueError, match="unknown table file type"):
        load_table(tmp_path / "e.xlsx", **COLS)
    with pytest.raises(ValueError, match="needs an interactions file"):
        load_table(tmp_path, **COLS)
    events = write(tmp_path / "events.csv", delimited(","))
    with pytest.raises(ValueError, match="data.items_path=.*no such file"):
        load_table(events, items_path=tmp_path / "nope.csv", **COLS)


def test_iso_times_in_csv_and_jsonl_order_like_parquet_datetimes(tmp_path):
    """ISO 8601 strings (dates, date-times, 'T' or space, Z or an offset, fractions) order the events as the same
    moments stored as Parquet datetimes do."""
    stamps = ["2023-11-16 19:45:49", "2023-11-16T19:45:48.5Z", "2023-11-16T21:45:50+02:00", "2023-11-15", "2023-11-17"]
    rows = [("u", f"i{k}", t) for k, t in enumerate(stamps)]
    csv = write(tmp_path / "e.csv", "uid,asin,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    jsonl = write(tmp_path / "e.jsonl", "".join(json.dumps({"uid": u, "asin": i, "ts": t}) + "\n" for u, i, t in rows))
    moments = [datetime.datetime.fromisoformat(t) for t in stamps]
    utc = [m.astimezone(datetime.timezone.utc).replace(tzinfo=None) if m.tzinfo else m for m in moments]
    pl.DataFrame({"uid": ["u"] * 5, "asin": [i for _, i, _ in rows], "ts": utc}).write_parquet(tmp_path / "e.parquet")
    orders = []
    for path in (csv, jsonl, tmp_path / "e.parquet"):
        df = load_table(path, **COLS).interactions
        orders.append(df.sort("time")["item_id"].to_list())
        assert df["time"].dtype == pl.Int64
    assert orders[0] == orders[1] == orders[2] == ["i3", "i1", "i0", "i2", "i4"]
