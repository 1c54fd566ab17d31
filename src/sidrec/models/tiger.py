"""TIGER: an encoder-decoder Transformer that generates the Semantic ID of the next item.

Rajput et al., "Recommender Systems with Generative Retrieval", NeurIPS 2023; the GRID recipe
(Ju et al., "Generative Recommendation with Semantic IDs: A Practitioner's Handbook", CIKM 2025):
the encoder reads the SID tokens of the user's last <= 20 items (optionally preceded by a hashed
user token); the decoder emits the target's codes level by level.

Deviations from the paper's T5: pre-norm LayerNorm blocks with learned absolute positions
(an "items from the end" position per history token; a level position in the decoder) instead of
T5's relative bias; GELU MLP; per-level output heads, so level l's softmax covers only the K_l
codes of level l (every token of another level is impossible there anyway).

Token layout: `models.generator` (PAD, BOS, user tokens, then each level's codes at its offset).
TIGER keeps the `SIDGenerator` contract: `prefill` encodes the histories once and computes every
decoder layer's cross-attention keys / values per user (shared by that user's beams); `step` runs one
cached decoder position for every beam.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sidrec.config import Config
from sidrec.models.generator import (
    BOS,
    NEG,
    PAD,
    SIDShape,
    flat_codes,
    history_states,
    left_pad_index,
    target_logp,
    teacher_tokens,
)
from sidrec.models.layers import DecoderBlock, Dropout, EncoderBlock, init_weights
from sidrec.models.moe import ExpertReporting, MoEConfig, aux_loss, feed_forward
from sidrec.models.registry import ModelEntry, moe, repeat, width
from sidrec.models.repeat import RepeatHead, check_mode, last_target_loss


@dataclass(frozen=True)
class TIGERShape(SIDShape):
    """Everything needed to rebuild the network (saved in model.pt): the shared settings, and the depths."""

    n_enc_layers: int = 2
    n_dec_layers: int = 2


class TIGERCache(NamedTuple):
    memory_kv: list[tuple[Tensor, Tensor]]  # per decoder layer, per user: (B, H, S, dh)
    memory_bias: Tensor  # (B, 1, 1, S)
    self_kv: list[tuple[Tensor, Tensor]] | None  # per decoder layer, per beam row: (B*W, H, t, dh)
    beams: int


class TIGER(ExpertReporting, nn.Module):
    def __init__(self, shape: TIGERShape) -> None:
        super().__init__()
        self.shape = shape
        d = shape.d_model
        block = dict(
            d_model=d,
            n_heads=shape.n_heads,
            d_head=shape.d_head,
            d_ff=shape.d_ff,
            dropout=shape.dropout,
            impl=shape.attention,
        )
        self.tok = nn.Embedding(shape.vocab_size, d, padding_idx=PAD)
        self.enc_pos = nn.Embedding(shape.max_history + 1, d)  # items from the end; the user token uses the last
        self.dec_pos = nn.Embedding(shape.target_length, d)  # one per target token (m items x L levels)
        moe = dict(d_model=d, d_ff=shape.d_ff, dropout=shape.dropout, experts=shape.experts, top_k=shape.expert_top_k)
        self.encoder = nn.ModuleList(EncoderBlock(**block, ff=feed_forward(**moe)) for _ in range(shape.n_enc_layers))
        self.decoder = nn.ModuleList(DecoderBlock(**block, ff=feed_forward(**moe)) for _ in range(shape.n_dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, k) for k in shape.level_sizes)
        self.drop = Dropout(shape.dropout)
        self.register_buffer("offsets", torch.tensor(shape.offsets), persistent=False)
        causal = torch.full((shape.target_length, shape.target_length), NEG).triu(1)
        self.register_buffer("causal", causal, persistent=False)
        self.apply(init_weights)
        check_mode(shape.repeat)
        self.repeat_head = RepeatHead(d, shape.max_history) if shape.repeat == "mixture" else None

    @property
    def n_levels(self) -> int:
        return len(self.shape.level_sizes)

    def encode(self, tokens: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Encode histories.

        Args:
            tokens: (B, S) encoder tokens, PAD where empty.
            positions: (B, S) items-from-the-end index of each token.
        Returns:
            memory (B, S, d) and the additive key mask (B, 1, 1, S).
        """
        bias = torch.where(tokens == PAD, NEG, 0.0)[:, None, None, :].to(torch.float32)  # (B, 1, 1, S)
        x = self.drop(self.tok(tokens) + self.enc_pos(positions))
        for block in self.encoder:
            x = block(x, bias)
        return self.enc_norm(x), bias

    def memory_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Cross-attention keys/values of every decoder layer, computed once per user."""
        return [block.cross_attn.keys_values(memory) for block in self.decoder]

    def decoder_inputs(self, codes: Tensor) -> Tensor:
        """Teacher forcing: (B, T) flat level-local codes -> (B, T) tokens [BOS, t(c_0), ..., t(c_{T-2})]."""
        shifted = teacher_tokens(codes[:, :-1], self.shape.offsets)  # (B, T-1)
        return torch.cat([torch.full_like(codes[:, :1], BOS), shifted], dim=1)

    def history_states(self, memory: Tensor, tokens: Tensor) -> Tensor:
        """(B, S, d) encoder outputs of right-padded histories -> (B, T, d) one per item (its last token's)."""
        index = left_pad_index(tokens)
        left = memory.gather(1, index[..., None].expand_as(memory))
        return history_states(left, tokens.gather(1, index), self.n_levels, self.shape.user_tokens)

    def _decode(self, memory: Tensor, bias: Tensor, codes: Tensor) -> Tensor:
        """Teacher-forced decoder states (B, T, d) for flat target codes (B, T)."""
        kv = self.memory_kv(memory)
        t = codes.shape[1]
        x = self.drop(self.tok(self.decoder_inputs(codes)) + self.dec_pos.weight[None, :t])
        for block, mkv in zip(self.decoder, kv, strict=True):
            x, _ = block(x, mkv, bias, self.causal[:t, :t])
        return self.dec_norm(x)

    def _logits(self, h: Tensor, level: int) -> Tensor:
        return self.heads[level](h)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Mean next-token cross-entropy over the target's codes (L per item; m items per session target).

        With a repeat head (`repeat=mixture`), the cross-entropy covers the targets new to their user and
        the head's loss is added (models.repeat)."""
        memory, bias = self.encode(batch["tokens"], batch["positions"])
        codes, repeats = flat_codes(batch["codes"]), None
        if self.repeat_head is not None:
            states = self.history_states(memory, batch["tokens"])
            repeats, new = last_target_loss(self.repeat_head, states, batch["items"], batch["target"])
            memory, bias, codes = memory[new], bias[new], codes[new]
        logp = target_logp(self._decode(memory, bias, codes), codes, self._logits, self.n_levels)
        loss = -logp.sum() / (codes >= 0).sum().clamp(min=1)
        loss = loss if repeats is None else loss + repeats
        aux = aux_loss(self)
        return loss if aux is None else loss + self.shape.moe_aux_weight * aux

    def token_logp(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, T) log-probability of every target code under teacher forcing (0 for a missing item)."""
        memory, bias = self.encode(batch["tokens"], batch["positions"])
        codes = flat_codes(batch["codes"])
        return target_logp(self._decode(memory, bias, codes), codes, self._logits, self.n_levels)

    @torch.no_grad()
    def decode_step(
        self,
        tokens: Tensor,
        level: int,
        memory_kv: list[tuple[Tensor, Tensor]],
        memory_bias: Tensor,
        cache: list[tuple[Tensor, Tensor]] | None,
        beams: int,
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """One decoding step for B users x W beams.

        Args:
            tokens: (B*W,) the previous token of every beam (BOS at level 0).
            level: the target token being generated (its SID level: level mod L).
            memory_kv / memory_bias: per-user encoder keys/values (B, H, S, dh) and mask (B, 1, 1, S).
            cache: per-layer self-attention keys/values (B*W, H, level, dh), None at level 0.
        Returns:
            log-probabilities over level `level`'s codes (B*W, K_level), and the extended cache.
        """
        x = self.tok(tokens)[:, None] + self.dec_pos.weight[level]  # (B*W, 1, d)
        new_cache = []
        for i, (block, mkv) in enumerate(zip(self.decoder, memory_kv, strict=True)):
            x, layer_cache = block(x, mkv, memory_bias, None, None if cache is None else cache[i], beams=beams)
            new_cache.append(layer_cache)
        logits = self.heads[level % self.n_levels](self.dec_norm(x[:, 0])).float()  # (B*W, K_level)
        return logits.log_softmax(dim=-1), new_cache

    @torch.no_grad()
    def repeat(self, tokens: Tensor, positions: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """The repeat head's gate logit (B,) and pointer log-probabilities (B, T) for these histories."""
        memory, _ = self.encode(tokens, positions)
        out = self.repeat_head(self.history_states(memory, tokens), items)
        return out.gate[:, -1], out.logp[:, -1]

    @torch.no_grad()
    def prefill(self, tokens: Tensor, positions: Tensor, beams: int) -> TIGERCache:
        memory, bias = self.encode(tokens, positions)
        return TIGERCache(self.memory_kv(memory), bias, None, beams)

    @torch.no_grad()
    def step(self, cache: TIGERCache, level: int, prev: Tensor, parent: Tensor) -> tuple[Tensor, TIGERCache]:
        if level == 0:
            inp, self_kv = torch.full_like(prev, BOS), None
        else:
            inp = prev + self.shape.offsets[(level - 1) % self.n_levels]
            self_kv = [(k[parent], v[parent]) for k, v in cache.self_kv]
        logp, self_kv = self.decode_step(inp, level, cache.memory_kv, cache.memory_bias, self_kv, beams=cache.beams)
        return logp, cache._replace(self_kv=self_kv)

    def config_dict(self) -> dict:
        return asdict(self.shape)


def describe(cfg: Config) -> str:
    m = cfg.model
    return f"{m.n_enc_layers}+{m.n_dec_layers}{moe(m.tiger)}{repeat(m)} {width(m)}"


ENTRY = ModelEntry(
    "tiger",
    TIGER,
    TIGERShape,
    kind="sid",
    config=MoEConfig,
    describe=describe,
    paper="Rajput et al., Recommender Systems with Generative Retrieval, NeurIPS 2023",
)
