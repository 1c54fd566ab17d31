"""Checks every item-ID model (SASRec, HSTU) must pass; test_sasrec.py and test_hstu.py run them.

Not a test module itself (no `test_` prefix): pytest puts this folder on sys.path, so the two test
modules import it by name.
"""

from __future__ import annotations

import numpy as np
import torch

from sidrec.data.batches import item_inputs


def check_overfits(model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int = 150) -> float:
    """Train on one batch; returns the final loss (the caller asserts a threshold)."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return model.loss(batch).item()


def check_causal(model: torch.nn.Module, n_items: int = 30, t: int = 3) -> None:
    """Outputs at positions <= t do not change when the items after t do; later ones do."""
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randint(1, n_items + 1, (4, 8), generator=gen)
    changed = inputs.clone()
    changed[:, t + 1 :] = torch.randint(1, n_items + 1, changed[:, t + 1 :].shape, generator=gen)
    with torch.no_grad():
        a, b = model.hidden(inputs), model.hidden(changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(a[:, -1], b[:, -1])


def check_padding(model: torch.nn.Module) -> None:
    """Column 0 is -inf; a history scores the same alone and left-padded in a batch of longer ones."""
    histories = [np.array([3, 7, 1]), np.array([5, 2, 9, 9, 4, 11, 6]), np.array([8])]
    with torch.no_grad():
        batch = model.score_all(item_inputs(histories, 8))  # (3, N+1)
        alone = [model.score_all(item_inputs([h], 8))[0] for h in histories]
    assert batch.shape == (3, model.shape.n_items + 1)
    assert torch.isneginf(batch[:, 0]).all() and torch.isfinite(batch[:, 1:]).all()
    assert (batch.argmax(dim=1) > 0).all()
    for row, single in zip(batch, alone, strict=True):
        torch.testing.assert_close(row, single, rtol=1e-4, atol=1e-5)


def check_objective(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> None:
    """The configured loss is a finite positive scalar whose gradient reaches the item table and every layer."""
    model.train()
    loss = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert model.item.weight.grad is not None and model.item.weight.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


def check_ignores_padding_targets(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> None:
    """Targets of 0 add nothing: with only the last target kept, `ce` is the CE of the last position."""
    full = model.loss(batch)
    cut = {k: v.clone() for k, v in batch.items()}
    cut["targets"][:, :-1] = 0  # keep only the last position's target
    h = model.hidden(batch["inputs"])[:, -1]
    logits = h @ model.item.weight.T
    logits[:, 0] = float("-inf")
    expected = torch.nn.functional.cross_entropy(logits, batch["targets"][:, -1])
    torch.testing.assert_close(model.loss(cut), expected)
    assert not torch.isclose(full, expected)
