"""A generative ranker: HSTU's ranking setting, predicting the user's action on a candidate item from their events.

Zhai et al., "Actions Speak Louder than Words: Trillion-Parameter Sequential Transducers for Generative
Recommendations", ICML 2024, sec. 2.2: ranking is sequential transduction over interleaved item and action tokens
(Phi_0, a_0, Phi_1, a_1, ...); the output at item token Phi_i predicts the action a_i. The layers are HSTU's
(`models.hstu.HSTULayer`: pointwise SiLU attention, relative bias by position and, with `time_bias`, by time).

Tokens: every history event gives an item token (its item's embedding), then an action token (its action's
embedding, e.g. the rating). Training: each item token sees the tokens before it and itself, and its output
predicts its own event's action, so one pass labels every event of a window. Ranking C candidates for one
history: the C candidate tokens come after the history, all at the position the next item token would take, each
seeing the whole history and itself but not the other candidates (target-aware attention, as the paper's
M-FALCON batches candidates): one pass scores every candidate.

Times: an item token carries the time of the event before it (the candidate's own time is unknown when it is
ranked; the last event's time stands in), an action token its event's time; the time bias reads the buckets of
their differences (`models.hstu.time_buckets`).

Heads, each a two-layer SiLU MLP on the item token's output (one tower per feedback signal, as OneRec's reward
model has): liked (logit of action >= `liked`, binary cross-entropy), the action's value (squared error weighted
by `rating_weight`), and engaged (whether the user chose the item at all). Logs of explicit feedback such as
MovieLens hold no impressions, so `negatives` items per event stand in for items shown and not chosen (drawn
from the retriever's top items before that event, or by popularity): they are candidate tokens at that event's
position, labelled 0, the events 1. A candidate's score is
log P(engaged) + log P(liked): the chance the user picks it and likes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidrec.models.hstu import ACTION_VALUES, HSTULayer, bucketize, time_buckets
from sidrec.models.layers import Dropout, init_weights

PAD = 0


@dataclass(frozen=True)
class RankerShape:
    """Everything needed to rebuild a ranker (saved in ranker.pt)."""

    n_items: int
    max_events: int = 50  # history events read (2 tokens each)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_head: int = 32
    dropout: float = 0.2
    time_bias: bool = True
    liked: int = 4  # an action >= liked is a positive for the liked tower
    rating_weight: float = 0.5
    negatives: int = 1  # items per labelled event the user did not choose, for the engaged tower (0: no such tower)


def _tower(d: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 1))


class HSTURanker(nn.Module):
    """Interleaved item / action tokens through HSTU layers; liked and action towers on the item tokens."""

    def __init__(self, shape: RankerShape) -> None:
        super().__init__()
        self.shape = shape
        d = shape.d_model
        self.item = nn.Embedding(shape.n_items + 1, d, padding_idx=PAD)
        self.action = nn.Embedding(ACTION_VALUES, d, padding_idx=PAD)
        self.layers = nn.ModuleList(
            HSTULayer(
                d_model=d,
                n_heads=shape.n_heads,
                d_head=shape.d_head,
                max_len=2 * shape.max_events,
                dropout=shape.dropout,
                time_bias=shape.time_bias,
            )  # fmt: skip
            for _ in range(shape.n_layers)
        )
        self.drop = Dropout(shape.dropout)
        self.norm = nn.LayerNorm(d)
        self.liked_head, self.action_head, self.engage_head = _tower(d), _tower(d), _tower(d)
        self.apply(init_weights)
        with torch.no_grad():  # an item token adds the PAD action, a candidate none: both must be zero
            self.item.weight[PAD].zero_()
            self.action.weight[PAD].zero_()

    @property
    def events(self) -> tuple[str, ...]:
        """The event columns it reads beside the items."""
        return ("times", "actions") if self.shape.time_bias else ("actions",)

    def config_dict(self) -> dict:
        return asdict(self.shape)

    def encode(
        self,
        items: Tensor,
        actions: Tensor,
        times: Tensor | None = None,
        cand: Tensor | None = None,
        cut: Tensor | None = None,
        cand_times: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """History tokens and candidate tokens -> their outputs ((B, T, d), (B, S, d) or None).

        items / actions / times: (B, T) left-padded history tokens (`examples.interleave`): an item token has its
        item and action PAD, an action token the reverse; each sees the tokens before it and itself. cand: (B, S)
        candidate items (PAD = an empty slot), each placed at position cut (B, S) of the history: it sees the history
        tokens before that position and itself, no other candidate; cand_times: (B, S) their times."""
        b, t = items.shape
        dev = items.device
        keys = (items != PAD) | (actions != PAD)  # (B, T) real history tokens
        allowed = torch.ones(t, t, dtype=torch.bool, device=dev).tril()[None] & keys[:, None, :]  # (B, T, T)
        x = self.item(items) + self.action(actions.clamp(0, ACTION_VALUES - 1))
        positions, all_times = torch.arange(t, device=dev), times
        if cand is not None:
            s_ = cand.shape[1]
            sees = (torch.arange(t, device=dev)[None, None, :] < cut[:, :, None]) & keys[:, None, :]  # (B, S, T)
            own = torch.eye(s_, dtype=torch.bool, device=dev)[None].expand(b, s_, s_)
            allowed = torch.cat([torch.cat([allowed, allowed.new_zeros(b, t, s_)], 2), torch.cat([sees, own], 2)], 1)
            x = torch.cat([x, self.item(cand)], 1)
            positions = torch.cat([positions.expand(b, t), cut], 1)
            if times is not None:
                all_times = torch.cat([times, cand_times], 1)
        x = self.drop(x)
        buckets = time_buckets(all_times) if self.shape.time_bias and all_times is not None else None
        for layer in self.layers:
            x = layer(x, allowed[:, None], buckets, positions)
        x = self.norm(x)
        return x[:, :t], (x[:, t:] if cand is not None else None)

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(..., d) item-token outputs -> (liked logit, predicted action, engaged logit), each (...)."""
        return self.liked_head(h).squeeze(-1), self.action_head(h).squeeze(-1), self.engage_head(h).squeeze(-1)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """batch: items, actions, labels (B, T) (the event's action at its item token where it is a training label,
        else 0), optionally times, and negatives / negative_cut / negative_times (B, S): items the user did not
        choose, each at its event's item token. Mean BCE of the liked tower + rating_weight x mean squared action
        error + the engaged tower's mean BCE (labelled events 1, negatives 0)."""
        h, hn = self.encode(batch["items"], batch["actions"], batch.get("times"), batch.get("negatives"),
                            batch.get("negative_cut"), batch.get("negative_times"))  # fmt: skip
        labels = batch["labels"]
        liked, value, engaged = self.heads(h[labels > 0])
        y = labels[labels > 0].float()
        loss = F.binary_cross_entropy_with_logits(liked.float(), (y >= self.shape.liked).float())
        loss = loss + self.shape.rating_weight * F.mse_loss(value.float(), y)
        if hn is None:
            return loss
        negative = self.engage_head(hn[batch["negatives"] != PAD]).squeeze(-1).float()
        logits = torch.cat([engaged.float(), negative])
        target = torch.cat([torch.ones_like(engaged, dtype=torch.float32), torch.zeros_like(negative)])
        return loss + F.binary_cross_entropy_with_logits(logits, target)

    def score(
        self, items: Tensor, actions: Tensor, candidates: Tensor, times: Tensor | None = None, now: Tensor | None = None
    ) -> Tensor:
        """Every candidate of each history in one pass. items / actions / times: (B, T) history tokens,
        left-padded (`examples.history_tokens`); candidates: (B, C) item_idx; now: (B,) the candidates' time (the
        last event's). Returns (B, C): log P(engaged) + log P(liked) (the engaged term when `negatives` trained it).
        The same as `encode` with every candidate cut at T, with C x T candidate scores per layer
        (`HSTULayer.with_candidates`)."""
        t = items.shape[1]
        keys = (items != PAD) | (actions != PAD)
        allowed = (torch.ones(t, t, dtype=torch.bool, device=items.device).tril()[None] & keys[:, None, :])[:, None]
        x = self.item(items) + self.action(actions.clamp(0, ACTION_VALUES - 1))
        xc = self.item(candidates)
        buckets = cand_buckets = None
        if self.shape.time_bias and times is not None:
            buckets = time_buckets(times)
            cand_buckets = bucketize((times[:, -1] if now is None else now)[:, None] - times)
        for layer in self.layers:
            x, xc = layer.with_candidates(x, xc, allowed, keys, buckets, cand_buckets)
        liked, _, engaged = self.heads(self.norm(xc))
        out = F.logsigmoid(liked.float())
        return out + F.logsigmoid(engaged.float()) if self.shape.negatives else out


RANKERS: dict[str, tuple[type[nn.Module], type]] = {"hstu": (HSTURanker, RankerShape)}  # rank.name -> class, shape

__all__ = ["RANKERS", "HSTURanker", "RankerShape"]
