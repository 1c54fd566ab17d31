"""The ranker's examples: windows of events as interleaved item / action tokens, and which events are labels.

Each user's events (items, actions, times) are split by time. With h = `rank.holdout`, the last 2h events give
no training label: the first h of them are the validation events (early stopping, validation AUC), the last h
the test events (test AUC / GAUC; they hold the leave-one-out validation and test targets). A window is up to
`max_events` consecutive events; every event in its label range is predicted from the events before it in the
window (`model.HSTURanker.loss`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from sidrec.data.batches import item_inputs


class Window(NamedTuple):
    user: int
    start: int  # first event of the window
    end: int  # one past its last event
    label_from: int  # events label_from..end-1 are labels


def interleave(items: np.ndarray, actions: np.ndarray, times: np.ndarray | None, before: int | None = None):
    """One window's events -> (2n,) item tokens, action tokens and token times: event j gives (item_j, 0) then
    (0, action_j); an item token carries the previous event's time (`before`, or its own for the first event),
    an action token its own."""
    n = len(items)
    tok_items, tok_actions = np.zeros(2 * n, dtype=np.int64), np.zeros(2 * n, dtype=np.int64)
    tok_items[0::2], tok_actions[1::2] = items, actions
    if times is None:
        return tok_items, tok_actions, None
    tok_times = np.empty(2 * n, dtype=np.int64)
    tok_times[1::2] = times
    if n:
        tok_times[0] = times[0] if before is None else before
        tok_times[2::2] = times[:-1]
    return tok_items, tok_actions, tok_times


def history_tokens(histories, actions, times, max_events: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Histories of events (each the last events before the candidates) -> left-padded token tensors (B, 2n) for
    `HSTURanker.score` (items, actions, times, now: the last event's time), reading the last max_events - 1 events."""
    keep = max_events - 1
    rows = []
    for r, h in enumerate(histories):
        s = max(0, len(h) - keep)
        t = None if times is None else np.asarray(times[r], dtype=np.int64)
        before = int(t[s - 1]) if t is not None and s > 0 else None
        rows.append(interleave(np.asarray(h[s:]), np.asarray(actions[r][s:]), None if t is None else t[s:], before))
    out = _pad(rows, device)
    if times is not None:
        out["now"] = torch.as_tensor([int(t[-1]) if len(t) else 0 for t in times], device=device)
    return out


def _left_pad(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Int arrays -> (B, longest) left-padded with 0 (`data.batches.item_inputs`, nothing cut)."""
    return item_inputs(arrays, max((len(a) for a in arrays), default=1) or 1).to(device)


def _pad(rows: list[tuple], device: torch.device) -> dict[str, torch.Tensor]:
    """`interleave` rows -> left-padded items, actions (and times, when the rows have them)."""
    out = {"items": _left_pad([r[0] for r in rows], device), "actions": _left_pad([r[1] for r in rows], device)}
    if rows and rows[0][2] is not None:
        out["times"] = _left_pad([r[2] for r in rows], device)
    return out


class EventWindows:
    """Windows of events over users' sequences, batched as interleaved tokens with their labels. With `negatives`,
    training batches (an `rng` given) also hold that many items per labelled event that the user did not choose
    there (`HSTURanker.loss`'s engaged tower): `hard` of them drawn from `pools` (per user, (events, K) items the
    retriever proposed before each event; all of them without a `popularity`), the others by `popularity`
    ((N + 1,) weight per item)."""

    def __init__(
        self,
        items: list[np.ndarray],
        actions: list[np.ndarray],
        times: list[np.ndarray] | None,
        windows: list[Window],
        max_events: int,
        negatives: int = 0,
        popularity: np.ndarray | None = None,
        pools: list[np.ndarray] | None = None,
        hard: int = 0,
    ) -> None:
        self.items, self.actions, self.times, self.windows = items, actions, times, windows
        self.max_events, self.pools = max_events, pools
        self.negatives = negatives if popularity is not None or pools is not None else 0
        self.hard = 0 if pools is None else negatives if popularity is None else hard  # per event, from the pools
        if self.negatives and popularity is not None:
            self.cdf = np.cumsum(popularity[1:], dtype=np.float64) / popularity[1:].sum()

    def __len__(self) -> int:
        return len(self.windows)

    def n_batches(self, batch_size: int, **_) -> int:
        return -(-len(self.windows) // batch_size)

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(user, action) of every labelled event, in batch order (unshuffled)."""
        users = [np.full(w.end - w.label_from, w.user) for w in self.windows]
        acts = [self.actions[w.user][w.label_from : w.end] for w in self.windows]
        return (np.concatenate(users) if users else np.zeros(0, np.int64)), (
            np.concatenate(acts) if acts else np.zeros(0, np.int64)
        )

    def batch(self, rows: list[Window], device: torch.device, rng: np.random.Generator | None = None) -> dict:
        toks, labels = [], []
        for w in rows:
            u, s, e = w.user, w.start, w.end
            t = None if self.times is None else self.times[u]
            before = int(t[s - 1]) if t is not None and s > 0 else None
            toks.append(interleave(self.items[u][s:e], self.actions[u][s:e], None if t is None else t[s:e], before))
            lab = np.zeros(2 * (e - s), dtype=np.int64)
            lab[2 * (w.label_from - s) :: 2] = self.actions[u][w.label_from : e]
            labels.append(lab)
        out = {**_pad(toks, device), "labels": _left_pad(labels, device)}
        if rng is not None and self.negatives:
            out.update(self._negatives(rows, out["labels"].shape[1], rng, out.get("times"), device))
        return out

    def _negatives(self, rows: list[Window], width: int, rng, times, device) -> dict[str, torch.Tensor]:
        """Items drawn per labelled event (from its pool, or by popularity), at its item token's index of the
        left-padded batch; one equal to the event's own item is dropped (PAD)."""
        k = self.negatives
        slots = [k * (w.end - w.label_from) for w in rows]
        neg = np.zeros((len(rows), max(slots)), dtype=np.int64)
        cut = np.zeros_like(neg)
        events = np.zeros((len(rows), max(slots) // max(k, 1)), dtype=bool)  # which event groups are real
        for r, w in enumerate(rows):
            first = width - 2 * (w.end - w.start) + 2 * (w.label_from - w.start)  # first labelled item token
            at = np.repeat(first + 2 * np.arange(w.end - w.label_from), k)
            n = w.end - w.label_from
            drawn = np.empty((n, k), dtype=np.int64)
            if self.hard:  # the first `hard` of each event's slots from its pool, the others by popularity
                pool = self.pools[w.user][w.label_from : w.end]  # (events, K)
                drawn[:, : self.hard] = np.take_along_axis(pool, rng.integers(0, pool.shape[1], (n, self.hard)), 1)
            if self.hard < k:
                easy = np.searchsorted(self.cdf, rng.random((n, k - self.hard)), side="right") + 1
                drawn[:, self.hard :] = np.minimum(easy, len(self.cdf))
            drawn = drawn.reshape(-1)
            own = np.repeat(self.items[w.user][w.label_from : w.end], k)
            neg[r, : slots[r]] = np.where(drawn == own, 0, drawn)
            cut[r, : slots[r]] = at
            events[r, : w.end - w.label_from] = True
        cut_t = torch.from_numpy(cut).to(device)
        out = {"negatives": torch.from_numpy(neg).to(device), "negative_cut": cut_t,
               "negative_events": torch.from_numpy(events).to(device)}  # fmt: skip
        if times is not None:
            out["negative_times"] = times.gather(1, cut_t)
        return out

    def batches(
        self, batch_size: int, rng: np.random.Generator | None, device: torch.device, rank: int = 0, world: int = 1
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Batches of windows (shuffled by `rng`, with negatives; in order, without, when None)."""
        order = rng.permutation(len(self.windows)) if rng is not None else np.arange(len(self.windows))
        for s in range(0, len(order), batch_size):
            yield self.batch([self.windows[i] for i in order[s : s + batch_size]], device, rng)


def split_windows(lengths: list[int], holdout: int, max_events: int) -> dict[str, list[Window]]:
    """{"train", "valid", "test"} windows over sequences of these lengths (see the module docstring)."""
    out: dict[str, list[Window]] = {"train": [], "valid": [], "test": []}
    for u, n in enumerate(lengths):
        cut = max(0, n - 2 * holdout)  # events before it are training labels
        for end in range(cut, 0, -max_events):
            out["train"].append(Window(u, max(0, end - max_events), end, max(0, end - max_events)))
        for name, lo, hi in (("valid", cut, max(cut, n - holdout)), ("test", max(cut, n - holdout), n)):
            if hi > lo:
                out[name].append(Window(u, max(0, hi - max_events), hi, lo))
    return out


__all__ = ["EventWindows", "Window", "history_tokens", "interleave", "split_windows"]
