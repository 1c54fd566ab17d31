"""A decoder-only (GPT-style) Semantic-ID generator: one causal Transformer over history and target tokens.

GRID's decoder-only variants (Ju et al., "Generative Recommendation with Semantic IDs: A
Practitioner's Handbook", CIKM 2025), in the pre-norm GPT layout (Radford et al., 2019). The input is
[user token] + the SID tokens of the last <= `max_history` items + the target's first L-1 codes; the
hidden state at the last history token predicts the target's first code, each target token the next.

- Positions: a learned embedding of "items from the end" for history tokens (as TIGER's encoder), one
  for the user token, and one per level for the target tokens; histories are left-padded inside the
  model so that every prompt ends at the same index (the KV cache then grows in step for all beams).
- `tie_embeddings`: level l's logits are the hidden state times the input embeddings of level l's
  codes (tied), or come from a separate head per level.
- `loss_on`: `target` (the L target codes only) or `all` (every position whose next token is a SID
  code: the history's next tokens too), both in GRID's variants.
- Decoding keeps the `SIDGenerator` contract: `prefill` runs the prompt once per user and keeps every
  layer's keys / values; each beam row then attends over its user's shared prompt (beams folded into
  the query axis, never copied W times) and over its own generated tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidrec.config import Config
from sidrec.models.generator import (
    NEG,
    PAD,
    SIDShape,
    flat_codes,
    history_states,
    left_pad_index,
    target_logp,
    teacher_tokens,
)
from sidrec.models.layers import Dropout, EncoderBlock, init_weights
from sidrec.models.moe import ExpertReporting, MoEConfig, aux_loss, feed_forward
from sidrec.models.registry import ModelEntry, moe, repeat, width
from sidrec.models.repeat import RepeatHead, check_mode, last_target_loss


@dataclass(frozen=True)
class DecoderShape(SIDShape):
    """The shared settings, the depth, the output embeddings and which positions the loss covers."""

    n_layers: int = 4
    tie_embeddings: bool = False
    loss_on: str = "target"  # target | all

    def __post_init__(self) -> None:
        if self.loss_on not in ("target", "all"):
            raise ValueError(f"model.decoder.loss_on must be target or all, got {self.loss_on!r}")


@dataclass(frozen=True)
class DecoderConfig(MoEConfig):
    """`model.decoder.*`: the mixture of experts, the output embeddings and which positions the loss covers."""

    tie_embeddings: bool = False  # output logits from the input embeddings of each level's codes
    loss_on: str = "target"  # target (the target's codes) | all (every next SID token, history too)


class DecoderCache(NamedTuple):
    prompt_kv: list[tuple[Tensor, Tensor]]  # per layer, per user: (B, H, S, dh)
    prompt_bias: Tensor  # (B, 1, 1, S): 0 for real prompt tokens, NEG for padding
    own_kv: list[tuple[Tensor, Tensor]] | None  # per layer, per beam row: (B*W, H, t, dh)
    last: Tensor  # (B, d): the final hidden state of the prompt's last token
    beams: int


def left_pad(tokens: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
    """Right-padded (B, S) rows -> left-padded rows, so every row's last real token is at index S - 1."""
    index = left_pad_index(tokens)
    return tokens.gather(1, index), positions.gather(1, index)


class DecoderOnly(ExpertReporting, nn.Module):
    def __init__(self, shape: DecoderShape) -> None:
        super().__init__()
        self.shape = shape
        d = shape.d_model
        block = dict(d_model=d, n_heads=shape.n_heads, d_head=shape.d_head, d_ff=shape.d_ff, dropout=shape.dropout)
        self.tok = nn.Embedding(shape.vocab_size, d, padding_idx=PAD)
        self.pos = nn.Embedding(shape.max_history + 1 + shape.target_length, d)  # items from the end, user, targets
        moe = dict(d_model=d, d_ff=shape.d_ff, dropout=shape.dropout, experts=shape.experts, top_k=shape.expert_top_k)
        self.blocks = nn.ModuleList(
            EncoderBlock(**block, impl=shape.attention, ff=feed_forward(**moe)) for _ in range(shape.n_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.heads = None if shape.tie_embeddings else nn.ModuleList(nn.Linear(d, k) for k in shape.level_sizes)
        self.drop = Dropout(shape.dropout)
        level_of = torch.full((shape.vocab_size,), -1, dtype=torch.long)  # token -> SID level (-1: not a code)
        for level, (start, size) in enumerate(zip(shape.offsets, shape.level_sizes, strict=True)):
            level_of[start : start + size] = level
        self.register_buffer("level_of", level_of, persistent=False)
        self.apply(init_weights)
        check_mode(shape.repeat)
        self.repeat_head = RepeatHead(d, shape.max_history) if shape.repeat == "mixture" else None

    def target_position(self, level: int) -> int:
        return self.shape.max_history + 1 + level

    def logits(self, h: Tensor, level: int) -> Tensor:
        """(..., d) final hidden states -> (..., K_level) scores of level `level`'s codes."""
        if self.heads is not None:
            return self.heads[level](h)
        start = self.shape.offsets[level]
        return h @ self.tok.weight[start : start + self.shape.level_sizes[level]].T

    def _states(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher-forced final states (B, S + T - 1, d) of prompt + target, the left-padded prompt (B, S) and the
        flat target codes (B, T): state S - 1 + j predicts target code j."""
        tokens, positions = left_pad(batch["tokens"], batch["positions"])
        codes = flat_codes(batch["codes"])
        b, t = codes.shape
        seq = torch.cat([tokens, teacher_tokens(codes[:, :-1], self.shape.offsets)], dim=1)  # (B, S + T - 1)
        target_pos = torch.arange(t - 1, device=codes.device) + self.target_position(0)
        pos = torch.cat([positions, target_pos.expand(b, -1)], dim=1)
        n = seq.shape[1]
        causal = torch.full((n, n), NEG, device=seq.device).triu(1)
        bias = (causal[None] + torch.where(seq == PAD, NEG, 0.0)[:, None, :])[:, None]  # (B, 1, n, n)
        x = self.drop(self.tok(seq) + self.pos(pos))
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x), tokens, codes

    def token_logp(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, T) log-probability of every target code under teacher forcing (0 for a missing item)."""
        h, tokens, codes = self._states(batch)
        s = tokens.shape[1]
        return target_logp(h[:, s - 1 : s - 1 + codes.shape[1]], codes, self.logits, len(self.shape.level_sizes))

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        h, tokens, codes = self._states(batch)
        (b, s), n_levels = tokens.shape, len(self.shape.level_sizes)
        head = None
        new = torch.ones(b, dtype=torch.bool, device=codes.device)  # targets the SID loss covers
        if self.repeat_head is not None:  # the head learns the repeats; the SIDs the new items (models.repeat)
            states = history_states(h[:, :s], tokens, n_levels, self.shape.user_tokens)
            head, new = last_target_loss(self.repeat_head, states, batch["items"], batch["target"])
        target = codes[new]  # the target: position s - 1 + j predicts code j
        total = -target_logp(h[new, s - 1 : s - 1 + codes.shape[1]], target, self.logits, n_levels).sum()
        count = (target >= 0).sum()
        if self.shape.loss_on == "all":  # real history positions whose next token is a SID code
            nxt = tokens[:, 1:]
            nxt_level = torch.where(tokens[:, :-1] == PAD, -1, self.level_of[nxt])  # (B, S-1)
            for level in range(n_levels):
                keep = nxt_level == level
                if keep.any():
                    logits = self.logits(h[:, : s - 1][keep], level).float()
                    total = total + F.cross_entropy(logits, nxt[keep] - self.shape.offsets[level], reduction="sum")
                    count = count + keep.sum()
        loss = total / count.clamp(min=1) + (0.0 if head is None else head)
        aux = aux_loss(self)
        return loss if aux is None else loss + self.shape.moe_aux_weight * aux

    @torch.no_grad()
    def repeat(self, tokens: Tensor, positions: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """The repeat head's gate logit (B,) and pointer log-probabilities (B, T) for these prompts (RepeatAware)."""
        tokens, positions = left_pad(tokens, positions)
        s = tokens.shape[1]
        bias = (
            torch.full((s, s), NEG, device=tokens.device).triu(1)[None] + torch.where(tokens == PAD, NEG, 0.0)[:, None]
        )
        x = self.tok(tokens) + self.pos(positions)
        for block in self.blocks:
            x = block(x, bias[:, None])
        states = history_states(self.norm(x), tokens, len(self.shape.level_sizes), self.shape.user_tokens)
        out = self.repeat_head(states, items)
        return out.gate[:, -1], out.logp[:, -1]

    @torch.no_grad()
    def prefill(self, tokens: Tensor, positions: Tensor, beams: int) -> DecoderCache:
        tokens, positions = left_pad(tokens, positions)
        s = tokens.shape[1]
        pad = torch.where(tokens == PAD, NEG, 0.0)[:, None, None, :]  # (B, 1, 1, S)
        causal = torch.full((s, s), NEG, device=tokens.device).triu(1)
        x, kv = self.tok(tokens) + self.pos(positions), []
        for block in self.blocks:
            h = block.norm1(x)
            k, v = block.attn.keys_values(h)
            kv.append((k, v))
            x = x + block.attn(h, (k, v), causal + pad)
            x = x + block.mlp(block.norm2(x))
        return DecoderCache(kv, pad, None, self.norm(x[:, -1]), beams)

    @torch.no_grad()
    def step(self, cache: DecoderCache, level: int, prev: Tensor, parent: Tensor) -> tuple[Tensor, DecoderCache]:
        w = cache.beams
        if level == 0:  # the prompt's last hidden state predicts the first code of every beam
            h = cache.last.repeat_interleave(w, dim=0)
            return self.logits(h, 0).float().log_softmax(-1), cache
        own = None if cache.own_kv is None else [(k[parent], v[parent]) for k, v in cache.own_kv]
        n_levels = len(self.shape.level_sizes)
        prev_tok = prev + self.shape.offsets[(level - 1) % n_levels]
        x = self.tok(prev_tok)[:, None] + self.pos.weight[self.target_position(level - 1)]
        new_kv = []
        for i, block in enumerate(self.blocks):
            h = block.norm1(x)  # (B*W, 1, d)
            attn = block.attn
            k, v = attn.keys_values(h)
            if own is not None:
                k, v = torch.cat([own[i][0], k], dim=2), torch.cat([own[i][1], v], dim=2)
            new_kv.append((k, v))
            y = _shared_prefix_attention(attn.split(attn.q(h)), cache.prompt_kv[i], cache.prompt_bias, (k, v), w)
            x = x + attn.dropout(attn.out(y.transpose(1, 2).reshape(x.shape[0], 1, -1)))
            x = x + block.mlp(block.norm2(x))
        logp = self.logits(self.norm(x[:, 0]), level % n_levels).float().log_softmax(-1)
        return logp, cache._replace(own_kv=new_kv)

    def config_dict(self) -> dict:
        return asdict(self.shape)


def _shared_prefix_attention(
    q: Tensor, prompt: tuple[Tensor, Tensor], prompt_bias: Tensor, own: tuple[Tensor, Tensor], beams: int
) -> Tensor:
    """One new query per beam row over its user's prompt (shared) and its own tokens, in one softmax.

    q: (B*W, H, 1, dh); prompt keys / values (B, H, S, dh) with bias (B, 1, 1, S); own keys / values
    (B*W, H, t, dh). Returns (B*W, H, 1, dh).
    """
    (pk, pv), (ok, ov) = prompt, own
    b, heads, s, dh = pk.shape
    t, scale = ok.shape[2], 1.0 / math.sqrt(dh)
    qf = q.reshape(b, beams, heads, dh).transpose(1, 2)  # (B, H, W, dh): beams on the query axis
    scores_p = (qf @ pk.transpose(-1, -2)) * scale + prompt_bias  # (B, H, W, S)
    scores_o = (q @ ok.transpose(-1, -2)) * scale  # (B*W, H, 1, t)
    scores_o = scores_o.reshape(b, beams, heads, t).transpose(1, 2)  # (B, H, W, t)
    probs = torch.cat([scores_p, scores_o], dim=-1).softmax(dim=-1)
    y_p = (probs[..., :s].to(pv.dtype) @ pv).transpose(1, 2).reshape(b * beams, heads, 1, dh)
    p_o = probs[..., s:].transpose(1, 2).reshape(b * beams, heads, 1, t)
    return y_p + p_o.to(ov.dtype) @ ov


def describe(cfg: Config) -> str:
    m, own = cfg.model, cfg.model.decoder
    tied = " tied" if own.tie_embeddings else ""
    return f"{m.n_enc_layers + m.n_dec_layers}L{tied} loss_on={own.loss_on}{moe(own)}{repeat(m)} {width(m)}"


ENTRY = ModelEntry(
    "decoder",
    DecoderOnly,
    DecoderShape,
    kind="sid",
    config=DecoderConfig,
    describe=describe,
    layers=("n_enc_layers", "n_dec_layers"),
    paper="Ju et al., Generative Recommendation with Semantic IDs: A Practitioner's Handbook, CIKM 2025",
)


__all__ = ["ENTRY", "DecoderCache", "DecoderConfig", "DecoderOnly", "DecoderShape", "left_pad"]
