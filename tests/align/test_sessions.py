"""Session targets (OneRec): the batcher's targets, the generators' session log-probabilities, list beam search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sidrec.config import ModelConfig
from sidrec.data.batches import SIDExamples, encoder_inputs, session_ends
from sidrec.decode.beam import beam_search
from sidrec.decode.trie import SIDTrie
from sidrec.models import build_model
from sidrec.models.moe import aux_loss
from sidrec.recommender import SIDRecommender, item_token_table

SIZES = (2, 3)
TINY = dict(d_model=32, n_heads=2, d_head=16, d_ff=64, n_enc_layers=1, n_dec_layers=1, dropout=0.0, repeat="none")
GENERATORS = {"tiger": {}, "decoder": {}, "tiger+moe": dict(experts=3, expert_top_k=2)}


def tiny(name: str, m: int, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig().replace(**{"name": name.split("+")[0], **TINY, **GENERATORS[name]})
    return build_model(cfg, level_sizes=SIZES, max_history=4, target_items=m).eval()


def sids(n: int = 6) -> np.ndarray:
    """n distinct SIDs over SIZES."""
    return np.array(list(itertools.product(*(range(k) for k in SIZES)))[:n])


def test_session_targets_round_trip_through_the_batcher():
    table = sids()
    seqs = [np.array([1, 2, 3, 4, 5, 6]), np.array([6, 5, 4])]
    ends = session_ends([np.array([0, 10, 20, 9000, 9010, 9020]), np.array([0, 1, 2])], 100.0)
    assert ends[0].tolist() == [3, 3, 3, 6, 6, 6] and ends[1].tolist() == [3, 3, 3]
    tokens = item_token_table(table, (2, 4))
    ex = SIDExamples(seqs, np.array([0, 0, 1]), np.array([1, 4, 2]), table, tokens, max_history=4, target_items=3,
                     ends=ends)  # fmt: skip
    b = ex.batch(np.arange(3))
    assert b["codes"].shape == (3, 3, 2)
    # user 0 at 1: items 2, 3 then the session ends (a gap before item 4); at 4: items 5, 6 then the sequence ends
    np.testing.assert_array_equal(b["codes"][0].numpy(), np.stack([table[1], table[2], [-1, -1]]))
    np.testing.assert_array_equal(b["codes"][1].numpy(), np.stack([table[4], table[5], [-1, -1]]))
    np.testing.assert_array_equal(b["codes"][2].numpy(), np.stack([table[3], [-1, -1], [-1, -1]]))
    assert b["target"].tolist() == [2, 5, 4]
    want, _ = encoder_inputs([seqs[0][:1], seqs[0][:4], seqs[1][:2]], tokens, max_history=4)
    torch.testing.assert_close(b["tokens"], want)
    one = SIDExamples(seqs, np.array([0]), np.array([1]), table, tokens, max_history=4)
    assert one.batch(np.arange(1))["codes"].shape == (1, 2)  # m = 1: the next item's codes, as before


def stepwise(model, tokens, positions, codes: torch.Tensor) -> torch.Tensor:
    """(B, T) log-probability of each flat target code, decoded through prefill / step with one beam per user."""
    cache = model.prefill(tokens, positions, beams=1)
    n, out = len(codes), []
    prev, parent = torch.full((n,), -1), torch.arange(n)
    for level in range(codes.shape[1]):
        logp, cache = model.step(cache, level, prev, parent)
        prev = codes[:, level]
        out.append(logp.gather(1, prev[:, None])[:, 0])
    return torch.stack(out, 1)


def prompt(model, n: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    table = item_token_table(sids(), model.shape.offsets)
    hists = [rng.permutation(np.arange(1, 7))[: int(rng.integers(1, 5))] for _ in range(n)]
    return encoder_inputs(hists, table, max_history=4)


@pytest.mark.parametrize("name", GENERATORS)
def test_cached_session_steps_equal_teacher_forcing(name):
    model = tiny(name, m=3)
    tokens, positions = prompt(model)
    codes = torch.from_numpy(np.stack([sids()[[1, 4, 2]], sids()[[0, 5, 3]], sids()[[2, 2, 1]], sids()[[5, 0, 4]]]))
    b = {"tokens": tokens, "positions": positions, "codes": codes}
    with torch.no_grad():
        full = model.token_logp(b)  # (4, 6)
        loss = model.loss(b)
        aux = aux_loss(model)  # the experts' load-balancing term is part of the training loss only
        loss = loss if aux is None else loss - model.shape.moe_aux_weight * aux
    step = stepwise(model, tokens, positions, codes.reshape(4, -1))
    torch.testing.assert_close(full, step, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, -full.mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", GENERATORS)
def test_missing_items_carry_no_loss(name):
    model = tiny(name, m=2)
    tokens, positions = prompt(model)
    codes = torch.from_numpy(np.stack([sids()[[1, 4]]] * 4))
    cut = codes.clone()
    cut[:2, 1] = -1  # two sessions of one item
    with torch.no_grad():
        full, part = (
            model.token_logp({"tokens": tokens, "positions": positions, "codes": codes}),
            model.token_logp({"tokens": tokens, "positions": positions, "codes": cut}),
        )
    torch.testing.assert_close(part[:, :2], full[:, :2])  # the first item is read the same way
    assert (part[:2, 2:] == 0).all() and torch.equal(part[2:], full[2:])


@pytest.mark.parametrize("name", ["tiger", "decoder"])
def test_session_beam_search_equals_brute_force(name):
    """Free beam search with as many beams as sessions returns every session, best first, at its exact score."""
    model = tiny(name, m=2, seed=3)
    tokens, positions = prompt(model, n=2, seed=1)
    every = torch.tensor(list(itertools.product(*(range(k) for k in SIZES * 2))))  # (36, 4)
    w = len(every)
    cache = {"c": model.prefill(tokens, positions, beams=w)}

    def step(level, prev, parent):
        logp, cache["c"] = model.step(cache["c"], level, prev, parent)
        return logp

    result = beam_search(step, batch_size=2, beam_width=w, level_sizes=SIZES, trie=None, constrained=False, items=2)
    for user in range(2):
        b = {"tokens": tokens[user : user + 1].repeat(w, 1), "positions": positions[user : user + 1].repeat(w, 1)}
        with torch.no_grad():
            scores = model.token_logp({**b, "codes": every.reshape(w, 2, 2)}).sum(1)
        torch.testing.assert_close(result.scores[user], scores.sort(descending=True).values, rtol=1e-5, atol=1e-5)
        assert {tuple(c.tolist()) for c in result.codes[user]} == {tuple(c.tolist()) for c in every}


def test_constrained_lists_name_distinct_valid_items():
    model = tiny("tiger", m=3, seed=1)
    table = sids(4)  # 4 items; 6 SIDs exist
    rec = SIDRecommender(model, table, beam_width=24, constrained=True, bf16=False)
    lists, scores = rec.lists([np.array([1, 2]), np.array([3])], 3)
    assert lists.shape == (2, 24, 3)
    complete = np.isfinite(scores)
    assert complete.sum(1).tolist() == [24, 24]  # 4 x 3 x 2 ordered lists of 3 distinct items out of 4
    for row in lists.reshape(-1, 3):
        assert len(set(row.tolist())) == 3 and row.min() >= 1 and row.max() <= 4
    assert len({tuple(r) for r in lists[0].tolist()}) == 24


def test_next_nodes_agree_dense_and_sparse():
    table = sids()
    dense, sparse = SIDTrie(table, SIZES), SIDTrie(table, SIZES, dense_max=1)
    nodes = torch.tensor([0, 1, -1])
    torch.testing.assert_close(dense.next_nodes(1, nodes), sparse.next_nodes(1, nodes))
    assert dense.next_nodes(1, nodes)[2].tolist() == [-1, -1, -1]
