"""The trivial rows every results table carries: rules with no training, scored on the same split.

- `popular`: the items most often seen in the training histories, the same list for every user.
- `recent`: the user's own most recent distinct items, most recent first, then the most popular
  items not among them. On logs where users come back (Yelp, groceries, music) this rule is strong;
  on the Amazon 5-core sets, where no target repeats a history item, it can only hit through the fill.

Both follow the `Recommender` protocol (`recommend(histories, k, users)`), so `metrics.evaluate` scores
them exactly as it scores a model. A model that does not beat them has learned nothing a rule lacks.
"""

from __future__ import annotations

import numpy as np

from sidrec.metrics import evaluate
from sidrec.recommender import Recommendations, text_query


def item_counts(train_seqs: list[np.ndarray], n_items: int) -> np.ndarray:
    """(N+1,) interactions per item_idx in the training sequences (index 0, padding, stays 0)."""
    flat = np.concatenate(train_seqs) if train_seqs else np.zeros(0, dtype=np.int64)
    return np.bincount(flat, minlength=n_items + 1)[: n_items + 1].astype(np.float64)


class PopularRecommender:
    """The k most popular items for every user (ties: the smaller item_idx first)."""

    def __init__(self, counts: np.ndarray) -> None:
        self.ranked = np.argsort(-counts[1:], kind="stable") + 1  # item_idx, most popular first

    def recommend(self, histories: list[np.ndarray], k: int, users: np.ndarray | None = None) -> Recommendations:
        if k > len(self.ranked):
            raise ValueError(f"asked for {k} items per user but the catalogue has only {len(self.ranked)}")
        top = np.broadcast_to(self.ranked[:k], (len(histories), k)).copy()
        return Recommendations(top, np.zeros((len(histories), k)), 0, 0)


class RecentRecommender(PopularRecommender):
    """The user's most recent distinct items, most recent first; then popular items not yet listed."""

    def recommend(self, histories: list[np.ndarray], k: int, users: np.ndarray | None = None) -> Recommendations:
        if k > len(self.ranked):
            raise ValueError(f"asked for {k} items per user but the catalogue has only {len(self.ranked)}")
        out = np.zeros((len(histories), k), dtype=np.int64)
        filled = 0
        head = self.ranked[: 2 * k + 64]  # enough popular items to fill k slots past any k history items
        for row, hist in enumerate(histories):
            recent = list(dict.fromkeys(np.asarray(hist)[::-1].tolist()))[:k]  # distinct, newest first
            taken = set(recent)
            fill = [int(i) for i in head if int(i) not in taken][: k - len(recent)]
            out[row] = recent + fill
            filled += len(fill)
        return Recommendations(out, np.zeros((len(histories), k)), 0, filled)


class TextKNNRecommender:
    """The items whose text is nearest the user's recent history: cosine similarity to the history's text profile
    (`recommender.text_query`: its items' vectors, the newest weighing most); the history's own items are left out.

    The content-only reference of the cold-start protocol (`data.cold_items`): it needs no training, so an item
    never seen in training is scored exactly like any other: a training-free floor for the models that read item
    text (LIGER, Yang et al., 2024, compares with a trained sequential dense retriever over item text and IDs).
    """

    CHUNK = 1024

    def __init__(self, vectors: np.ndarray) -> None:
        """vectors: (N, D) item text embeddings, row i - 1 for item_idx i."""
        v = np.asarray(vectors, dtype=np.float32)
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        self.vectors = np.vstack([np.zeros((1, v.shape[1]), np.float32), v])  # row 0: padding

    def recommend(self, histories: list[np.ndarray], k: int, users: np.ndarray | None = None) -> Recommendations:
        n = len(self.vectors) - 1
        if k > n:
            raise ValueError(f"asked for {k} items per user but the catalogue has only {n}")
        top = np.zeros((len(histories), k), dtype=np.int64)
        scores = np.zeros((len(histories), k))
        for start in range(0, len(histories), self.CHUNK):
            part = histories[start : start + self.CHUNK]
            sim = text_query(part, self.vectors[1:]) @ self.vectors.T  # (B, N + 1)
            sim[:, 0] = -np.inf
            for row, hist in enumerate(part):
                sim[row, np.asarray(hist, dtype=np.int64)] = -np.inf
            best = np.argpartition(-sim, k, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(sim, best, 1), axis=1, kind="stable")
            top[start : start + len(part)] = np.take_along_axis(best, order, 1)
            scores[start : start + len(part)] = np.take_along_axis(sim, top[start : start + len(part)], 1)
        return Recommendations(top, scores, 0, 0)


BASELINES = {"popular": PopularRecommender, "recent": RecentRecommender}  # name -> class(counts)
LABELS = {
    "popular": "most popular (rule)",
    "recent": "recent items + popular (rule)",
    "text_knn": "text neighbours of the history (rule)",
}


def trivial_rules(counts: np.ndarray, vectors: np.ndarray | None = None) -> dict:
    """The rules scored beside every run: `BASELINES` from the training counts, and `text_knn` given the items'
    text embeddings (runs that embed the item text)."""
    rules = {name: cls(counts) for name, cls in BASELINES.items()}
    if vectors is not None:
        rules["text_knn"] = TextKNNRecommender(vectors)
    return rules


def rule_scores(name: str, rule, examples, counts: np.ndarray, ks: tuple[int, ...], top_n: int) -> dict:
    """A rule's metrics on `examples` (split.EvalExamples), with where its hits come from (repeats, cold items)."""
    res = evaluate(rule, examples, ks=ks, batch_size=4096, top_n=top_n, desc=name)
    scores = {k: round(v, 6) for k, v in res.metrics.items()}
    scores["repeats"] = repeat_breakdown(res.top_items, examples.histories, examples.targets)
    scores["cold"] = cold_breakdown(res.top_items, examples.targets, counts, ks)
    return scores


def repeat_breakdown(top: np.ndarray, histories: list[np.ndarray], targets: np.ndarray, k: int = 10) -> dict:
    """Where a ranked list's hits come from: targets that repeat a history item vs new ones.

    Args:
        top: (U, >= k) item_idx, best first; histories: U arrays of item_idx; targets: (U,).
    Returns:
        repeat_share (targets already in the history), repeat_hit@k (share of those in the top k),
        new_hit@k (share of the other targets in the top k), history_slots@k (share of top-k slots that
        hold a history item).
    """
    top = top[:, :k]
    in_hist = np.array([t in set(h.tolist()) for h, t in zip(histories, targets, strict=True)], dtype=bool)
    hit = (top == targets[:, None]).any(1)
    slots = np.array([np.isin(row, h).sum() for row, h in zip(top, histories, strict=True)], dtype=np.float64)
    n_rep, n_new = int(in_hist.sum()), int((~in_hist).sum())
    return {
        "repeat_share": round(float(in_hist.mean()) if len(in_hist) else 0.0, 6),
        f"repeat_hit@{k}": round(float(hit[in_hist].mean()) if n_rep else 0.0, 6),
        f"new_hit@{k}": round(float(hit[~in_hist].mean()) if n_new else 0.0, 6),
        f"history_slots@{k}": round(float(slots.mean() / k) if len(slots) else 0.0, 6),
    }


def cold_breakdown(top: np.ndarray, targets: np.ndarray, counts: np.ndarray, ks: tuple[int, ...] = (5, 10)) -> dict:
    """Recall / NDCG@k on the targets no training sequence holds (cold items: scored only through their content,
    as in LIGER's cold-start split, Yang et al., 2024) and on the others (warm).

    Args:
        top: (U, >= max(ks)) item_idx, best first; targets: (U,); counts: (N+1,) training interactions per item.
    """
    cold = counts[targets] == 0
    ranks = np.argmax(top == targets[:, None], axis=1)  # first match; 0 also when absent, masked by `hit`
    hit_any = (top == targets[:, None]).any(1)

    def scores(mask: np.ndarray) -> dict:
        out = {}
        for k in ks:
            hit = hit_any & (ranks < k)
            out[f"recall@{k}"] = round(float(hit[mask].mean()) if mask.any() else 0.0, 6)
            gain = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
            out[f"ndcg@{k}"] = round(float(gain[mask].mean()) if mask.any() else 0.0, 6)
        return out

    return {"cold_share": round(float(cold.mean()) if len(cold) else 0.0, 6), "cold_users": int(cold.sum()),
            "cold": scores(cold), "warm": scores(~cold)}  # fmt: skip


__all__ = [
    "BASELINES",
    "cold_breakdown",
    "LABELS",
    "PopularRecommender",
    "RecentRecommender",
    "TextKNNRecommender",
    "item_counts",
    "repeat_breakdown",
    "rule_scores",
    "trivial_rules",
]
