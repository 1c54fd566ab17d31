"""Preference alignment: the DPO loss by hand, and a round that moves the beams toward what the reward prefers."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from sidrec.align.ipa import align_round, dpo_loss, preference_pairs
from sidrec.config import AlignConfig
from sidrec.data.batches import SIDExamples
from sidrec.recommender import SIDRecommender, item_token_table

from .test_sessions import sids, tiny


def test_dpo_loss_equals_the_hand_computed_value():
    pc, pr = torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -1.0])  # log pi(chosen), log pi(rejected)
    rc, rr = torch.tensor([-1.5, -2.0]), torch.tensor([-1.5, -2.0])  # the reference's
    loss, accuracy = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # margins 0.5 * ((-1 + 1.5) - (-2 + 1.5)) = 0.5 and 0.5 * ((-3 + 2) - (-1 + 2)) = -1
    want = (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(1.0))) / 2  # -log sigmoid(x) = log(1 + e^-x)
    assert abs(loss.item() - want) < 1e-6 and accuracy.item() == 0.5
    same, _ = dpo_loss(rc, rr, rc, rr, beta=0.5)  # the policy equal to its reference: log 2
    assert abs(same.item() - math.log(2)) < 1e-6


def test_a_round_moves_the_beams_toward_the_preferred_item():
    torch.manual_seed(0)
    model, table = tiny("tiger", m=2, seed=2), sids()
    rec = SIDRecommender(model, table, beam_width=8, constrained=True, bf16=False)
    rng = np.random.default_rng(0)
    histories = [rng.permutation(np.arange(1, 7))[:3] for _ in range(16)]

    def share(item: int) -> float:  # of the best beams that list the item
        lists, _ = rec.lists(histories, 2, width=8)
        return float((lists[:, 0] == item).any(-1).mean())

    liked = min(range(1, 7), key=share)  # the item the untrained model lists least

    def reward(rows, sessions):  # R(u, S): the share of S that is the liked item
        return (sessions == liked).mean(-1)

    before = share(liked)
    pairs, stats = preference_pairs(rec, reward, histories, np.arange(16), 8)
    assert len(pairs.rows) == 16 and stats["reward_chosen"] > stats["reward_rejected"]
    assert all(
        reward(None, c[None]) >= reward(None, r[None]) for c, r in zip(pairs.chosen, pairs.rejected, strict=True)
    )
    seqs = [rng.permutation(np.arange(1, 7)) for _ in range(8)]
    users, positions = np.repeat(np.arange(8), 5), np.tile(np.arange(1, 6), 8)
    examples = SIDExamples(seqs, users, positions, table, item_token_table(table, model.shape.offsets),
                           max_history=4, target_items=2)  # fmt: skip
    cfg = AlignConfig(rounds=1, lam=1.0, beta=0.5, epochs=20, batch_size=8, lr=3e-3)
    ref = copy.deepcopy(model)
    out = align_round(model, ref, pairs, histories, examples, cfg, np.random.default_rng(1), torch.device("cpu"))
    assert out["steps"] == 40 and out["pair_accuracy"] > 0.5
    after = share(liked)
    assert after >= before + 0.25, (before, after)  # 0 -> 0.44 of the best lists here
    for p, q in zip(ref.parameters(), tiny("tiger", m=2, seed=2).parameters(), strict=True):
        assert torch.equal(p, q)  # the reference stays the round's starting model
