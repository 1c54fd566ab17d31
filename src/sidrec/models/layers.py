"""Transformer building blocks: multi-head attention with an optional KV cache, MLP, pre-norm blocks.

Small and CPU-friendly. Attention is `sdpa` (torch.nn.functional.scaled_dot_product_attention, the
default) or `math` (plain matmul + softmax, the readable reference; tests check both agree). Dropout sits
only on the residual branches (d_model wide), not on attention probabilities or the MLP hidden layer: on
CPU, generating dropout masks is the largest cost of a training step at these sizes.
Layout follows "Attention Is All You Need" (Vaswani et al., NeurIPS 2017) with pre-norm
(Xiong et al., ICML 2020).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def init_weights(m: nn.Module) -> None:
    """GPT-2 / T5-style initialisation (`model.apply(init_weights)`): N(0, 0.02) weights, zero biases."""
    if isinstance(m, nn.Linear | nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)
    if isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)


def sampled_softmax_loss(
    positive: Tensor, negative: Tensor, neg: Tensor, y: Tensor, extra: Tensor | None = None
) -> Tensor:
    """Mean cross-entropy of each target among shared negatives.

    positive (P,) and negative (P, S) are the scores of the targets y (P,) and of the negatives neg (S,),
    item ids drawn for the whole batch; a negative that is a position's own target is masked out.
    `extra` (P, E): scores of per-position negatives (-inf where none), appended as they are."""
    negative = negative.masked_fill(neg[None, :] == y[:, None], float("-inf"))
    parts = [positive[:, None], negative] + ([extra] if extra is not None else [])
    return F.cross_entropy(torch.cat(parts, dim=1), torch.zeros_like(y))


class Dropout(nn.Module):
    """Inverted dropout whose CPU mask costs one random byte per element, not one float.

    torch's dropout draws a float per element (`bernoulli_`), the largest single cost of a CPU
    training step at these model sizes. Here the mask compares random
    bytes (8 per int64 draw from torch's seeded generator) with p * 256, so p is rounded to a
    multiple of 1/256 (0.1 -> 0.1016) and the mask is about 5x cheaper. Other devices use
    `F.dropout` unchanged.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {p}")
        self.p, self.threshold = p, round(p * 256)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        if self.threshold >= 256:
            return x * 0.0
        n = x.numel()
        words = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        keep = words.view(torch.uint8)[:n].view(x.shape) >= self.threshold
        return x * keep * (256.0 / (256 - self.threshold))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, impl: str) -> Tensor:
    """Scaled dot-product attention.

    Args:
        q: (B, H, Tq, dh); k, v: (B, H, Tk, dh); bias: additive mask broadcastable to (B, H, Tq, Tk).
    Returns:
        (B, H, Tq, dh).
    """
    if impl == "sdpa":
        mask = None if bias is None else bias.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, Tq, Tk)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1).to(v.dtype) @ v


class Attention(nn.Module):
    """Multi-head attention; `d_head * n_heads` need not equal `d_model` (T5: 6 x 64 on d 128)."""

    def __init__(self, *, d_model: int, n_heads: int, d_head: int, dropout: float, impl: str = "math") -> None:
        super().__init__()
        self.n_heads, self.d_head, self.impl = n_heads, d_head, impl
        inner = n_heads * d_head
        self.q = nn.Linear(d_model, inner, bias=False)
        self.kv = nn.Linear(d_model, 2 * inner, bias=False)
        self.out = nn.Linear(inner, d_model, bias=False)
        self.dropout = Dropout(dropout)

    def split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, T, dh)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)  # each (B, H, T, dh)

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], bias: Tensor | None) -> Tensor:
        """x: (B, Tq, d) queries; kv: keys and values (B, H, Tk, dh). Returns (B, Tq, d)."""
        q = self.split(self.q(x))
        y = attend(q, kv[0], kv[1], bias, self.impl)  # (B, H, Tq, dh)
        y = y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return self.dropout(self.out(y))


class MLP(nn.Module):
    def __init__(self, *, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.down(F.gelu(self.up(x))))


class EncoderBlock(nn.Module):
    """Pre-norm self-attention (bidirectional, or causal through the bias) + MLP (or `ff`, e.g. a mixture)."""

    def __init__(
        self, *, d_model: int, n_heads: int, d_head: int, d_ff: int, dropout: float, impl: str, ff: nn.Module = None
    ) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = Attention(d_model=d_model, n_heads=n_heads, d_head=d_head, dropout=dropout, impl=impl)
        self.mlp = ff if ff is not None else MLP(d_model=d_model, d_ff=d_ff, dropout=dropout)

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, self.attn.keys_values(h), bias)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Pre-norm causal self-attention (with KV cache) + cross-attention over the encoder + MLP."""

    def __init__(
        self, *, d_model: int, n_heads: int, d_head: int, d_ff: int, dropout: float, impl: str, ff: nn.Module = None
    ) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = Attention(d_model=d_model, n_heads=n_heads, d_head=d_head, dropout=dropout, impl=impl)
        self.cross_attn = Attention(d_model=d_model, n_heads=n_heads, d_head=d_head, dropout=dropout, impl=impl)
        self.mlp = ff if ff is not None else MLP(d_model=d_model, d_ff=d_ff, dropout=dropout)

    def forward(
        self,
        x: Tensor,
        memory_kv: tuple[Tensor, Tensor],
        memory_bias: Tensor | None,
        self_bias: Tensor | None,
        cache: tuple[Tensor, Tensor] | None = None,
        beams: int = 1,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x: (B*W, T, d) new decoder positions; cache: keys/values of earlier positions (B*W, H, t, dh).

        `memory_kv` holds one copy per user (B, H, S, dh), not per beam: the W beams of a user are
        folded into the query axis of cross-attention, (B*W, T, d) -> (B, W*T, d), so the encoder's
        keys and values are never repeated W times.

        Returns the block output and the self-attention cache extended by the new positions.
        """
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        x = x + self.self_attn(h, (k, v), self_bias)
        c = self.norm2(x)
        c = self.cross_attn(c.reshape(-1, beams * c.shape[1], c.shape[2]), memory_kv, memory_bias)
        x = x + c.reshape(x.shape)
        return x + self.mlp(self.norm3(x)), (k, v)
