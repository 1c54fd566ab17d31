"""Two stages: the retriever proposes `candidates` items, the generative ranker reorders them.

Each candidate's final score is the retriever's log-probability among the candidates (a log-softmax of its
scores over them) plus `weight` x the ranker's log P(engaged) + log P(liked) (`HSTURanker.score`): weight 0 keeps
the retriever's order, a large one orders by the ranker alone. The ranker reads the history's actions (and
times); a request without actions gets the retriever's list as it is.
"""

from __future__ import annotations

import numpy as np
import torch

from sidrec.metrics import events_read, recommend
from sidrec.ranking.examples import history_tokens
from sidrec.recommender import Recommendations


class TwoStageRecommender:
    """`recommend` like any recommender: the retriever's top `candidates`, reordered with the ranker."""

    def __init__(
        self, retriever, ranker, *, candidates: int = 100, weight: float = 1.0, batch_size: int = 128, bf16=False
    ) -> None:
        self.retriever, self.ranker = retriever, ranker.eval()
        self.candidates, self.weight, self.batch_size, self.bf16 = candidates, weight, batch_size, bf16
        self.device = next(ranker.parameters()).device

    @property
    def model(self):
        """The retriever's model (what reads its settings, e.g. a repeat head, sees the retriever)."""
        return self.retriever.model

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*events_read(self.retriever), *self.ranker.events)))

    def retrieve(self, histories, k: int, users=None, events: dict | None = None) -> Recommendations:
        return recommend(self.retriever, histories, k, users, events)

    @torch.no_grad()
    def ranker_scores(self, histories, candidates: np.ndarray, events: dict) -> np.ndarray:
        """(B, C) the ranker's score of each candidate after each history (its events: actions, times)."""
        out = np.empty(candidates.shape, dtype=np.float32)
        times = events.get("times") if self.ranker.shape.time_bias else None
        for s in range(0, len(histories), self.batch_size):
            rows = slice(s, min(s + self.batch_size, len(histories)))
            toks = history_tokens(histories[rows], events["actions"][rows], None if times is None else times[rows],
                                  self.ranker.shape.max_events, self.device)  # fmt: skip
            cand = torch.from_numpy(candidates[rows]).to(self.device)
            low = self.bf16 and (rows.stop - rows.start) >= 8  # bf16 pays from ~8 histories; fewer run in fp32
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=low):
                score = self.ranker.score(toks["items"], toks["actions"], cand, toks.get("times"), toks.get("now"))
            out[rows] = score.float().cpu().numpy()
        return out

    def recommend(self, histories, k: int, users=None, events: dict | None = None) -> Recommendations:
        events = events or {}
        first = self.retrieve(histories, max(k, self.candidates), users, events)
        if "actions" not in events or self.weight == 0:
            return Recommendations(first.items[:, :k], first.scores[:, :k], first.invalid_beams, first.filled)
        c = min(self.candidates, first.items.shape[1])
        ranked = self.ranker_scores(histories, first.items[:, :c], events)
        items, scores = rerank(first.items[:, :c], first.scores[:, :c], ranked, self.weight)
        items = np.concatenate([items, first.items[:, c:]], 1)[:, :k]  # past the candidates: the retriever's order
        scores = np.concatenate([scores, np.full(first.scores[:, c:].shape, -np.inf)], 1)[:, :k]
        return Recommendations(items, scores, first.invalid_beams, first.filled)


def rerank(items: np.ndarray, scores: np.ndarray, ranked: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidates (B, C) with retriever scores and ranker scores (log-probabilities) -> both reordered by the blend."""
    retr = torch.from_numpy(np.asarray(scores, dtype=np.float32))
    blend = retr.log_softmax(1) + weight * torch.from_numpy(np.asarray(ranked, dtype=np.float32))
    blend = torch.nan_to_num(blend, nan=-np.inf).numpy()  # rows of -inf retriever scores (popularity fills)
    order = np.argsort(-blend, axis=1, kind="stable")
    return np.take_along_axis(items, order, 1), np.take_along_axis(blend, order, 1)


__all__ = ["TwoStageRecommender", "rerank"]
