"""The SID-generator contract (models.generator), checked on every registered SID generator.

Each test builds a tiny generator through the registry, so a new generator is covered by adding it
to the model registry with kind "sid".
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sidrec.config import ModelConfig
from sidrec.data.batches import encoder_inputs, item_inputs
from sidrec.decode.beam import beam_search
from sidrec.models import REGISTRY, build_model
from sidrec.models.generator import SIDGenerator
from sidrec.models.moe import aux_loss
from sidrec.recommender import item_token_table

SIZES = (3, 3, 2)
# every registered SID generator, plus its variants that change the output or the loss
GENERATORS = sorted(name for name, spec in REGISTRY.items() if spec.kind == "sid")
GENERATORS += ["decoder+tied", "tiger+moe", "decoder+moe", "tiger+repeat", "decoder+repeat"]
VARIANTS = {
    "decoder+tied": dict(name="decoder", tie_embeddings=True),
    "tiger+moe": dict(name="tiger", experts=3, expert_top_k=2),
    "decoder+moe": dict(name="decoder", experts=3, expert_top_k=1),
    "tiger+repeat": dict(name="tiger", repeat="mixture"),  # the repeat head leaves the SID path as it is
    "decoder+repeat": dict(name="decoder", repeat="mixture"),
}
TINY = dict(d_model=32, n_heads=2, d_head=16, d_ff=64, n_enc_layers=1, n_dec_layers=1, dropout=0.0, repeat="none")


def tiny(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    cfg = ModelConfig().replace(**{"name": name, **TINY, **VARIANTS.get(name, {}), **overrides})
    return build_model(cfg, level_sizes=SIZES, max_history=4)


def batch(model, seed: int = 0, n: int = 8) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    sids = np.stack([rng.integers(0, k, size=12) for k in SIZES], axis=1)
    table = item_token_table(sids, model.shape.offsets)
    hists = [rng.permutation(np.arange(1, 13))[: int(rng.integers(1, 5))] for _ in range(n)]
    while len({tuple(h) for h in hists}) < n:  # distinct inputs: a batch can be fitted exactly
        hists = [rng.permutation(np.arange(1, 13))[: int(rng.integers(1, 5))] for _ in range(n)]
    tokens, positions = encoder_inputs(hists, table, max_history=4)
    codes = torch.from_numpy(np.stack([rng.integers(0, k, size=n) for k in SIZES], axis=1))
    target = torch.tensor([int(rng.choice(np.setdiff1d(np.arange(1, 13), h))) for h in hists])  # new to the user
    items = item_inputs(hists, 4)
    return {"tokens": tokens, "positions": positions, "codes": codes, "items": items, "target": target}


def fit(model, b: dict, steps: int = 150) -> float:
    """`steps` AdamW steps on one batch; the last training loss."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model.loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def stepwise_logp(model, b: dict, beams: int = 1) -> torch.Tensor:
    """(B, L) log-probability of each target code, decoded with the cache, one beam per user."""
    cache = model.prefill(b["tokens"], b["positions"], beams=beams)
    n = len(b["codes"])
    prev, parent, out = torch.full((n,), -1), torch.arange(n), []
    for level in range(len(SIZES)):
        logp, cache = model.step(cache, level, prev, parent)
        prev = b["codes"][:, level]
        out.append(logp.gather(1, prev[:, None])[:, 0])
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("name", GENERATORS)
def test_keeps_the_contract(name):
    assert isinstance(tiny(name), SIDGenerator)


@pytest.mark.parametrize("name", GENERATORS)
def test_cached_steps_equal_the_full_forward(name):
    model = tiny(name).eval()
    b = batch(model)
    with torch.no_grad():
        full = model.loss(b)
        aux = aux_loss(model)  # the load-balancing term is part of the training loss only
        full = full if aux is None else full - model.shape.moe_aux_weight * aux
        if model.repeat_head is not None:  # every target is new: the SID loss covers all, beside the head's loss
            gate, _ = model.repeat(b["tokens"], b["positions"], b["items"])
            full = full - torch.nn.functional.softplus(gate).mean()  # BCE of the gate against "not a repeat"
    torch.testing.assert_close(-stepwise_logp(model, b).mean(), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", GENERATORS)
def test_causal_a_level_never_sees_later_codes(name):
    model = tiny(name).eval()
    b = batch(model)
    changed = {**b, "codes": b["codes"].clone()}
    changed["codes"][:, -1] = (changed["codes"][:, -1] + 1) % SIZES[-1]
    first, second = stepwise_logp(model, b), stepwise_logp(model, changed)
    torch.testing.assert_close(first[:, :-1], second[:, :-1])  # earlier levels unchanged
    assert not torch.allclose(first[:, -1], second[:, -1])


@pytest.mark.parametrize("name", GENERATORS)
def test_overfits_one_batch(name):
    model = tiny(name)
    assert fit(model, batch(model, n=4)) < 0.1


@pytest.mark.parametrize("name", GENERATORS)
def test_beam_search_equals_brute_force(name):
    """With as many beams as SIDs, beam search returns every SID, best first, at its exact score."""
    model = tiny(name, seed=3).eval()
    b = batch(model, seed=1, n=3)
    every = torch.tensor(list(itertools.product(*(range(k) for k in SIZES))))  # (18, 3)
    w = len(every)

    cache = {"c": model.prefill(b["tokens"], b["positions"], beams=w)}

    def step(level, prev, parent):
        logp, cache["c"] = model.step(cache["c"], level, prev, parent)
        return logp

    result = beam_search(step, batch_size=3, beam_width=w, level_sizes=SIZES, trie=None, constrained=False)
    for user in range(3):
        one = {k: v[user : user + 1].repeat_interleave(w, 0) for k, v in b.items() if k != "codes"}
        scores = stepwise_logp(model, {**one, "codes": every}).sum(1)
        order = torch.argsort(scores, descending=True, stable=True)
        torch.testing.assert_close(result.scores[user], scores[order], rtol=1e-5, atol=1e-5)
        found = {tuple(c.tolist()) for c in result.codes[user]}
        assert found == {tuple(c.tolist()) for c in every}


def test_decoder_loss_on_every_position_adds_the_history_tokens():
    target_only, every = tiny("decoder").eval(), tiny("decoder", loss_on="all").eval()
    b = batch(target_only, n=6)
    with torch.no_grad():
        a, c = target_only.loss(b), every.loss(b)
    assert torch.isfinite(c) and not torch.isclose(a, c)  # same weights, more positions in the mean
    assert fit(every, b) < c.item() / 2
