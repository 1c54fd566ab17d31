"""benchmarks/by_popularity.py and history_share.py: metrics per bucket, history items in the top (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from bench_scripts import load_benchmark


def test_per_bucket_shares_and_metrics():
    top = np.array([[5, 6, 7], [1, 2, 3], [9, 8, 7], [4, 5, 6]])
    targets = np.array([5, 3, 1, 6])  # ranks 0, 2, miss, 2
    counts = np.array([0, 3, 3, 50])
    out = load_benchmark("by_popularity").per_bucket(top, targets, counts, k=3)
    assert out["0-0"] == {"users": 1, "share": 0.25, "ndcg@3": 1.0, "recall@3": 1.0}
    assert out["1-4"]["users"] == 2 and out["1-4"]["recall@3"] == 0.5
    assert out["1-4"]["ndcg@3"] == pytest.approx(0.5 / np.log2(4), abs=1e-6)
    assert out["5-19"] == {"users": 0, "share": 0.0, "ndcg@3": None, "recall@3": None}
    assert out["20+"]["users"] == 1 and out["20+"]["ndcg@3"] == pytest.approx(1 / np.log2(4), abs=1e-6)


def test_history_share_counts_slots_users_newest_and_repeats():
    top = np.array([[5, 6, 7], [1, 2, 3], [9, 8, 7]])
    histories = [np.array([7, 5]), np.array([4]), np.array([], dtype=np.int64)]  # user 0: both in the top, 5 newest
    out = load_benchmark("history_share").history_share(top, np.array([6, 4, 1]), histories)
    assert out == {"slots_in_history": round(2 / 9, 4), "users_with_one": round(1 / 3, 4),
                   "newest_in_top": round(1 / 3, 4), "targets_repeating": round(1 / 3, 4)}  # fmt: skip
