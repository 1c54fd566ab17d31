"""The `table` format: one interactions file (CSV, TSV, Parquet or JSON lines) + an optional items file.

Example (`data.path=events.csv data.time_col=timestamp`): a header `user_id,item_id,timestamp` then
rows like `A1YJEY40YUW4SE,B004756YJA,1391040000`. The format is chosen by the extension (`.csv`,
`.tsv`, `.parquet`, `.jsonl`; `.gz` is allowed for the text formats). Column names come from
`data.user_col` / `data.item_col` / `data.time_col`. The optional items file (`data.items_path`,
CSV / TSV / Parquet / JSONL) is keyed by `data.item_key`; all its other columns become text fields.
Without it, the items are the distinct item ids, with no text (the text falls back to the id).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl

from sidrec.data.encoding import check, open_text, polars_encoding
from sidrec.data.normalized import TIMES, bad_csv_line, iso_time, read_interactions_csv, read_items_jsonl, to_canonical
from sidrec.data.schema import ITEM, TIME, USER, RawDataset, names, short

_KINDS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_COL_KEYS = "data.user_col / data.item_col / data.time_col"


def file_kind(path: Path) -> str:
    """'csv', 'tsv', 'parquet' or 'jsonl' from the file name (a `.gz` suffix is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    ext = suffixes[-2] if gz and len(suffixes) > 1 else (suffixes[-1] if suffixes and not gz else "")
    kind = _KINDS.get(ext)
    if kind is None or (gz and kind == "parquet"):
        raise ValueError(
            f"{path}: unknown table file type. Use .csv, .tsv, .parquet or .jsonl "
            "(.csv.gz, .tsv.gz and .jsonl.gz also work)"
        )
    return kind


def _first_line(err: Exception) -> str:
    return str(err).partition("\n")[0]


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise ValueError(f"{path}: not a readable Parquet file ({_first_line(err)})") from None


def _read_jsonl_interactions(path: Path, user_col: str, item_col: str, time_col: str) -> pl.DataFrame:
    cols = (user_col, item_col, time_col)
    values: dict[str, list[str]] = {c: [] for c in cols}
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{where}: malformed JSON ({err.msg}). Each line must be one JSON object like "
                    f'{{"{user_col}": "u1", "{item_col}": "i9", "{time_col}": 1700000000}}'
                ) from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            missing = [c for c in cols if c not in obj]
            if missing:
                raise ValueError(
                    f"{where}: missing field(s) {missing}; found {names(sorted(obj))}. Rename them, or set {_COL_KEYS}"
                )
            for col in (user_col, item_col):
                if obj[col] is None or isinstance(obj[col], dict | list) or str(obj[col]).strip() == "":
                    raise ValueError(f"{where}: empty or non-scalar '{col}' value {short(obj[col])}")
            t = obj[time_col]
            try:
                ok = not isinstance(t, bool) and math.isfinite(float(t))
            except (TypeError, ValueError):
                ok = isinstance(t, str) and iso_time(t.strip()) is not None
            if not ok:
                raise ValueError(f"{where}: '{time_col}' value {short(t)} is not a time. {TIMES}")
            for col in cols:
                values[col].append(str(obj[col]))
    if not values[user_col]:
        raise ValueError(f"{path}: no interactions. The file is empty; it needs one JSON object per line")
    return to_canonical(pl.DataFrame(values), path, user_col, item_col, time_col, first_line=None)


def _read_interactions(path: Path, user_col: str, item_col: str, time_col: str) -> pl.DataFrame:
    kind = file_kind(path)
    if kind in ("csv", "tsv"):
        sep = "," if kind == "csv" else "\t"
        return read_interactions_csv(path, user_col, item_col, time_col, separator=sep)
    if kind == "jsonl":
        return _read_jsonl_interactions(path, user_col, item_col, time_col)
    df = _read_parquet(path)
    missing = [c for c in (user_col, item_col, time_col) if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; found {names(df.columns)}. Rename them, or set {_COL_KEYS}"
        )
    if df.schema[time_col].is_temporal():
        df = df.with_columns(pl.col(time_col).dt.epoch("s"))  # datetimes -> unix seconds
    return to_canonical(df, path, user_col, item_col, time_col, first_line=None)


def read_items_table(path: Path, item_key: str) -> pl.DataFrame:
    """An items file (CSV / TSV / Parquet / JSONL) keyed by `item_key` -> `item_id` + text fields."""
    kind = file_kind(path)
    if kind == "jsonl":
        df = read_items_jsonl(path, key=item_key)
        return df.select(ITEM, pl.exclude(ITEM))
    if kind == "parquet":
        df = _read_parquet(path)
    else:
        check(path)
        try:
            sep = "," if kind == "csv" else "\t"
            df = pl.read_csv(path, infer_schema=False, separator=sep, encoding=polars_encoding())
        except pl.exceptions.NoDataError:
            df = pl.DataFrame()
        except pl.exceptions.PolarsError as err:
            where = bad_csv_line(path, sep)
            raise ValueError(
                f"{path}{where}: not a readable {kind.upper()} ({_first_line(err)}). "
                "Expected a header line and the same number of fields on every line"
            ) from None
    if df.width == 0 or df.height == 0:
        raise ValueError(f"{path}: no items. The items file is empty; it needs a header and one row per item")
    if item_key not in df.columns:
        raise ValueError(
            f"{path}: no item id column '{item_key}'; found {names(df.columns)}. Set data.item_key to the id column"
        )
    if item_key != ITEM and ITEM in df.columns:
        df = df.drop(ITEM)
    df = df.rename({item_key: ITEM}).with_columns(pl.col(ITEM).cast(pl.Utf8))
    bad = df.with_row_index("row").filter(pl.col(ITEM).is_null() | (pl.col(ITEM).str.strip_chars() == ""))
    if bad.height:
        row = int(bad["row"][0])
        where = f"row {row + 1}" if kind == "parquet" else f"line {row + 2}"
        raise ValueError(f"{path}, {where}: empty '{item_key}' value. Every item needs its id")
    return df.select(ITEM, pl.exclude(ITEM))


def load_table(
    path: str | Path,
    *,
    items_path: str | Path | None = None,
    user_col: str = USER,
    item_col: str = ITEM,
    time_col: str = "position",
    item_key: str = ITEM,
) -> RawDataset:
    """Load an interactions table and an optional items table.

    Args:
        path: the interactions file (.csv, .tsv, .parquet, .jsonl; text formats may be .gz).
        items_path: the items file (same types); None = items are the interacted ids, no text.
        user_col: user id column of the interactions file.
        item_col: item id column of the interactions file.
        time_col: timestamp or 0-based position column; ties keep file order.
        item_key: item id column of the items file.

    Returns:
        The interactions in file order and the items table.

    Raises:
        ValueError: unreadable file, missing column, empty value, non-numeric time, empty items file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: the table format needs an interactions file (CSV, TSV, Parquet or JSONL)")
    interactions = _read_interactions(path, user_col, item_col, time_col)
    if items_path:
        ipath = Path(items_path).expanduser()
        if not ipath.is_file():
            raise ValueError(f"data.items_path={items_path}: no such file")
        items = read_items_table(ipath, item_key)
    else:
        ipath, items = "", pl.DataFrame({ITEM: interactions[ITEM].unique(maintain_order=True)})
    return RawDataset(interactions.select(USER, ITEM, TIME), items, source=str(path), items_source=str(ipath))
