"""Balanced residual k-means: every code of every level holds the same number of items (within one).

OneRec (Deng et al., "OneRec: Unifying Retrieve and Rank with Generative Recommender and Preference
Alignment", arXiv 2502.18965, Algorithm 1): each level is balanced k-means on the residual left by the
levels before it. With N items and K codes, code k may hold w_k items, w_k = ceil(N / K) for the first
N mod K codes and floor(N / K) for the others. One round visits the codes in turn; each takes its w_k
nearest items among those not yet taken, then every centroid is reset to the mean of its items. Rounds
repeat (`kmeans_iters` at most) until no assignment changes. The first round starts from plain k-means
centroids (`quantize.kmeans`).

`encode` assigns the items it is given by the same greedy pass over the fitted centroids, so a catalog
encoded in one call (the pipeline encodes `embed.chunk_size` items at a time: one call for catalogs up to
that size) is exactly balanced on every level; `decode` and the residual bookkeeping are RK-Means'.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from sidrec.quantize.kmeans import as_points, cluster_sums, kmeans
from sidrec.quantize.rq_kmeans import RQKMeans

logger = logging.getLogger(__name__)


def capacities(n: int, k: int) -> Tensor:
    """(K,) items per code: ceil(n / k) for the first n mod k codes, floor(n / k) for the rest."""
    return torch.full((k,), n // k, dtype=torch.long) + (torch.arange(k) < n % k).long()


def balanced_assign(x: Tensor, centroids: Tensor) -> Tensor:
    """(N, D) points, (K, D) centroids -> (N,) codes: code k in turn takes its capacity of nearest free points."""
    n, k = x.shape[0], centroids.shape[0]
    dist = torch.cdist(x.float(), centroids.float())  # (N, K)
    assign = torch.full((n,), -1, dtype=torch.long, device=x.device)
    taken = torch.zeros(n, dtype=torch.bool, device=x.device)
    for code, cap in enumerate(capacities(n, k).tolist()):
        if cap == 0:
            continue
        free = dist[:, code].masked_fill(taken, float("inf"))
        pick = free.topk(cap, largest=False).indices  # (cap,)
        assign[pick] = code
        taken[pick] = True
    return assign


class BalancedRQKMeans(RQKMeans):
    """Residual k-means with exactly balanced codes on every level (OneRec's tokenizer)."""

    @torch.no_grad()
    def fit(self, x: Tensor) -> BalancedRQKMeans:
        """Fit the L balanced codebooks level by level on x (N, D); returns self."""
        r = as_points(x, self.dim, self.codebooks.device).clone()  # (N, D) residual
        for level in range(self.levels):
            target = self._target(r)
            centroids = kmeans(target, self.codebook_size, iters=self.kmeans_iters, seed=self.seed + level).centroids
            assign = balanced_assign(target, centroids)
            for _ in range(self.kmeans_iters):
                counts = torch.bincount(assign, minlength=self.codebook_size).clamp(min=1)[:, None]
                centroids = cluster_sums(target, assign, self.codebook_size) / counts
                new = balanced_assign(target, centroids)
                if torch.equal(new, assign):
                    break
                assign = new
            self.codebooks[level] = centroids
            if self.normalize_residuals:
                self.scales[level] = self._scales(r, centroids, assign)
            r -= self.scales[level, assign].unsqueeze(1) * centroids[assign]  # (N, D)
            sizes = torch.bincount(assign, minlength=self.codebook_size)
            logger.info(
                "balanced rkmeans level %d: %d-%d items per code", level + 1, int(sizes.min()), int(sizes.max())
            )
        self.fitted.fill_(True)
        return self

    def _assign(self, target: Tensor, centroids: Tensor) -> Tensor:
        """Balanced assignment of the items given together (RK-Means' `encode` calls it level by level)."""
        return balanced_assign(target, centroids)


__all__ = ["BalancedRQKMeans", "balanced_assign", "capacities"]
