"""Histories -> padded encoder inputs, and length-bucketed batching of training examples.

Encoder input of one history of n items with L-token SIDs, oldest first:
    tokens    = [t(i_1,0) .. t(i_1,L-1), ..., t(i_n,0) .. t(i_n,L-1)] (+ PAD to the batch's longest)
    positions = [n-1]*L + [n-2]*L + ... + [0]*L   (items counted from the end: 0 = most recent)
With user tokens on, one token `2 + user % user_tokens` comes first, at position `max_history`.

Item-ID models (SASRec, HSTU) read item_idx directly, left-padded with 0 (`item_inputs`), and
train on `IDExamples`: one window per user with a next-item target at every position.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def encoder_inputs(
    histories: list[np.ndarray],
    item_tokens: np.ndarray,
    *,
    max_history: int,
    users: np.ndarray | None = None,
    user_tokens: int = 0,
) -> tuple[Tensor, Tensor]:
    """Args:
        histories: B arrays of item_idx (oldest first); only the last `max_history` are used.
        item_tokens: (N+1, L) token ids per item_idx; row 0 (padding item) is all PAD.
        users: (B,) user_idx, needed when `user_tokens` > 0.
    Returns:
        tokens (B, S) and positions (B, S), int64, S = longest history x L (+1 user token).
    """
    n_levels = item_tokens.shape[1]
    lengths = np.array([min(len(h), max_history) for h in histories])
    extra = 1 if user_tokens else 0
    s = int(lengths.max(initial=0)) * n_levels + extra
    tokens = np.zeros((len(histories), max(s, 1)), dtype=np.int64)
    positions = np.zeros_like(tokens)
    for row, (hist, n) in enumerate(zip(histories, lengths, strict=True)):
        if user_tokens:
            tokens[row, 0] = 2 + int(users[row]) % user_tokens
            positions[row, 0] = max_history
        if n:
            tokens[row, extra : extra + n * n_levels] = item_tokens[hist[-n:]].reshape(-1)
            positions[row, extra : extra + n * n_levels] = np.repeat(np.arange(n - 1, -1, -1), n_levels)
    return torch.from_numpy(tokens), torch.from_numpy(positions)


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, chunk: int = 64
) -> list[np.ndarray]:
    """Shuffled batches of example indices whose lengths are close, so padding stays small.

    Examples are shuffled, cut into chunks of `chunk` batches, sorted by length inside each chunk,
    split into batches, and the batches shuffled again (randomness of order, little padding).
    """
    order = rng.permutation(len(lengths))
    batches = []
    span = batch_size * chunk
    for start in range(0, len(order), span):
        part = order[start : start + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class _Batched:
    """`batches` for both example sets: length-bucketed, seeded, sharded under torchrun (`_sharded`)."""

    def batches(
        self,
        batch_size: int,
        rng: np.random.Generator,
        device: torch.device | str = "cpu",
        *,
        rank: int = 0,
        world: int = 1,
    ):
        """Length-bucketed batches in a seeded order; with `world` > 1, rank `rank`'s shard of each (+ "weight")."""
        yield from _sharded(self, batch_size, rng, device, rank, world)


class SIDExamples(_Batched):
    """Sliding-window training examples over SID tokens, served as length-bucketed batches.

    Example (user u, position t): encoder input = the <= max_history items before position t of
    u's training sequence; target = the SID codes (L,) of the item at position t, or with `target_items`
    m > 1 the codes (m, L) of the items at t .. t+m-1 (OneRec's session-wise target), cut at the end of
    t's session (`ends`) or of the sequence: codes past the cut are -1 (no loss).
    """

    def __init__(
        self,
        train_seqs: list[np.ndarray],
        users: np.ndarray,
        positions: np.ndarray,
        sids: np.ndarray,
        item_tokens: np.ndarray,
        *,
        max_history: int,
        user_tokens: int = 0,
        target_items: int = 1,
        ends: list[np.ndarray] | None = None,
    ) -> None:
        """`ends`: per user, the (exclusive) end of the session each position belongs to (`session_ends`);
        None: every session runs to the end of the sequence."""
        self.seqs, self.users, self.positions = train_seqs, users, positions
        self.sids, self.item_tokens = sids, item_tokens
        self.max_history, self.user_tokens = max_history, user_tokens
        self.lengths = np.minimum(positions, max_history)
        self.target_items, self.ends = target_items, ends

    def __len__(self) -> int:
        return len(self.users)

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def targets(self, users: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """(B, m) item_idx of each example's target items, 0 past its session's end."""
        out = np.zeros((len(users), self.target_items), dtype=np.int64)
        for row, (u, p) in enumerate(zip(users, positions, strict=True)):
            seq = self.seqs[u]
            end = min(len(seq), p + self.target_items, len(seq) if self.ends is None else int(self.ends[u][p]))
            out[row, : end - p] = seq[p:end]
        return out

    def batch(self, idx: np.ndarray, device: torch.device | str = "cpu") -> dict[str, Tensor]:
        users, positions = self.users[idx], self.positions[idx]
        hists = [self.seqs[u][max(0, p - self.max_history) : p] for u, p in zip(users, positions, strict=True)]
        return sid_batch(
            hists, self.targets(users, positions), self.sids, self.item_tokens, max_history=self.max_history,
            users=users, user_tokens=self.user_tokens, device=device,
        )  # fmt: skip

    def loss_terms(self, batch: dict[str, Tensor]) -> int:
        """The terms a model's mean loss averages over: one per example (all L levels each)."""
        return len(batch["codes"])


def sid_batch(
    histories: list[np.ndarray],
    targets: np.ndarray,
    sids: np.ndarray,
    item_tokens: np.ndarray,
    *,
    max_history: int,
    users: np.ndarray | None = None,
    user_tokens: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """A SID generator's batch: histories (B lists of item_idx) and targets (B, m) item_idx (0 = none).

    Returns {"tokens", "positions"} (`encoder_inputs`), "codes" (B, L) for m = 1 or (B, m, L) with -1 for a
    missing item, "items" (B, T) the histories by item_idx (a repeat head's), "target" (B,) the first target."""
    tokens, pos = encoder_inputs(histories, item_tokens, max_history=max_history, users=users, user_tokens=user_tokens)
    codes = np.where(targets[..., None] > 0, sids[np.maximum(targets, 1) - 1], -1)  # (B, m, L)
    return {
        "tokens": tokens.to(device),
        "positions": pos.to(device),
        "codes": torch.from_numpy(codes[:, 0] if targets.shape[1] == 1 else codes).to(device),
        "items": item_inputs(histories, max_history).to(device),
        "target": torch.from_numpy(np.ascontiguousarray(targets[:, 0])).to(device),
    }


def session_ends(times: list[np.ndarray], gap_seconds: float) -> list[np.ndarray]:
    """Per sequence of timestamps, the (exclusive) end of the session each position belongs to: a session ends
    where the next event comes more than `gap_seconds` later."""
    out = []
    for t in times:
        t = np.asarray(t)
        breaks = np.append(np.nonzero(np.diff(t) > gap_seconds)[0] + 1, len(t))
        out.append(breaks[np.searchsorted(breaks, np.arange(len(t)), side="right")])
    return out


def shard_batches(batches: list[np.ndarray], rank: int, world: int) -> list[tuple[np.ndarray, bool]]:
    """Rank `rank`'s contiguous part of every global batch, for data-parallel training.

    Concatenated over ranks 0..world-1, the parts are the global batch in its order. A rank whose part
    is empty (a last batch with fewer rows than ranks) gets the batch's first row as a stand-in, flagged
    False, so every rank runs the same number of steps; its loss is weighted 0.

    Returns:
        [(indices, real)] per global batch.
    """
    out = []
    for idx in batches:
        lo, hi = (len(idx) * rank) // world, (len(idx) * (rank + 1)) // world
        out.append((idx[lo:hi], True) if hi > lo else (idx[:1], False))
    return out


def _sharded(examples, batch_size: int, rng: np.random.Generator, device, rank: int, world: int):
    """Global batches (one process) or this rank's shards with their loss weight (several; see fit)."""
    batches = bucketed_batches(examples.lengths, batch_size, rng)
    if world == 1:
        for idx in batches:
            yield examples.batch(idx, device)
        return
    for idx, real in shard_batches(batches, rank, world):
        batch = examples.batch(idx, device)
        batch["weight"] = torch.tensor(float(examples.loss_terms(batch)) if real else 0.0)
        yield batch


def item_inputs(histories: list[np.ndarray], max_history: int) -> Tensor:
    """B item_idx arrays (oldest first) -> (B, T) int64, left-padded with 0; the last `max_history` kept.

    T is the longest kept history (at least 1), so the most recent item is always in the last column.
    """
    rows = [np.asarray(h, dtype=np.int64)[-max_history:] if max_history else np.zeros(0, np.int64) for h in histories]
    out = np.zeros((len(rows), max([len(r) for r in rows] + [1])), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row):
            out[i, -len(row) :] = row
    return torch.from_numpy(out)


class IDExamples(_Batched):
    """Next-item training windows for item-ID models, served as length-bucketed batches.

    A user's training sequence s_1..s_n (n >= 2; shorter ones are skipped) gives the example
    inputs s_1..s_{n-1}, targets s_2..s_n, cut to the last `max_history` positions, so every position
    of it is a training target. With `all_windows` (`train.windows=all`), a longer sequence also gives
    the windows before that one, `max_history` targets each, back to s_2: every training target is
    used once, with the items of its window before it as history. Without (`last`, SASRec's reference
    code), only the most recent window is. `train.sliding_window` does not apply: every prefix of a
    window is already a target.
    """

    def __init__(
        self,
        train_seqs: list[np.ndarray],
        *,
        max_history: int,
        all_windows: bool = False,
        events: dict[str, list[np.ndarray]] | None = None,
    ) -> None:
        """`events`: per-event columns in step with `train_seqs` (times, actions): each window's inputs' values
        go into the batch under the same name."""
        self.inputs, self.targets = [], []
        self.events: dict[str, list[np.ndarray]] = {name: [] for name in events or {}}
        for row, seq in enumerate(train_seqs):
            s = np.asarray(seq, dtype=np.int64)
            ends = range(len(s), 1, -max_history)  # window ends, newest first
            for end in ends if all_windows else ends[:1]:
                start = max(1, end - max_history)  # targets s[start:end], inputs the items before each
                self.inputs.append(s[start - 1 : end - 1])
                self.targets.append(s[start:end])
                for name, column in (events or {}).items():
                    self.events[name].append(np.asarray(column[row], dtype=np.int64)[start - 1 : end - 1])
        self.max_history = max_history
        self.lengths = np.array([len(t) for t in self.targets], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.inputs)

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batch(self, idx: np.ndarray, device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """{"inputs": (B, T), "targets": (B, T)} item_idx, left-padded with 0 (0 target = no loss)."""
        inputs = item_inputs([self.inputs[i] for i in idx], self.max_history)
        targets = item_inputs([self.targets[i] for i in idx], self.max_history)
        out = {"inputs": inputs.to(device), "targets": targets.to(device)}
        for name, column in self.events.items():  # left-padded like the inputs
            out[name] = item_inputs([column[i] for i in idx], self.max_history).to(device)
        return out

    def loss_terms(self, batch: dict[str, Tensor]) -> int:
        """The terms a model's mean loss averages over: the real (non-padding) targets."""
        return int((batch["targets"] > 0).sum())
