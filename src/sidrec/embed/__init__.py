"""Item text -> vectors. `EMBEDDERS` is the closed registry; every entry has `encode(texts) -> (N, D)`."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from sidrec import io
from sidrec.config import EmbedConfig
from sidrec.embed.hashing import HashingEmbedder
from sidrec.embed.sentence import SentenceEmbedder


class Embedder(Protocol):
    @classmethod
    def from_config(cls, cfg: EmbedConfig) -> Embedder: ...

    @staticmethod
    def label(cfg: EmbedConfig) -> str:  # how a record names it, e.g. "sentence:all-MiniLM-L6-v2"
        ...

    def encode(self, texts: list[str]) -> np.ndarray:  # (N, D) float32
        ...


EMBEDDERS = {"sentence": SentenceEmbedder, "hashing": HashingEmbedder}


def build_embedder(cfg: EmbedConfig) -> Embedder:
    if cfg.name not in EMBEDDERS:
        raise ValueError(f"unknown embed.name '{cfg.name}'. Known: {', '.join(EMBEDDERS)}")
    return EMBEDDERS[cfg.name].from_config(cfg)


def embedder_label(cfg: EmbedConfig) -> str:
    """How a record names the configured embedder (the registered class says)."""
    if cfg.name not in EMBEDDERS:
        raise ValueError(f"unknown embed.name '{cfg.name}'. Known: {', '.join(EMBEDDERS)}")
    return EMBEDDERS[cfg.name].label(cfg)


def embed_to_file(embedder: Embedder, texts: list[str], path: str | Path, *, chunk_size: int) -> np.ndarray:
    """Encode `texts` `chunk_size` at a time into a memory-mapped float32 .npy at `path` (written atomically).

    Only one chunk of vectors is in memory at once; the file is what `np.save` of all the vectors
    would write. Returns the file, memory-mapped read-only: (N, D).
    """
    if chunk_size < 1:
        raise ValueError(f"embed.chunk_size={chunk_size}: give the number of items embedded at a time, e.g. 100000")
    n = len(texts)
    with io.atomic_path(path) as tmp:
        if n == 0:
            with open(tmp, "wb") as f:  # np.save(path) would append ".npy" to the temporary name
                np.save(f, np.asarray(embedder.encode([]), dtype=np.float32))
        out = None
        starts = range(0, n, chunk_size)
        for start in tqdm(starts, desc="embed", disable=len(starts) <= 1, mininterval=2):
            vectors = np.asarray(embedder.encode(texts[start : start + chunk_size]), dtype=np.float32)  # (n_c, D)
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, vectors.shape[1]))
            out[start : start + len(vectors)] = vectors
        if out is not None:
            out.flush()
            del out  # close the mapping before the file is renamed into place
    return np.load(path, mmap_mode="r")


__all__ = [
    "EMBEDDERS",
    "Embedder",
    "build_embedder",
    "embedder_label",
    "embed_to_file",
    "HashingEmbedder",
    "SentenceEmbedder",
]
