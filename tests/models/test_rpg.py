"""RPG (parallel long-SID model): overfits, causal, exact scores equal brute force, save / load."""

from __future__ import annotations

import id_contract
import numpy as np
import pytest
import torch

from sidrec.config import ModelConfig
from sidrec.models import build_model, load_model
from sidrec.models.rpg import RPG, RPGShape

N, M, K = 30, 4, 8


def tiny(seed: int = 0, **overrides) -> RPG:
    torch.manual_seed(seed)
    codes = np.random.default_rng(seed).integers(0, K, (N, M))
    cfg = ModelConfig().replace(
        **{"name": "rpg", "d_model": 32, "n_heads": 2, "d_head": 16, "d_ff": 64, "n_enc_layers": 1,
           "dropout": 0.0, "temperature": 0.1, "pooling": "mean", "item_loss": 0.0, "history_negatives": False,
           "repeat_bias": False, "repeat": "none", **overrides}
    )  # fmt: skip
    return build_model(cfg, max_history=8, codes=codes, codebook_size=K)


def brute(per_digit: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """(M, P, K) per-digit values, (N, M) item codes -> (P, N): each item's mean over its digits' values."""
    return torch.stack([per_digit[m][:, codes[:, m]] for m in range(M)], -1).mean(-1)


@pytest.mark.parametrize("pooling", ["mean", "concat"])
def test_overfits_a_batch(make_id_batch, pooling):
    model = tiny(pooling=pooling)
    batch = make_id_batch(n=8, n_items=N, max_len=8)
    start = model.loss(batch).item()
    assert id_contract.check_overfits(model, batch, steps=200) < 0.25 * start


@pytest.mark.parametrize("id_embedding", [False, True])
def test_causal_and_padding(id_embedding):
    model = tiny(id_embedding=id_embedding).eval()
    id_contract.check_causal(model, n_items=N)
    id_contract.check_padding(model)


def test_id_embedding_tells_apart_items_with_the_same_codes(make_id_batch):
    """Items 1 and 2 share every code: digits alone give them the same input, an item vector does not."""
    for id_embedding, same in ((False, True), (True, False)):
        model = tiny(id_embedding=id_embedding).eval()
        model.codes[2] = model.codes[1]
        h1, h2 = model.hidden(torch.tensor([[1]])), model.hidden(torch.tensor([[2]]))
        assert torch.allclose(h1, h2) == same
    assert model.item.weight.shape == (N + 1, 32) and tiny().item is None
    batch = make_id_batch(n=8, n_items=N, max_len=8)
    start = model.train().loss(batch).item()
    assert id_contract.check_overfits(model, batch, steps=200) < 0.25 * start


def test_input_dropout_blanks_items_or_digits_in_training_only(make_id_batch):
    inputs = torch.randint(1, N + 1, (64, 8))
    for pooling in ("mean", "concat"):
        model = tiny(item_dropout=0.5, pooling=pooling)
        positions = model.pos(torch.arange(7, -1, -1))
        content = model.train().embed(inputs) - positions  # the pooled digits, scaled
        blank = content.abs().sum(-1) < 1e-6
        assert 0.35 < blank.float().mean() < 0.65  # whole items blanked, their positions kept
        assert not (model.eval().embed(inputs) - positions).abs().sum(-1).lt(1e-6).any()  # none at inference
    plain, dropped = tiny(), tiny(digit_dropout=0.5)
    assert torch.equal(plain.eval().embed(inputs), dropped.eval().embed(inputs))
    assert not torch.allclose(plain.train().embed(inputs), dropped.train().embed(inputs))
    batch = make_id_batch(n=8, n_items=N, max_len=8)
    model = tiny(item_dropout=0.1, digit_dropout=0.1)
    start = model.loss(batch).item()
    assert id_contract.check_overfits(model, batch, steps=200) < 0.25 * start


def test_exact_scores_are_the_mean_digit_log_probability():
    model = tiny().eval()
    inputs = torch.randint(0, N + 1, (5, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logp = model.digit_logprobs(inputs)  # (B, M, K)
        scores = model.score_all(inputs)
    assert logp.shape == (5, M, K)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(5, M))
    codes = model.codes[1:]  # (N, M)
    torch.testing.assert_close(scores[:, 1:], brute(logp.transpose(0, 1), codes), rtol=1e-5, atol=1e-5)
    assert torch.isneginf(scores[:, 0]).all()


def test_loss_is_the_mean_of_the_digit_cross_entropies(make_id_batch):
    model = tiny().eval()
    batch = make_id_batch(n=4, n_items=N, max_len=8)
    keep = batch["targets"] > 0
    with torch.no_grad():
        logits = model.digit_logits(model.hidden(batch["inputs"])[keep])  # (M, P, K)
        labels = model.codes[batch["targets"][keep]]  # (P, M)
        per_digit = [torch.nn.functional.cross_entropy(logits[m], labels[:, m]) for m in range(M)]
        torch.testing.assert_close(model.loss(batch), torch.stack(per_digit).mean())


def test_item_loss_is_the_item_softmax_over_mean_digit_logits(make_id_batch):
    """item_loss adds the CE of the next item among all items scored by their mean digit logit, which
    ranks items exactly as score_all; with negatives, the positive competes with the sampled items."""
    model = tiny(item_loss=0.5, negatives=0).eval()
    batch = make_id_batch(n=4, n_items=N, max_len=8)
    keep = batch["targets"] > 0
    with torch.no_grad():
        h = model.hidden(batch["inputs"])
        logits = model.digit_logits(h[keep])  # (M, P, K)
        codes = model.codes[1:]  # (N, M)
        items = brute(logits, codes)  # (P, N)
        digit = torch.nn.functional.cross_entropy(logits.flatten(0, 1), model.codes[batch["targets"][keep]].T.flatten())
        item = torch.nn.functional.cross_entropy(items, batch["targets"][keep] - 1)
        torch.testing.assert_close(model.loss(batch), digit + 0.5 * item)
        last = model.digit_logits(h[:, -1])  # (M, B, K): same ranking as score_all
        by_logit = brute(last, codes)
        gap = by_logit - model.score_all(batch["inputs"])[:, 1:]  # a constant per user: the same ranking
        torch.testing.assert_close(gap, gap[:, :1].expand_as(gap), rtol=1e-5, atol=1e-4)
    sampled = tiny(item_loss=1.0, negatives=7)
    assert torch.isfinite(sampled.loss(batch))
    sampled.loss(batch).backward()
    assert sampled.digit.weight.grad.abs().sum() > 0
    start = tiny(item_loss=1.0, negatives=7).loss(batch).item()
    assert id_contract.check_overfits(sampled, batch, steps=200) < 0.25 * start


@pytest.mark.parametrize("negatives", [5, 0])
@pytest.mark.parametrize("repeat_bias", [0.0, -2.0])
def test_history_negatives_join_each_positions_item_softmax(make_id_batch, negatives, repeat_bias):
    """history_negatives: the items position t has seen (inputs[:, :t+1]) are extra negatives of its sampled
    item softmax (the full softmax has them already), scored by their mean digit logit, plus the learned
    repeat bias (repeat_bias; the target's score too when it repeats one); padding is left out."""
    model = tiny(item_loss=1.0, negatives=negatives, history_negatives=True, repeat_bias=repeat_bias != 0).eval()
    if model.repeat is not None:
        model.repeat.data.fill_(repeat_bias)
    batch = make_id_batch(n=4, n_items=N, max_len=8)
    batch["inputs"][0, -1] = batch["targets"][0, -1]  # a repeat: the target is not its own negative
    batch["inputs"][1, -1] = batch["inputs"][1, -2]  # an item seen twice is one negative, not two
    seen = RPG.seen_items(batch["inputs"])
    assert torch.equal(seen[:, 2, :3], batch["inputs"][:, :3]) and (seen[:, 2, 3:] == 0).all()
    keep = batch["targets"] > 0
    with torch.no_grad():
        logits = model.digit_logits(model.hidden(batch["inputs"])[keep])  # (M, P, K)
        items = brute(logits, model.codes[1:])  # (P, N): column j is item j+1
        y = batch["targets"][keep]
        digit = torch.nn.functional.cross_entropy(logits.flatten(0, 1), model.codes[y].T.flatten())
        torch.manual_seed(3)
        neg = torch.randint(1, N + 1, (negatives,)).tolist() if negatives else list(range(1, N + 1))
        item = []
        for p, (target, own) in enumerate(zip(y.tolist(), seen[keep].tolist(), strict=True)):
            score = items[p] + repeat_bias * torch.isin(torch.arange(1, N + 1), torch.tensor(own))
            mine = list(dict.fromkeys(i for i in own if i not in (0, target)))  # each seen item once
            others = [i for i in neg if i != target and not (negatives and i in own)] + (mine if negatives else [])
            row = torch.cat([score[target - 1 : target], score[torch.tensor(others, dtype=torch.long) - 1]])
            item.append(-row.log_softmax(0)[0])
        torch.manual_seed(3)
        torch.testing.assert_close(model.loss(batch), digit + torch.stack(item).mean(), rtol=1e-4, atol=1e-4)
        if model.repeat is not None:  # inference: the same bias on the history's items, nothing else moves
            inputs = batch["inputs"]
            gap = model.score_all(inputs) - model.item_scores(model.digit_logprobs(inputs))
            expected = torch.zeros_like(gap).scatter_(1, inputs, repeat_bias)
            expected[:, 0] = 0.0
            torch.testing.assert_close(gap.nan_to_num(0.0), expected)
    with pytest.raises(ValueError, match="set model.rpg.history_negatives=true"):
        tiny(item_loss=1.0, history_negatives=False, repeat_bias=True)
    paper = tiny(item_loss=0.0, history_negatives=True, repeat_bias=True)  # parts of the item softmax: off
    assert paper.repeat is None and torch.equal(paper.score_all(batch["inputs"]), tiny().score_all(batch["inputs"]))


def test_repeat_bias_learns_that_histories_do_not_repeat(make_id_batch):
    """On data whose targets never repeat a history item the learned bias turns negative."""
    model = tiny(item_loss=1.0, negatives=5, history_negatives=True, repeat_bias=True)
    batch = make_id_batch(n=8, n_items=N, max_len=8)
    seen = RPG.seen_items(batch["inputs"])
    batch["targets"][(seen == batch["targets"][..., None]).any(-1)] = 0  # no loss on the repeats
    start = model.loss(batch).item()
    assert id_contract.check_overfits(model, batch, steps=200) < 0.25 * start
    assert float(model.repeat.detach()) < -0.1


def test_repeat_bias_learns_that_histories_repeat(make_id_batch):
    """On data whose every target is an item of the history (a user coming back), the learned bias turns
    positive: the seen items enter the softmax once each, so nothing pushes it down but the data."""
    model = tiny(item_loss=1.0, negatives=5, history_negatives=True, repeat_bias=True)
    batch = make_id_batch(n=8, n_items=N, max_len=8)
    back = torch.randint(0, 3, batch["inputs"].shape, generator=torch.Generator().manual_seed(0))
    pos = (torch.arange(batch["inputs"].shape[1]) - back).clamp(min=0)  # one of the last three items
    batch["targets"] = torch.where(batch["targets"] > 0, batch["inputs"].gather(1, pos.expand_as(back)), 0)
    batch["targets"][batch["targets"] == 0] = 0
    start = model.loss(batch).item()
    assert id_contract.check_overfits(model, batch, steps=200) < 0.5 * start
    assert float(model.repeat.detach()) > 0.1


def test_heads_start_as_identity_and_save_load_keeps_codes(tmp_path):
    model = tiny()
    h = torch.randn(3, 32)
    torch.testing.assert_close(model.heads(h), h[None].expand(M, -1, -1))
    path = tmp_path / "model.pt"
    torch.save({"model": "rpg", "shape": model.config_dict(), "state_dict": model.state_dict()}, path)
    loaded, _ = load_model(str(path))
    assert torch.equal(loaded.codes, model.codes)
    inputs = torch.randint(1, N + 1, (2, 8))
    torch.testing.assert_close(loaded.score_all(inputs), model.eval().score_all(inputs))


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="quantize.dedup=random"):
        RPG(RPGShape(n_items=3, n_digits=2, codebook_size=4)).set_codes(torch.tensor([[0, 1], [2, 3], [1, 4]]))
    with pytest.raises(ValueError, match="model.rpg.temperature must be > 0"):
        RPG(RPGShape(n_items=3, n_digits=2, codebook_size=4, temperature=0.0))
    with pytest.raises(ValueError, match="model.rpg.pooling"):
        RPG(RPGShape(n_items=3, n_digits=2, codebook_size=4, pooling="max"))
    with pytest.raises(ValueError, match="model.rpg.item_loss >= 0"):
        RPG(RPGShape(n_items=3, n_digits=2, codebook_size=4, item_loss=-1.0))
    with pytest.raises(ValueError, match="model.rpg.item_dropout and model.rpg.digit_dropout in"):
        RPG(RPGShape(n_items=3, n_digits=2, codebook_size=4, item_dropout=1.0))
