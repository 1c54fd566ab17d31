"""Non-UTF-8 input: strict mode names the file, the line and the fix; replace mode counts and reports."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from sidrec.config import DataConfig
from sidrec.data.encoding import check, decoding, scan
from sidrec.data.sources import load_dataset
from sidrec.data.split import prepare

CLICKS = "uid,sku,ts\n" + "".join(f"u{u},s{i},{t}\n" for u in range(3) for t, i in enumerate(range(4)))


def latin1_items(path: Path) -> Path:
    rows = "".join(f"s{i},Caf\xe9 {i}\n" if i == 2 else f"s{i},Tea {i}\n" for i in range(4))
    path.write_bytes(("sku,name\n" + rows).encode("latin-1"))
    return path


def cfg(tmp_path: Path, **kw) -> DataConfig:
    (tmp_path / "clicks.csv").write_text(CLICKS)
    base = dict(path=str(tmp_path / "clicks.csv"), user_col="uid", item_col="sku", time_col="ts", item_key="sku")
    return DataConfig(**{**base, **kw})


def test_scan_finds_the_line_and_byte(tmp_path):
    path = latin1_items(tmp_path / "items.csv")
    assert scan(path) == (1, 4, 0xE9)


def test_scan_across_chunk_boundaries_and_gzip(tmp_path, monkeypatch):
    import sidrec.data.encoding as enc

    monkeypatch.setattr(enc, "_CHUNK", 7)  # multi-byte characters split between reads stay valid
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write("é\n".encode() * 20 + b"\xff\n" + "日本\n".encode() * 5 + b"\xfe")
    assert scan(path) == (2, 21, 0xFF)


def test_strict_names_file_line_and_fix(tmp_path):
    c = cfg(tmp_path, items_path=str(latin1_items(tmp_path / "items.csv")))
    with pytest.raises(ValueError) as err:
        load_dataset(c)
    msg = str(err.value)
    assert "items.csv, line 4: byte 0xe9 is not UTF-8" in msg
    assert "data.encoding_errors=replace" in msg and "iconv" in msg


def test_replace_mode_replaces_counts_and_reports(tmp_path, caplog):
    c = cfg(tmp_path, items_path=str(latin1_items(tmp_path / "items.csv")), encoding_errors="replace")
    raw = load_dataset(c)
    assert raw.replaced_bytes == {str(tmp_path / "items.csv"): 1}
    prepared = prepare(raw, c)
    assert "Caf\ufffd 2" in prepared.items["text"].to_list()
    assert prepared.stats["replaced_non_utf8_bytes"] == {str(tmp_path / "items.csv"): 1}
    assert "replaced 1 non-UTF-8 byte(s)" in caplog.text


@pytest.mark.parametrize("name", ["clicks.csv", "clicks.jsonl", "clicks.tsv"])
def test_strict_interactions_file(tmp_path, name):
    sep = {"csv": ",", "tsv": "\t"}.get(name.rsplit(".", 1)[1])
    if sep:
        text = (
            b"uid" + sep.encode() + b"sku" + sep.encode() + b"ts\nu1" + sep.encode() + b"s\xe8" + sep.encode() + b"1\n"
        )
    else:
        text = b'{"uid": "u1", "sku": "s1", "ts": 1}\n{"uid": "u\xe8", "sku": "s1", "ts": 2}\n'
    (tmp_path / name).write_bytes(text)
    c = DataConfig(path=str(tmp_path / name), user_col="uid", item_col="sku", time_col="ts")
    with pytest.raises(ValueError, match=rf"{name}, line 2: byte 0xe8 is not UTF-8"):
        load_dataset(c)


def test_corrupt_gzip_is_named(tmp_path):
    path = tmp_path / "clicks.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="clicks.csv.gz: not a readable gzip file"):
        check(path)


def test_unknown_mode():
    with pytest.raises(ValueError, match="data.encoding_errors"):
        with decoding("ignore"):
            pass
