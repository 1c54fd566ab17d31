"""What kind of data a run has: repeats, history lengths, popularity skew (`prepare` logs it; report.html shows it).

Three properties decide which models and rules work on a log:
- **repeats**: the share of targets already in the user's history. The Amazon 5-core sets have none;
  Yelp, grocery, music and media logs have many, and a rule that shows the user's recent items is
  then a strong baseline (`baselines.recent`).
- **history lengths**: short histories leave a sequence model little to read.
- **popularity skew**: the Gini coefficient of the item counts and the share of interactions on the
  most popular 1% of items; on skewed data the most-popular rule is hard to beat.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def _repeat_share(seqs: list[np.ndarray], offset: int) -> float:
    """Share of users whose item at len - offset occurs earlier in their sequence (offset 1: test, 2: valid)."""
    hits = [s[-offset] in set(s[: len(s) - offset].tolist()) for s in seqs if len(s) > offset]
    return float(np.mean(hits)) if hits else 0.0


def _train_repeat_share(seqs: list[np.ndarray]) -> float:
    """Share of training targets (positions 1 .. len-3) that repeat an earlier item of the same sequence."""
    repeats = total = 0
    for s in seqs:
        train = s[:-2]
        total += max(len(train) - 1, 0)
        repeats += len(train) - len(np.unique(train)) if len(train) else 0
    return repeats / total if total else 0.0


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 when every item is equally popular, near 1 when one item has all."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * total))


def dataset_profile(seqs: list[np.ndarray], n_items: int, max_history: int) -> dict:
    """Repeats, history lengths and popularity skew of chronological sequences of item_idx (1..n_items)."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    counts = np.bincount(np.concatenate(seqs), minlength=n_items + 1)[1:] if seqs else np.zeros(n_items)
    top = np.sort(counts)[::-1]
    k1 = max(1, n_items // 100)
    ever = [len(s) != len(np.unique(s)) for s in seqs]
    q = np.percentile(lengths, [25, 50, 75, 90]) if len(lengths) else np.zeros(4)
    return {
        "repeat_share_test_targets": round(_repeat_share(seqs, 1), 4),
        "repeat_share_valid_targets": round(_repeat_share(seqs, 2), 4),
        "repeat_share_train_targets": round(_train_repeat_share(seqs), 4),
        "users_who_repeat": round(float(np.mean(ever)) if ever else 0.0, 4),
        "sequence_length": {
            "min": int(lengths.min()) if len(lengths) else 0,
            "p25": float(q[0]),
            "median": float(q[1]),
            "p75": float(q[2]),
            "p90": float(q[3]),
            "max": int(lengths.max(initial=0)),
        },
        "users_with_full_history": round(float(np.mean(lengths - 2 >= max_history)) if len(lengths) else 0.0, 4),
        "item_gini": round(gini(counts), 4),
        "top1pct_items_share": round(float(top[:k1].sum() / max(counts.sum(), 1)), 4),
        "items_under_5_interactions": round(float(np.mean(counts < 5)) if n_items else 0.0, 4),
    }


def log_profile(p: dict) -> None:
    """The profile in three log lines, and what it means for the choice of model."""
    s = p["sequence_length"]
    logger.info(
        "data profile: %.1f%% of test targets (%.1f%% valid, %.1f%% training) repeat an item of the user's history;"
        " %.1f%% of users repeat at least once",
        100 * p["repeat_share_test_targets"],
        100 * p["repeat_share_valid_targets"],
        100 * p["repeat_share_train_targets"],
        100 * p["users_who_repeat"],
    )
    logger.info(
        "data profile: sequence length median %g (p25 %g, p90 %g, max %d); item popularity Gini %.2f, the top 1%%"
        " of items hold %.1f%% of interactions, %.0f%% of items have < 5",
        s["median"], s["p25"], s["p90"], s["max"], p["item_gini"], 100 * p["top1pct_items_share"],
        100 * p["items_under_5_interactions"],
    )  # fmt: skip
    if max(p["repeat_share_valid_targets"], p["repeat_share_train_targets"]) >= 0.01:
        logger.info(
            "data profile: users come back here; the repeat-aware mixture (model.repeat=mixture, the default) and the"
            " 'recent items' rule in the results table matter on such data"
        )


__all__ = ["dataset_profile", "gini", "log_profile"]
