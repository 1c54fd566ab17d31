from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def clustered(n: int = 256, dim: int = 16, seed: int = 0) -> torch.Tensor:
    """(n, dim) float32 points: 6 clusters in a 4-d subspace plus a little noise."""
    gen = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(6, 4, generator=gen)  # (6, 4)
    z = centers[torch.randint(6, (n,), generator=gen)] + 0.5 * torch.randn(n, 4, generator=gen)  # (n, 4)
    w = torch.randn(4, dim, generator=gen) / 2  # (4, dim)
    return z @ w + 0.05 * torch.randn(n, dim, generator=gen)  # (n, dim)


@pytest.fixture
def make_data():
    """Factory of small clustered data sets: make_data(n=256, dim=16, seed=0)."""
    return clustered
