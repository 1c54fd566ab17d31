"""RQ-VAE Semantic IDs as in TIGER (Rajput et al., NeurIPS 2023, "Recommender Systems with Generative
Retrieval"), with the residual quantizer of RQ-VAE (Lee et al., CVPR 2022, "Autoregressive Image
Generation using Residual Quantization").

An MLP encoder maps an item vector (D) through `hidden` widths to a `latent_dim` latent z; a residual
quantizer (`ResidualCodebooks`, shared with R-VQ) turns z into L codes; a mirrored MLP decoder maps the
straight-through quantized latent back to D. Loss (per item, averaged over the batch) = ||decoder(z_q) -
x||^2 + sum over levels of ||sg[r_l] - e_l||^2 + beta * ||r_l - sg[e_l]||^2, all sums over dimensions as
in the paper. (Averaged over the D input dims instead, the reconstruction would weigh D / latent_dim
times less than the quantization terms, and the encoder collapses the latents onto few codes.)
Before training, every level is initialised by residual k-means on the latents of the whole data set
under the freshly initialised encoder (the "first pass"). Adam, shuffled minibatches and dead-code
resets follow `train_residual`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sidrec.config import QuantizeConfig
from sidrec.quantize.kmeans import as_points
from sidrec.quantize.rq_kmeans import require_fitted
from sidrec.quantize.rvq import GRADIENT_SETTINGS, GradientConfig, GradientRQ, RQOutput


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class RQVAEConfig(GradientConfig):
    """`quantize.rqvae.*`: the gradient training, and the encoder / decoder MLPs."""

    hidden: tuple[int, ...] = (512, 256, 128)  # encoder MLP widths (the decoder mirrors them)
    latent_dim: int = 32  # code vector dimension


class RQVAE(GradientRQ):
    """TIGER's RQ-VAE. state_dict holds `encoder.*`, `decoder.*`, `rq.codebooks` and `fitted`."""

    SETTINGS = GRADIENT_SETTINGS  # the shared quantize.* settings it reads
    CONFIG = RQVAEConfig  # its own, `quantize.rqvae.*`

    def __init__(self, *, dim: int, hidden: tuple[int, ...] = (512, 256, 128), latent_dim: int = 32, **kwargs) -> None:
        if latent_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"quantize.rqvae.latent_dim and .hidden widths must be >= 1, got {latent_dim}, {hidden}")
        super().__init__(dim=dim, code_dim=latent_dim, **kwargs)
        widths = [dim, *hidden, latent_dim]
        with torch.random.fork_rng(devices=[]):  # nn.Linear draws its init from the global RNG
            self.encoder = mlp(widths)  # D -> ... -> latent_dim
            self.decoder = mlp(widths[::-1])  # latent_dim -> ... -> D
        self._reset_parameters()

    @classmethod
    def from_config(cls, cfg: QuantizeConfig, dim: int, seed: int) -> RQVAE:
        own = cfg.component()
        return cls(dim=dim, hidden=tuple(own.hidden), latent_dim=own.latent_dim, **cls.config_kwargs(cfg, seed))

    def _reset_parameters(self) -> None:
        """Seeded default init of the MLPs, leaving the global RNG untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    module.reset_parameters()

    def _step(self, xb: Tensor) -> tuple[Tensor, RQOutput]:
        out = self.rq(self.encoder(xb))  # quantized (B, latent)
        recon = self.decoder(out.quantized)  # (B, D)
        # Per-item sums of squares (RQ-VAE's ||x - x_hat||^2): `out.loss` is a mean over latent dims
        recon_loss = ((recon - xb) ** 2).sum(1).mean()
        return recon_loss + out.loss * self.rq.dim, out

    @torch.no_grad()
    def _latent(self, x: Tensor) -> Tensor:
        return self.encoder(as_points(x, self.dim, self.rq.codebooks.device))  # (N, latent)

    def fit(self, x: Tensor) -> RQVAE:
        """Seeded init, k-means init of the codebooks on the encoded data, then Adam; x (N, D)."""
        x = as_points(x, self.dim, self.rq.codebooks.device)  # (N, D)
        self._reset_parameters()
        self._fit(x, self.encoder, "rqvae")
        return self

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """(N, D) -> int64 codes (N, L) in [0, K)."""
        require_fitted(self)
        return self.rq.assign(self._latent(x))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (N, L) -> (N, D): decoder(sum of code vectors). A prefix (N, l < L) decodes a partial
        latent, which the decoder was never trained on; use full codes for reconstructions."""
        require_fitted(self)
        return self.decoder(self.rq.lookup(codes))  # (N, D)

    @torch.no_grad()
    def latent_error(self, x: Tensor, levels: int | None = None) -> float:
        """Mean squared latent quantization error ||z - sum_{l<levels} e_l||^2 of x (N, D)."""
        require_fitted(self)
        z = self._latent(x)  # (N, latent)
        codes = self.rq.assign(z)[:, : levels or self.levels]  # (N, l)
        return float(((z - self.rq.lookup(codes)) ** 2).sum(1).mean())


__all__ = ["RQVAE", "mlp"]
