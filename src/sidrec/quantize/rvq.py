"""R-VQ: a residual vector quantizer trained by gradient descent directly on the item vectors.

Residual quantization as in RQ-VAE (Lee et al., CVPR 2022, "Autoregressive Image Generation using
Residual Quantization") without the encoder / decoder; "R-VQ" follows GRID (Ju et al., CIKM 2025,
"Generative Recommendation with Semantic IDs: A Practitioner's Handbook"). The codebooks start from
residual k-means (`RQKMeans`) and are refined with Adam on

    sum_l ||sg[r_l] - e_l||^2 + beta * ||r_l - sg[e_l]||^2,   r_1 = x,  r_{l+1} = r_l - e_l,

(means over the batch and dimensions), with the straight-through estimator x + sg[q - x] as the
quantized output. Because r_{l+1} keeps the gradient of e_l, the commitment terms of later levels pull
earlier codes towards a better joint reconstruction. After every epoch but the last, codes used fewer
than `dead_code_threshold` times in that epoch are re-initialised to random residuals of the epoch's
last batch (their Adam moments are zeroed).

`ResidualCodebooks` and `train_residual` are shared with `RQVAE`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from sidrec.config import QuantizeConfig
from sidrec.quantize.kmeans import as_points, nearest
from sidrec.quantize.rq_kmeans import RQKMeans, check_codes, check_sizes, require_fitted

logger = logging.getLogger(__name__)


class RQOutput(NamedTuple):
    quantized: Tensor  # (B, D) straight-through output: forward value sum_l e_l, gradient to the input
    codes: Tensor  # (B, L) int64
    loss: Tensor  # () codebook + beta * commitment, summed over levels
    residuals: list[Tensor]  # L x (B, D) detached residual seen by each level


class ResidualCodebooks(nn.Module):
    """L trainable codebooks (parameter `codebooks`, (L, K, D)) with greedy residual assignment."""

    def __init__(self, *, levels: int, codebook_size: int, dim: int, beta: float) -> None:
        super().__init__()
        check_sizes(levels, codebook_size)
        self.levels, self.codebook_size, self.dim, self.beta = levels, codebook_size, dim, beta
        self.codebooks = nn.Parameter(torch.zeros(levels, codebook_size, dim))  # (L, K, D)

    @torch.no_grad()
    def init_kmeans(self, z: Tensor, *, iters: int, seed: int) -> None:
        """Initialise every level with residual k-means on z (N, D)."""
        rq = RQKMeans(dim=self.dim, levels=self.levels, codebook_size=self.codebook_size, kmeans_iters=iters, seed=seed)
        self.codebooks.copy_(rq.to(z.device).fit(z).codebooks)

    def forward(self, z: Tensor) -> RQOutput:
        """Quantize z (B, D) level by level; see RQOutput."""
        r = z  # (B, D), keeps the graph
        quant = torch.zeros_like(z)  # (B, D)
        loss = z.new_zeros(())
        codes, residuals = [], []
        for level in range(self.levels):
            book = self.codebooks[level]  # (K, D)
            idx, _ = nearest(r.detach(), book.detach())  # (B,)
            e = book[idx]  # (B, D)
            loss = loss + F.mse_loss(e, r.detach()) + self.beta * F.mse_loss(r, e.detach())
            residuals.append(r.detach())
            codes.append(idx)
            quant = quant + e
            r = r - e  # (B, D)
        quantized = z + (quant - z).detach()  # (B, D) straight-through
        return RQOutput(quantized, torch.stack(codes, 1), loss, residuals)

    @torch.no_grad()
    def assign(self, z: Tensor) -> Tensor:
        """Greedy residual codes of z (N, D): (N, L) int64."""
        r = z.clone()  # (N, D)
        codes = []
        for level in range(self.levels):
            idx, _ = nearest(r, self.codebooks[level])  # (N,)
            r -= self.codebooks[level, idx]
            codes.append(idx)
        return torch.stack(codes, 1)  # (N, L)

    @torch.no_grad()
    def lookup(self, codes: Tensor) -> Tensor:
        """Sum of code vectors over the given levels: codes (N, l <= L) -> (N, D)."""
        codes = check_codes(codes, self.levels, self.codebook_size, self.codebooks.device)  # (N, l)
        out = self.codebooks.new_zeros(codes.shape[0], self.dim)  # (N, D)
        for level in range(codes.shape[1]):
            out += self.codebooks[level, codes[:, level]]
        return out

    @torch.no_grad()
    def reset_dead(
        self, dead: Tensor, residuals: list[Tensor], gen: torch.Generator, opt: torch.optim.Optimizer
    ) -> int:
        """Move dead codes (mask (L, K)) onto random residuals of the last batch; returns how many."""
        state = opt.state.get(self.codebooks, {})
        for level in range(self.levels):
            idx = dead[level].nonzero().squeeze(1)  # (m,)
            if idx.numel() == 0:
                continue
            r = residuals[level]  # (B, D)
            rows = torch.randint(r.shape[0], (idx.numel(),), generator=gen).to(r.device)  # (m,)
            self.codebooks[level, idx] = r[rows]
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][level, idx] = 0.0
        return int(dead.sum())


def train_residual(
    model: nn.Module,
    rq: ResidualCodebooks,
    x: Tensor,
    step: Callable[[Tensor], tuple[Tensor, RQOutput]],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    dead_code_threshold: float,
    seed: int,
    desc: str,
) -> float:
    """Adam over shuffled minibatches of x (N, D) with dead-code resets; returns the last epoch's mean loss.

    `step(batch)` returns the loss to minimise and the RQOutput of `rq` for that batch.
    """
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"need quantize.epochs >= 0, quantize.batch_size >= 1 and quantize.lr > 0, got {epochs}, {batch_size}, {lr}"
        )
    n, levels, k = x.shape[0], rq.levels, rq.codebook_size
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    offsets = torch.arange(levels, device=x.device) * k  # (L,)
    n_batches = max(1, math.ceil(n / batch_size))  # near-equal batches: no tiny last batch
    mean_loss, total_reset = float("nan"), 0
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=None)
    for epoch in bar:
        counts = torch.zeros(levels * k, dtype=torch.long, device=x.device)  # (L*K,)
        total = 0.0
        for idx in torch.randperm(n, generator=gen).to(x.device).chunk(n_batches):
            loss, out = step(x[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            counts += torch.bincount((out.codes + offsets).flatten(), minlength=levels * k)
            total += float(loss.detach()) * idx.numel()
        mean_loss = total / n
        if epoch < epochs - 1 and dead_code_threshold > 0:
            dead = counts.view(levels, k) < dead_code_threshold  # (L, K)
            total_reset += rq.reset_dead(dead, out.residuals, gen, opt)
        bar.set_postfix(loss=f"{mean_loss:.4g}")
    logger.info("%s: %d epochs, final loss %.4g, %d dead-code resets", desc, epochs, mean_loss, total_reset)
    return mean_loss


class RVQ(nn.Module):
    """Gradient-trained residual VQ on the raw item vectors; state_dict holds `rq.codebooks` and `fitted`."""

    def __init__(
        self,
        *,
        dim: int,
        levels: int = 3,
        codebook_size: int = 256,
        kmeans_iters: int = 50,
        epochs: int = 200,
        batch_size: int = 1024,
        lr: float = 1e-3,
        beta: float = 0.25,
        dead_code_threshold: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.levels, self.codebook_size, self.seed = dim, levels, codebook_size, seed
        self.kmeans_iters, self.epochs, self.batch_size, self.lr = kmeans_iters, epochs, batch_size, lr
        self.dead_code_threshold = dead_code_threshold
        self.rq = ResidualCodebooks(levels=levels, codebook_size=codebook_size, dim=dim, beta=beta)
        self.register_buffer("fitted", torch.tensor(False))

    @classmethod
    def from_config(cls, cfg: QuantizeConfig, dim: int, seed: int) -> RVQ:
        return cls(
            dim=dim,
            levels=cfg.levels,
            codebook_size=cfg.codebook_size,
            kmeans_iters=cfg.kmeans_iters,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            beta=cfg.beta,
            dead_code_threshold=cfg.dead_code_threshold,
            seed=seed,
        )

    def _step(self, xb: Tensor) -> tuple[Tensor, RQOutput]:
        out = self.rq(xb)
        return out.loss, out

    def fit(self, x: Tensor) -> RVQ:
        """Residual k-means init, then gradient refinement on x (N, D); returns self."""
        x = as_points(x, self.dim, self.rq.codebooks.device)  # (N, D)
        self.rq.init_kmeans(x, iters=self.kmeans_iters, seed=self.seed)
        self.train()
        train_residual(
            self,
            self.rq,
            x,
            self._step,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            dead_code_threshold=self.dead_code_threshold,
            seed=self.seed,
            desc="rvq",
        )
        self.eval()
        self.fitted.fill_(True)
        return self

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """(N, D) -> int64 codes (N, L) in [0, K)."""
        require_fitted(self)
        return self.rq.assign(as_points(x, self.dim, self.rq.codebooks.device))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (N, l <= L) -> (N, D) sum of code vectors (a prefix decodes the first l levels)."""
        require_fitted(self)
        return self.rq.lookup(codes)


__all__ = ["RQOutput", "RVQ", "ResidualCodebooks", "train_residual"]
