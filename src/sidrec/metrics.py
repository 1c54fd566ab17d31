"""Ranking metrics for leave-one-out evaluation: one relevant item per user.

Recall@K = 1 if the target is in the top K; NDCG@K = 1 / log2(rank + 2) for a 0-based rank < K,
else 0 (with one relevant item the ideal DCG is 1). Averaged over ALL users: a user whose target is
missing scores 0. This is the protocol of TIGER, GRID and RPG.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from sidrec import io
from sidrec.data.schema import ITEM, USER
from sidrec.data.split import eval_examples

logger = logging.getLogger(__name__)


def target_ranks(top_items: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its row of `top_items`, or -1 when absent.

    Args:
        top_items: (B, K) item ids, best first.
        targets: (B,) item ids.
    """
    hits = top_items == targets[:, None]  # (B, K)
    return np.where(hits.any(axis=1), hits.argmax(axis=1), -1)


def ranking_metrics(top_items: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = (5, 10)) -> dict[str, float]:
    """Recall@k and NDCG@k for each k, averaged over all rows."""
    if top_items.shape[0] != targets.shape[0]:
        raise ValueError(f"{top_items.shape[0]} ranked lists for {targets.shape[0]} targets")
    if top_items.shape[1] < max(ks):
        raise ValueError(f"need at least {max(ks)} items per user, got {top_items.shape[1]}")
    ranks = target_ranks(top_items, targets)
    out: dict[str, float] = {}
    for k in ks:
        hit = (ranks >= 0) & (ranks < k)
        gain = np.where(hit, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
        out[f"recall@{k}"] = float(hit.mean()) if len(hit) else 0.0
        out[f"ndcg@{k}"] = float(gain.mean()) if len(gain) else 0.0
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive scores above a random negative (ties count half);
    NaN when one class is missing."""
    labels = np.asarray(labels, dtype=bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if not pos or not neg:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def gauc(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """Group AUC (Zhou et al., "Deep Interest Network", KDD 2018): each user's AUC over their own events, averaged
    weighted by their number of events, over the users with both classes; returns (GAUC, users counted)."""
    order = np.argsort(groups, kind="stable")
    groups, scores, labels = np.asarray(groups)[order], np.asarray(scores)[order], np.asarray(labels, bool)[order]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    total = weight = 0.0
    users = 0
    for s, e in zip(starts, np.r_[starts[1:], len(groups)], strict=True):
        value = auc(scores[s:e], labels[s:e])
        if not np.isnan(value):
            total, weight, users = total + value * (e - s), weight + (e - s), users + 1
    return (total / weight if weight else float("nan")), users


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x, ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


class EvalResult(NamedTuple):
    metrics: dict[str, float]
    top_items: np.ndarray  # (U, top_n) item_idx
    invalid_beam_share: float  # share of finished beams naming no item (free decoding)
    filled: int  # slots filled by popularity


def events_read(recommender) -> tuple[str, ...]:
    """The event columns (times, actions) a recommender reads: its own `events`, else its model's."""
    own = getattr(recommender, "events", None)
    return tuple(own) if own is not None else tuple(getattr(getattr(recommender, "model", None), "events", ()))


def recommend(recommender, histories, k: int, users=None, events: dict | None = None):
    """`recommender.recommend(histories, k, users)`, handing it the event columns it reads (only those; none
    to a recommender that reads none)."""
    wanted = events_read(recommender)
    given = {n: v for n, v in (events or {}).items() if n in wanted}
    if not given:
        return recommender.recommend(histories, k, users)
    return recommender.recommend(histories, k, users, events=given)


def reads_events(recommender, examples) -> tuple[str, ...]:
    """The event columns (times, actions) the recommender reads that the examples hold."""
    wanted = events_read(recommender)
    return tuple(name for name in wanted if name in getattr(examples, "events", {}))


def evaluate(
    recommender,
    examples,
    *,
    ks: tuple[int, ...] = (5, 10),
    batch_size: int = 512,
    top_n: int = 10,
    desc: str = "evaluate",
) -> EvalResult:
    """Rank for every example with `recommender.recommend` and score against the targets.

    Args:
        recommender: anything with `recommend(histories, k, users) -> Recommendations`.
        examples: `data.split.EvalExamples` (histories, targets, user_idx).
    """
    k = max(top_n, max(ks))
    parts, invalid, filled, beams = [], 0, 0, 0
    n = len(examples.targets)
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=n <= batch_size):
        stop = min(n, start + batch_size)
        events = {name: examples.events[name][start:stop] for name in reads_events(recommender, examples)}
        rec = recommend(recommender, examples.histories[start:stop], k, examples.user_idx[start:stop], events)
        parts.append(rec.items)
        invalid += rec.invalid_beams
        filled += rec.filled
        beams += (stop - start) * getattr(recommender, "beam_width", k)
    top = np.concatenate(parts) if parts else np.zeros((0, k), dtype=np.int64)
    return EvalResult(ranking_metrics(top, examples.targets, ks), top[:, :top_n], invalid / max(beams, 1), filled)


def explore_temperature_on_valid(cfg, rec, sequences: pl.DataFrame, splits: tuple[str, ...]) -> dict:
    """`choose_explore_temperature` on the validation split of `sequences` with cfg.eval's candidates; ValueError
    without a repeat head or without validation among the splits."""
    if getattr(rec.model, "repeat_head", None) is None or "valid" not in splits:
        raise ValueError(f"eval.explore_temperature={list(cfg.eval.explore_temperature)}: several values are chosen "
                         f"on validation; they need model.repeat=mixture and valid in eval.splits")  # fmt: skip
    examples = eval_examples(sequences, "valid", cfg.data.max_history)
    out = choose_explore_temperature(rec, examples, cfg.eval.explore_temperature, ks=cfg.eval.ks,
                                     batch_size=cfg.eval.batch_size)  # fmt: skip
    logger.info("explore temperature %g (validation NDCG@10 by temperature: %s)", out["chosen"], out["valid_ndcg@10"])
    return out


def choose_explore_temperature(recommender, examples, candidates, *, ks=(5, 10), batch_size: int = 512) -> dict:
    """The repeat head's explore temperature with the best NDCG@10 on `examples` (validation; ties: nearest 1),
    left set on `recommender.model.repeat_head`; returns it with every candidate's score."""
    head = recommender.model.repeat_head
    scores = {}
    for t in candidates:
        head.temperature.fill_(float(t))
        res = evaluate(recommender, examples, ks=ks, batch_size=batch_size, desc=f"valid t={t:g}")
        scores[float(t)] = round(res.metrics["ndcg@10"], 6)
    best = max(scores, key=lambda t: (scores[t], -abs(t - 1.0)))
    head.temperature.fill_(best)
    return {"chosen": best, "valid_ndcg@10": {f"{t:g}": v for t, v in scores.items()}}


def write_predictions(path: Path, sequences: pl.DataFrame, items: pl.DataFrame, top: np.ndarray) -> None:
    """predictions.csv: each user's top items by original ids (user_id, rank, item_id), written atomically."""
    item_ids = np.asarray(items.sort("item_idx")[ITEM].to_list(), dtype=object)
    n_users, n = top.shape
    table = pl.DataFrame(
        {
            USER: np.repeat(np.asarray(sequences[USER].to_list(), dtype=object), n).tolist(),
            "rank": np.tile(np.arange(1, n + 1), n_users),
            ITEM: item_ids[top.reshape(-1) - 1].tolist(),
        }
    )
    io.write_atomic(path, table.write_csv)
