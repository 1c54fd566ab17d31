"""k-core filtering, integer ids, chronological sequences and the leave-one-out split.

Protocol (TIGER, GRID, RPG): per user, items in time order; the last item is the test
target, the second to last the validation target, everything before is training. Histories are
capped at the last `max_history` items.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from sidrec.config import DataConfig
from sidrec.data.profile import dataset_profile, log_profile
from sidrec.data.schema import (
    ACTION,
    ACTIONS,
    ITEM,
    ITEM_IDX,
    SEQ,
    TEXT,
    TIME,
    TIMES,
    USER,
    USER_IDX,
    RawDataset,
    short,
)
from sidrec.data.text import render_texts, resolve_template, text_report

logger = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


def kcore_filter(df: pl.DataFrame, k: int) -> pl.DataFrame:
    """Repeatedly drop users and items with fewer than `k` interactions."""
    if k <= 1:
        return df
    while True:
        before = df.height
        df = df.filter(pl.len().over(USER) >= k).filter(pl.len().over(ITEM) >= k)
        if df.height == before:
            return df


def _check_items(raw: RawDataset) -> None:
    known = set(raw.items[ITEM].to_list())
    unknown = raw.interactions.with_row_index("row").filter(~pl.col(ITEM).is_in(list(known)))
    if unknown.height:
        first = unknown.row(0, named=True)
        raise ValueError(
            f"{raw.source}: interactions name {unknown[ITEM].n_unique()} item id(s) missing from the "
            f"items file, first {short(first[ITEM])} (interaction {first['row'] + 1} in file order, "
            f"user {short(first[USER])}). Add them to the items file or drop those rows"
        )


def _sample_users(df: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    users = np.array(sorted(df[USER].unique().to_list()))
    if n <= 0 or n >= len(users):
        return df
    keep = np.random.default_rng(seed).choice(users, size=n, replace=False)
    return df.filter(pl.col(USER).is_in(keep.tolist()))


@dataclass(frozen=True)
class Prepared:
    items: pl.DataFrame  # item_idx (1..N), item_id, text
    sequences: pl.DataFrame  # user_idx, user_id, items (list of item_idx, chronological)
    stats: dict


def prepare(raw: RawDataset, cfg: DataConfig, seed: int = 0) -> Prepared:
    """Raw tables -> indexed items and chronological per-user sequences; every drop is counted and logged."""
    if raw.items.height == 0:
        raise ValueError(f"{raw.source}: the items table is empty; every interacted item needs an entry")
    template = resolve_template(
        cfg.text_template, raw.items, raw.items_source or raw.source
    )  # before any work: fail fast
    _check_items(raw)
    drops: dict[str, int] = {}
    duplicates = raw.items.height - raw.items[ITEM].n_unique()
    if duplicates:
        drops["duplicate_item_rows"] = duplicates
        logger.warning(
            "%s: %d duplicate item id row(s) in the items file; the first of each is kept", raw.source, duplicates
        )
    df, drops["exact_duplicate_rows"], repeats = _duplicates(raw.interactions.with_row_index("row"), cfg)
    drops["consecutive_repeat_rows"] = repeats if cfg.drop_consecutive_repeats else 0
    if repeats and not cfg.drop_consecutive_repeats:
        logger.info(
            "%s: %d interaction(s) repeat the user's previous item: kept as revisits (data.drop_consecutive_repeats"
            "=true drops them if they are duplicated rows)",
            raw.source,
            repeats,
        )
    users_in, items_in = df[USER].n_unique(), df[ITEM].n_unique()
    df = kcore_filter(df, cfg.kcore)
    drops["users_kcore"], drops["items_kcore"] = users_in - df[USER].n_unique(), items_in - df[ITEM].n_unique()
    sampled = _sample_users(df, cfg.max_users, seed)
    drops["users_not_sampled"] = df[USER].n_unique() - sampled[USER].n_unique()
    sampled, held_out = hold_out_items(sampled, cfg.cold_items, seed)
    drops["cold_item_rows"] = held_out["rows"]
    df = sampled.filter(pl.len().over(USER) >= cfg.min_interactions)
    drops["users_too_few_interactions"] = sampled[USER].n_unique() - df[USER].n_unique()
    if df.height == 0:
        raise ValueError(
            f"{raw.source}: no user has >= {cfg.min_interactions} interactions after filtering "
            f"(data.kcore={cfg.kcore}); leave-one-out needs 3 per user"
        )
    drops["items_only_with_dropped_users"] = sampled[ITEM].n_unique() - df[ITEM].n_unique()
    drops["items_never_interacted"] = raw.items[ITEM].n_unique() - items_in
    _log_drops(raw.source, drops, cfg)
    item_ids = sorted(df[ITEM].unique().to_list())
    item_map = pl.DataFrame({ITEM: item_ids, ITEM_IDX: np.arange(1, len(item_ids) + 1, dtype=np.int64)})
    df = df.join(item_map, on=ITEM).sort([USER, TIME, "row"])
    events = _event_columns(raw, df)
    seqs = df.group_by(USER, maintain_order=True).agg(pl.col(ITEM_IDX).alias(SEQ), *events.values())
    seqs = seqs.sort(USER).with_row_index(USER_IDX).with_columns(pl.col(USER_IDX).cast(pl.Int64))
    fields = raw.items.unique(ITEM, keep="first").join(item_map, on=ITEM).sort(ITEM_IDX)
    texts = render_texts(fields.drop(ITEM_IDX), template)
    items = fields.select(ITEM_IDX, ITEM).with_columns(pl.Series(TEXT, texts, dtype=pl.Utf8))
    text = text_report(items[ITEM].to_list(), texts, template)
    logger.info(
        "item text template: %r (%s)",
        template,
        "data.text_template" if cfg.text_template else "built from the fields found",
    )
    for example in text["examples"]:
        logger.info("  item text example: %s", example[:200])
    if text["items_without_text"]:
        logger.warning(
            "%d of %d items (%.0f%%) have no text: their text is their id",
            text["items_without_text"],
            items.height,
            100 * text["share_without_text"],
        )
    seqs, list_users = hold_out_lists(seqs, cfg.list_items, cfg.min_interactions, sorted(events))
    lengths = seqs[SEQ].list.len()
    stats = {
        "source": raw.source,
        "users": seqs.height,
        "items": items.height,
        "interactions": int(lengths.sum()),
        "dropped_users": raw.interactions[USER].n_unique() - seqs.height,
        "dropped": drops,
        "cold_items": held_out,  # data.cold_items: the items held out of training (test targets only)
        "list_items": {"items": cfg.list_items, "users": list_users},  # data.list_items: held out for list metrics
        "consecutive_repeats": repeats,  # rows that repeat the user's previous item (dropped if the setting says)
        "replaced_non_utf8_bytes": raw.replaced_bytes,
        "text": text,
        "mean_sequence_length": round(float(lengths.mean()), 3),
        "density": round(float(lengths.sum()) / (seqs.height * items.height), 6),
        "profile": dataset_profile(
            [np.asarray(x, dtype=np.int64) for x in seqs[SEQ].to_list()], items.height, cfg.max_history
        ),
    }
    log_profile(stats["profile"])
    stats["events"] = sorted(events)  # per-event columns kept beside the items (times, actions)
    held = [LIST + c for c in (SEQ, *sorted(events))] if cfg.list_items else []
    return Prepared(items=items, sequences=seqs.select(USER_IDX, USER, SEQ, *events, *held), stats=stats)


LIST = "list_"  # sequences: the columns of the items held out for list metrics (list_items, list_times, ...)


def hold_out_lists(seqs: pl.DataFrame, n: int, min_interactions: int, events: list[str]) -> tuple[pl.DataFrame, int]:
    """The list protocol (`data.list_items`): each user with at least n + min_interactions items gives their last n
    (and those events) to `list_<column>` columns; the rest of the sequence is split leave-one-out as usual, so no
    stage trains or validates on the held-out lists. Returns (sequences, users with a held-out list)."""
    if n < 0:
        raise ValueError(f"data.list_items={n}: give the number of items held out per user (e.g. 5), or 0 (off)")
    if n == 0:
        return seqs, 0
    long = pl.col(SEQ).list.len() >= n + min_interactions
    columns = (SEQ, *events)
    out = seqs.with_columns(
        *[pl.when(long).then(pl.col(c).list.slice(-n, n)).otherwise(pl.col(c).list.slice(0, 0)).alias(LIST + c)
          for c in columns],
        *[pl.when(long).then(pl.col(c).list.head(pl.col(c).list.len() - n)).otherwise(pl.col(c)).alias(c)
          for c in columns],
    )  # fmt: skip
    users = int((out[LIST + SEQ].list.len() > 0).sum())
    logger.info("data.list_items=%d: the last %d items of %d users held out for list metrics", n, n, users)
    return out, users


MAX_ACTION = 255  # actions are embedded: small ints


def _event_columns(raw: RawDataset, df: pl.DataFrame) -> dict[str, pl.Expr]:
    """The per-event lists the sequences keep beside the items: timestamps where the data has real ones, actions
    where it has an `action` column (ValueError for one outside 1..MAX_ACTION); logged either way."""
    out = {}
    if raw.timestamps:
        out[TIMES] = pl.col(TIME).alias(TIMES)
    if ACTION in df.columns:
        bad = df.filter(pl.col(ACTION).is_null() | (pl.col(ACTION) < 1) | (pl.col(ACTION) > MAX_ACTION))
        if bad.height:
            row = bad.row(0, named=True)
            raise ValueError(
                f"{raw.source}: interaction {row['row'] + 1} (user {short(row[USER])}, item {short(row[ITEM])}) has "
                f"action {row[ACTION]!r}; actions are ints in 1..{MAX_ACTION} (e.g. a 1-5 rating)"
            )
        out[ACTIONS] = pl.col(ACTION).alias(ACTIONS)
    kept = " and ".join(k for k in (TIMES, ACTIONS) if k in out)
    logger.info("%s: events keep %s", raw.source, kept or "items only (the data has no timestamps or actions)")
    return out


def hold_out_items(df: pl.DataFrame, share: float, seed: int) -> tuple[pl.DataFrame, dict]:
    """The item cold-start split (`data.cold_items`): a `share` of the items, drawn among those that are some
    user's last interaction (a test target), keep only those last interactions; every other row naming them
    goes, so they occur in no training or validation sequence and are scored through their content alone (as
    LIGER's cold-start items are, Yang et al., 2024). Returns (rows, {items, rows, share})."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"data.cold_items={share}: give a share of the items in [0, 1), e.g. 0.05 (0 = off)")
    if share == 0.0 or df.height == 0:
        return df, {"items": 0, "rows": 0, "share": share}
    ordered = df.sort([USER, TIME, "row"])
    last = ordered.group_by(USER, maintain_order=True).agg(pl.col("row").last())["row"]
    ends = np.array(sorted(ordered.filter(pl.col("row").is_in(last.implode()))[ITEM].unique().to_list()))
    n = min(len(ends), int(round(share * df[ITEM].n_unique())))
    cold = np.random.default_rng([seed, 61]).choice(ends, size=n, replace=False).tolist() if n else []
    keep = df.filter(~pl.col(ITEM).is_in(cold) | pl.col("row").is_in(last.implode()))
    logger.info(
        "data.cold_items=%g: %d items held out of training (test targets only); %d of their rows dropped",
        share, n, df.height - keep.height,
    )  # fmt: skip
    return keep, {"items": n, "rows": df.height - keep.height, "share": share}


def _duplicates(df: pl.DataFrame, cfg: DataConfig) -> tuple[pl.DataFrame, int, int]:
    """Drop rows that repeat a (user, item, time) row: the same event twice. Count the rows whose item is the
    user's previous one: without distinct times a duplicated row cannot be told from a return visit, so they are
    kept unless `data.drop_consecutive_repeats`. Returns (rows, exact duplicates dropped, consecutive repeats)."""
    unique = df.unique([USER, ITEM, TIME], keep="first", maintain_order=True)
    again = unique.sort([USER, TIME, "row"]).filter(pl.col(ITEM) == pl.col(ITEM).shift(1).over(USER))
    kept = unique.filter(~pl.col("row").is_in(again["row"].implode())) if cfg.drop_consecutive_repeats else unique
    return kept, df.height - unique.height, again.height


def _log_drops(source: str, drops: dict[str, int], cfg: DataConfig) -> None:
    why = {
        "exact_duplicate_rows": "rows that repeat another row's user, item and time (the same event twice)",
        "consecutive_repeat_rows": "rows that repeat the user's previous item (data.drop_consecutive_repeats=true)",
        "users_kcore": f"users with < {cfg.kcore} interactions (data.kcore={cfg.kcore}, applied repeatedly)",
        "items_kcore": f"items with < {cfg.kcore} interactions (data.kcore={cfg.kcore})",
        "users_not_sampled": f"users left out of the data.max_users={cfg.max_users} sample",
        "users_too_few_interactions": (
            f"users with < {cfg.min_interactions} interactions (data.min_interactions: "
            "leave-one-out needs a training, a validation and a test item)"
        ),
        "items_only_with_dropped_users": "items seen only by dropped users",
        "items_never_interacted": "items in the items file that no interaction names",
        "cold_item_rows": "rows naming a held-out item before its test target (data.cold_items)",
    }
    for key, count in drops.items():
        if count and key in why:
            logger.info("%s: dropped %d %s", source, count, why[key])


@dataclass(frozen=True)
class EvalExamples:
    user_idx: np.ndarray  # (U,)
    histories: list[np.ndarray]  # each the last <= max_history item_idx before the target
    targets: np.ndarray  # (U,) item_idx
    events: dict[str, list[np.ndarray]] = field(default_factory=dict)  # times / actions, in step with histories

    def subset(self, rows: np.ndarray) -> EvalExamples:
        """The examples of these rows, in this order."""
        events = {k: [v[i] for i in rows] for k, v in self.events.items()}
        return EvalExamples(self.user_idx[rows], [self.histories[i] for i in rows], self.targets[rows], events)


EVENTS = (TIMES, ACTIONS)  # the per-event columns sequences may keep beside the items


def eval_examples(sequences: pl.DataFrame, split: str, max_history: int) -> EvalExamples:
    """Leave-one-out examples: `valid` predicts the second to last item, `test` the last."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    cut = 2 if split == "valid" else 1

    def history(seq: list) -> np.ndarray:
        end = len(seq) - cut
        return np.asarray(seq[max(0, end - max_history) : end], dtype=np.int64)

    seqs = sequences[SEQ].to_list()
    events = {k: [history(s) for s in sequences[k].to_list()] for k in EVENTS if k in sequences.columns}
    targets = np.asarray([s[len(s) - cut] for s in seqs], dtype=np.int64)
    return EvalExamples(sequences[USER_IDX].to_numpy(), [history(s) for s in seqs], targets, events)


@dataclass(frozen=True)
class ListExamples:
    """The list protocol's examples (`data.list_items`): each user's history before the held-out list, and the list."""

    user_idx: np.ndarray  # (U,)
    histories: list[np.ndarray]  # the last <= max_history item_idx before the list
    targets: np.ndarray  # (U, n) item_idx of the held-out list, in time order
    events: dict[str, list[np.ndarray]]  # times / actions of the histories
    target_events: dict[str, np.ndarray]  # (U, n) times / actions of the held-out items


def list_examples(sequences: pl.DataFrame, max_history: int) -> ListExamples:
    """The users with a held-out list (`data.list_items`); ValueError when the run holds none out."""
    if LIST + SEQ not in sequences.columns:
        raise ValueError("this run holds out no lists: set data.list_items (e.g. 5) and prepare the data again")
    rows = np.nonzero(sequences[LIST + SEQ].list.len().to_numpy() > 0)[0]

    def column(name: str) -> list[list[int]]:
        values = sequences[name].to_list()
        return [values[i] for i in rows]

    def held(name: str) -> np.ndarray:  # (U, n): every held-out list has n items
        return np.asarray(column(LIST + name), dtype=np.int64).reshape(len(rows), -1)

    def recent(name: str) -> list[np.ndarray]:
        return [np.asarray(v[-max_history:], dtype=np.int64) for v in column(name)]

    present = [k for k in EVENTS if k in sequences.columns]
    return ListExamples(
        sequences[USER_IDX].to_numpy()[rows],
        recent(SEQ),
        held(SEQ),
        {k: recent(k) for k in present},
        {k: held(k) for k in present if LIST + k in sequences.columns},
    )


def train_sequences(sequences: pl.DataFrame, column: str = SEQ) -> list[np.ndarray]:
    """Each user's training part: everything but the validation and test targets (of `column`: the items, or
    an event column in step with them)."""
    return [np.asarray(seq[:-2], dtype=np.int64) for seq in sequences[column].to_list()]


def training_examples(
    train_seqs: list[np.ndarray], max_history: int, sliding_window: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(history end, target) pairs over the training sequences, as flat index arrays.

    With a sliding window every position t >= 1 of a training sequence is a target with the
    <= max_history items before it as history; without, only the last position is.

    Returns:
        (user, pos): int64 arrays; the example is target train_seqs[user][pos] with history
        train_seqs[user][max(0, pos - max_history):pos].
    """
    users, positions = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for u, seq in enumerate(train_seqs):
        if len(seq) < 2:
            continue
        pos = np.arange(1, len(seq)) if sliding_window else np.array([len(seq) - 1])
        users.append(np.full(len(pos), u))
        positions.append(pos)
    return np.concatenate(users).astype(np.int64), np.concatenate(positions).astype(np.int64)


def session_examples(
    train_seqs: list[np.ndarray], ends: list[np.ndarray] | None, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """OneRec's session targets as (user, position) examples, like `training_examples`: each session of a training
    sequence (`ends`: per position, the end of its session; None: the whole sequence is one) is cut into chunks of
    m items from its start, and each chunk is one example's target, with the items before it as history. The first
    item of a sequence has no history and is never a target; m = 1 gives every position (the sliding window)."""
    users, positions = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for u, seq in enumerate(train_seqs):
        n = len(seq)
        if n < 2:
            continue
        end = np.full(n, n) if ends is None else np.asarray(ends[u])
        index = np.arange(n)
        first = np.concatenate([[True], end[1:] != end[:-1]])  # a session starts here
        start = np.maximum(np.maximum.accumulate(np.where(first, index, 0)), 1)
        keep = (index >= 1) & ((index - start) % m == 0)
        users.append(np.full(int(keep.sum()), u))
        positions.append(index[keep])
    return np.concatenate(users).astype(np.int64), np.concatenate(positions).astype(np.int64)
