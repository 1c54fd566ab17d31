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
by `rating_weight`), and engaged (which item the user chose). Logs of explicit feedback such as MovieLens hold no
impressions, so `negatives` items per event stand in for items shown and not chosen (drawn from the retriever's
top items before that event, by popularity, or half each): they are candidate tokens at that event's position, and the
engaged tower is trained as a softmax over the chosen item and them. A candidate's score is its engaged logit +
log P(liked): the chance the user picks it (up to a constant per history) and likes it.
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
    negatives: int = 4  # items per labelled event the user did not choose, for the engaged tower (0: no such tower)


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
        """History tokens and candidate tokens -> their outputs ((B, T, d), (B, C, d) or None).

        items / actions / times: (B, T) left-padded history tokens (`examples.interleave`): an item token has its
        item and action PAD, an action token the reverse; each sees the tokens before it and itself. cand: (B, C)
        candidate items (PAD = an empty slot), each seeing the history tokens before its position and itself, no
        other candidate (`HSTULayer.with_candidates`): cut (B, C) their positions, None for all right after the
        history; cand_times: their times, (B, C) with cut, else (B,) (default: the last history token's)."""
        t = items.shape[1]
        keys = (items != PAD) | (actions != PAD)  # (B, T) real history tokens
        allowed = (torch.ones(t, t, dtype=torch.bool, device=items.device).tril()[None] & keys[:, None, :])[:, None]
        x = self.drop(self.item(items) + self.action(actions.clamp(0, ACTION_VALUES - 1)))
        buckets = time_buckets(times) if self.shape.time_bias and times is not None else None
        if cand is None:
            for layer in self.layers:
                x = layer(x, allowed, buckets)
            return self.norm(x), None
        xc = self.drop(self.item(cand))
        cand_buckets = None
        if buckets is not None:
            at = times[:, -1] if cand_times is None else cand_times  # (B,) or (B, C)
            cand_buckets = bucketize(at[..., None] - (times if at.dim() == 1 else times[:, None, :]))
        for layer in self.layers:
            x, xc = layer.with_candidates(x, xc, allowed, keys, buckets, cand_buckets, cut)
        return self.norm(x), self.norm(xc)

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(..., d) item-token outputs -> (liked logit, predicted action, engaged logit), each (...)."""
        return self.liked_head(h).squeeze(-1), self.action_head(h).squeeze(-1), self.engage_head(h).squeeze(-1)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """batch: items, actions, labels (B, T) (the event's action at its item token where it is a training label,
        else 0), optionally times, and negatives / negative_cut / negative_times (B, L x k): k items the user did
        not choose per labelled event, at its item token (`examples.EventWindows`), with negative_events (B, L) the
        real events. Mean BCE of the liked tower + rating_weight x mean squared action error + the engaged tower's
        cross-entropy of the chosen item among it and its k others."""
        h, hn = self.encode(batch["items"], batch["actions"], batch.get("times"), batch.get("negatives"),
                            batch.get("negative_cut"), batch.get("negative_times"))  # fmt: skip
        labels = batch["labels"]
        labelled = h[labels > 0]
        liked, value = self.liked_head(labelled).squeeze(-1), self.action_head(labelled).squeeze(-1)
        y = labels[labels > 0].float()
        loss = F.binary_cross_entropy_with_logits(liked.float(), (y >= self.shape.liked).float())
        loss = loss + self.shape.rating_weight * F.mse_loss(value.float(), y)
        if hn is None:
            return loss
        neg, k = batch["negatives"], self.shape.negatives
        b, n = neg.shape[0], neg.shape[1] // k
        at = batch["negative_cut"][:, ::k]  # (B, L) each event's item token
        chosen = self.engage_head(h.gather(1, at[..., None].expand(-1, -1, h.shape[-1]))).float()  # (B, L, 1)
        others = self.engage_head(hn).squeeze(-1).float().view(b, n, k).masked_fill(neg.view(b, n, k) == PAD, -1e9)
        logits = torch.cat([chosen, others], -1)[batch["negative_events"]]  # (events, 1 + k)
        return loss + F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))

    def score(
        self, items: Tensor, actions: Tensor, candidates: Tensor, times: Tensor | None = None, now: Tensor | None = None
    ) -> Tensor:
        """Every candidate of each history in one pass. items / actions / times: (B, T) history tokens,
        left-padded (`examples.history_tokens`); candidates: (B, C) item_idx; now: (B,) the candidates' time (the
        last event's). Returns (B, C): the engaged logit (a log-probability of choosing the item among others, up
        to a constant per history; trained when `negatives` > 0) + log P(liked)."""
        _, h = self.encode(items, actions, times, candidates, None, now)
        liked, _, engaged = self.heads(h)
        out = F.logsigmoid(liked.float())
        return out + engaged.float() if self.shape.negatives else out


RANKERS: dict[str, tuple[type[nn.Module], type]] = {"hstu": (HSTURanker, RankerShape)}  # rank.name -> class, shape

__all__ = ["RANKERS", "HSTURanker", "RankerShape"]
