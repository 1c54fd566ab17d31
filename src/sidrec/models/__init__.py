"""Sequential recommenders: SID generators (TIGER, decoder-only, RPG) and the item-ID baselines SASRec and HSTU.

`MODELS` is the closed registry; `KIND` says what a model consumes: `sid` models generate Semantic
IDs token by token (they need the embed and quantize stages; contract: `models.generator`),
`parallel` models predict every digit of a long SID at once and score items from those digits (RPG;
they need SIDs too; contract: `score_all`, `digit_logprobs`, `code_vectors`), `id` models score item
IDs directly. `SHAPES` holds each model's own shape dataclass, keyed by model name.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import torch
from torch import nn

from sidrec.config import ModelConfig
from sidrec.models.decoder_only import DecoderOnly, DecoderShape
from sidrec.models.hstu import HSTU
from sidrec.models.id_objectives import IDShape
from sidrec.models.rpg import RPG, RPGShape
from sidrec.models.sasrec import SASRec
from sidrec.models.tiger import TIGER, TIGERShape

MODELS = {"tiger": TIGER, "decoder": DecoderOnly, "rpg": RPG, "sasrec": SASRec, "hstu": HSTU}
KIND = {"tiger": "sid", "decoder": "sid", "rpg": "parallel", "sasrec": "id", "hstu": "id"}
SHAPES = {"tiger": TIGERShape, "decoder": DecoderShape, "rpg": RPGShape, "sasrec": IDShape, "hstu": IDShape}


def model_kind(name: str) -> str:
    """'sid', 'parallel' or 'id' for a registered model name; ValueError for an unknown one."""
    if name not in MODELS:
        raise ValueError(f"unknown model.name '{name}'. Known: {', '.join(MODELS)}")
    return KIND[name]


def needs_sids(name: str) -> bool:
    """Whether the model reads Semantic IDs (so the embed and quantize stages run before training)."""
    return model_kind(name) != "id"


def build_model(
    cfg: ModelConfig,
    *,
    max_history: int,
    level_sizes: tuple[int, ...] = (),
    n_items: int = 0,
    codes: np.ndarray | None = None,
    codebook_size: int = 0,
) -> nn.Module:
    """A fresh model from the config: SID models need `level_sizes`, ID models `n_items`, parallel
    models the items' `codes` (N, M) with `codebook_size` K."""
    kind = model_kind(cfg.name)
    names = {f.name for f in fields(SHAPES[cfg.name])}
    kwargs = {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}
    if kind == "parallel":
        if codes is None or codes.ndim != 2:
            raise ValueError(f"model '{cfg.name}' needs the items' SID codes (N, M)")
        n, m = codes.shape
        kwargs.update(n_items=n, n_digits=m, codebook_size=codebook_size, max_len=max_history)
        kwargs["n_layers"] = cfg.n_enc_layers
        return MODELS[cfg.name](SHAPES[cfg.name](**kwargs)).set_codes(torch.from_numpy(codes))
    if kind == "id":
        if n_items < 2:
            raise ValueError(f"model '{cfg.name}' needs n_items >= 2 (the number of items), got {n_items}")
        shape = IDShape(**{**kwargs, "n_items": n_items, "max_len": max_history, "n_layers": cfg.n_enc_layers})
        return MODELS[cfg.name](shape)
    kwargs.update(level_sizes=tuple(level_sizes), max_history=max_history)
    if cfg.name == "decoder":  # as deep as the encoder-decoder with the same settings
        kwargs["n_layers"] = cfg.n_enc_layers + cfg.n_dec_layers
    return MODELS[cfg.name](SHAPES[cfg.name](**kwargs))


def load_model(path: str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by training: (model in eval mode, the saved metadata)."""
    ckpt = torch.load(path, map_location=device, weights_only=False)
    shape = dict(ckpt["shape"])
    if "level_sizes" in shape:
        shape["level_sizes"] = tuple(shape["level_sizes"])
    model_kind(ckpt["model"])  # ValueError for a model this version does not know
    model = MODELS[ckpt["model"]](SHAPES[ckpt["model"]](**shape)).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), {k: v for k, v in ckpt.items() if k != "state_dict"}


__all__ = [
    "MODELS",
    "KIND",
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
