"""List metrics by hand, and lists filled from the next-item ranking."""

from __future__ import annotations

import math

import numpy as np

from sidrec.align.lists import list_metrics
from sidrec.recommender import SIDRecommender, recommend_lists

from .test_sessions import sids, tiny


def test_list_metrics_by_hand():
    lists = np.array([[1, 2, 3], [4, 5, 6]])
    targets = np.array([[3, 9, 1], [7, 8, 9]])
    vectors = np.eye(6, dtype=np.float32)  # orthogonal items: every pair has cosine 0
    out = list_metrics(lists, targets, vectors, n_items=10)
    assert out["users"] == 2 and math.isclose(out["hits"], (2 / 3 + 0) / 2, abs_tol=1e-6)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert math.isclose(out["ndcg"], (1 + 1 / math.log2(4)) / ideal / 2, abs_tol=1e-6)  # user 1: ranks 1 and 3
    assert out["diversity"] == 1.0 and out["coverage"] == 0.6
    same = list_metrics(lists, targets, np.ones((6, 2), dtype=np.float32), n_items=10)
    assert abs(same["diversity"]) < 1e-6  # identical vectors: no diversity


def test_a_next_item_model_lists_its_top_n_and_a_session_model_its_session_first():
    histories = [np.array([1, 2]), np.array([5])]
    one = SIDRecommender(tiny("tiger", m=1, seed=4), sids(), beam_width=6, constrained=True, bf16=False)
    lists = recommend_lists(one, histories, np.arange(2), 3)
    np.testing.assert_array_equal(lists, one.recommend(histories, 3).items)
    two = SIDRecommender(tiny("tiger", m=2, seed=4), sids(), beam_width=6, constrained=True, bf16=False)
    lists = recommend_lists(two, histories, np.arange(2), 4)
    session, _ = two.lists(histories, 2)
    np.testing.assert_array_equal(lists[:, :2], session[:, 0])
    assert all(len(set(row)) == 4 for row in lists.tolist())  # the rest from the ranking, nothing twice
