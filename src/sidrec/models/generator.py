"""The contract of a Semantic-ID generator, and the token layout that data and every generator share.

Consumers (beam search through `SIDRecommender`, `sidrec bench`, the server) use only this contract,
never a concrete model, so a new generator is one module and one registry line (DESIGN.md, section 10).

Token layout (V tokens): 0 = PAD, 1 = BOS, then `user_tokens` hashed user ids, then the codes of level
0, level 1, ... each shifted by its level's offset: token = offset[l] + code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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

    @property
    def offsets(self) -> tuple[int, ...]:
        return token_offsets(self.level_sizes, self.user_tokens)

    @property
    def vocab_size(self) -> int:
        return 2 + self.user_tokens + sum(self.level_sizes)


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
      (encoder-style history tokens and positions from `data.batches.encoder_inputs`, target codes (B, L)).
    - `prefill(tokens, positions, beams)`: read a batch of B histories once; the returned cache serves
      B x `beams` beam rows (row i belongs to user i // beams).
    - `step(cache, level, prev, parent)`: log-probabilities (B*W, K_level) of level `level`'s codes for
      every beam row, after reordering the cache by `parent` (the row each row continues; level 0: the
      identity) and appending `prev` (the previous level's codes, -1 at level 0). Returns (logp, cache).
    """

    shape: Any

    def loss(self, batch: dict[str, Tensor]) -> Tensor: ...

    def prefill(self, tokens: Tensor, positions: Tensor, beams: int) -> Any: ...

    def step(self, cache: Any, level: int, prev: Tensor, parent: Tensor) -> tuple[Tensor, Any]: ...


__all__ = ["BOS", "NEG", "PAD", "GeneratorShape", "SIDGenerator", "SIDShape", "token_offsets"]
