"""Repeat / explore mixture over a causal sequence model: when does a user come back, and to which item.

After RepeatNet (Ren, Chen, Li, Ren, Ma & de Rijke, "RepeatNet: A Repeat Aware Neural Recommendation
Machine for Session-based Recommendation", AAAI 2019). The next item's distribution is a mixture

    p(i | history) = P(repeat) * P_r(i)   for i in the history
                   = P(explore) * P_e(i)  otherwise,

where P_e is the host model's own softmax over the items *not* in the history (its scores with the
history's items masked), P_r a pointer over the history's positions (summed over an item's
occurrences, so frequency counts) and P(repeat) a gate. The likelihood of a target y separates:

    -log p(y) = BCE(gate, [y in history]) + [y in history] * CE_r(y) + [y not in history] * CE_e(y),

so the host trains its explore scores on the targets that are new to the user, with the history's
items left out of its softmax, and this head trains the gate and the pointer. Nothing is switched per
dataset: on logs without repeats (the Amazon 5-core sets) the gate learns P(repeat) ~ 0, so history
items sink below every new item; on logs with repeats (Yelp) it learns when and where users return.

Deviations from RepeatNet: the host's causal Transformer outputs replace its GRU encoder; the
pointer's score of history position j seen from position t is a scaled dot product of their projected
outputs (RepeatNet: additive attention) plus a learned recency bias per distance t - j; the gate reads
the output at t, the pointer's context vector, and two features of the history so far (the share of
positions that repeat an earlier item, and 1 / its length).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAD = 0
NEG = -1e9  # finite: a query with no valid key (left padding) gets a uniform row, never NaN
MODES = ("mixture", "none")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown model.repeat '{mode}'. Known: {', '.join(MODES)} (mixture: RepeatNet-style)")


class Pointer(NamedTuple):
    logp: Tensor  # (B, T, T) log-softmax over history positions j (keys) for each query position t
    gate: Tensor  # (B, T) logit of P(repeat) at each query position


def seen_items(inputs: Tensor) -> Tensor:
    """(B, T) inputs -> (B, T, T): the items position t has seen (inputs[:, :t+1]), PAD after them."""
    t = inputs.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=inputs.device).tril()
    return inputs[:, None, :].expand(-1, t, -1).masked_fill(~causal, PAD)


def repeat_targets(inputs: Tensor, targets: Tensor) -> Tensor:
    """(B, T) bool: position t's target is an item of inputs[:, :t+1] (a repeat); False where targets is PAD."""
    hit = (seen_items(inputs) == targets[..., None]).any(-1)
    return hit & (targets != PAD)


def in_rows(items: Tensor, seen: Tensor) -> Tensor:
    """(S,) item ids, (P, T) item ids per row (PAD = none) -> (P, S) bool: items[s] is in row p of seen."""
    uniq, inverse = torch.unique(items, return_inverse=True)  # sorted
    at = torch.searchsorted(uniq, seen).clamp(max=uniq.numel() - 1)  # (P, T)
    hit = ((uniq[at] == seen) & (seen != PAD)).float()
    found = torch.zeros(seen.shape[0], uniq.numel(), device=items.device).scatter_add_(1, at, hit)
    return (found > 0)[:, inverse]


def seen_before(seen: Tensor) -> Tensor:
    """(P, T) item ids per row -> (P, T) bool: the item at [p, j] occurs earlier in row p (a repeated visit)."""
    t = seen.shape[1]
    earlier = torch.ones(t, t, dtype=torch.bool, device=seen.device).tril(-1)  # [j, i]: i < j
    return ((seen[:, :, None] == seen[:, None, :]) & earlier).any(-1)


class RepeatHead(nn.Module):
    """The gate and the pointer of the repeat / explore mixture, over a causal model's outputs (B, T, d)."""

    N_FEATURES = 2

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.recency = nn.Parameter(torch.zeros(max_len))  # bias of history position j seen from t, by t - j
        self.gate = nn.Linear(2 * d_model + self.N_FEATURES, 1)
        self.max_len = max_len
        # P_e = softmax(explore scores / temperature); 1 as trained. `evaluate` may choose another on validation
        # (eval.explore_temperature): a host whose scores overfit the training targets is overconfident.
        self.register_buffer("temperature", torch.tensor(1.0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "temperature", torch.tensor(1.0))  # weights saved before the buffer existed
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def features(self, inputs: Tensor) -> Tensor:
        """(B, T) -> (B, T, 2): the share of the positions <= t that repeat an earlier item, 1 / their count."""
        t = inputs.shape[1]
        valid = inputs != PAD
        earlier = torch.ones(t, t, dtype=torch.bool, device=inputs.device).tril(-1)  # j' < j
        same = (inputs[:, :, None] == inputs[:, None, :]) & earlier & valid[:, None, :]  # (B, T, T) [j, j']
        repeats = (same.any(-1) & valid).float().cumsum(1)  # (B, T)
        count = valid.float().cumsum(1).clamp(min=1)
        return torch.stack([repeats / count, 1.0 / count], -1)

    def forward(self, h: Tensor, inputs: Tensor) -> Pointer:
        """h (B, T, d) causal outputs (position t has seen inputs[:, :t+1]), inputs (B, T) left-padded item_idx."""
        h = h.float()
        t = inputs.shape[1]
        if t > self.max_len:
            raise ValueError(f"input length {t} exceeds the repeat head's max_len {self.max_len}")
        q, k = self.query(h), self.key(h)  # (B, T, d)
        logits = q @ k.transpose(1, 2) * q.shape[-1] ** -0.5  # (B, T, T) [t, j]
        pos = torch.arange(t, device=h.device)
        distance = (pos[:, None] - pos[None, :]).clamp(min=0)  # (T, T)
        logits = logits + self.recency[distance]
        causal = pos[None, :] <= pos[:, None]
        allowed = causal[None] & (inputs != PAD)[:, None, :]
        logp = logits.masked_fill(~allowed, NEG).log_softmax(-1)  # (B, T, T)
        context = (logp.exp() * allowed) @ h  # (B, T, d)
        gate = self.gate(torch.cat([h, context, self.features(inputs)], -1)).squeeze(-1)  # (B, T)
        return Pointer(logp, gate)

    def loss(self, h: Tensor, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(the head's mean loss over target positions, (B, T) bool: which targets are repeats).

        Loss per target position: BCE of the gate against "the target is in the history so far", plus,
        for a repeat, the pointer's cross-entropy (log of the summed probability of the target's positions)."""
        keep = targets != PAD
        repeat = repeat_targets(inputs, targets)
        if not keep.any():
            return h.sum() * 0.0, repeat
        out = self(h, inputs)
        bce = F.binary_cross_entropy_with_logits(out.gate[keep], repeat[keep].float(), reduction="sum")
        match = (inputs[:, None, :] == targets[..., None]) & (inputs != PAD)[:, None, :]  # (B, T, T) [t, j]
        pointer = torch.logsumexp(out.logp.masked_fill(~match, NEG), -1)  # (B, T) log P_r(target)
        ce = -pointer[repeat].sum()
        return (bce + ce) / keep.sum(), repeat

    def mix(self, explore: Tensor, h: Tensor, inputs: Tensor) -> Tensor:
        """Mixture log-probabilities of every item from the last position.

        Args:
            explore: (B, N+1) the host's scores of every item (column 0, padding, is ignored); a softmax of
                them over the items not in the history is P_e.
            h: (B, T, d) the host's outputs; inputs: (B, T) left-padded histories.
        Returns:
            (B, N+1) log p(item); column 0 is -inf.
        """
        out = self(h, inputs)
        gate = out.gate[:, -1]  # (B,)
        pointer = out.logp[:, -1].exp() * (inputs != PAD)  # (B, T) P_r over positions
        explore = explore.float() / self.temperature
        history = torch.zeros_like(explore, dtype=torch.bool).scatter_(1, inputs, True)
        history[:, PAD] = True  # never an explore item
        logp_e = explore.masked_fill(history, float("-inf")).log_softmax(-1)
        p_r = torch.zeros_like(explore).scatter_add_(1, inputs, pointer)
        logp_r = p_r.clamp(min=1e-30).log()
        mixed = torch.where(history, F.logsigmoid(gate)[:, None] + logp_r, F.logsigmoid(-gate)[:, None] + logp_e)
        mixed[:, PAD] = float("-inf")
        return mixed


def last_target_loss(head: RepeatHead, states: Tensor, items: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """The head's loss for one target per row after the whole history (the SID generators' examples).

    Args:
        states: (B, T, d) one state per history item; items: (B, T) left-padded item_idx; target: (B,) item_idx.
    Returns:
        (the mean loss over rows, (B,) bool: the targets that are new to their user, which the generator's
        own loss keeps).
    """
    targets = torch.zeros_like(items)
    targets[:, -1] = target
    loss, repeat = head.loss(states, items, targets)
    return loss, ~repeat[:, -1]


__all__ = [
    "MODES",
    "last_target_loss",
    "Pointer",
    "RepeatHead",
    "check_mode",
    "in_rows",
    "repeat_targets",
    "seen_items",
]
