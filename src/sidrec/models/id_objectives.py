"""What the item-ID baselines (SASRec, HSTU) share: the shape, the embeddings, the three training objectives.

Both models read left-padded item_idx sequences (0 = padding, items 1..N), add a learned position
embedding counted from the end of the sequence (0 = the most recent item; the same as SASRec's
absolute positions over a fixed-length left-padded window), run their own causal layers
(`hidden`), and score items by a dot product with the same (tied) item embedding table, or, with
`temperature` > 0, by the cosine similarity divided by the temperature (as HSTU's reference code
does: both sides L2-normalised, temperature 0.05).

Objectives (`IDShape.loss`), each averaged over the non-padding target positions:
- `ce`: full softmax cross-entropy over all N items (Klenitskiy & Vasilev, "Turning Dross Into Gold
  Loss: is BERT4Rec really better than SASRec?", RecSys 2023, show it beats the original BCE).
- `sampled`: sampled softmax over the target and `negatives` uniform items shared by the whole batch,
  in the simple form without the logQ correction (uniform sampling makes it a constant anyway);
  a negative that equals the position's target is masked out.
- `bce`: the original SASRec objective: one uniform random negative per position (re-drawn when it
  equals the target; SASRec also avoids the user's other items, which we do not), binary
  cross-entropy on the positive and the negative logit.

With `repeat=mixture` (`models.repeat`), the scores above are the explore part of a repeat / explore
mixture: each objective then leaves the items already in the history out of its softmax (or its
negatives) and skips the targets that repeat a history item, which the repeat head learns instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidrec.models.layers import Dropout, sampled_softmax_loss
from sidrec.models.repeat import RepeatHead, check_mode, in_rows, seen_items

PAD = 0
OBJECTIVES = ("ce", "sampled", "bce")


@dataclass(frozen=True)
class IDScoring:
    """`model.<name>.*` of the item-ID models (sasrec, hstu, gru4rec): how items are scored and trained."""

    loss: str = "ce"  # ce (full softmax over all items) | sampled (shared negatives) | bce (SASRec's, one negative)
    negatives: int = 2048  # loss=sampled: uniform negatives shared by the batch
    temperature: float = 0.03  # 0 = dot-product scores; > 0 = cosine / temperature (HSTU's code: 0.05)
    # each item's vector = a learned projection of its text embedding + a learned ID part that starts at zero;
    # items with no training interaction stay out of the training softmax, so a cold item keeps its text's vector
    text_items: bool = False


def sampled_only(own: IDScoring) -> tuple[str, ...]:
    """The `negatives` setting is read only with loss=sampled (an `unread` entry of the item-ID models)."""
    return () if own.loss == "sampled" else ("negatives",)


@dataclass(frozen=True)
class IDShape:
    """Everything needed to rebuild an item-ID model (saved in model.pt)."""

    n_items: int  # N real items, item_idx 1..N
    max_len: int = 20  # longest input sequence (data.max_history)
    d_model: int = 64
    n_heads: int = 1
    d_head: int = 64
    d_ff: int = 256  # SASRec's MLP width; HSTU has no MLP
    n_layers: int = 2
    dropout: float = 0.2
    loss: str = "ce"
    negatives: int = 256
    attention: str = "math"  # SASRec: math | sdpa (layers.attend); HSTU has its own pointwise attention
    temperature: float = 0.0  # 0: dot-product scores; > 0: cosine similarity / temperature (HSTU's code: 0.05)
    hstu_ffn: bool = False  # HSTU only: add a pointwise MLP (width d_ff) after each layer
    time_bias: bool = False  # HSTU only: relative attention bias by time bucket (reads the events' `times`)
    actions: bool = False  # HSTU only: action embeddings added to the items' (reads the events' `actions`)
    repeat: str = "none"  # mixture: a repeat / explore mixture over the scores (models.repeat) | none
    text_items: bool = False  # item vectors from the item text (`IDScoring.text_items`)
    text_dim: int = 0  # text_items: the text embedding's width (set from the run's embeddings)


def check_objective(loss: str, negatives: int, model: str) -> None:
    if loss not in OBJECTIVES:
        raise ValueError(
            f"unknown model.{model}.loss '{loss}'. Known: {', '.join(OBJECTIVES)} (e.g. model.{model}.loss=ce)"
        )
    if loss == "sampled" and negatives < 1:
        raise ValueError(f"model.{model}.negatives must be >= 1 with loss=sampled, got {negatives}")


class FullSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of `h @ table.T` (column PAD excluded) against `y`, in row chunks.

    Same value and gradients as `F.cross_entropy` over the full (M, N+1) logits, but the logits
    are never materialised whole: the forward keeps only each row's log-sum-exp, the backward
    recomputes one chunk of logits at a time. On a CPU this is memory-bound work, and chunks that
    stay in cache make the SASRec / HSTU step about 1.5x faster (bf16 matmuls when `low`, softmax
    arithmetic always in fp32).
    """

    CHUNK = 128

    @staticmethod
    def forward(
        ctx, h: Tensor, table: Tensor, y: Tensor, low: bool, seen: Tensor | None = None, exclude: Tensor | None = None
    ) -> Tensor:
        """`seen` (M, S) item ids left out of each row's softmax (PAD = none; never the row's target); `exclude`
        (N+1,) bool, items left out of every row's softmax."""
        exclude = torch.zeros(table.shape[0], dtype=torch.bool, device=h.device) if exclude is None else exclude
        seen = torch.zeros(h.shape[0], 1, dtype=torch.long, device=h.device) if seen is None else seen
        dtype = torch.bfloat16 if low else torch.float32
        hc, tc = h.to(dtype), table.to(dtype)
        lse = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
        for s in range(0, h.shape[0], FullSoftmaxCE.CHUNK):
            logits = (hc[s : s + FullSoftmaxCE.CHUNK] @ tc.T).float()
            logits[:, PAD] = float("-inf")
            logits.scatter_(1, seen[s : s + FullSoftmaxCE.CHUNK], float("-inf"))
            logits.masked_fill_(exclude, float("-inf"))
            lse[s : s + FullSoftmaxCE.CHUNK] = torch.logsumexp(logits, 1)
        positive = (hc[:, None, :] @ tc[y][:, :, None]).float().flatten()  # (M,) same rounding as logits
        ctx.save_for_backward(hc, tc, y, lse, seen, exclude)
        return (lse - positive).mean()

    @staticmethod
    def backward(ctx, grad: Tensor):
        hc, tc, y, lse, seen, exclude = ctx.saved_tensors
        m, chunk = hc.shape[0], FullSoftmaxCE.CHUNK
        grad_h = torch.empty(hc.shape, dtype=torch.float32, device=hc.device)
        grad_t = torch.zeros(tc.shape, dtype=torch.float32, device=hc.device)
        rows = torch.arange(chunk, device=hc.device)
        for s in range(0, m, chunk):
            logits = (hc[s : s + chunk] @ tc.T).float()
            logits[:, PAD] = float("-inf")
            logits.scatter_(1, seen[s : s + chunk], float("-inf"))
            logits.masked_fill_(exclude, float("-inf"))
            p = logits.sub_(lse[s : s + chunk, None]).exp_()  # softmax
            p[rows[: p.shape[0]], y[s : s + chunk]] -= 1.0
            p = p.mul_(grad / m).to(tc.dtype)
            grad_h[s : s + chunk] = (p @ tc).float()
            grad_t += (p.T @ hc[s : s + chunk]).float()
        return grad_h, grad_t, None, None, None, None


def sequence_loss(
    hidden: Tensor,
    targets: Tensor,
    table: Tensor,
    objective: str,
    negatives: int,
    seen: Tensor | None = None,
    exclude: Tensor | None = None,
) -> Tensor:
    """Next-item loss at every position whose target is not padding.

    Args:
        hidden: (B, T, d) model outputs; position t predicts targets[:, t].
        targets: (B, T) item_idx, 0 where there is nothing to predict.
        table: (N+1, d) the item embedding table (row 0 = padding, never a valid answer).
        objective: ce | sampled | bce.
        negatives: shared negatives per batch (sampled only).
        seen: (B, T, S) items left out of position t's softmax or negatives (PAD = none), e.g. the history so
            far (the explore part of a repeat mixture); none may be that position's target.
        exclude: (N+1,) bool, items in no softmax and never a negative (items absent from training).
    Returns:
        the scalar mean loss (0 when no position has a target).
    """
    keep = targets != PAD
    h, y = hidden[keep].float(), targets[keep]  # (M, d), (M,)
    if y.numel() == 0:
        return hidden.sum() * 0.0
    table = table.float()
    n_items = table.shape[0] - 1
    own = seen[keep] if seen is not None else torch.zeros(len(y), 1, dtype=torch.long, device=y.device)  # (M, S)
    exclude = torch.zeros(n_items + 1, dtype=torch.bool, device=y.device) if exclude is None else exclude
    if objective == "ce":
        low = torch.is_autocast_enabled(h.device.type)  # bf16 matmuls, fp32 softmax
        with torch.autocast(h.device.type, enabled=False):
            return FullSoftmaxCE.apply(h, table, y, low, own, exclude)
    positive = (h * table[y]).sum(-1)  # (M,)
    if objective == "sampled":
        neg = torch.randint(1, n_items + 1, (negatives,), device=h.device)  # (S,)
        negative = (h @ table[neg].T).masked_fill(in_rows(neg, own) | exclude[neg], float("-inf"))
        return sampled_softmax_loss(positive, negative, neg, y)
    if objective == "bce":
        neg = torch.randint(1, n_items + 1, y.shape, device=h.device)
        neg = torch.where(neg == y, neg % n_items + 1, neg)  # never the target itself (N >= 2)
        negative = (h * table[neg]).sum(-1)
        counted = ~(own == neg[:, None]).any(1) & ~exclude[neg]  # one from the own history (or excluded) is not one
        return -(F.logsigmoid(positive) + F.logsigmoid(-negative) * counted).mean()
    raise ValueError(f"unknown loss '{objective}'. Known: {', '.join(OBJECTIVES)}")


class IDSequenceModel(nn.Module):
    """Base of SASRec and HSTU: embeddings in, `hidden` (subclass) in between, tied item scores out."""

    def __init__(self, shape: IDShape) -> None:
        super().__init__()
        name = type(self).__name__.lower()  # its registry name: sasrec, hstu, gru4rec
        check_objective(shape.loss, shape.negatives, name)
        if shape.temperature < 0:
            raise ValueError(f"model.{name}.temperature must be >= 0 (0 = dot-product scores), got {shape.temperature}")
        if shape.n_items < 2:
            raise ValueError(f"an item-ID model needs at least 2 items, got n_items={shape.n_items}")
        self.shape = shape
        self.item = nn.Embedding(shape.n_items + 1, shape.d_model, padding_idx=PAD)
        self.pos = nn.Embedding(shape.max_len, shape.d_model)  # items from the end, 0 = most recent
        self.drop = Dropout(shape.dropout)
        self.norm = nn.LayerNorm(shape.d_model)
        check_mode(shape.repeat)
        self.repeat_head = RepeatHead(shape.d_model, shape.max_len) if shape.repeat == "mixture" else None
        if shape.text_items and shape.text_dim < 1:
            raise ValueError(f"model.{name}.text_items needs the items' text embeddings (text_dim >= 1)")
        self.text_proj = nn.Linear(shape.text_dim, shape.d_model, bias=False) if shape.text_items else None
        if shape.text_items:  # filled by `set_text`; saved with the weights
            self.register_buffer("text", torch.zeros(shape.n_items + 1, shape.text_dim))
            self.register_buffer("untrained", torch.zeros(shape.n_items + 1, dtype=torch.bool))

    def set_text(self, vectors: Tensor, trained: Tensor) -> IDSequenceModel:
        """text_items: the items' (N, D) text embeddings (row i - 1 = item_idx i) and (N+1,) bool, whether each item
        occurs in training. The ID part starts at zero, so every item starts at its text's projection."""
        self.text.copy_(torch.cat([torch.zeros(1, vectors.shape[1]), vectors.float()]))  # row 0: padding
        self.untrained.copy_(~trained.bool())
        self.untrained[PAD] = False
        with torch.no_grad():
            self.item.weight.zero_()
        return self

    def items(self) -> Tensor:
        """(N+1, d) the item table: the ID embeddings, plus the projected text with `text_items` (zero at PAD)."""
        if self.text_proj is None:
            return self.item.weight
        return self.item.weight + self.text_proj(self.text)

    def embed(self, inputs: Tensor) -> Tensor:
        """(B, T) left-padded item_idx -> (B, T, d) first-layer inputs: item + position, zero at padding."""
        t = inputs.shape[1]
        if t > self.shape.max_len:
            raise ValueError(f"input length {t} exceeds the model's max_len {self.shape.max_len} (data.max_history)")
        positions = torch.arange(t - 1, -1, -1, device=inputs.device)  # (T,)
        items = self.item(inputs)
        if self.text_proj is not None:  # only the inputs' rows: the full table is built once, for the scores
            items = items + self.text_proj(self.text[inputs])
        x = items * math.sqrt(self.shape.d_model) + self.pos(positions)
        return self.drop(x) * (inputs != PAD)[..., None]

    @staticmethod
    def allowed(inputs: Tensor) -> Tensor:
        """(B, T) inputs -> (B, 1, T, T) bool: query i may attend key j iff j <= i and j is not padding."""
        t = inputs.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=inputs.device).tril()
        return causal[None, None] & (inputs != PAD)[:, None, None, :]

    def hidden(self, inputs: Tensor, **events: Tensor) -> Tensor:
        """(B, T) left-padded item_idx -> (B, T, d) outputs; position t sees only inputs[:, :t+1]. `events`: the
        per-event columns named in `events` (times, actions), (B, T) each, in step with the inputs."""
        raise NotImplementedError

    @property
    def events(self) -> tuple[str, ...]:
        """The per-event columns (`times`, `actions`) this model reads beside the items; none by default."""
        return ()

    def query(self, h: Tensor) -> Tensor:
        """Outputs -> the query side of the item scores (L2-normalised / temperature in cosine mode)."""
        t = self.shape.temperature
        return F.normalize(h.float(), dim=-1) / t if t > 0 else h

    def item_vectors(self) -> Tensor:
        """The item side of the scores: the tied embedding table, L2-normalised in cosine mode."""
        w = self.items()
        return F.normalize(w.float(), dim=-1) if self.shape.temperature > 0 else w

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """batch: inputs (B, T) item_idx, targets (B, T) next item_idx (0 = ignore). Returns a scalar."""
        inputs, targets = batch["inputs"], batch["targets"]
        hidden = self.hidden(inputs, **{name: batch[name] for name in self.events if name in batch})
        s = self.shape
        absent = self.untrained if s.text_items else None  # items not in training are in no softmax
        if self.repeat_head is None:
            return sequence_loss(self.query(hidden), targets, self.item_vectors(), s.loss, s.negatives, exclude=absent)
        repeat_loss, is_repeat = self.repeat_head.loss(hidden, inputs, targets)
        explore = sequence_loss(
            self.query(hidden), targets.masked_fill(is_repeat, PAD), self.item_vectors(), s.loss, s.negatives,
            seen=seen_items(inputs), exclude=absent,
        )  # fmt: skip
        return explore + repeat_loss

    def score_all(self, inputs: Tensor, **events: Tensor) -> Tensor:
        """(B, T) left-padded histories -> (B, N+1) scores of every item from the last position.

        Column 0 (padding) is -inf, so it never enters a top-k. With a repeat head, the scores are the
        mixture's log-probabilities (`models.repeat`).
        """
        hidden = self.hidden(inputs, **events)
        h = self.query(hidden[:, -1].float())  # (B, d)
        with torch.autocast(h.device.type, enabled=False):  # fp32 scores: bf16 would tie many of N items
            scores = h.float() @ self.item_vectors().float().T
            if self.repeat_head is not None:
                return self.repeat_head.mix(scores, hidden.float(), inputs)
        scores[:, PAD] = float("-inf")
        return scores

    def config_dict(self) -> dict:
        return asdict(self.shape)
