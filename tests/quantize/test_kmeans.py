from __future__ import annotations

import pytest
import torch

from sidrec.quantize import kmeans as km
from sidrec.quantize.kmeans import cluster_sums, kmeans, nearest


def _blobs(n_per: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]])  # (4, 3)
    labels = torch.arange(4).repeat_interleave(n_per)  # (N,)
    x = centers[labels] + 0.3 * torch.randn(len(labels), 3, generator=gen)  # (N, 3)
    perm = torch.randperm(len(labels), generator=gen)
    return x[perm], labels[perm], centers


def test_kmeans_recovers_separated_blobs():
    x, labels, centers = _blobs()
    res = kmeans(x, 4, iters=20, seed=0)
    assert res.centroids.shape == (4, 3) and res.assign.shape == (len(x),)
    assert res.assign.dtype == torch.int64
    # every blob lands in exactly one cluster and the four clusters are distinct
    mapping = {int(b): set(res.assign[labels == b].tolist()) for b in range(4)}
    assert all(len(v) == 1 for v in mapping.values())
    assert len({next(iter(v)) for v in mapping.values()}) == 4
    for b, (cluster,) in mapping.items():
        assert torch.allclose(res.centroids[cluster], centers[b], atol=0.2)


def test_kmeans_is_deterministic():
    x, _, _ = _blobs(seed=1)
    a = kmeans(x, 6, iters=10, seed=3)
    b = kmeans(x, 6, iters=10, seed=3)
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.assign, b.assign)


def test_kmeans_too_few_items_is_a_clear_error():
    with pytest.raises(ValueError, match="codebook_size"):
        kmeans(torch.randn(5, 3), 8, iters=5, seed=0)


def test_kmeans_with_duplicate_points_fills_all_codes():
    # 3 distinct points, k = 5: some clusters start or become empty and must be re-seeded without errors
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).repeat(10, 1)  # (30, 2)
    res = kmeans(x, 5, iters=10, seed=0)
    assert res.centroids.shape == (5, 2)
    assert int(res.assign.min()) >= 0 and int(res.assign.max()) < 5
    assert torch.allclose(res.centroids[res.assign], x)  # every point sits on a centroid


def test_empty_cluster_is_reseeded_with_farthest_point(monkeypatch):
    x = torch.tensor([[0.0], [0.1], [0.2], [9.0], [10.0]])  # (5, 1)

    def bad_init(x, k, gen):  # centroid 1 is far from everything and ends up empty
        return torch.tensor([[0.1], [100.0]])

    monkeypatch.setattr(km, "kmeans_plus_plus", bad_init)
    res = kmeans(x, 2, iters=10, seed=0)
    assert torch.bincount(res.assign, minlength=2).min() > 0
    assert sorted(res.centroids.squeeze(1).tolist()) == pytest.approx([0.1, 9.5])


def test_nearest_matches_brute_force_in_chunks(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    x, c = torch.randn(103, 7, generator=gen), torch.randn(9, 7, generator=gen)
    monkeypatch.setattr(km, "_CHUNK_ELEMS", 9 * 10)  # 10 rows per chunk
    idx, dist = nearest(x, c)
    full = torch.cdist(x, c) ** 2  # (N, k)
    assert torch.equal(idx, full.argmin(1))
    assert torch.allclose(dist, full.min(1).values, atol=1e-4)


def test_cluster_sums_matches_index_add():
    gen = torch.Generator().manual_seed(0)
    x, a = torch.randn(50, 4, generator=gen), torch.randint(6, (50,), generator=gen)
    assert torch.allclose(cluster_sums(x, a, 6), torch.zeros(6, 4).index_add_(0, a, x), atol=1e-5)
