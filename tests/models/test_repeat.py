"""The repeat / explore mixture (models/repeat.py): a distribution, its likelihood separates, and it learns
to promote history items where targets repeat and to demote them where they never do, in every host model."""

from __future__ import annotations

import id_contract
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sidrec.config import ModelConfig
from sidrec.models import build_model
from sidrec.models.repeat import RepeatHead, in_rows, repeat_targets, seen_items

N = 30


def host(name: str, seed: int = 0, **overrides):
    """A tiny RPG, SASRec or HSTU with the mixture on."""
    torch.manual_seed(seed)
    base = dict(name=name, d_model=32, n_heads=2, d_head=16, d_ff=64, n_enc_layers=1, dropout=0.0, repeat="mixture")
    if name == "rpg":
        codes = np.random.default_rng(seed).integers(0, 8, (N, 4))
        cfg = ModelConfig().replace(**{**base, "temperature": 0.1, "item_loss": 1.0, "negatives": 0, **overrides})
        return build_model(cfg, max_history=8, codes=codes, codebook_size=8)
    cfg = ModelConfig().replace(**{**base, "temperature": 0.05, "loss": "ce", **overrides})
    return build_model(cfg, max_history=8, n_items=N)


def test_seen_items_repeat_targets_and_in_rows():
    inputs = torch.tensor([[0, 5, 6, 5], [1, 2, 3, 4]])
    targets = torch.tensor([[5, 6, 5, 7], [2, 1, 0, 9]])
    assert seen_items(inputs)[0, 2].tolist() == [0, 5, 6, 0]
    assert repeat_targets(inputs, targets).tolist() == [[False, False, True, False], [False, True, False, False]]
    items, seen = torch.tensor([3, 9, 3, 1]), torch.tensor([[3, 0], [1, 9], [0, 0]])
    brute = torch.tensor([[i in row.tolist() and i != 0 for i in items.tolist()] for row in seen])
    assert torch.equal(in_rows(items, seen), brute)


@pytest.mark.parametrize("name", ["rpg", "sasrec", "hstu"])
def test_mixture_is_a_distribution_and_passes_the_id_contract(name):
    model = host(name).eval()
    inputs = torch.tensor([[0, 0, 3, 7, 3, 2], [1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        logp = model.score_all(inputs)
    assert torch.isneginf(logp[:, 0]).all()
    torch.testing.assert_close(torch.logsumexp(logp, 1), torch.zeros(2), atol=1e-5, rtol=0)
    id_contract.check_causal(model, n_items=N)
    id_contract.check_padding(model)


def test_likelihood_separates_into_gate_pointer_and_explore():
    """-log p(y) of the mixture = BCE(gate, y in history) + the pointer's or the explore softmax's cross-entropy."""
    torch.manual_seed(0)
    head = RepeatHead(16, 6).eval()
    h, explore = torch.randn(1, 6, 16), torch.randn(1, N + 1)
    inputs = torch.tensor([[0, 4, 9, 4, 2, 7]])
    with torch.no_grad():
        mixed = head.mix(explore, h, inputs)[0]
        out = head(h, inputs)
    gate = out.gate[0, -1]
    history = {4, 9, 2, 7}
    masked = explore[0].clone()
    masked[[0, *history]] = float("-inf")
    for y in (4, 9, 13):
        bce = F.binary_cross_entropy_with_logits(gate, torch.tensor(float(y in history)))
        if y in history:
            rest = -torch.logsumexp(out.logp[0, -1][inputs[0] == y], 0)
        else:
            rest = -masked.log_softmax(0)[y]
        torch.testing.assert_close(-mixed[y], bce + rest, atol=1e-5, rtol=1e-5)


def _repeat_batch(repeat: bool, n: int = 16, t: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """Histories of distinct random items; each target is the item two steps back (repeat) or a new item."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.stack([torch.randperm(N, generator=g)[:t] + 1 for _ in range(n)])
    if repeat:
        targets = torch.cat([inputs[:, 1:2], inputs[:, :-1]], 1)  # position t's target = inputs[t-1]
        targets[:, 0] = 0
    else:  # a new item at every position: never in the history so far
        targets = torch.cat([inputs[:, 1:], torch.zeros(n, 1, dtype=torch.long)], 1)
    return {"inputs": inputs, "targets": targets}


@pytest.mark.parametrize("name", ["rpg", "sasrec", "hstu"])
def test_learns_to_promote_repeats_and_to_demote_history(name):
    """Where every target is the item one step back, that item ranks first; where targets never repeat, the
    history's items share under 5% of the probability (no switch: the same model, other data)."""
    model = host(name)
    batch = _repeat_batch(repeat=True)
    id_contract.check_overfits(model, batch, steps=150)
    with torch.no_grad():
        top = model.score_all(batch["inputs"][:, :-1]).argmax(1)
    assert (top == batch["inputs"][:, -3]).float().mean() > 0.9  # the item one step before the last input

    model = host(name)
    batch = _repeat_batch(repeat=False)
    id_contract.check_overfits(model, batch, steps=150)
    inputs = batch["inputs"][:, :-1]  # histories whose last position had a (new) target in training
    with torch.no_grad():
        logp = model.score_all(inputs)
    history = torch.zeros_like(logp, dtype=torch.bool).scatter_(1, inputs, True)
    history[:, 0] = False
    p_repeat = logp.masked_fill(~history, float("-inf")).logsumexp(1).exp()  # the mass on all history items
    assert p_repeat.max() < 0.05, p_repeat
    assert not history.gather(1, logp.argmax(1, keepdim=True)).any()  # no history item ranks first


def test_rpg_mixture_refuses_the_scalar_repeat_bias():
    with pytest.raises(ValueError, match="set model.rpg.history_negatives=false and model.rpg.repeat_bias=false"):
        host("rpg", history_negatives=True, repeat_bias=True)
    with pytest.raises(ValueError, match="unknown model.repeat"):
        host("sasrec", repeat="always")


def test_explore_temperature_divides_the_explore_scores_and_old_weights_load():
    torch.manual_seed(0)
    head = RepeatHead(8, max_len=5)
    h, inputs = torch.randn(2, 5, 8), torch.tensor([[0, 3, 4, 3, 2], [1, 2, 5, 6, 7]])
    explore = torch.randn(2, 10)
    head.temperature.fill_(2.0)
    sharp = head.mix(explore, h, inputs)
    head.temperature.fill_(1.0)
    torch.testing.assert_close(sharp, head.mix(explore / 2.0, h, inputs))
    assert torch.allclose(sharp[:, 1:].exp().sum(1), torch.ones(2))  # still a distribution
    old = {k: v for k, v in head.state_dict().items() if k != "temperature"}  # saved before the buffer existed
    fresh = RepeatHead(8, max_len=5)
    fresh.temperature.fill_(3.0)
    fresh.load_state_dict(old)
    assert float(fresh.temperature) == 1.0
