"""Two stages: the blend of retriever and ranker scores, and the lists the two-stage recommender returns."""

from __future__ import annotations

import numpy as np
import torch

from sidrec.ranking.model import HSTURanker, RankerShape
from sidrec.ranking.two_stage import TwoStageRecommender, rerank
from sidrec.recommender import Recommendations


def test_rerank_blends_the_two_scores():
    items = np.array([[10, 20, 30]])
    retriever = np.array([[3.0, 2.0, 1.0]])
    ranker = np.log(np.array([[0.1, 0.5, 0.9]]))
    assert rerank(items, retriever, ranker, 0.0)[0].tolist() == [[10, 20, 30]]  # weight 0: the retriever's order
    assert rerank(items, retriever, ranker, 100.0)[0].tolist() == [[30, 20, 10]]  # large: the ranker's
    blended = np.log(np.exp(retriever) / np.exp(retriever).sum()) + ranker
    assert np.allclose(np.sort(rerank(items, retriever, ranker, 1.0)[1])[:, ::-1], np.sort(blended)[:, ::-1])


class Retriever:
    """Items 1..n in order, scores falling."""

    model = None

    def recommend(self, histories, k, users=None):
        items = np.tile(np.arange(1, k + 1), (len(histories), 1))
        return Recommendations(items, -np.arange(k, dtype=float)[None].repeat(len(histories), 0), 0, 0)


def two_stage(weight: float) -> TwoStageRecommender:
    torch.manual_seed(0)
    model = HSTURanker(RankerShape(n_items=30, max_events=8, d_model=8, n_heads=1, d_head=8, dropout=0.0))
    return TwoStageRecommender(Retriever(), model, candidates=5, weight=weight)


def test_two_stages_reorder_the_candidates_and_keep_the_rest():
    two = two_stage(1e9)  # the ranker's order
    hist = [np.array([1, 2, 3])]
    events = {"actions": [np.array([5, 4, 1])], "times": [np.array([1, 2, 3])]}
    out = two.recommend(hist, 8, events=events)
    assert sorted(out.items[0, :5].tolist()) == [1, 2, 3, 4, 5] and out.items[0, 5:].tolist() == [6, 7, 8]
    ranked = two.ranker_scores(hist, np.arange(1, 6)[None], events)[0]
    assert out.items[0, :5].tolist() == (np.argsort(-ranked, kind="stable") + 1).tolist()
    assert two.events == ("times", "actions")


def test_without_actions_the_retrievers_list_is_returned():
    out = two_stage(1.0).recommend([np.array([1, 2, 3])], 4, events={"times": [np.array([1, 2, 3])]})
    assert out.items[0].tolist() == [1, 2, 3, 4]
