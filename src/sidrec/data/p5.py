"""The P5 format: `sequential_data.txt` + `datamaps.json` (+ optional `items.jsonl`).

`sequential_data.txt` holds one line per user, `user_idx item_idx item_idx ...` in chronological
order (CRLF or LF), e.g. `1 1 2 3 4 5`; the position within the line is the time. `datamaps.json`
maps those integer strings to raw ids: `{"id2user": {"1": "A1YJEY40YUW4SE"}, "id2item": {"1":
"B004756YJA"}, ...}`. Without `datamaps.json` the integers themselves are the ids. Item text comes
from `items.jsonl(.gz)` (one JSON object per item keyed by the raw `item_id`) when the folder has
one; otherwise items have no text fields and their text falls back to the id.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from sidrec.data.encoding import open_text
from sidrec.data.normalized import read_items_jsonl
from sidrec.data.schema import ITEM, TIME, USER, RawDataset, names, short

SEQUENCES = "sequential_data.txt"
DATAMAPS = "datamaps.json"


def _read_datamaps(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    try:
        with open_text(path) as f:
            maps = json.loads(f.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}). Expected the P5 datamaps object") from None
    if not isinstance(maps, dict) or not all(isinstance(maps.get(k), dict) for k in ("id2user", "id2item")):
        found = names(sorted(maps)) if isinstance(maps, dict) else type(maps).__name__
        raise ValueError(f"{path}: needs the objects 'id2user' and 'id2item' (integer string -> raw id); found {found}")
    return (
        {str(k): str(v) for k, v in maps["id2user"].items()},
        {str(k): str(v) for k, v in maps["id2item"].items()},
    )


def _read_sequences(path: Path, id2user: dict[str, str] | None, id2item: dict[str, str] | None) -> pl.DataFrame:
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    with open_text(path, newline=None) as f:  # universal newlines: CRLF and LF
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            where = f"{path}, line {lineno}"
            bad = next((t for t in tokens if not (t.isascii() and t.isdigit())), None)
            if bad is not None:
                raise ValueError(
                    f"{where}: {short(bad)} is not an integer id. Each line is 'user_idx item_idx item_idx ...', "
                    "space separated"
                )
            if len(tokens) < 2:
                raise ValueError(f"{where}: user {tokens[0]} has no items. Drop the line or add its items")
            user = tokens[0]
            if id2user is not None:
                if user not in id2user:
                    raise ValueError(f"{where}: user {user} is not in datamaps.json 'id2user'")
                user = id2user[user]
            for pos, token in enumerate(tokens[1:]):
                if id2item is not None:
                    if token not in id2item:
                        raise ValueError(f"{where}: item {token} is not in datamaps.json 'id2item'")
                    token = id2item[token]
                users.append(user)
                items.append(token)
                times.append(pos)
    if not users:
        raise ValueError(f"{path}: no sequences. Expected one line per user: 'user_idx item_idx item_idx ...'")
    return pl.DataFrame({USER: users, ITEM: items, TIME: times}, schema={USER: pl.Utf8, ITEM: pl.Utf8, TIME: pl.Int64})


def load_p5(folder: str | Path) -> RawDataset:
    """Load a P5 dataset folder.

    Args:
        folder: the folder with `sequential_data.txt`, `datamaps.json` and optionally `items.jsonl(.gz)`
            (or the path of `sequential_data.txt` itself).

    Returns:
        Interactions (time = position within the user's line) and items.

    Raises:
        ValueError: a missing file, a malformed line (with file and line number), an unknown id.
    """
    folder = Path(folder).expanduser()
    if folder.is_file():
        folder = folder.parent
    seq_path = folder / SEQUENCES
    if not seq_path.is_file():
        raise ValueError(f"{folder}: no {SEQUENCES}. The P5 format is {SEQUENCES} + {DATAMAPS}")
    maps_path = folder / DATAMAPS
    id2user, id2item = _read_datamaps(maps_path) if maps_path.is_file() else (None, None)
    interactions = _read_sequences(seq_path, id2user, id2item)
    items_path = next((p for p in (folder / "items.jsonl", folder / "items.jsonl.gz") if p.is_file()), None)
    if items_path is not None:
        items = read_items_jsonl(items_path)
    else:
        items = pl.DataFrame({ITEM: interactions[ITEM].unique(maintain_order=True)})
    return RawDataset(interactions=interactions, items=items, source=str(folder))
