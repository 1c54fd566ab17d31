"""Sequential recommenders: SID generators (TIGER, decoder-only), RPG, and the item-ID models SASRec and HSTU.

Each model module defines its class, its shape dataclass and a `registry.ModelEntry` (kind, paper,
label); the lines below register the shipped ones, and `register` adds a user's own. `build_model`
and `load_model` are the only constructors the pipeline needs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sidrec import config
from sidrec.config import ModelConfig
from sidrec.models import decoder_only, gru4rec, hstu, rpg, sasrec, tiger
from sidrec.models.decoder_only import DecoderOnly, DecoderShape
from sidrec.models.hstu import HSTU
from sidrec.models.id_objectives import IDShape
from sidrec.models.registry import REGISTRY, ModelEntry, entry, register, unregister
from sidrec.models.rpg import RPG, RPGShape
from sidrec.models.sasrec import SASRec
from sidrec.models.tiger import TIGER, TIGERShape

for _module in (rpg, tiger, decoder_only, sasrec, hstu, gru4rec):
    register(_module.ENTRY)
# `model.<name>.*`: each registered model's own settings (its entry's config)
config.OWNERS["model"] = lambda: {name: e.config for name, e in REGISTRY.items() if e.config is not None}


def model_kind(name: str) -> str:
    """'sid', 'parallel' or 'id' for a registered model name; ValueError for an unknown one."""
    return entry(name).kind


def needs_sids(name: str) -> bool:
    """Whether the model reads Semantic IDs (so the embed and quantize stages run before training)."""
    return entry(name).needs_sids


def build_model(
    cfg: ModelConfig,
    *,
    max_history: int,
    level_sizes: tuple[int, ...] = (),
    n_items: int = 0,
    codes: np.ndarray | None = None,
    codebook_size: int = 0,
    text: np.ndarray | None = None,
    trained: np.ndarray | None = None,
    target_items: int = 1,
) -> nn.Module:
    """A fresh model from the config: SID models need `level_sizes`, ID models `n_items`, parallel
    models the items' `codes` (N, M) with `codebook_size` K; SID generators the items per target (`target_items`,
    OneRec's sessions); ID models with `text_items` the items' `text`
    embeddings (N, D) and whether each occurs in training (`trained`, (N+1,) bool)."""
    spec = entry(cfg.name)
    kwargs = spec.shape_kwargs(cfg)
    if spec.kind == "parallel":
        if codes is None or codes.ndim != 2:
            raise ValueError(f"model '{cfg.name}' needs the items' SID codes (N, M)")
        n, m = codes.shape
        kwargs.update(n_items=n, n_digits=m, codebook_size=codebook_size, max_len=max_history)
        return spec.model(spec.shape(**kwargs)).set_codes(torch.from_numpy(codes))
    if spec.kind == "id":
        if n_items < 2:
            raise ValueError(f"model '{cfg.name}' needs n_items >= 2 (the number of items), got {n_items}")
        if not kwargs.get("text_items"):
            return spec.model(spec.shape(**{**kwargs, "n_items": n_items, "max_len": max_history}))
        if text is None or trained is None or len(text) != n_items:
            raise ValueError(f"model.{cfg.name}.text_items needs the {n_items} items' text embeddings (embed stage)")
        shape = spec.shape(**{**kwargs, "n_items": n_items, "max_len": max_history, "text_dim": text.shape[1]})
        return spec.model(shape).set_text(torch.from_numpy(np.asarray(text)), torch.from_numpy(trained))
    if target_items != 1:
        kwargs["target_items"] = target_items
    return spec.model(spec.shape(**{**kwargs, "level_sizes": tuple(level_sizes), "max_history": max_history}))


def load_model(path: str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by training: (model in eval mode, the saved metadata)."""
    ckpt = torch.load(path, map_location=device, weights_only=False)
    shape = dict(ckpt["shape"])
    if "level_sizes" in shape:
        shape["level_sizes"] = tuple(shape["level_sizes"])
    spec = entry(ckpt["model"])  # ValueError for a model this version does not know
    model = spec.model(spec.shape(**shape)).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), {k: v for k, v in ckpt.items() if k != "state_dict"}


__all__ = [
    "REGISTRY",
    "ModelEntry",
    "entry",
    "register",
    "unregister",
    "TIGER",
    "TIGERShape",
    "DecoderOnly",
    "DecoderShape",
    "RPG",
    "RPGShape",
    "SASRec",
    "HSTU",
    "IDShape",
    "model_kind",
    "needs_sids",
    "build_model",
    "load_model",
]
