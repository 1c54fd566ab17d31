"""The trivial rows (baselines.py): hand-computed lists, the repeat breakdown, and their place in metrics and tables."""

from __future__ import annotations

import numpy as np
import pytest

from sidrec.baselines import BASELINES, PopularRecommender, RecentRecommender, item_counts, repeat_breakdown
from sidrec.metrics import evaluate
from sidrec.report import results_table


def test_item_counts_and_popular_list():
    counts = item_counts([np.array([3, 1, 3]), np.array([2, 3, 1]), np.array([], dtype=np.int64)], 5)
    assert counts.tolist() == [0, 2, 1, 3, 0, 0]
    rec = PopularRecommender(counts).recommend([np.array([3]), np.array([4, 5])], 4)
    assert rec.items.tolist() == [[3, 1, 2, 4], [3, 1, 2, 4]]  # ties: the smaller item_idx first
    with pytest.raises(ValueError, match="catalogue has only 5"):
        PopularRecommender(counts).recommend([np.array([1])], 6)


def test_recent_items_newest_first_distinct_then_popular():
    counts = np.array([0, 5, 4, 3, 2, 1, 0], dtype=float)  # popularity 1 > 2 > 3 > 4 > 5 > 6
    rec = RecentRecommender(counts).recommend([np.array([4, 6, 4, 2]), np.array([], dtype=np.int64)], 4)
    assert rec.items.tolist() == [[2, 4, 6, 1], [1, 2, 3, 4]]
    assert rec.filled == 1 + 4


def test_repeat_breakdown_by_hand():
    top = np.array([[7, 1, 2], [9, 8, 3], [5, 6, 4]])
    histories = [np.array([1, 7]), np.array([2]), np.array([4, 5])]
    targets = np.array([7, 3, 9])  # a repeat (hit), a new item (hit), a new item (missed)
    out = repeat_breakdown(top, histories, targets, k=3)
    assert out == {
        "repeat_share": round(1 / 3, 6),
        "repeat_hit@3": 1.0,
        "new_hit@3": 0.5,
        "history_slots@3": round((2 + 0 + 2) / 9, 6),
    }


def test_rules_score_through_evaluate_like_a_model():
    class Examples:
        histories = [np.array([1, 2]), np.array([3]), np.array([2, 4])]
        targets = np.array([2, 1, 5])
        user_idx = np.arange(3)

    counts = np.array([0, 9, 1, 1, 1, 8], dtype=float)
    rules = {name: cls(counts) for name, cls in BASELINES.items()}
    recent = evaluate(rules["recent"], Examples, ks=(1, 2), top_n=2).metrics
    assert recent["recall@1"] == pytest.approx(1 / 3) and recent["recall@2"] == pytest.approx(2 / 3)
    popular = evaluate(rules["popular"], Examples, ks=(1, 2), top_n=2).metrics
    assert popular["recall@1"] == pytest.approx(1 / 3) and popular["recall@2"] == pytest.approx(2 / 3)


def test_results_table_carries_the_rules_and_flags_a_model_below_them():
    rule = {"recall@5": 0.05, "recall@10": 0.06, "ndcg@5": 0.04, "ndcg@10": 0.041}
    metrics = {
        "valid": {"recall@5": 0.03, "recall@10": 0.05, "ndcg@5": 0.02, "ndcg@10": 0.03},
        "test": {"recall@5": 0.03, "recall@10": 0.05, "ndcg@5": 0.02, "ndcg@10": 0.03},
        "baselines": {"recent": {"label": "recent items + popular (rule)", "valid": rule, "test": rule}},
    }
    table = results_table(metrics, "yelp")
    assert "recent items + popular (rule), valid" in table and "recent items + popular (rule), test" in table
    assert "WARNING: this run's test ndcg@10 (0.0300) does not beat the rule 'recent items + popular" in table
    metrics["test"]["ndcg@10"] = 0.05
    assert "WARNING" not in results_table(metrics, "yelp")
    record = {"valid": metrics["valid"], "test": metrics["test"], "eval": {"baselines": metrics["baselines"]}}
    assert "recent items + popular (rule), test" in results_table(record, "yelp")  # a run record works too


def test_cold_breakdown_splits_the_metrics_by_whether_training_saw_the_target():
    from sidrec.baselines import cold_breakdown

    top = np.array([[5, 1, 2], [3, 5, 1], [1, 2, 3], [2, 3, 4]])
    targets = np.array([5, 5, 4, 2])  # item 5 never in training: users 0 and 1 are cold
    counts = np.array([0, 3, 2, 1, 1, 0], dtype=float)
    out = cold_breakdown(top, targets, counts, ks=(1, 2))
    assert out["cold_share"] == 0.5 and out["cold_users"] == 2
    assert out["cold"]["recall@1"] == 0.5 and out["cold"]["recall@2"] == 1.0
    assert out["cold"]["ndcg@2"] == round((1 + 1 / np.log2(3)) / 2, 6)
    assert out["warm"]["recall@2"] == 0.5 and out["warm"]["ndcg@1"] == 0.5  # item 4 missed, item 2 first


def test_text_knn_ranks_by_decayed_cosine_to_the_history_and_skips_it():
    from sidrec.baselines import TextKNNRecommender

    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.0]])  # items 1..5
    rule = TextKNNRecommender(vectors)
    out = rule.recommend([np.array([1]), np.array([1, 3])], 3)
    assert out.items[0].tolist() == [2, 4, 3]  # by cosine to item 1: 0.99, 0.11, 0
    assert 1 not in out.items[0] and not {1, 3} & set(out.items[1].tolist())
    assert out.items[1][0] == 4  # the newest item (3) weighs most: its neighbour 4 first
    assert (np.diff(out.scores, axis=1) <= 1e-9).all()
    with pytest.raises(ValueError, match="catalogue has only 5"):
        rule.recommend([np.array([1])], 6)
