"""The list metrics of the list protocol (`data.list_items`), of lists from `recommender.recommend_lists`.

A generator trained on sessions (`train.target_items` m > 1, OneRec's session-wise generation) writes a list of m
items in one beam search (`SIDRecommender.lists`); the list is its best beam. A list of n items is asked of every
model alike: the generated session first, then, when m < n (m = 1: a next-item model), the model's next-item
ranking fills the rest, skipping items already listed. So a next-item model's list is its top n.

Metrics against each user's n held-out items (`data.list_items`), averaged over users:
- hits: the share of the held-out items the list names (order-free; precision = recall, both lists have n);
- ndcg: NDCG over the list, binary relevance (a listed item is relevant when held out), the ideal list being n
  relevant items;
- diversity: intra-list diversity, 1 - the mean cosine similarity of the listed items' text vectors over pairs;
- coverage: distinct items in all lists / catalog size;
- reward: the reward model's mean R(u, list) (`align.reward`), when the run trained one.
"""

from __future__ import annotations

import numpy as np


def list_metrics(lists: np.ndarray, targets: np.ndarray, vectors: np.ndarray | None, n_items: int) -> dict:
    """hits, ndcg, diversity (with item text vectors (N, D), row i = item_idx i + 1) and coverage of (U, n) lists
    against (U, n') held-out items."""
    u, n = lists.shape
    if u == 0:
        return {"users": 0}
    relevant = (lists[:, :, None] == targets[:, None, :]).any(-1) & (lists > 0)  # (U, n)
    discount = 1.0 / np.log2(np.arange(n) + 2)
    ideal = discount[: min(n, targets.shape[1])].sum()
    out = {
        "users": int(u),
        "hits": float(relevant.sum(1).mean() / targets.shape[1]),
        "ndcg": float((relevant * discount).sum(1).mean() / ideal),
        "coverage": float(len(np.unique(lists[lists > 0])) / n_items),
    }
    if vectors is not None and n > 1:
        v = np.asarray(vectors, dtype=np.float32)[np.maximum(lists, 1) - 1]  # (U, n, D)
        v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
        sim = v @ v.transpose(0, 2, 1)  # (U, n, n)
        pairs = ~np.eye(n, dtype=bool)
        out["diversity"] = float(1.0 - sim[:, pairs].mean())
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()}


__all__ = ["list_metrics"]
