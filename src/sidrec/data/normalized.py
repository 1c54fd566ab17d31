"""The normalized folder format: `interactions.csv` (user_id,item_id,position-or-timestamp) + `items.jsonl`.

Either file may be gzip-compressed (`.gz`). This is the format of the bundled Beauty data.
"""

from __future__ import annotations

import csv
import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from sidrec.data.encoding import check, open_text, polars_encoding
from sidrec.data.schema import ITEM, TIME, USER, RawDataset, names, short


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            return candidate
    return None


def read_interactions_csv(
    path: Path, user_col: str, item_col: str, time_col: str, separator: str = ","
) -> pl.DataFrame:
    """Read a CSV (or TSV) of interactions into the canonical columns, with errors naming the file and fix."""
    check(path)
    try:
        # All strings: ids stay exact.
        df = pl.read_csv(path, infer_schema=False, separator=separator, encoding=polars_encoding())
    except pl.exceptions.PolarsError as err:
        where = bad_csv_line(path, separator)
        raise ValueError(
            f"{path}{where}: not a readable CSV ({_first_line(err)}). "
            f"Expected a header line like '{separator.join((user_col, item_col, time_col))}' "
            "and the same number of fields on every line"
        ) from None
    missing = [c for c in (user_col, item_col, time_col) if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; found {names(df.columns)}. "
            f"Rename them, or set data.user_col / data.item_col / data.time_col"
        )
    return to_canonical(df, path, user_col, item_col, time_col)


def _first_line(err: Exception) -> str:
    return str(err).partition("\n")[0]


def bad_csv_line(path: Path, separator: str) -> str:
    """', line N' for the first line whose field count differs from the header's ('' if none)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
            width = None
            for lineno, fields in enumerate(csv.reader(f, delimiter=separator), 1):
                if width is None:
                    width = len(fields)
                elif fields and len(fields) != width:
                    return f", line {lineno}"
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return ""


def to_canonical(
    df: pl.DataFrame, path: Path, user_col: str, item_col: str, time_col: str, first_line: int | None = 2
) -> pl.DataFrame:
    """Select and type the three columns; a bad row is reported by its line number in `path`.

    `first_line` is the line of the first data row (2 after a CSV header); None reports row numbers
    instead (binary formats such as Parquet).
    """

    def where(row: int) -> str:
        return f"line {row + first_line}" if first_line is not None else f"row {row + 1}"

    original = {USER: user_col, ITEM: item_col, TIME: time_col}
    df = df.select(
        pl.col(user_col).cast(pl.Utf8).alias(USER),
        pl.col(item_col).cast(pl.Utf8).alias(ITEM),
        pl.col(time_col).cast(pl.Utf8).alias(TIME),
    )
    if len(df) == 0:
        raise ValueError(f"{path}: no interactions. The file has a header but no rows")
    for col in (USER, ITEM, TIME):
        bad = df.with_row_index("row").filter(pl.col(col).is_null() | (pl.col(col).str.strip_chars() == ""))
        if bad.height:
            row = int(bad["row"][0])
            raise ValueError(
                f"{path}, {where(row)}: empty '{original[col]}' value. "
                "Every interaction needs a user, an item and a time"
            )
    text = df[TIME].str.strip_chars()
    times = text.cast(pl.Float64, strict=False)
    ok = times.is_finite() & (times.abs() < 2.0**62)  # NaN, inf and int64 overflow are not times
    times = times.to_frame(TIME).select(pl.when(ok).then(pl.col(TIME))).to_series().cast(pl.Int64)
    if times.null_count() == len(times):  # no number at all: ISO 8601 dates / date-times
        times = iso_times(text)
    if times.null_count():
        row = int(df.with_row_index("row").filter(times.is_null())["row"][0])
        raise ValueError(f"{path}, {where(row)}: '{time_col}' value {short(df[TIME][row])} is not a time. {TIMES}")
    return df.with_columns(times.alias(TIME))


TIMES = (
    "Accepted, one kind per column: a unix timestamp, a 0-based position, or ISO 8601 dates and date-times "
    "(2023-11-16, 2023-11-16 19:45:49, 2023-11-16T19:45:49.5Z, 2023-11-16T19:45:49+02:00; no zone = UTC)"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_time(text: str) -> int | None:
    """An ISO 8601 date or date-time -> unix seconds (no zone: UTC; fractions dropped, ties keep file order);
    None if not one."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(seconds=1)


def iso_times(text: pl.Series) -> pl.Series:
    """ISO 8601 strings -> int64 unix seconds, null where a value is not one."""
    return text.map_elements(iso_time, return_dtype=pl.Int64, skip_nulls=True)


def read_items_jsonl(path: Path, key: str = ITEM) -> pl.DataFrame:
    """Read one JSON object per line; every object needs the item id field `key`."""
    rows = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}, line {lineno}: malformed JSON ({err.msg}). Each line must be one JSON object"
                ) from None
            if not isinstance(obj, dict) or key not in obj or obj[key] in (None, ""):
                raise ValueError(
                    f"{path}, line {lineno}: no '{key}' field. Each item needs its id, "
                    f'e.g. {{"{key}": "B004756YJA", "title": ...}}'
                )
            obj[ITEM] = str(obj.pop(key))
            rows.append(obj)
    if not rows:
        raise ValueError(f"{path}: no items. The items file is empty; it needs one JSON object per item")
    try:
        return pl.DataFrame(rows, infer_schema_length=None)
    except pl.exceptions.PolarsError:
        kinds: dict[str, set[str]] = {}
        for row in rows:
            for name, value in row.items():
                if value is not None:
                    kinds.setdefault(name, set()).add(type(value).__name__)
        mixed = {name: sorted(k) for name, k in kinds.items() if len(k) > 1}
        raise ValueError(
            f"{path}: field values of different kinds {mixed or ''} cannot form one column. "
            "Give each field one type on every line (e.g. always a list of strings for 'categories')"
        ) from None


def load_normalized(
    folder: str | Path, user_col: str = USER, item_col: str = ITEM, time_col: str = "position"
) -> RawDataset:
    folder = Path(folder)
    inter = _find(folder, "interactions.csv")
    if inter is None:
        raise ValueError(f"{folder}: no interactions.csv(.gz). The normalized format is interactions.csv + items.jsonl")
    try:
        header = pl.read_csv(inter, n_rows=0, infer_schema=False).columns
    except pl.exceptions.PolarsError:
        header = []  # empty or unreadable: read_interactions_csv reports it
    if time_col not in header and "timestamp" in header:
        time_col = "timestamp"
    interactions = read_interactions_csv(inter, user_col, item_col, time_col)
    items_path = _find(folder, "items.jsonl")
    if items_path is None:
        raise ValueError(f"{folder}: no items.jsonl(.gz). Add one JSON object per item with at least an 'item_id'")
    return RawDataset(interactions=interactions, items=read_items_jsonl(items_path), source=str(folder))
