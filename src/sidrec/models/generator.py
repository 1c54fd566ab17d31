"""The contract of a Semantic-ID generator, and the token layout that data and every generator share.

Consumers (beam search through `SIDRecommender`, `sidrec bench`, the server) use only this contract,
never a concrete model, so a new generator is one module and one registry line (`models.registry`).

Token layout (V tokens): 0 = PAD, 1 = BOS, then `user_tokens` hashed user ids, then the codes of level
0, level 1, ... each shifted by its level's offset: token = offset[l] + code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

PAD, BOS = 0, 1
NEG = -1e9  # additive mask value; finite so fully-masked rows stay NaN-free


def token_offsets(level_sizes: tuple[int, ...], user_tokens: int) -> tuple[int, ...]:
    """The first token id of each SID level's codes."""
    start, out = 2 + user_tokens, []
    for size in level_sizes:
        out.append(start)
        start += size
    return tuple(out)


@dataclass(frozen=True)
class SIDShape:
    """The settings every SID generator shares; each model's shape adds its own (saved in model.pt)."""

    level_sizes: tuple[int, ...]  # K_l per SID level, dedup digit included
    max_history: int = 20
    user_tokens: int = 0
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_ff: int = 512
    dropout: float = 0.1
    attention: str = "math"
    experts: int = 0  # mixture-of-experts feed-forward in every block (0 = the dense MLP)
    expert_top_k: int = 2
    moe_aux_weight: float = 0.01  # weight of the load-balancing loss in `loss`
    repeat: str = "none"  # mixture: a repeat / explore mixture beside the generated SIDs (models.repeat) | none
    target_items: int = 1  # items per target: m > 1 generates m SIDs in turn (a session, OneRec), m x L tokens

    @property
    def target_length(self) -> int:
        """Tokens per target: L codes per item, `target_items` items."""
        return len(self.level_sizes) * self.target_items

    @property
    def offsets(self) -> tuple[int, ...]:
        return token_offsets(self.level_sizes, self.user_tokens)

    @property
    def vocab_size(self) -> int:
        return 2 + self.user_tokens + sum(self.level_sizes)


def flat_codes(codes: Tensor) -> Tensor:
    """Target codes (B, L), or (B, m, L) for sessions of m items, -> (B, T) level-local codes, -1 = no item."""
    return codes.reshape(codes.shape[0], -1)


def teacher_tokens(codes: Tensor, offsets: tuple[int, ...]) -> Tensor:
    """(B, T) flat target codes -> (B, T) their tokens (level of position j: j mod L), PAD for a missing item."""
    n_levels = len(offsets)
    shift = torch.tensor(offsets, device=codes.device).repeat(codes.shape[1] // n_levels + 1)[: codes.shape[1]]
    return torch.where(codes >= 0, codes + shift, PAD)


def target_logp(states: Tensor, codes: Tensor, logits, n_levels: int) -> Tensor:
    """Log-probability of each target code (B, T) from the states that predict them (B, T, d); 0 where code is -1.

    `logits(h, level)` maps (..., d) states to level `level`'s (..., K_level) scores; position j is level j mod L."""
    out = torch.zeros(codes.shape, dtype=torch.float32, device=codes.device)
    for level in range(n_levels):
        c = codes[:, level::n_levels]  # (B, m)
        logp = logits(states[:, level::n_levels], level).float().log_softmax(-1)  # (B, m, K)
        out[:, level::n_levels] = logp.gather(-1, c.clamp(min=0)[..., None])[..., 0] * (c >= 0)
    return out


def left_pad_index(tokens: Tensor) -> Tensor:
    """(B, S) right-padded rows -> (B, S) gather index that left-pads them (every last real token at S - 1)."""
    s = tokens.shape[1]
    lengths = (tokens != PAD).sum(1, keepdim=True)
    return (torch.arange(s, device=tokens.device)[None] - (s - lengths)) % s  # out[j] = in[j - shift]


def history_states(states: Tensor, tokens: Tensor, n_levels: int, user_tokens: int) -> Tensor:
    """Per-token states of left-padded prompts -> one state per history item: its last SID token's.

    Args:
        states: (B, S, d) states of left-padded prompts [PAD.., user token?, item_1 codes, ..., item_n codes].
        tokens: (B, S) those prompts (PAD = 0).
    Returns:
        (B, T, d), T = the most items in a row, left-padded with zeros like `data.batches.item_inputs`:
        column T - 1 is each row's most recent item.
    """
    b, s, _ = states.shape
    extra = 1 if user_tokens else 0
    n = ((tokens != PAD).sum(1) - extra) // n_levels  # (B,) items per row
    t = max(int(n.max()) if b else 0, 1)
    back = torch.arange(t - 1, -1, -1, device=states.device)  # column j holds item (t - 1 - j) from the end
    index = (s - 1 - back * n_levels).clamp(min=0)  # (T,) its last token
    out = states[:, index]  # (B, T, d)
    return out * (back[None, :] < n[:, None])[..., None]


class GeneratorShape(Protocol):
    """What consumers read from a generator's shape (each model's own frozen dataclass has more)."""

    level_sizes: tuple[int, ...]  # K_l per SID level, dedup digit included
    max_history: int
    user_tokens: int

    @property
    def offsets(self) -> tuple[int, ...]: ...

    @property
    def vocab_size(self) -> int: ...


@runtime_checkable
class SIDGenerator(Protocol):
    """A model that generates the next item's Semantic ID, level by level.

    - `loss(batch)`: mean next-token cross-entropy of a training batch {"tokens", "positions", "codes"}
      (encoder-style history tokens and positions from `data.batches.encoder_inputs`, target codes (B, L), or
      (B, m, L) with -1 for a missing item when `shape.target_items` m > 1: OneRec's sessions).
    - `token_logp(batch)`: (B, T) log-probability of every target code under teacher forcing (0 for a missing
      one), T = m x L; a session's log-probability is its row sum (preference alignment, `sidrec.align`).
    - `prefill(tokens, positions, beams)`: read a batch of B histories once; the returned cache serves
      B x `beams` beam rows (row i belongs to user i // beams).
    - `step(cache, level, prev, parent)`: log-probabilities (B*W, K) of the codes of target token `level` for
      every beam row (`level` counts target tokens, 0 .. T-1; its SID level is level mod L), after reordering the
      cache by `parent` (the row each row continues; level 0: the identity) and appending `prev` (the previous
      token's codes, -1 at level 0). Returns (logp, cache).
    """

    shape: Any

    def loss(self, batch: dict[str, Tensor]) -> Tensor: ...

    def token_logp(self, batch: dict[str, Tensor]) -> Tensor: ...

    def prefill(self, tokens: Tensor, positions: Tensor, beams: int) -> Any: ...

    def step(self, cache: Any, level: int, prev: Tensor, parent: Tensor) -> tuple[Tensor, Any]: ...


class RepeatAware(Protocol):
    """Optional: a generator with a repeat head (`shape.repeat == "mixture"`, models.repeat) also offers

    `repeat(tokens, positions, items) -> (gate (B,), pointer (B, T))`: the logit of P(repeat) and the
    log-probabilities of the history's positions (`items` (B, T), left-padded item_idx of the same
    histories), for the recommender to mix with the generated SIDs' log-probabilities."""

    def repeat(self, tokens: Tensor, positions: Tensor, items: Tensor) -> tuple[Tensor, Tensor]: ...


__all__ = [
    "BOS",
    "NEG",
    "PAD",
    "GeneratorShape",
    "RepeatAware",
    "SIDGenerator",
    "SIDShape",
    "flat_codes",
    "history_states",
    "target_logp",
    "teacher_tokens",
    "left_pad_index",
    "token_offsets",
]
