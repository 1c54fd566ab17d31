"""A deterministic, dependency-free text embedder for tests and quick runs.

Feature hashing of word unigrams and character trigrams into `dim` buckets with signed counts,
then L2 normalisation. Not a language model: similar strings get similar vectors, nothing more.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from sidrec.config import EmbedConfig

_WORD = re.compile(r"\w+")


def _bucket(token: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, 1.0 if (value >> 63) & 1 else -1.0


class HashingEmbedder:
    def __init__(self, *, dim: int = 384, normalize: bool = True) -> None:
        self.dim = dim
        self.normalize = normalize

    @classmethod
    def from_config(cls, cfg: EmbedConfig) -> HashingEmbedder:
        return cls(dim=cfg.dim, normalize=cfg.normalize)

    @staticmethod
    def label(cfg: EmbedConfig) -> str:
        return cfg.name

    def encode(self, texts: list[str]) -> np.ndarray:
        """Args: texts (N,). Returns: float32 (N, dim)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            grams = [w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
            for token in words + ["#" + g for g in grams]:
                col, sign = _bucket(token, self.dim)
                out[row, col] += sign
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
