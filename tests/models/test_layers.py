"""The byte-mask dropout: the right rate, unbiased in expectation, identity in eval, seeded."""

import pytest
import torch

from sidrec.models.layers import Dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_rate_and_scale(p):
    torch.manual_seed(0)
    drop = Dropout(p).train()
    x = torch.ones(64, 33, 17)  # numel not a multiple of 8
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - round(p * 256) / 256) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.02  # inverted dropout keeps the expectation
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 256 / (256 - round(p * 256))))


def test_dropout_gradient_uses_the_same_mask():
    torch.manual_seed(1)
    x = torch.randn(8, 40, requires_grad=True)
    y = Dropout(0.3).train()(x)
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)


def test_dropout_eval_zero_and_one():
    x = torch.randn(5, 7)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.count_nonzero(Dropout(1.0).train()(x)) == 0
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.5)


def test_dropout_follows_torch_seed():
    drop = Dropout(0.2).train()
    x = torch.ones(100)
    torch.manual_seed(7)
    a = drop(x)
    torch.manual_seed(7)
    assert torch.equal(drop(x), a)
