"""Session-wide test settings and small shared fixtures.

Every test uses tiny tensors; one intra-op thread keeps CI fast and predictable on a 2-core machine
(OpenMP threads contending with each other, or with a benchmark, cost more than they give).
tests/quantize/conftest.py sets the same per test and restores the previous value, i.e. this one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sidrec.models import TIGER, TIGERShape


@pytest.fixture(scope="session", autouse=True)
def _one_thread_session():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_sids(n: int, level_sizes: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """(n, L) distinct SIDs drawn uniformly from the code space (n must fit in it)."""
    space = int(np.prod(level_sizes))
    if n > space:
        raise ValueError(f"{n} distinct SIDs do not fit in {space} code sequences")
    flat = np.random.default_rng(seed).choice(space, size=n, replace=False)
    return np.stack(np.unravel_index(flat, level_sizes), axis=1).astype(np.int64)


@pytest.fixture
def make_sids():
    """Factory of distinct random SIDs: make_sids(n, level_sizes, seed=0) -> (n, L) int64."""
    return random_sids


def tiny_tiger(level_sizes: tuple[int, ...] = (4, 4, 3), *, seed: int = 0, **overrides) -> TIGER:
    """A small TIGER (d 32, 1+1 layers, no dropout) in eval mode, seeded."""
    torch.manual_seed(seed)
    shape = dict(
        level_sizes=tuple(level_sizes),
        max_history=6,
        d_model=32,
        n_heads=2,
        d_head=16,
        d_ff=64,
        n_enc_layers=1,
        n_dec_layers=1,
        dropout=0.0,
        attention="math",
    )
    shape.update(overrides)
    return TIGER(TIGERShape(**shape)).eval()


@pytest.fixture
def make_tiger():
    """Factory of tiny seeded TIGER models: make_tiger(level_sizes, seed=0, **shape_overrides)."""
    return tiny_tiger
