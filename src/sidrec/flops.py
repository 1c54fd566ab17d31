"""Analytic FLOP counts of an encoder-decoder Transformer, for achieved-TFLOP/s figures in `sidrec bench`.

Counted: every matrix product, 2 * m * n * k FLOPs (projections, attention scores and weighted values, MLP,
output heads). Not counted: embeddings, norms, softmax, dropout and other elementwise work (a few percent
at these sizes). A training step is 3x the forward pass (backward = two products per forward product).
Beam search counts what the decoding algorithm needs: the encoder once per user, cross-attention keys and
values once per user, then per SID level W beam rows that each attend over their cached prefix and the
encoder memory; rows are counted whether or not their beam is alive (the kernels compute them all).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncDecSize:
    d_model: int
    n_heads: int
    d_head: int
    d_ff: int
    n_enc_layers: int
    n_dec_layers: int
    head_sizes: tuple[int, ...]  # output width at each decoder position (K_l per level, or the vocabulary)

    @property
    def inner(self) -> int:
        return self.n_heads * self.d_head


def _self_block(size: EncDecSize, tokens: int, keys: int) -> float:
    """Self-attention (q, k, v, out projections for `tokens` new positions over `keys` keys) + MLP."""
    d, inner, ff = size.d_model, size.inner, size.d_ff
    return tokens * (2 * d * 3 * inner + 2 * inner * d + 2 * 2 * d * ff) + 2 * 2 * tokens * keys * inner


def _cross(size: EncDecSize, tokens: int, memory: int) -> float:
    """Cross-attention of `tokens` decoder positions over `memory` encoder positions (keys / values excluded)."""
    d, inner = size.d_model, size.inner
    return tokens * (2 * d * inner + 2 * inner * d) + 2 * 2 * tokens * memory * inner


def _memory_kv(size: EncDecSize, memory: int) -> float:
    return size.n_dec_layers * memory * 2 * size.d_model * 2 * size.inner


def encoder(size: EncDecSize, memory: int) -> float:
    return size.n_enc_layers * _self_block(size, memory, memory)


def forward(size: EncDecSize, memory: int) -> float:
    """Forward FLOPs of one training sample: `memory` encoder tokens, teacher-forced decoder positions."""
    levels = len(size.head_sizes)
    decoder = size.n_dec_layers * (_self_block(size, levels, levels) + _cross(size, levels, memory))
    heads = sum(2 * size.d_model * k for k in size.head_sizes)
    return encoder(size, memory) + _memory_kv(size, memory) + decoder + heads


def train_step(size: EncDecSize, memory: int, batch: int) -> float:
    return 3 * batch * forward(size, memory)


def beam_search(size: EncDecSize, memory: int, beams: int) -> float:
    """FLOPs of decoding one user's SID with `beams` beams (KV cache; encoder memory shared by the beams)."""
    total = encoder(size, memory) + _memory_kv(size, memory)
    for level, k in enumerate(size.head_sizes):
        step = size.n_dec_layers * (_self_block(size, 1, level + 1) + _cross(size, 1, memory))
        total += beams * (step + 2 * size.d_model * k)
    return total


__all__ = ["EncDecSize", "beam_search", "encoder", "forward", "train_step"]
