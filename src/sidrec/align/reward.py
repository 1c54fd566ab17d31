"""A reward model R(u, S) of a whole session S of items for user u, trained on explicit feedback.

OneRec (Deng et al., "OneRec: Unifying Retrieve and Rank with Generative Recommender and Preference Alignment",
arXiv 2502.18965, sec. 3.4): each session item attends to the user's history (target attention), the session's
items attend to each other (self-attention), and one sigmoid tower per feedback signal is trained with BCE.
Here the signals are the events' actions (MovieLens: the rating): a "liked" tower (action >= `reward.liked`,
BCE) and an action-regression tower (squared error, weight `reward.rating_weight`). Both read each item's state
after the two attentions; R(u, S) is the mean of the liked probabilities over S's items (OneRec sum-pools the
item states before its towers; a mean of per-item probabilities keeps the score in [0, 1] for any session size).

Items are their learned embedding plus a projection of their text vector, so an item the user never rated (a
generated one) is scored through what it is like. Sessions: consecutive items of a user's sequence
(`reward.session` per session), with the <= `reward.max_history` events before them as history.

    reward -> reward.pt (best validation AUC), reward_checkpoint.pt, reward_log.jsonl, reward.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidrec.data.batches import item_inputs
from sidrec.metrics import auc
from sidrec.models.generator import NEG
from sidrec.models.layers import DecoderBlock, EncoderBlock, init_weights

MAX_ACTION = 255  # data.split: actions are ints in 1..255


@dataclass(frozen=True)
class RewardShape:
    n_items: int
    text_dim: int = 0  # the item text vectors' width (0: items are their learned embedding only)
    max_history: int = 50
    d_model: int = 64
    n_heads: int = 2
    d_head: int = 32
    dropout: float = 0.1
    liked: int = 4
    rating_weight: float = 0.5


class RewardModel(nn.Module):
    def __init__(self, shape: RewardShape) -> None:
        super().__init__()
        self.shape = shape
        d = shape.d_model
        block = dict(d_model=d, n_heads=shape.n_heads, d_head=shape.d_head, d_ff=4 * d, dropout=shape.dropout)
        self.item = nn.Embedding(shape.n_items + 1, d, padding_idx=0)
        self.text = nn.Linear(shape.text_dim, d, bias=False) if shape.text_dim else None
        self.register_buffer("vectors", torch.zeros(shape.n_items + 1, max(shape.text_dim, 1)))
        self.action = nn.Embedding(MAX_ACTION + 1, d, padding_idx=0)
        self.pos = nn.Embedding(shape.max_history, d)  # events from the end
        self.history = EncoderBlock(**block, impl="math")
        self.session = DecoderBlock(**block, impl="math")  # self-attention over S, target attention to the history
        self.norm = nn.LayerNorm(d)
        self.liked_tower = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        self.action_tower = nn.Linear(d, 1)
        self.apply(init_weights)

    def set_text(self, vectors: np.ndarray) -> RewardModel:
        """The items' text vectors (N, D), row i for item_idx i + 1."""
        self.vectors[1:] = torch.tensor(np.asarray(vectors, dtype=np.float32))
        return self

    def embed(self, items: Tensor) -> Tensor:
        e = self.item(items)
        return e if self.text is None else e + self.text(self.vectors[items])

    def forward(self, items: Tensor, actions: Tensor, session: Tensor) -> tuple[Tensor, Tensor]:
        """History (B, H) item_idx and actions, left-padded with 0; sessions (B, m) item_idx (0: no item).
        Returns the liked logits and the predicted actions, (B, m) each."""
        h = items.shape[1]
        pos = self.pos(torch.arange(h - 1, -1, -1, device=items.device).clamp(max=self.shape.max_history - 1))
        x = self.embed(items) + self.action(actions) + pos
        history_bias = torch.where(items == 0, NEG, 0.0)[:, None, None, :]
        memory = self.history(x, history_bias)
        session_bias = torch.where(session == 0, NEG, 0.0)[:, None, None, :]
        y, _ = self.session(
            self.embed(session), self.session.cross_attn.keys_values(memory), history_bias, session_bias
        )
        y = self.norm(y)
        return self.liked_tower(y)[..., 0], self.action_tower(y)[..., 0]

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        liked, value = self(batch["items"], batch["actions"], batch["session"])
        real, labels = batch["session"] > 0, batch["labels"].float()
        bce = F.binary_cross_entropy_with_logits(liked[real].float(), (labels[real] >= self.shape.liked).float())
        return bce + self.shape.rating_weight * F.mse_loss(value[real].float(), labels[real])

    @torch.no_grad()
    def score(self, items: Tensor, actions: Tensor, sessions: Tensor) -> Tensor:
        """R(u, S) for N sessions per user: histories (B, H), sessions (B, N, m) -> (B, N), the mean liked
        probability over each session's items."""
        b, n, m = sessions.shape
        liked, _ = self(items.repeat_interleave(n, 0), actions.repeat_interleave(n, 0), sessions.reshape(b * n, m))
        real = (sessions.reshape(b * n, m) > 0).float()
        p = torch.sigmoid(liked.float()) * real
        return (p.sum(1) / real.sum(1).clamp(min=1)).reshape(b, n)

    def config_dict(self) -> dict:
        return asdict(self.shape)


class Session(NamedTuple):
    user: int
    start: int  # the session is items[user][start:start + m]; its history the events before start


class SessionSet:
    """Sessions of a user's items with their actions (labels) and the events before them (history)."""

    def __init__(
        self, items: list[np.ndarray], actions: list[np.ndarray], sessions: list[Session], m: int, max_history: int
    ) -> None:
        self.items, self.actions, self.sessions, self.m, self.max_history = items, actions, sessions, m, max_history

    def __len__(self) -> int:
        return len(self.sessions)

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batch(self, rows: np.ndarray, device: torch.device | str) -> dict[str, Tensor]:
        picked = [self.sessions[i] for i in rows]
        hist = [self.items[u][max(0, s - self.max_history) : s] for u, s in picked]
        acts = [self.actions[u][max(0, s - self.max_history) : s] for u, s in picked]
        session = np.zeros((len(picked), self.m), dtype=np.int64)
        labels = np.zeros_like(session)
        for row, (u, s) in enumerate(picked):
            part = self.items[u][s : s + self.m]
            session[row, : len(part)], labels[row, : len(part)] = part, self.actions[u][s : s + len(part)]
        return {
            "items": item_inputs(hist, self.max_history).to(device),
            "actions": item_inputs(acts, self.max_history).to(device),
            "session": torch.from_numpy(session).to(device),
            "labels": torch.from_numpy(labels).to(device),
        }

    def batches(self, batch_size: int, rng: np.random.Generator | None, device: torch.device | str):
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        for s in range(0, len(order), batch_size):
            yield self.batch(order[s : s + batch_size], device)


def session_splits(lengths: list[int], m: int) -> dict[str, list[Session]]:
    """Sessions over leave-one-out sequences of these lengths, none touching the validation and test items (the
    last two): per user, the last m items before them validate; the sessions of m before those train, counted back
    from there (the first < m items of a sequence start no session)."""
    out: dict[str, list[Session]] = {"train": [], "valid": []}
    for u, n in enumerate(lengths):
        end = n - 2  # the retriever's training part
        if end - m >= 1:
            out["valid"].append(Session(u, end - m))
        out["train"] += [Session(u, s) for s in range(end - 2 * m, -1, -m)]  # back from the validation session
    return out


@torch.no_grad()
def session_auc(model: RewardModel, sessions: SessionSet, device: torch.device) -> dict[str, float]:
    """AUC of the liked logit against action >= liked, and the action's RMSE, over the sessions' items."""
    model.eval()
    logits, values, labels = [], [], []
    for batch in sessions.batches(256, None, device):
        liked, value = model(batch["items"], batch["actions"], batch["session"])
        real = batch["session"] > 0
        logits.append(liked[real].float().cpu().numpy())
        values.append(value[real].float().cpu().numpy())
        labels.append(batch["labels"][real].cpu().numpy())
    logit, value, label = np.concatenate(logits), np.concatenate(values), np.concatenate(labels)
    rmse = float(np.sqrt(np.mean((value - label) ** 2))) if len(label) else float("nan")
    liked = label >= model.shape.liked
    share = round(float(np.mean(liked)), 6) if len(label) else float("nan")
    return {"auc": round(auc(logit, liked), 6), "rmse": round(rmse, 6), "items": len(label), "liked_share": share}


__all__ = ["MAX_ACTION", "RewardModel", "RewardShape", "Session", "SessionSet", "session_auc", "session_splits"]
