"""Session-wide test settings and small shared fixtures.

Every test uses tiny tensors; one intra-op thread keeps CI fast and predictable on a 2-core machine
(OpenMP threads contending with each other, or with a benchmark, cost more than they give).
tests/quantize/conftest.py sets the same per test and restores the previous value, i.e. this one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sidrec.models import TIGER, IDShape, TIGERShape, entry


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


def tiny_id_model(name: str, *, n_items: int = 30, seed: int = 0, **overrides):
    """A small item-ID model (`sasrec` / `hstu`: d 32, 2 layers, 2 heads x 16, no dropout) in eval mode, seeded."""
    torch.manual_seed(seed)
    shape = dict(n_items=n_items, max_len=8, d_model=32, n_heads=2, d_head=16, d_ff=64, n_layers=2, dropout=0.0)
    shape.update(overrides)
    return entry(name).model(IDShape(**shape)).eval()


@pytest.fixture
def make_id_model():
    """Factory of tiny seeded item-ID models: make_id_model(name, n_items=30, seed=0, **shape_overrides)."""
    return tiny_id_model


def random_id_batch(n: int = 16, *, n_items: int = 30, max_len: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """n random left-padded next-item windows of 1..max_len positions: {"inputs", "targets"} (n, max_len)."""
    rng = np.random.default_rng(seed)
    inputs = np.zeros((n, max_len), dtype=np.int64)
    targets = np.zeros_like(inputs)
    for row in range(n):
        seq = rng.integers(1, n_items + 1, size=int(rng.integers(2, max_len + 2)))
        inputs[row, max_len - len(seq) + 1 :] = seq[:-1]
        targets[row, max_len - len(seq) + 1 :] = seq[1:]
    return {"inputs": torch.from_numpy(inputs), "targets": torch.from_numpy(targets)}


@pytest.fixture
def make_id_batch():
    """Factory of random item-ID training batches: make_id_batch(n=16, n_items=30, max_len=8, seed=0)."""
    return random_id_batch


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """One trained `toy` run directory (1 epoch) for the whole session, built through the CLI."""
    from typer.testing import CliRunner

    from sidrec.cli import app

    out = tmp_path_factory.mktemp("toy")
    result = CliRunner().invoke(app, ["run", "toy_tiger", "train.epochs=1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def toy_model(toy_run):
    """The toy run loaded through the public API, once."""
    import sidrec

    return sidrec.load(toy_run)


def movielens_folder(folder: Path, users: int = 60, per_user: int = 12) -> Path:
    """A small synthetic ML-100K folder: u.data (user item rating timestamp) and u.item."""
    rng = np.random.default_rng(0)
    lines = []
    for u in range(1, users + 1):
        t = int(rng.integers(8e8, 9e8))
        for item in rng.choice(np.arange(1, 41), per_user, replace=False):
            t += int(rng.integers(1, 10**6))
            lines.append(f"{u}\t{item}\t{int(rng.integers(1, 6))}\t{t}\n")
    (folder / "u.data").write_text("".join(lines))
    (folder / "u.item").write_text("".join(f"{i}|Movie {i} (1995)|01-Jan-1995||x|{'0|' * 18}1\n" for i in range(1, 41)))
    return folder


@pytest.fixture
def make_movielens():
    """Factory of small synthetic MovieLens folders: make_movielens(folder, users=60, per_user=12)."""
    return movielens_folder


TINY_HSTU = ["model.name=hstu", "model.hstu.time_bias=true", "model.hstu.actions=true", "data.format=movielens",
             "train.epochs=1", "model.d_model=16", "model.n_heads=1", "model.d_head=16", "model.d_ff=32"]  # fmt: skip


@pytest.fixture(scope="session")
def ranked_run(tmp_path_factory) -> Path:
    """A trained two-stage run on synthetic MovieLens (HSTU retriever, generative ranker), built through the CLI."""
    from typer.testing import CliRunner

    from sidrec.cli import app

    root = tmp_path_factory.mktemp("ranked")
    data = movielens_folder(root, users=60, per_user=30)
    rank = [
        "rank.enabled=true",
        "rank.epochs=2",
        "rank.d_model=16",
        "rank.d_head=8",
        "rank.candidates=20",
        "rank.pool=10",
    ]
    args = ["run", "toy_tiger", *TINY_HSTU, f"data.path={data}", *rank, "--out", str(root / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root / "run"
