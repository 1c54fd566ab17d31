"""The canonical tables every loader produces, and the column names shared by all stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

USER = "user_id"  # original user id (string)
ITEM = "item_id"  # original item id (string)
TIME = "time"  # int64 timestamp or position; ties keep file order
ITEM_IDX = "item_idx"  # 1..N; 0 is padding in every model
USER_IDX = "user_idx"  # 0..U-1
TEXT = "text"
SEQ = "items"  # a user's full chronological list of item_idx
ACTION = "action"  # optional interaction column: the action taken, a small int >= 1 (e.g. a 1-5 rating)
TIMES = "times"  # sequences: each event's timestamp (seconds), where the data has real timestamps
ACTIONS = "actions"  # sequences: each event's action, where the data has one


@dataclass(frozen=True)
class RawDataset:
    """What a loader returns.

    Attributes:
        interactions: columns `user_id` (str), `item_id` (str), `time` (int64), in file order.
        items: column `item_id` (str) plus any text fields (title, categories, ...); may be empty of
            fields, in which case the item text falls back to its id.
        source: where it came from, for messages and `data_stats.json`.
        replaced_bytes: {file: non-UTF-8 bytes replaced} under `data.encoding_errors=replace`.
        items_source: the items file, where it is not `source` (the table format's `data.items_path`).
        timestamps: `time` holds real timestamps in seconds (not positions): sequences keep them (`times`).
    An optional `action` column (int >= 1, e.g. the rating) is kept per event too (`actions`).
    """

    interactions: pl.DataFrame
    items: pl.DataFrame
    source: str
    replaced_bytes: dict[str, int] = field(default_factory=dict)
    items_source: str = ""
    timestamps: bool = False


def short(value: object, limit: int = 60) -> str:
    """repr(value) cut to `limit` characters, for error messages about huge fields.

    >>> short("x" * 100, 10)
    "'xxxxxxxxx... (102 characters)"
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}... ({len(text)} characters)"


def names(values: object, limit: int = 20) -> str:
    """A list of field or column names for a message, each cut by `short`, at most `limit` of them."""
    values = list(values)  # type: ignore[call-overload]
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return "[" + ", ".join(short(v, 40) for v in values[:limit]) + more + "]"


def render_text(item: dict, template: str) -> str:
    """Fill `template` from an item's fields; lists become 'a > b > c', missing fields ''.

    >>> render_text({"title": "Gel", "categories": ["Beauty", "Hair"]}, "{title}; {categories}")
    'Gel; Beauty > Hair'
    """

    class _Fields(dict):
        def __missing__(self, key: str) -> str:
            return ""

    fields = _Fields()
    for key, value in item.items():
        if value is None:
            value = ""
        elif isinstance(value, list | tuple):
            value = " > ".join(str(v) for v in value if v is not None)
        fields[key] = value
    text = template.format_map(fields).strip().strip(";").strip()
    return text or str(item.get(ITEM, ""))
