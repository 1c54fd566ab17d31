"""R-VQ: a residual vector quantizer trained by gradient descent directly on the item vectors.

Residual quantization as in RQ-VAE (Lee et al., CVPR 2022, "Autoregressive Image Generation using
Residual Quantization") without the encoder / decoder; "R-VQ" follows GRID (Ju et al., CIKM 2025,
"Generative Recommendation with Semantic IDs: A Practitioner's Handbook"). The codebooks start from
residual k-means (`RQKMeans`) and are refined with Adam on

    sum_l ||sg[r_l] - e_l||^2 + beta * ||r_l - sg[e_l]||^2,   r_1 = x,  r_{l+1} = r_l - e_l,

(means over the batch and dimensions), with the straight-through estimator x + sg[q - x] as the
quantized output. Because r_{l+1} keeps the gradient of e_l, the commitment terms of later levels pull
earlier codes towards a better joint reconstruction.

Dead codes: after every epoch but the last, the whole data set is assigned level by level; at each level,
codes chosen by fewer than `dead_code_threshold` items are moved onto the residuals of the items that
level serves worst (largest squared error to their code), before the next level is assigned, and their
Adam moments are zeroed. This is the empty-cluster rule of k-means (re-seed at the farthest points, as in
`kmeans.py`) applied to a codebook trained by gradient: a reset code serves at least the item it was
copied from, so it does not die again at once (the usual recipe, random residuals of the last batch,
gives no such guarantee). On Beauty, R-VQ needs a handful of resets either way; the RQ-VAE's level-3
codes kept dying under both rules until its reconstruction loss was weighted as in the paper (rq_vae.py).

`ResidualCodebooks` and `train_residual` are shared with `RQVAE`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
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
        codes = []
        for level in range(self.levels):
            book = self.codebooks[level]  # (K, D)
            idx, _ = nearest(r.detach(), book.detach())  # (B,)
            e = book[idx]  # (B, D)
            loss = loss + F.mse_loss(e, r.detach()) + self.beta * F.mse_loss(r, e.detach())
            codes.append(idx)
            quant = quant + e
            r = r - e  # (B, D)
        quantized = z + (quant - z).detach()  # (B, D) straight-through
        return RQOutput(quantized, torch.stack(codes, 1), loss)

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
    def reset_dead(self, z: Tensor, threshold: float, opt: torch.optim.Optimizer) -> Tensor:
        """Re-seed codes used by fewer than `threshold` of the points z (N, D), level by level.

        At each level the dead codes (usage counted after the resets of earlier levels) move onto the
        residuals with the largest squared error to their assigned code (distinct points, worst first);
        their Adam moments are zeroed. Returns the number of codes reset per level, (L,) int64.
        """
        state = opt.state.get(self.codebooks, {})
        r = z.clone()  # (N, D)
        n_reset = torch.zeros(self.levels, dtype=torch.long)
        for level in range(self.levels):
            idx, err = nearest(r, self.codebooks[level])  # (N,), (N,)
            counts = torch.bincount(idx, minlength=self.codebook_size)  # (K,)
            dead = (counts < threshold).nonzero().squeeze(1)  # (m,)
            dead = dead[: r.shape[0]]  # at most one code per point
            if dead.numel():
                worst = err.topk(dead.numel()).indices  # (m,) distinct points, worst served first
                self.codebooks[level, dead] = r[worst]
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key][level, dead] = 0.0
                n_reset[level] = dead.numel()
                idx, _ = nearest(r, self.codebooks[level])  # (N,) with the re-seeded codes
            r -= self.codebooks[level, idx]
        return n_reset


def train_residual(
    model: nn.Module,
    rq: ResidualCodebooks,
    x: Tensor,
    step: Callable[[Tensor], tuple[Tensor, RQOutput]],
    latent: Callable[[Tensor], Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    dead_code_threshold: float,
    seed: int,
    desc: str,
) -> float:
    """Adam over shuffled minibatches of x (N, D) with dead-code resets; returns the last epoch's mean loss.

    `step(batch)` returns the loss to minimise and the RQOutput of `rq` for that batch; `latent(x)` maps
    x (N, D) to the (N, rq.dim) vectors `rq` quantizes (identity for R-VQ, the encoder for RQ-VAE),
    used for the dead-code resets.
    """
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"need quantize.<name>.epochs >= 0, .batch_size >= 1 and .lr > 0, got {epochs}, {batch_size}, {lr}"
        )
    n = x.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n_batches = max(1, math.ceil(n / batch_size))  # near-equal batches: no tiny last batch
    mean_loss = float("nan")
    resets = torch.zeros(rq.levels, dtype=torch.long)  # (L,) codes reset per level, summed over epochs
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=None)
    for epoch in bar:
        total = 0.0
        for idx in torch.randperm(n, generator=gen).to(x.device).chunk(n_batches):
            loss, _ = step(x[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        mean_loss = total / n
        if epoch < epochs - 1 and dead_code_threshold > 0:
            with torch.no_grad():
                resets += rq.reset_dead(latent(x), dead_code_threshold, opt)
        bar.set_postfix(loss=f"{mean_loss:.4g}", reset=int(resets.sum()))
    logger.info(
        "%s: %d epochs, final loss %.4g, dead-code resets per level %s", desc, epochs, mean_loss, resets.tolist()
    )
    return mean_loss


@dataclass(frozen=True)
class GradientConfig:
    """`quantize.rvq.*` (and part of `quantize.rqvae.*`): the gradient training of the codebooks."""

    epochs: int = 200  # gradient epochs
    batch_size: int = 1024
    lr: float = 1e-3
    beta: float = 0.25  # commitment weight
    dead_code_threshold: float = 1.0  # reset codes used fewer times than this per epoch


# the shared quantize.* settings the gradient-trained quantizers read
GRADIENT_SETTINGS = ("levels", "codebook_size", "kmeans_iters")


class GradientRQ(nn.Module):
    """Shared by R-VQ and RQ-VAE: the hyper-parameters, the codebooks (`rq`, of width `code_dim`), the
    `fitted` flag, and `_fit`: k-means init on the latents, then `train_residual`."""

    def __init__(
        self,
        *,
        dim: int,
        code_dim: int,
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
        self.rq = ResidualCodebooks(levels=levels, codebook_size=codebook_size, dim=code_dim, beta=beta)
        self.register_buffer("fitted", torch.tensor(False))

    @staticmethod
    def config_kwargs(cfg: QuantizeConfig, seed: int) -> dict:
        """The constructor arguments both quantizers take from `quantize.*`: the shared ones and the training's."""
        own = cfg.component()
        training = {f.name: getattr(own, f.name) for f in dataclasses.fields(GradientConfig)}
        return {**{k: getattr(cfg, k) for k in GRADIENT_SETTINGS}, **training, "seed": seed}

    def _step(self, xb: Tensor) -> tuple[Tensor, RQOutput]:
        raise NotImplementedError

    def _fit(self, x: Tensor, latent: Callable[[Tensor], Tensor], desc: str) -> None:
        """k-means init of every level on latent(x), then Adam with dead-code resets; x (N, D) float32."""
        with torch.no_grad():
            self.rq.init_kmeans(latent(x), iters=self.kmeans_iters, seed=self.seed)
        self.train()
        train_residual(
            self,
            self.rq,
            x,
            self._step,
            latent,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            dead_code_threshold=self.dead_code_threshold,
            seed=self.seed,
            desc=desc,
        )
        self.eval()
        self.fitted.fill_(True)


class RVQ(GradientRQ):
    """Gradient-trained residual VQ on the raw item vectors; state_dict holds `rq.codebooks` and `fitted`."""

    SETTINGS = GRADIENT_SETTINGS  # the shared quantize.* settings it reads
    CONFIG = GradientConfig  # its own, `quantize.rvq.*`

    def __init__(self, *, dim: int, **kwargs) -> None:
        super().__init__(dim=dim, code_dim=dim, **kwargs)

    @classmethod
    def from_config(cls, cfg: QuantizeConfig, dim: int, seed: int) -> RVQ:
        return cls(dim=dim, **cls.config_kwargs(cfg, seed))

    def _step(self, xb: Tensor) -> tuple[Tensor, RQOutput]:
        out = self.rq(xb)
        return out.loss, out

    def fit(self, x: Tensor) -> RVQ:
        """Residual k-means init, then gradient refinement on x (N, D); returns self."""
        self._fit(as_points(x, self.dim, self.rq.codebooks.device), lambda v: v, "rvq")
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


__all__ = ["GradientRQ", "RQOutput", "RVQ", "ResidualCodebooks", "train_residual"]
