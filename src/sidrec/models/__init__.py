"""Generative models over SID tokens. `MODELS` is the closed registry."""

from __future__ import annotations

from dataclasses import fields

import torch

from sidrec.config import ModelConfig
from sidrec.models.tiger import TIGER, TIGERShape

MODELS = {"tiger": TIGER}


def build_model(cfg: ModelConfig, *, level_sizes: tuple[int, ...], max_history: int) -> TIGER:
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model.name '{cfg.name}'. Known: {', '.join(MODELS)}")
    names = {f.name for f in fields(TIGERShape)}
    kwargs = {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}
    return TIGER(TIGERShape(**{**kwargs, "level_sizes": tuple(level_sizes), "max_history": max_history}))


def load_model(path: str, device: str | torch.device = "cpu") -> tuple[TIGER, dict]:
    """Rebuild a model saved by training: (model in eval mode, the saved metadata)."""
    ckpt = torch.load(path, map_location=device, weights_only=False)
    shape = dict(ckpt["shape"])
    shape["level_sizes"] = tuple(shape["level_sizes"])
    model = MODELS[ckpt["model"]](TIGERShape(**shape)).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), {k: v for k, v in ckpt.items() if k != "state_dict"}


__all__ = ["MODELS", "TIGER", "TIGERShape", "build_model", "load_model"]
