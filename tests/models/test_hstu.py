"""HSTU: overfits a batch, causal, padding never wins, the three objectives, pointwise attention, save / load."""

from __future__ import annotations

import pytest
import torch
from id_contract import check_causal, check_ignores_padding_targets, check_objective, check_overfits, check_padding

from sidrec.config import ModelConfig
from sidrec.models import HSTU, build_model, load_model, model_kind
from sidrec.models.hstu import HSTULayer


def test_overfits_one_batch(make_id_model, make_id_batch):
    model = make_id_model("hstu")
    batch = make_id_batch(16)
    assert model.loss(batch).item() > 3.0  # ~log(30) at init
    assert check_overfits(model, batch) < 0.1


def test_causal(make_id_model):
    check_causal(make_id_model("hstu"))


def test_padding_never_wins_and_does_not_leak(make_id_model):
    check_padding(make_id_model("hstu"))


@pytest.mark.parametrize("loss", ["ce", "sampled", "bce"])
def test_objectives(make_id_model, make_id_batch, loss):
    model = make_id_model("hstu", loss=loss, negatives=8)
    check_objective(model, make_id_batch(8))
    threshold = 0.7 if loss == "bce" else 0.2  # bce starts at 2 log 2 = 1.39 and stays noisy (random negatives)
    assert check_overfits(model, make_id_batch(8), steps=100) < threshold


def test_padding_targets_are_ignored(make_id_model, make_id_batch):
    check_ignores_padding_targets(make_id_model("hstu"), make_id_batch(8))


def test_layer_matches_the_paper_equations():
    """One layer by hand: SiLU(W1 LN(x)) -> U, V, Q, K; A = SiLU(QK^T + rab) / n, causal; x + W2(LN(AV) * U)."""
    torch.manual_seed(0)
    layer = HSTULayer(d_model=8, n_heads=1, d_head=4, max_len=6, dropout=0.0).eval()
    torch.nn.init.normal_(layer.rel_pos_bias)
    x = torch.randn(1, 5, 8)
    allowed = torch.ones(5, 5, dtype=torch.bool).tril()[None, None]
    u, v, q, k = torch.nn.functional.silu(layer.uvqk(layer.norm_in(x[0]))).chunk(4, dim=-1)  # (T, 4) each
    rab = torch.stack([torch.stack([layer.rel_pos_bias[max(i - j, 0)] for j in range(5)]) for i in range(5)])
    attn = torch.nn.functional.silu(q @ k.T + rab) / 6 * allowed[0, 0]
    expected = x[0] + layer.out(layer.norm_attn(attn @ v) * u)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, allowed)[0], expected.detach())
    assert not torch.allclose(attn.sum(-1), torch.ones(5))  # pointwise, not a softmax


def test_build_from_config_and_reload(tmp_path):
    cfg = ModelConfig().replace(name="hstu", d_model=32, n_heads=2, d_head=8, n_enc_layers=3, loss="bce")
    model = build_model(cfg, max_history=12, n_items=50)
    assert isinstance(model, HSTU) and model_kind("hstu") == "id"
    assert len(model.layers) == 3 and model.layers[0].uvqk.weight.shape == (4 * 2 * 8, 32)
    torch.save({"model": "hstu", "shape": model.config_dict(), "state_dict": model.state_dict()}, tmp_path / "m.pt")
    loaded, meta = load_model(str(tmp_path / "m.pt"))
    assert isinstance(loaded, HSTU) and meta["shape"]["loss"] == "bce"
    inputs = torch.tensor([[0, 3, 4, 5]])
    torch.testing.assert_close(loaded.score_all(inputs), model.eval().score_all(inputs))


def test_ffn_option_is_off_by_default_and_keeps_the_contract(make_id_model, make_id_batch):
    assert make_id_model("hstu").layers[0].ffn is None  # the paper's layer has no MLP
    model = make_id_model("hstu", hstu_ffn=True, d_ff=24)
    assert model.layers[0].ffn[1].weight.shape == (24, model.shape.d_model)
    check_causal(model)
    check_padding(model)
    assert check_overfits(model, make_id_batch(16)) < 0.1


def test_ffn_layer_adds_a_pre_norm_mlp_after_the_hstu_block():
    torch.manual_seed(0)
    layer = HSTULayer(d_model=8, n_heads=1, d_head=4, max_len=6, dropout=0.0, d_ff=16).eval()
    plain = HSTULayer(d_model=8, n_heads=1, d_head=4, max_len=6, dropout=0.0).eval()
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if not k.startswith("ffn.")})
    x = torch.randn(2, 5, 8)
    allowed = torch.ones(5, 5, dtype=torch.bool).tril()[None, None]
    with torch.no_grad():
        h = plain(x, allowed)
        mlp = layer.ffn
        expected = h + mlp[4](torch.nn.functional.silu(mlp[1](mlp[0](h))))
        torch.testing.assert_close(layer(x, allowed), expected)


def test_time_buckets_by_hand():
    from sidrec.models.hstu import time_buckets

    times = torch.tensor([[0, 1, 2, 100, 86_400]])
    b = time_buckets(times)[0]
    assert b.shape == (5, 5) and (b == b.T).all() and (b.diagonal() == 0).all()  # |dt| <= 1 -> bucket 0
    assert b[2, 0].item() == int(torch.log(torch.tensor(2.0)) / 0.301)  # 2 s: bucket 2
    assert b[3, 0].item() == 15 and b[4, 0].item() == 37  # 100 s: ln 100 / 0.301 = 15.3; a day: 37.8
    assert time_buckets(torch.tensor([[0, 10**300 // 10**290]]), n=8).max() == 7  # clamped to the last bucket


def test_time_bias_and_actions_change_the_scores_and_keep_the_contract(make_id_model, make_id_batch):
    model = make_id_model("hstu", time_bias=True, actions=True)
    assert model.events == ("times", "actions") and make_id_model("hstu").events == ()
    inputs = torch.tensor([[0, 3, 4, 5], [1, 2, 3, 4]])
    times = torch.tensor([[0, 10, 20, 10_000], [0, 5, 6, 7]])
    actions = torch.tensor([[0, 5, 4, 1], [3, 3, 3, 3]])
    with torch.no_grad():
        model.layers[0].rel_time_bias.normal_()  # zero-initialised: give it weight
        plain = model.score_all(inputs)
        timed = model.score_all(inputs, times=times)
        both = model.score_all(inputs, times=times, actions=actions)
        full = model.hidden(inputs, times=times, actions=actions)
        later = model.hidden(inputs, times=times + torch.tensor([0, 0, 0, 99_999]), actions=actions + 1)
    assert not torch.allclose(plain, timed) and not torch.allclose(timed, both)
    shifted = actions.clone()
    shifted[:, 3] += 1
    with torch.no_grad():
        last = model.hidden(inputs, times=times + torch.tensor([0, 0, 0, 99_999]), actions=shifted)
    torch.testing.assert_close(full[:, :3], last[:, :3])  # causal: the last event's time and action reach only it
    assert not torch.allclose(full[:, 3], last[:, 3]) and not torch.allclose(full[:, 1:3], later[:, 1:3])
    batch = make_id_batch(16)
    batch["times"] = torch.cumsum(torch.randint(0, 1000, batch["inputs"].shape), 1)
    batch["actions"] = torch.randint(1, 6, batch["inputs"].shape)
    assert torch.isfinite(model.train().loss(batch))
