"""HSTU: Hierarchical Sequential Transduction Units over item IDs, predicting the next item at every position.

Zhai et al., "Actions Speak Louder than Words: Trillion-Parameter Sequential Transducers for
Generative Recommendations", ICML 2024. Each layer (eqs. 1-3 of the paper):

    U, V, Q, K = split(SiLU(W_1 LayerNorm(x)))                       one projection, four parts
    A          = SiLU(Q K^T + rab) / n, causal                        pointwise attention, no softmax
    y          = x + W_2 Dropout(LayerNorm(A V) * U)                  gated, normalised, residual

Same embeddings, tied item scores, objectives and training contract as SASRec (`id_objectives`).

Deviations from the paper:
- No time bias: the bundled data has positions, not timestamps, so `rab` is the relative position
  bias only: one learned scalar per distance i - j in [0, max_len), shared by the heads (every
  distance is its own bucket; the paper's log-bucketing is for time deltas).
- `n` is `max_len` (the paper's padded sequence length), whatever the padding of a batch, so the
  attention scale is the same in training and at inference.
- Outputs pass a final LayerNorm. Items are scored by a plain dot product with `temperature` 0, or,
  as in the reference code, by the cosine similarity / temperature (the shipped configs: 0.05).
- `n_heads` x `d_head` is the width of each of U, V, Q and K. HSTU has no MLP, so `d_ff` is unused
  unless `hstu_ffn` (off by default) adds one after each layer: x = x + Dropout(W_4 Dropout(SiLU(W_3
  LayerNorm(x)))), width d_ff. The phonism/genrec reproduction, whose Beauty numbers are our target,
  has such an MLP (4 x d, SiLU) in every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidrec.config import Config
from sidrec.models.id_objectives import IDScoring, IDSequenceModel, IDShape, sampled_only
from sidrec.models.layers import Dropout, init_weights
from sidrec.models.registry import ModelEntry, scoring, width


class HSTULayer(nn.Module):
    def __init__(self, *, d_model: int, n_heads: int, d_head: int, max_len: int, dropout: float, d_ff: int = 0) -> None:
        super().__init__()
        self.n_heads, self.d_head, self.max_len = n_heads, d_head, max_len
        inner = n_heads * d_head
        self.norm_in = nn.LayerNorm(d_model)
        self.uvqk = nn.Linear(d_model, 4 * inner, bias=False)
        self.norm_attn = nn.LayerNorm(inner)
        self.out = nn.Linear(inner, d_model)
        self.rel_pos_bias = nn.Parameter(torch.zeros(max_len))  # rab by distance i - j (query i, key j <= i)
        self.dropout = Dropout(dropout)
        self.ffn = (
            nn.Sequential(
                nn.LayerNorm(d_model),
                nn.Linear(d_model, d_ff),
                nn.SiLU(),
                Dropout(dropout),
                nn.Linear(d_ff, d_model),
                Dropout(dropout),
            )
            if d_ff > 0
            else None
        )

    def split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, T, dh)

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        """x: (B, T, d); allowed: (B, 1, T, T) bool (causal and non-padding keys). Returns (B, T, d)."""
        b, t, _ = x.shape
        u, v, q, k = F.silu(self.uvqk(self.norm_in(x))).chunk(4, dim=-1)  # each (B, T, H*dh)
        idx = torch.arange(t, device=x.device)
        distance = (idx[:, None] - idx[None, :]).clamp(0, self.max_len - 1)  # (T, T)
        scores = self.split(q) @ self.split(k).transpose(-1, -2) + self.rel_pos_bias[distance]  # (B, H, T, T)
        attn = F.silu(scores) / self.max_len * allowed.to(scores.dtype)
        y = (attn @ self.split(v)).transpose(1, 2).reshape(b, t, -1)  # (B, T, H*dh)
        x = x + self.out(self.dropout(self.norm_attn(y) * u))
        return x if self.ffn is None else x + self.ffn(x)


class HSTU(IDSequenceModel):
    def __init__(self, shape: IDShape) -> None:
        super().__init__(shape)
        self.layers = nn.ModuleList(
            HSTULayer(
                d_model=shape.d_model,
                n_heads=shape.n_heads,
                d_head=shape.d_head,
                max_len=shape.max_len,
                dropout=shape.dropout,
                d_ff=shape.d_ff if shape.hstu_ffn else 0,
            )
            for _ in range(shape.n_layers)
        )
        self.apply(init_weights)

    def hidden(self, inputs: Tensor) -> Tensor:
        """(B, T) left-padded item_idx -> (B, T, d); position t attends to positions <= t only."""
        allowed = self.allowed(inputs)
        x = self.embed(inputs)
        for layer in self.layers:
            x = layer(x, allowed)
        return self.norm(x)


@dataclass(frozen=True)
class HSTUConfig(IDScoring):
    """`model.hstu.*`: the item-ID scoring, and the optional MLP."""

    hstu_ffn: bool = False  # a pre-norm SiLU MLP (width d_ff) after each layer; not in the paper


def describe(cfg: Config) -> str:
    m = cfg.model
    return f"{m.n_enc_layers}L {scoring(m, m.hstu)} {width(m, ffn=m.hstu.hstu_ffn)}"


ENTRY = ModelEntry(
    "hstu", HSTU, IDShape, kind="id", config=HSTUConfig, describe=describe,
    unread=lambda m: (*(() if m.hstu.hstu_ffn else ("d_ff",)), *sampled_only(m.hstu)),  # no MLP without hstu_ffn
    paper="Zhai et al., Actions Speak Louder than Words: Trillion-Parameter Sequential Transducers, ICML 2024",
)  # fmt: skip
