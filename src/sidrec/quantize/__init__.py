"""Quantizers that turn item vectors into L-level Semantic ID codes, and SID deduplication.

Five quantizers, all `torch.nn.Module`s with the `Quantizer` interface:
- `rkmeans`: residual k-means (GRID's RK-Means, Ju et al., CIKM 2025).
- `rvq`: gradient-trained residual VQ with k-means init (GRID's R-VQ).
- `rqvae`: TIGER's RQ-VAE (Rajput et al., NeurIPS 2023; Lee et al., CVPR 2022).
- `pq` / `opq`: (optimized) product quantization: M independent codes per item, long SIDs for
  parallel decoding (RPG, Hou et al., KDD 2025).

`build_quantizer(cfg, dim, seed)` is the only constructor the pipeline needs; `sids.deduplicate` and
`sids.sid_stats` turn codes into unique Semantic IDs and summarise them.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import torch

from sidrec import config
from sidrec.config import QuantizeConfig
from sidrec.quantize.pq import OPQ, PQ
from sidrec.quantize.rkmeans_balanced import BalancedRQKMeans
from sidrec.quantize.rq_kmeans import RQKMeans
from sidrec.quantize.rq_vae import RQVAE
from sidrec.quantize.rvq import RVQ
from sidrec.quantize.sids import DEDUP_METHODS, deduplicate, sid_stats


@runtime_checkable
class Quantizer(Protocol):
    """What the pipeline calls. Codes are int64 (N, L) in [0, codebook_size)."""

    levels: int
    codebook_size: int

    def fit(self, x: torch.Tensor) -> Quantizer:
        """Train on x float32 (N, D); returns self."""
        ...

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> int64 codes (N, L), each in [0, K)."""
        ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, L) codes -> float32 (N, D) reconstruction in input space."""
        ...

    def state_dict(self) -> dict:
        """Everything needed to encode / decode after `load_state_dict` on a fresh `build_quantizer`."""
        ...

    def load_state_dict(self, state: dict) -> object:
        """Restore a `state_dict()`."""
        ...


QUANTIZERS = {
    "rkmeans": RQKMeans,
    "rkmeans_balanced": BalancedRQKMeans,
    "rvq": RVQ,
    "rqvae": RQVAE,
    "pq": PQ,
    "opq": OPQ,
}


# `quantize.<name>.*`: the settings a quantizer class owns (its CONFIG dataclass), for every name in QUANTIZERS
config.OWNERS["quantize"] = lambda: {n: c.CONFIG for n, c in QUANTIZERS.items() if getattr(c, "CONFIG", None)}

# What every quantizer's stage reads besides its own SETTINGS: the name, de-duplication, the fit sample, the
# collaborative part of the vectors (its weight and window only when collab_dim > 0).
COMMON_SETTINGS = ("name", "dedup", "fit_sample", "collab_dim", "collab_weight", "collab_window", "collab_cold")


def quantizer_settings(cfg: QuantizeConfig) -> tuple[str, ...]:
    """The quantize.* settings the configured quantizer stage reads: the common ones, the shared ones its class
    lists in SETTINGS (all of them without SETTINGS), and its own (CONFIG) as `<name>.<setting>`."""
    if cfg.name not in QUANTIZERS:
        raise ValueError(f"unknown quantize.name '{cfg.name}'; choose one of {', '.join(QUANTIZERS)}")
    cls = QUANTIZERS[cfg.name]
    shared = getattr(cls, "SETTINGS", None)
    if shared is None:
        shared = tuple(f.name for f in dataclasses.fields(cfg) if f.name != "own")
    common = COMMON_SETTINGS if cfg.collab_dim else COMMON_SETTINGS[:4]
    own = getattr(cls, "CONFIG", None)
    own_keys = tuple(f"{cfg.name}.{f.name}" for f in dataclasses.fields(own)) if own else ()
    return (*dict.fromkeys((*common, *shared)), *own_keys)


def build_quantizer(cfg: QuantizeConfig, dim: int, seed: int) -> Quantizer:
    """An unfitted quantizer for `dim`-dimensional item vectors, configured by `cfg`, seeded by `seed`."""
    if cfg.name not in QUANTIZERS:
        raise ValueError(f"unknown quantize.name '{cfg.name}'; choose one of {', '.join(QUANTIZERS)}")
    if dim < 1:
        raise ValueError(f"item vectors must have dimension >= 1, got {dim}")
    return QUANTIZERS[cfg.name].from_config(cfg, dim, seed)


__all__ = [
    "DEDUP_METHODS",
    "PQ",
    "QUANTIZERS",
    "quantizer_settings",
    "Quantizer",
    "RQKMeans",
    "RQVAE",
    "RVQ",
    "build_quantizer",
    "deduplicate",
    "sid_stats",
]
