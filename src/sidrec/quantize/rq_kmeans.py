"""RK-Means: residual k-means Semantic IDs.

Named after GRID (Ju et al., CIKM 2025, "Generative Recommendation with Semantic IDs: A Practitioner's
Handbook"): level 1 runs k-means on the item vectors, level l runs k-means on the residual left by
levels < l. No gradient training; the codebooks are plain k-means centroids.

`normalize_residuals=True` (as in some RQ-KMeans variants) clusters the L2-normalised residual
r / ||r|| instead of r, so every level splits items by direction and not by magnitude. The centroids
then live on (or inside) the unit sphere and cannot reconstruct r by themselves, so each code also gets
a stored scale: the least-squares factor s_k = mean_i <r_i, c_k> / ||c_k||^2 over the items in cluster
k (codes left empty get the mean residual norm of the level). The residual passed on is r - s_k c_k and
decode sums s_k c_k over levels. Because s = 0 is one of the candidates, a level never increases the
training reconstruction error. Without normalisation all scales are 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidrec.config import QuantizeConfig
from sidrec.quantize.kmeans import as_points, kmeans, nearest

logger = logging.getLogger(__name__)


def check_sizes(levels: int, codebook_size: int) -> None:
    """Reject codebook shapes no quantizer can use."""
    if levels < 1:
        raise ValueError(f"quantize.levels must be >= 1, got {levels}")
    if codebook_size < 2:
        raise ValueError(f"quantize.codebook_size must be >= 2, got {codebook_size}")


def check_codes(codes: Tensor, levels: int, codebook_size: int, device: torch.device) -> Tensor:
    """Validate codes for decode: (N, l) integers in [0, K) with 1 <= l <= levels (a prefix is allowed).

    Returns:
        (N, l) int64 tensor on `device`.
    """
    if not isinstance(codes, Tensor) or codes.ndim != 2:
        raise ValueError(f"codes must be a 2-D (N, L) integer tensor, got {getattr(codes, 'shape', codes)!r}")
    if codes.is_floating_point() or codes.dtype == torch.bool:
        raise ValueError(f"codes must have an integer dtype, got {codes.dtype}")
    if not 1 <= codes.shape[1] <= levels:
        raise ValueError(f"codes have {codes.shape[1]} levels; this quantizer has 1..{levels}")
    codes = codes.to(device=device, dtype=torch.long)  # (N, l)
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= codebook_size):
        lo, hi = int(codes.min()), int(codes.max())
        raise ValueError(f"codes must lie in [0, {codebook_size}), got values in [{lo}, {hi}]")
    return codes


def require_fitted(module: nn.Module) -> None:
    """Raise unless `module.fitted` (a bool buffer set by fit / load_state_dict) is true."""
    if not bool(module.fitted):
        name = type(module).__name__
        raise ValueError(f"{name} is not fitted: call fit(x) first or load_state_dict() a saved state")


@dataclass(frozen=True)
class RKMeansConfig:
    """`quantize.rkmeans.*` (and `quantize.rkmeans_balanced.*`)."""

    normalize_residuals: bool = False  # L2-normalise each residual before clustering


class RQKMeans(nn.Module):
    """Residual k-means quantizer (GRID's RK-Means).

    Buffers (all in state_dict): `codebooks` (L, K, D) centroids, `scales` (L, K) per-code reconstruction
    factors (all 1 unless `normalize_residuals`), `fitted` ().
    """

    SETTINGS = ("levels", "codebook_size", "kmeans_iters")  # the shared quantize.* settings it reads
    CONFIG = RKMeansConfig  # its own, `quantize.<name>.*`

    def __init__(
        self,
        *,
        dim: int,
        levels: int = 3,
        codebook_size: int = 256,
        kmeans_iters: int = 50,
        normalize_residuals: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_sizes(levels, codebook_size)
        self.dim, self.levels, self.codebook_size = dim, levels, codebook_size
        self.kmeans_iters, self.normalize_residuals, self.seed = kmeans_iters, normalize_residuals, seed
        self.register_buffer("codebooks", torch.zeros(levels, codebook_size, dim))  # (L, K, D)
        self.register_buffer("scales", torch.ones(levels, codebook_size))  # (L, K)
        self.register_buffer("fitted", torch.tensor(False))

    @classmethod
    def from_config(cls, cfg: QuantizeConfig, dim: int, seed: int) -> RQKMeans:
        return cls(
            dim=dim,
            levels=cfg.levels,
            codebook_size=cfg.codebook_size,
            kmeans_iters=cfg.kmeans_iters,
            normalize_residuals=cfg.component().normalize_residuals,
            seed=seed,
        )

    def _target(self, r: Tensor) -> Tensor:
        return F.normalize(r, dim=1) if self.normalize_residuals else r  # (N, D)

    def _scales(self, r: Tensor, centroids: Tensor, assign: Tensor) -> Tensor:
        """Least-squares scale per code (see module docstring): (K,)."""
        k = self.codebook_size
        proj = (r * centroids[assign]).sum(1)  # (N,) <r_i, c_{a(i)}>
        num = r.new_zeros(k).index_add_(0, assign, proj)  # (K,)
        cnt = torch.bincount(assign, minlength=k).to(r.dtype)  # (K,)
        den = cnt * (centroids * centroids).sum(1)  # (K,)
        fallback = r.norm(dim=1).mean()  # ()
        return torch.where(den > 1e-12, num / den.clamp_min(1e-12), fallback)  # (K,)

    @torch.no_grad()
    def fit(self, x: Tensor) -> RQKMeans:
        """Fit the L codebooks level by level on x (N, D); returns self."""
        r = as_points(x, self.dim, self.codebooks.device).clone()  # (N, D) residual
        for level in range(self.levels):
            res = kmeans(self._target(r), self.codebook_size, iters=self.kmeans_iters, seed=self.seed + level)
            self.codebooks[level] = res.centroids
            if self.normalize_residuals:
                self.scales[level] = self._scales(r, res.centroids, res.assign)
            before = float((r * r).sum(1).mean())
            r -= self.scales[level, res.assign].unsqueeze(1) * res.centroids[res.assign]  # (N, D)
            logger.info(
                "rkmeans level %d: mean squared residual %.4g -> %.4g, %d/%d codes used",
                level + 1,
                before,
                float((r * r).sum(1).mean()),
                int(res.assign.unique().numel()),
                self.codebook_size,
            )
        self.fitted.fill_(True)
        return self

    def _assign(self, target: Tensor, centroids: Tensor) -> Tensor:
        """(N, D) residual targets, (K, D) one level's centroids -> (N,) codes: the nearest centroid."""
        return nearest(target, centroids)[0]

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Greedy residual assignment: (N, D) -> int64 codes (N, L) in [0, K)."""
        require_fitted(self)
        r = as_points(x, self.dim, self.codebooks.device).clone()  # (N, D)
        codes = []
        for level in range(self.levels):
            idx = self._assign(self._target(r), self.codebooks[level])  # (N,)
            r -= self.scales[level, idx].unsqueeze(1) * self.codebooks[level, idx]  # (N, D)
            codes.append(idx)
        return torch.stack(codes, 1)  # (N, L)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Sum of scaled code vectors: codes (N, l <= L) -> (N, D); a prefix decodes the first l levels."""
        require_fitted(self)
        codes = check_codes(codes, self.levels, self.codebook_size, self.codebooks.device)  # (N, l)
        out = self.codebooks.new_zeros(codes.shape[0], self.dim)  # (N, D)
        for level in range(codes.shape[1]):
            idx = codes[:, level]  # (N,)
            out += self.scales[level, idx].unsqueeze(1) * self.codebooks[level, idx]
        return out


__all__ = ["RQKMeans", "check_codes", "check_sizes", "require_fitted"]
