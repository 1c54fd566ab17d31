"""Recall@K / NDCG@K on hand-computed cases, target ranks, and the evaluation harness."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sidrec.data.split import EvalExamples
from sidrec.metrics import evaluate, ranking_metrics, target_ranks
from sidrec.recommender import Recommendations


def ranked(target_rank: int | None, n: int = 10, target: int = 99) -> np.ndarray:
    """A list of n distinct items with `target` at `target_rank` (None = absent)."""
    row = np.arange(1, n + 1)
    if target_rank is not None:
        row[target_rank] = target
    return row


def test_target_at_rank_zero_scores_one():
    m = ranking_metrics(ranked(0)[None], np.array([99]), ks=(5, 10))
    assert m == {"recall@5": 1.0, "ndcg@5": 1.0, "recall@10": 1.0, "ndcg@10": 1.0}


def test_target_at_rank_two_scores_half():
    m = ranking_metrics(ranked(2)[None], np.array([99]), ks=(5,))
    assert m["recall@5"] == 1.0
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(4)) == 0.5


def test_missing_target_scores_zero():
    m = ranking_metrics(ranked(None)[None], np.array([99]), ks=(5, 10))
    assert all(v == 0.0 for v in m.values())


def test_target_beyond_k_counts_only_for_larger_k():
    m = ranking_metrics(ranked(7)[None], np.array([99]), ks=(5, 10))
    assert m["recall@5"] == 0.0 and m["ndcg@5"] == 0.0
    assert m["recall@10"] == 1.0
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(9))


def test_average_over_all_users_including_misses():
    top = np.stack([ranked(0), ranked(2), ranked(None), ranked(7)])
    m = ranking_metrics(top, np.full(4, 99), ks=(5, 10))
    assert m["recall@5"] == pytest.approx(2 / 4)
    assert m["recall@10"] == pytest.approx(3 / 4)
    assert m["ndcg@5"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert m["ndcg@10"] == pytest.approx((1 + 0.5 + 0 + 1 / math.log2(9)) / 4)


def test_target_ranks():
    top = np.array([[5, 6, 7], [7, 5, 6], [1, 2, 3], [4, 4, 8]])
    ranks = target_ranks(top, np.array([5, 6, 9, 4]))
    assert ranks.tolist() == [0, 2, -1, 0]  # first occurrence wins


def test_too_short_lists_raise():
    with pytest.raises(ValueError, match="at least 10 items"):
        ranking_metrics(np.zeros((2, 5), dtype=np.int64), np.zeros(2, dtype=np.int64), ks=(5, 10))


def test_row_count_mismatch_raises():
    with pytest.raises(ValueError, match="3 ranked lists for 2 targets"):
        ranking_metrics(np.zeros((3, 10), dtype=np.int64), np.zeros(2, dtype=np.int64))


class FakeRecommender:
    """A stand-in with the `recommend` protocol: tests the evaluation harness, not a model.

    It ranks the target of each user (looked up by user id) at a fixed rank per user, and reports
    one invalid beam and one popularity fill per call.
    """

    beam_width = 4

    def __init__(self, targets: dict[int, int], rank_of: dict[int, int | None]) -> None:
        self.targets, self.rank_of = targets, rank_of
        self.calls: list[tuple[int, int]] = []  # (batch size, k) per call

    def recommend(self, histories, k, users=None) -> Recommendations:
        self.calls.append((len(histories), k))
        rows = []
        for user in users:
            row = np.arange(1000, 1000 + k)
            if self.rank_of[int(user)] is not None:
                row[self.rank_of[int(user)]] = self.targets[int(user)]
            rows.append(row)
        items = np.stack(rows)
        return Recommendations(items, np.zeros(items.shape), invalid_beams=1, filled=1)


def test_evaluate_batches_and_scores():
    users = np.arange(5)
    targets = np.array([10, 11, 12, 13, 14])
    rank_of = {0: 0, 1: 2, 2: None, 3: 7, 4: 1}
    examples = EvalExamples(users, [np.array([1, 2]) for _ in users], targets)
    rec = FakeRecommender(dict(zip(users.tolist(), targets.tolist(), strict=True)), rank_of)
    result = evaluate(rec, examples, ks=(5, 10), batch_size=2, top_n=3)
    assert rec.calls == [(2, 10), (2, 10), (1, 10)]  # k = max(top_n, max(ks))
    expected = ranking_metrics(np.stack([rec.recommend([None], 10, [u]).items[0] for u in users]), targets)
    assert result.metrics == pytest.approx(expected)
    assert result.metrics["recall@5"] == pytest.approx(3 / 5)
    assert result.metrics["ndcg@5"] == pytest.approx((1 + 0.5 + 1 / math.log2(3)) / 5)
    assert result.top_items.shape == (5, 3)
    assert result.top_items[0, 0] == 10
    assert result.filled == 3  # one per batch
    assert result.invalid_beam_share == pytest.approx(3 / (5 * FakeRecommender.beam_width))


def test_evaluate_without_examples():
    examples = EvalExamples(np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64))
    result = evaluate(FakeRecommender({}, {}), examples, ks=(5,), top_n=5)
    assert result.top_items.shape == (0, 5)
    assert result.metrics == {"recall@5": 0.0, "ndcg@5": 0.0}


def test_auc_and_gauc_by_hand():
    from sidrec.metrics import auc, gauc

    scores = np.array([0.9, 0.2, 0.6, 0.6, 0.1])
    labels = np.array([1, 0, 1, 0, 0])
    # positives 0.9 and 0.6 against negatives 0.2, 0.6, 0.1: 0.9 beats 3; 0.6 beats 2 and ties 1 -> (3 + 2.5) / 6
    assert auc(scores, labels) == 5.5 / 6
    assert np.isnan(auc(scores, np.ones(5)))
    users = np.array([0, 0, 1, 1, 2])
    # user 0: 0.9 > 0.2 -> 1; user 1: 0.6 vs 0.6 -> 0.5; user 2: one class, left out; weights 2 and 2
    assert gauc(scores, labels, users) == (0.75, 2)
