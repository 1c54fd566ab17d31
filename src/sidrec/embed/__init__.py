"""Item text -> vectors. `EMBEDDERS` is the closed registry; every entry has `encode(texts) -> (N, D)`."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from sidrec.config import EmbedConfig
from sidrec.embed.hashing import HashingEmbedder
from sidrec.embed.sentence import SentenceEmbedder


class Embedder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray:  # (N, D) float32
        ...


EMBEDDERS = {"sentence": SentenceEmbedder, "hashing": HashingEmbedder}


def build_embedder(cfg: EmbedConfig) -> Embedder:
    if cfg.name not in EMBEDDERS:
        raise ValueError(f"unknown embed.name '{cfg.name}'. Known: {', '.join(EMBEDDERS)}")
    return EMBEDDERS[cfg.name].from_config(cfg)


__all__ = ["EMBEDDERS", "Embedder", "build_embedder", "HashingEmbedder", "SentenceEmbedder"]
