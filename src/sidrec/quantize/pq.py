"""Product quantization (PQ) and optimized product quantization (OPQ): long, unordered Semantic IDs.

PQ (Jegou, Douze & Schmid, "Product Quantization for Nearest Neighbor Search", TPAMI 2011) cuts each
D-dimensional vector into M sub-vectors of D / M dimensions and clusters every subspace on its own
into K codes: an item's SID is M codes, one per subspace, none depending on another (RPG, Hou et al.,
KDD 2025, predicts all of them in parallel). OPQ (Ge, He, Ke & Sun, "Optimized Product
Quantization", TPAMI 2014; the non-parametric variant) first rotates the vectors by an orthogonal
matrix R learned by alternating (a) PQ of x R and (b) the orthogonal Procrustes solution
R = U V^T of svd(x^T y_hat), which balances the variance across subspaces. RPG uses faiss' OPQ; this
is our own torch code: the M subspaces are clustered together in batched Lloyd iterations (one
batched matmul per chunk of items), k-means++ seeded per subspace, everything seeded.

Deviation from faiss: OPQ starts from the identity rotation (faiss draws a random one) and its
inner PQ runs warm-started Lloyd iterations; the final PQ runs `kmeans_iters` iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sidrec.config import QuantizeConfig
from sidrec.quantize.kmeans import as_points, kmeans_plus_plus
from sidrec.quantize.rq_kmeans import check_codes, check_sizes, require_fitted

_CHUNK_ELEMS = 1 << 23  # distance entries (M x rows x K) computed at once (32 MiB of float32)


def split_dims(dim: int, levels: int) -> int:
    """D / M, the sub-vector width; ValueError naming the fix when M does not divide D."""
    if dim % levels:
        good = [m for m in (4, 8, 12, 16, 24, 32, 48, 64, 96, 128) if dim % m == 0]
        raise ValueError(
            f"quantize.levels={levels} does not divide the embedding dimension {dim}: product quantization "
            f"cuts each vector into equal sub-vectors (with quantize.collab_dim > 0 the vector is the text "
            f"embedding plus collab_dim); choose quantize.levels from {good}, or a collab_dim that makes "
            "the sum divisible"
        )
    return dim // levels


def assign(xs: Tensor, centroids: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest code in every subspace, in row chunks.

    Args:
        xs: (M, N, d) sub-vectors; centroids: (M, K, d).
    Returns:
        codes (M, N) int64 and squared distances (M, N) float32.
    """
    m, n, _ = xs.shape
    c_sq = (centroids * centroids).sum(-1)  # (M, K)
    step = max(1, _CHUNK_ELEMS // max(1, m * centroids.shape[1]))
    codes, dist = [], []
    for start in range(0, n, step):
        xb = xs[:, start : start + step]  # (M, b, d)
        val, idx = torch.baddbmm(c_sq[:, None, :], xb, centroids.transpose(1, 2), alpha=-2.0).min(-1)  # (M, b)
        codes.append(idx)
        dist.append(val + (xb * xb).sum(-1))
    if not codes:
        return xs.new_zeros(m, 0, dtype=torch.long), xs.new_zeros(m, 0)
    return torch.cat(codes, 1), torch.cat(dist, 1).clamp_min_(0.0)


def lloyd(xs: Tensor, centroids: Tensor, iters: int) -> Tensor:
    """Up to `iters` batched Lloyd iterations over all M subspaces; returns the new (M, K, d) centroids.

    An empty cluster is re-seeded with the point of its subspace that lies farthest from its centroid.
    """
    m, n, d = xs.shape
    k = centroids.shape[1]
    flat = xs.reshape(m * n, d)
    base = (torch.arange(m, device=xs.device) * k)[:, None]  # (M, 1)
    prev = None
    for _ in range(iters):
        codes, dist = assign(xs, centroids)  # (M, N)
        if prev is not None and torch.equal(codes, prev):
            break
        prev = codes
        index = (codes + base).reshape(-1)  # (M*N,) flat cluster id
        sums = torch.zeros(m * k, d, dtype=xs.dtype, device=xs.device).index_add_(0, index, flat)
        counts = torch.bincount(index, minlength=m * k).to(xs.dtype)  # (M*K,)
        filled = counts > 0
        new = centroids.reshape(m * k, d).clone()
        new[filled] = sums[filled] / counts[filled, None]
        centroids = new.view(m, k, d)
        for sub, cluster in (~filled).view(m, k).nonzero().tolist():  # rare: re-seed empty clusters
            far = int(dist[sub].argmax())
            centroids[sub, cluster] = xs[sub, far]
            dist[sub, far] = 0.0
    return centroids


@dataclass(frozen=True)
class OPQConfig:
    """`quantize.opq.*`."""

    RENAMED: ClassVar[dict[str, str]] = {"opq_iters": "iters"}  # its name in configs stored before it moved here
    iters: int = 20  # rounds of (PQ, Procrustes rotation) before the final PQ


class PQ(nn.Module):
    """Product quantizer: M = `levels` subspaces of D / M dimensions, K = `codebook_size` codes each.

    With `opq_iters` > 0 it is OPQ: the vectors are rotated by a learned orthogonal (D, D) matrix first.
    """

    SETTINGS = ("levels", "codebook_size", "kmeans_iters")  # the shared quantize.* settings it reads

    def __init__(
        self, dim: int, levels: int, codebook_size: int, *, kmeans_iters: int = 50, opq_iters: int = 0, seed: int = 0
    ) -> None:
        super().__init__()
        check_sizes(levels, codebook_size)
        self.sub = split_dims(dim, levels)
        self.dim, self.levels, self.codebook_size = dim, levels, codebook_size
        self.kmeans_iters, self.opq_iters, self.seed = kmeans_iters, opq_iters, seed
        self.register_buffer("centroids", torch.zeros(levels, codebook_size, self.sub))  # (M, K, D/M)
        self.register_buffer("rotation", torch.eye(dim))  # (D, D); the identity for plain PQ
        self.register_buffer("fitted", torch.tensor(False))

    @classmethod
    def from_config(cls, cfg: QuantizeConfig, dim: int, seed: int) -> PQ:
        """Plain PQ: no rotation is learned (`quantize.opq.iters` is OPQ's)."""
        return cls(dim, cfg.levels, cfg.codebook_size, kmeans_iters=cfg.kmeans_iters, seed=seed)

    def _split(self, x: Tensor) -> Tensor:
        """(N, D) rotated vectors -> (M, N, D/M) sub-vectors."""
        return x.view(x.shape[0], self.levels, self.sub).transpose(0, 1).contiguous()

    def _seed(self, xs: Tensor) -> Tensor:
        gen = torch.Generator().manual_seed(int(self.seed))
        return torch.stack([kmeans_plus_plus(xs[m], self.codebook_size, gen) for m in range(self.levels)])

    def _reconstruct(self, codes: Tensor, centroids: Tensor) -> Tensor:
        """(M, N) codes -> (N, D) reconstruction in the rotated space."""
        parts = torch.gather(centroids, 1, codes[:, :, None].expand(-1, -1, self.sub))  # (M, N, d)
        return parts.transpose(0, 1).reshape(codes.shape[1], self.dim)

    def fit(self, x: Tensor) -> PQ:
        x = as_points(x, self.dim)
        if x.shape[0] < self.codebook_size:
            raise ValueError(
                f"too few items ({x.shape[0]}) for {self.codebook_size} codes per subspace; "
                f"lower quantize.codebook_size to at most {x.shape[0]}"
            )
        rotation = torch.eye(self.dim, device=x.device)
        bar = tqdm(total=self.opq_iters + 1, desc="opq" if self.opq_iters else "pq", unit="round", mininterval=2)
        centroids = self._seed(self._split(x))
        for _ in range(self.opq_iters):  # OPQ: alternate a few Lloyd steps and the Procrustes rotation
            xs = self._split(x @ rotation)
            centroids = lloyd(xs, centroids, iters=4)
            codes, _ = assign(xs, centroids)
            u, _, vh = torch.linalg.svd(x.T @ self._reconstruct(codes, centroids), full_matrices=False)
            rotation = u @ vh  # (D, D) orthogonal: minimises ||x R - y_hat||
            bar.update()
        centroids = lloyd(self._split(x @ rotation), centroids, iters=self.kmeans_iters)
        bar.update()
        bar.close()
        self.rotation.copy_(rotation)
        self.centroids.copy_(centroids)
        self.fitted.fill_(True)
        return self

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """(N, D) -> (N, M) codes in [0, K)."""
        require_fitted(self)
        x = as_points(x, self.dim, self.centroids.device)
        codes, _ = assign(self._split(x @ self.rotation), self.centroids)
        return codes.T.contiguous()

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """(N, M) codes -> (N, D) reconstruction in the input space (rotated back)."""
        require_fitted(self)
        codes = check_codes(codes, self.levels, self.codebook_size, self.centroids.device)
        return self._reconstruct(codes.T, self.centroids) @ self.rotation.T


class OPQ(PQ):
    """PQ after a rotation learned in `opq_iters` rounds of alternating optimisation (OPQ, above)."""

    CONFIG = OPQConfig  # its own, `quantize.opq.*`

    @classmethod
    def from_config(cls, cfg: QuantizeConfig, dim: int, seed: int) -> OPQ:
        iters = cfg.component().iters
        if iters < 1:
            raise ValueError(f"quantize.name=opq needs quantize.opq.iters >= 1 (e.g. 20), got {iters}")
        return cls(dim, cfg.levels, cfg.codebook_size, kmeans_iters=cfg.kmeans_iters, opq_iters=iters, seed=seed)


__all__ = ["OPQ", "OPQConfig", "PQ", "assign", "lloyd", "split_dims"]
