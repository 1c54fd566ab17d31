"""Product quantization (PQ) and OPQ: codes, reconstruction, determinism, bad input."""

from __future__ import annotations

import pytest
import torch

from sidrec.config import QuantizeConfig
from sidrec.quantize import build_quantizer
from sidrec.quantize.kmeans import kmeans
from sidrec.quantize.pq import PQ


def test_codes_are_the_nearest_code_of_each_subspace(make_data):
    x = make_data(n=300, dim=16)
    pq = PQ(16, 4, 8, kmeans_iters=20, seed=0).fit(x)
    codes = pq.encode(x)
    assert codes.shape == (300, 4) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < 8
    for m in range(4):  # brute force: the nearest of the subspace's 8 centroids
        sub = x[:, 4 * m : 4 * m + 4]
        expect = torch.cdist(sub, pq.centroids[m]).argmin(1)
        assert torch.equal(codes[:, m], expect)


def test_reconstruction_beats_one_kmeans_and_improves_with_more_digits(make_data):
    x = make_data(n=400, dim=16)
    one = kmeans(x, 8, iters=20, seed=0)
    err_one = float(((one.centroids[one.assign] - x) ** 2).sum(1).mean())
    errs = []
    for m in (2, 4, 8):
        pq = PQ(16, m, 8, kmeans_iters=20, seed=0).fit(x)
        errs.append(float(((pq.decode(pq.encode(x)) - x) ** 2).sum(1).mean()))
    assert errs[0] < err_one  # 2 digits of 8 codes = 64 cells, far finer than 8 clusters
    assert errs[0] > errs[1] > errs[2]


def test_opq_rotation_is_orthogonal_and_does_not_reconstruct_worse(make_data):
    gen = torch.Generator().manual_seed(0)
    x = make_data(n=400, dim=16)
    x = x * torch.linspace(4.0, 0.1, 16)  # variance piled into the first subspaces: OPQ spreads it
    x = x[:, torch.randperm(16, generator=gen)]
    pq = PQ(16, 4, 8, kmeans_iters=20, seed=0).fit(x)
    opq = PQ(16, 4, 8, kmeans_iters=20, opq_iters=10, seed=0).fit(x)
    r = opq.rotation
    torch.testing.assert_close(r @ r.T, torch.eye(16), atol=1e-4, rtol=0)
    err = {name: float(((q.decode(q.encode(x)) - x) ** 2).sum(1).mean()) for name, q in (("pq", pq), ("opq", opq))}
    assert err["opq"] <= err["pq"] * 1.02, err


def test_same_seed_same_codes_and_state_round_trip(make_data):
    x = make_data(n=200, dim=8)
    cfg = QuantizeConfig().replace(name="opq", levels=4, codebook_size=8, kmeans_iters=10, iters=3)
    a = build_quantizer(cfg, 8, seed=3).fit(x)
    b = build_quantizer(cfg, 8, seed=3).fit(x)
    assert torch.equal(a.encode(x), b.encode(x))
    fresh = build_quantizer(cfg, 8, seed=0)
    fresh.load_state_dict(a.state_dict())
    assert torch.equal(fresh.encode(x), a.encode(x))


def test_bad_shapes_name_the_fix(make_data):
    with pytest.raises(ValueError, match="does not divide the embedding dimension 10"):
        PQ(10, 4, 8)
    with pytest.raises(ValueError, match="opq.iters"):
        build_quantizer(QuantizeConfig().replace(name="opq", levels=2, iters=0), 8, seed=0)
    with pytest.raises(ValueError, match="too few items"):
        PQ(8, 2, 64).fit(make_data(n=20, dim=8))
    with pytest.raises(ValueError, match="not fitted"):
        PQ(8, 2, 4).encode(make_data(n=20, dim=8))
