"""SASRec: a causal self-attention Transformer over item IDs that predicts the next item at every position.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. Item embeddings (scaled by
sqrt(d)) plus learned positions, `n_layers` causal self-attention blocks, a final LayerNorm, and
scores by a dot product with the same item embeddings. Trained on every position of each user's
(last) training window; the objective is `model.sasrec.loss` (`ce` by default, see `id_objectives`).

Deviations from the paper: the blocks are this package's pre-norm `EncoderBlock` (LayerNorm before
attention and before the MLP, GELU MLP, dropout on the residual branches only) instead of the
original's LayerNorm on the queries only and a ReLU point-wise feed-forward; positions are counted
from the end of the sequence (the original's absolute index over a fixed-length left-padded window,
which puts the last item at the same position too); the default objective is full softmax
cross-entropy instead of one-negative BCE (`model.sasrec.loss=bce` gives the original); the shipped
configs score by cosine similarity / 0.05 (`model.sasrec.temperature`; 0 gives the paper's dot product).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sidrec.config import Config
from sidrec.models.id_objectives import IDScoring, IDSequenceModel, IDShape, sampled_only
from sidrec.models.layers import EncoderBlock, init_weights
from sidrec.models.registry import ModelEntry, scoring, width

NEG = -1e9  # additive mask value; finite so fully-masked (padding) rows stay NaN-free


class SASRec(IDSequenceModel):
    def __init__(self, shape: IDShape) -> None:
        super().__init__(shape)
        block = dict(
            d_model=shape.d_model,
            n_heads=shape.n_heads,
            d_head=shape.d_head,
            d_ff=shape.d_ff,
            dropout=shape.dropout,
            impl=shape.attention,
        )
        self.blocks = nn.ModuleList(EncoderBlock(**block) for _ in range(shape.n_layers))
        self.apply(init_weights)

    def hidden(self, inputs: Tensor) -> Tensor:
        """(B, T) left-padded item_idx -> (B, T, d); position t attends to positions <= t only."""
        bias = torch.where(self.allowed(inputs), 0.0, NEG)  # (B, 1, T, T)
        x = self.embed(inputs)
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x)


def describe(cfg: Config) -> str:
    m = cfg.model
    return f"{m.n_enc_layers}L {scoring(m, m.sasrec)} {width(m)}"


ENTRY = ModelEntry(
    "sasrec", SASRec, IDShape, kind="id", config=IDScoring, describe=describe,
    unread=lambda m: sampled_only(m.sasrec),
    paper="Kang & McAuley, Self-Attentive Sequential Recommendation, ICDM 2018",
)  # fmt: skip
