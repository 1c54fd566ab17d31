"""The reward model of sessions: its sessions never touch validation / test items, and it learns a rating pattern."""

from __future__ import annotations

import numpy as np
import torch

from sidrec.align.reward import RewardModel, RewardShape, SessionSet, session_auc, session_splits


def test_sessions_stay_before_the_validation_and_test_items():
    spans = session_splits([12, 6, 3], m=3)
    assert spans["valid"] == [(0, 7), (1, 1)]  # the last 3 items before the last two
    assert sorted(s.start for s in spans["train"] if s.user == 0) == [1, 4]  # items 1..6, back from item 7
    assert not [s for s in spans["train"] if s.user == 2]  # too short for a session


def test_learns_which_items_are_liked_and_scores_sessions():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    good = set(range(1, 11))  # items 1..10 are rated 5, items 11..20 rated 1
    items = [rng.choice(np.arange(1, 21), 12, replace=False) for _ in range(60)]
    actions = [np.where(np.isin(s, list(good)), 5, 1) for s in items]
    spans = session_splits([len(s) for s in items], m=3)
    train = SessionSet(items, actions, spans["train"], 3, 8)
    valid = SessionSet(items, actions, spans["valid"], 3, 8)
    model = RewardModel(RewardShape(n_items=20, max_history=8, d_model=16, n_heads=2, d_head=8, dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        for batch in train.batches(32, rng, "cpu"):
            loss = model.train().loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert session_auc(model, valid, torch.device("cpu"))["auc"] > 0.95
    hist = torch.tensor([[0, 0, 3, 15]]), torch.tensor([[0, 0, 5, 1]])
    scores = model.eval().score(*hist, torch.tensor([[[1, 2, 4], [12, 13, 14], [1, 13, 0]]]))
    assert scores[0, 0] > 0.8 > 0.2 > scores[0, 1] and 0.2 < scores[0, 2] < 0.8  # the last: one of each, padded
