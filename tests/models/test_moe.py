"""Mixture-of-experts feed-forward: top-k routing, the load-balancing loss, E = 1 is the dense MLP."""

from __future__ import annotations

import pytest
import torch

from sidrec.models.layers import MLP
from sidrec.models.moe import MoE, aux_loss, expert_load


def test_each_token_goes_to_its_top_k_experts():
    torch.manual_seed(0)
    moe = MoE(d_model=8, d_ff=16, dropout=0.0, experts=4, top_k=2).eval()
    x = torch.randn(5, 8)
    probs = moe.router(x).softmax(-1)
    top = probs.topk(2, dim=-1)
    expected = torch.zeros_like(x)
    for row in range(5):
        w = top.values[row] / top.values[row].sum()
        for weight, e in zip(w, top.indices[row], strict=True):
            expected[row] += weight * moe.experts[int(e)](x[row : row + 1])[0]
    torch.testing.assert_close(moe(x), expected)


def test_aux_loss_is_one_under_uniform_routing_and_grows_when_skewed():
    torch.manual_seed(0)
    moe = MoE(d_model=8, d_ff=16, dropout=0.0, experts=4, top_k=1)
    x = torch.randn(64, 8)
    torch.nn.init.zeros_(moe.router.weight)  # every expert equally likely
    moe(x)
    assert moe.aux_loss.item() == pytest.approx(1.0)
    with torch.no_grad():
        moe.router.weight.normal_()
        moe.router.weight[0] += 3.0 * x.mean(0) / x.mean(0).norm()  # favour expert 0
    moe(x)
    assert moe.aux_loss.item() > 1.05
    wrapper = torch.nn.Sequential(moe, MoE(d_model=8, d_ff=16, dropout=0.0, experts=2, top_k=1))
    wrapper(x)
    assert aux_loss(wrapper).item() == pytest.approx((moe.aux_loss + wrapper[1].aux_loss).item() / 2)


def test_one_expert_is_the_dense_mlp():
    torch.manual_seed(0)
    moe = MoE(d_model=8, d_ff=16, dropout=0.1, experts=1, top_k=2)
    dense = MLP(d_model=8, d_ff=16, dropout=0.1)
    dense.load_state_dict(moe.experts[0].state_dict())
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(moe.eval()(x), dense.eval()(x))
    torch.manual_seed(1)
    a = moe.train()(x)
    torch.manual_seed(1)
    torch.testing.assert_close(a, dense.train()(x))  # the same dropout mask too


def test_expert_load_counts_training_assignments_and_resets():
    torch.manual_seed(0)
    model = torch.nn.Sequential(MoE(d_model=8, d_ff=16, dropout=0.0, experts=4, top_k=2))
    model.train()(torch.randn(10, 8))
    model.eval()(torch.randn(10, 8))  # evaluation passes are not counted
    (load,) = expert_load(model)
    assert len(load) == 4 and sum(load) == pytest.approx(1.0)
    assert model[0].load.sum() == 0


@pytest.mark.parametrize("experts", [0, 3])
def test_generators_report_their_expert_load_to_the_training_loop(make_tiger, experts):
    """train.fit logs `epoch_metrics()` per epoch and tells DDP about `unused_parameters`; dense models: neither."""
    model = make_tiger((4, 4), experts=experts)
    assert model.unused_parameters == (experts > 0)
    metrics = model.epoch_metrics()
    assert (len(metrics.get("expert_load", [])) == 2) == (experts > 0)  # one row per MoE layer (1 enc + 1 dec)
