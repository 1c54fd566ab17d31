"""The data profile of `prepare` (data/profile.py): repeats, lengths and skew, computed by hand."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from sidrec.data.profile import dataset_profile, gini, log_profile


def test_profile_by_hand(caplog):
    seqs = [np.array([1, 2, 1, 3, 1]), np.array([2, 3, 4, 2]), np.array([4, 5, 1])]
    p = dataset_profile(seqs, n_items=5, max_history=2)
    assert p["repeat_share_test_targets"] == round(2 / 3, 4)  # 1 after [1,2,1,3]; 2 after [2,3,4]; 1 not after [4,5]
    assert p["repeat_share_valid_targets"] == round(0 / 3, 4)  # 3 after [1,2,1]; 4 after [2,3]; 5 after [4]
    assert p["repeat_share_train_targets"] == round(1 / 3, 4)  # train parts [1,2,1], [2,3], [4]: 1 of 3 targets
    assert p["users_who_repeat"] == round(2 / 3, 4)
    assert p["sequence_length"] == {"min": 3, "p25": 3.5, "median": 4.0, "p75": 4.5, "p90": 4.8, "max": 5}
    assert p["users_with_full_history"] == round(2 / 3, 4)  # lengths - 2 >= 2
    assert p["top1pct_items_share"] == round(4 / 12, 4)  # item 1: 4 of 12 interactions
    with caplog.at_level(logging.INFO, logger="sidrec.data.profile"):
        log_profile(p)
    assert "66.7% of test targets" in caplog.text and "users come back here" in caplog.text


def test_gini():
    assert gini(np.array([5, 5, 5, 5])) == 0.0
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)  # (n - 1) / n for one item holding everything
    assert gini(np.array([])) == 0.0
