from __future__ import annotations

import dataclasses

import pytest
import torch

from sidrec.config import QuantizeConfig
from sidrec.quantize import QUANTIZERS, Quantizer, RQKMeans, build_quantizer

CFG = QuantizeConfig(name="rkmeans", levels=3, codebook_size=8, kmeans_iters=25)


def _data(n: int = 300, dim: int = 12, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=gen)  # (N, D)


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).sum(1).mean())


def test_registry_and_builder():
    assert {"rkmeans", "rkmeans_balanced", "rvq", "rqvae", "pq", "opq"} <= set(QUANTIZERS)
    q = build_quantizer(CFG, 12, seed=0)
    assert isinstance(q, RQKMeans) and isinstance(q, Quantizer)
    assert (q.levels, q.codebook_size) == (3, 8)
    with pytest.raises(ValueError, match="rkmeans"):
        build_quantizer(dataclasses.replace(CFG, name="lsh"), 12, seed=0)


def test_codes_shape_range_and_new_data():
    x = _data()
    q = build_quantizer(CFG, 12, seed=0).fit(x)
    codes = q.encode(x)
    assert codes.shape == (300, 3) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < 8
    new = q.encode(_data(n=17, seed=5))
    assert new.shape == (17, 3) and int(new.max()) < 8
    recon = q.decode(codes)
    assert recon.shape == (300, 12) and recon.dtype == torch.float32
    with pytest.raises(ValueError, match="dimension 12"):
        q.encode(torch.randn(4, 5))


@pytest.mark.parametrize("normalize", [False, True])
def test_error_does_not_increase_with_levels(normalize):
    # Evaluating code prefixes of one fit is exact here: each level's k-means centroids are means of
    # (or least-squares scales over) the residuals assigned to them, and encode re-uses the fit's own
    # nearest assignment, so on the training data every level can only lower the squared error
    # (a cluster mean / LS scale is never worse than adding zero).
    x = _data()
    q = build_quantizer(CFG.replace(normalize_residuals=normalize), 12, seed=0).fit(x)
    codes = q.encode(x)
    errs = [_mse(q.decode(codes[:, :level]), x) for level in (1, 2, 3)]
    assert _mse(torch.zeros_like(x), x) >= errs[0] >= errs[1] >= errs[2]
    assert errs[2] < 0.9 * _mse(torch.zeros_like(x), x)


def test_normalized_residuals_store_scales():
    x = 5.0 * _data()
    q = build_quantizer(CFG.replace(normalize_residuals=True), 12, seed=0).fit(x)
    assert not torch.allclose(q.scales, torch.ones_like(q.scales))  # scales carry the magnitude
    assert q.codebooks[0].norm(dim=1).max() <= 1.0 + 1e-5  # centroids of unit vectors


def test_deterministic_and_state_round_trip(tmp_path):
    x = _data()
    a = build_quantizer(CFG, 12, seed=7).fit(x)
    b = build_quantizer(CFG, 12, seed=7).fit(x)
    assert torch.equal(a.encode(x), b.encode(x))
    torch.save(a.state_dict(), tmp_path / "q.pt")
    fresh = build_quantizer(CFG, 12, seed=7)
    with pytest.raises(ValueError, match="not fitted"):
        fresh.encode(x)
    fresh.load_state_dict(torch.load(tmp_path / "q.pt"))
    assert torch.equal(fresh.encode(x), a.encode(x))
    assert torch.equal(fresh.decode(a.encode(x)), a.decode(a.encode(x)))


def test_decode_rejects_bad_codes():
    q = build_quantizer(CFG, 12, seed=0).fit(_data())
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        q.decode(torch.full((2, 3), 8))
    with pytest.raises(ValueError, match="levels"):
        q.decode(torch.zeros(2, 4, dtype=torch.long))
