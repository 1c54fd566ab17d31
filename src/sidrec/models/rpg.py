"""RPG: long Semantic IDs predicted in parallel, one pass per recommendation.

Hou, Li, Shin, Jeon, Santhanam, Shao, Hassani, Yao & McAuley, "Generating Long Semantic IDs in
Parallel for Recommendation", KDD 2025 (reference code: github.com/hyp1231/RPG_KDD2025).

Every item has M unordered codes (product quantization, `quantize.name=pq|opq`), digit m from its own
codebook of K. The model is a causal Transformer over the history's items, like SASRec, but an item's
input vector is pooled from its M digit embeddings (no per-item table: the model's size does not grow
with the catalogue). At every position, M residual heads (zero-initialised `x + SiLU(W x + b)`, one
per digit) turn the output into M query vectors; digit m's logits are the cosine similarities between
query m and the (tied) embeddings of digit m's K codes, divided by `temperature`. Loss: the mean over
digits of the cross-entropy of the next item's code. An item's score is the mean of its M digits'
log-probabilities, so the top-K over all items is one sparse matmul (`score_all`); `decode.graph`
walks an item graph instead for catalogues too large for that.

Deviations from the reference code: the blocks are this package's pre-norm `EncoderBlock` (GELU MLP,
dropout on the residual branches and the inputs; GPT-2 also drops attention probabilities); the pooled
inputs are scaled by sqrt(d) and positions are counted from the end of the left-padded window (as our
SASRec; GPT-2 adds raw embeddings and absolute positions); histories are cut at `data.max_history`
(20 in the shipped configs; the reference uses 50).

Options beyond the paper (the shipped configs' values in brackets):
- `pooling`: `mean` (the paper) or `concat` (the M digit embeddings concatenated and projected to d)
  [concat].
- `item_loss` > 0 adds an item-level softmax to the digit loss: the next item's cross-entropy among
  `negatives` uniform items (0: all items), each scored by the mean of its digits' logits, as at
  inference. The digit loss alone trains each digit's marginal; the item term trains the ranking that
  decoding uses [3, 2,048 negatives].
- `repeat=mixture`: the repeat / explore mixture of `models.repeat`; the item scores are the explore
  part, trained on the targets new to the user with the history left out of the softmax [mixture].
- `history_negatives` (with repeat=none and item_loss > 0) adds the items each position has already seen
  to its sampled item softmax, and `repeat_bias` adds one learned score to them, in training and at
  inference: a single-scalar alternative to the mixture [off].
- `id_embedding` adds a learned per-item vector to each history item's pooled digits (the model then
  grows with the catalogue; items are still scored from their digits alone); `item_dropout` blanks a
  history item's pooled digits in training, `digit_dropout` drops single digit embeddings [off].
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidrec.config import Config, added
from sidrec.models.layers import Dropout, EncoderBlock, init_weights, sampled_softmax_loss
from sidrec.models.registry import ModelEntry, repeat, width
from sidrec.models.repeat import RepeatHead, check_mode, in_rows, seen_before, seen_items

PAD = 0
NEG = -1e9
POOLINGS = ("mean", "concat")


@dataclass(frozen=True)
class RPGShape:
    """Everything needed to rebuild an RPG model (saved in model.pt); the item codes are a buffer."""

    n_items: int  # N real items, item_idx 1..N
    n_digits: int  # M codes per item
    codebook_size: int  # K codes per digit
    max_len: int = 20  # longest input sequence (data.max_history)
    d_model: int = 256
    n_heads: int = 4
    d_head: int = 64
    d_ff: int = 1024
    n_layers: int = 2
    dropout: float = 0.3
    attention: str = "math"
    temperature: float = 0.03  # cosine-similarity logits / temperature (the paper's Beauty setting)
    pooling: str = "mean"  # mean (the paper) | concat (concatenate the M digit embeddings, project to d)
    item_loss: float = 0.0  # weight of an item-level softmax added to the digit loss (0 = the paper's loss alone)
    negatives: int = 0  # item_loss: uniform negatives shared by the batch (0 = every item: the full softmax)
    id_embedding: bool = False  # add a learned per-item vector to each input item's pooled digits (not in the paper)
    item_dropout: float = 0.0  # training: blank a history item's pooled digits (its position stays), not in the paper
    digit_dropout: float = 0.0  # training: drop each of an input item's M digit embeddings (inverted), not in the paper
    history_negatives: bool = False  # item_loss > 0: each position's seen items are negatives too (not in the paper)
    repeat_bias: bool = False  # item_loss > 0: a learned score added to the history's items (needs history_negatives)
    repeat: str = "none"  # mixture: a repeat / explore mixture over the item scores (models.repeat) | none


@dataclass(frozen=True)
class RPGConfig:
    """`model.rpg.*`: how RPG pools an item's digits, scores and trains (the shared width / depth are `model.*`)."""

    temperature: float = 0.03  # cosine-similarity logits / temperature (the paper: 0.03)
    pooling: str = "concat"  # an item's input from its M digit embeddings: concat (+ linear) | mean (the paper)
    item_loss: float = 3.0  # weight of an item-level softmax (mean digit logits) beside the paper's digit loss
    negatives: int = 2048  # item_loss > 0: uniform negatives shared by the batch (0 = every item: the full softmax)
    id_embedding: bool = False  # add a learned per-item vector to each history item's input (not in the paper)
    item_dropout: float = added(0.0, before=0.0)  # training: blank a history item's pooled digits, this often
    digit_dropout: float = added(0.0, before=0.0)  # training: drop each of an input item's M digit embeddings
    # repeat=none and item_loss > 0: the items each position has seen are negatives of its item-level softmax too,
    # as in a full softmax (not in the paper), and `repeat_bias` adds one learned score to them
    history_negatives: bool = added(False, before=False)
    repeat_bias: bool = added(False, before=False)


class DigitHeads(nn.Module):
    """M residual heads at once: h -> h + SiLU(W_m h + b_m), zero-initialised (identity at the start)."""

    def __init__(self, n_digits: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_digits, d_model, d_model))  # (M, d_in, d_out)
        self.bias = nn.Parameter(torch.zeros(n_digits, d_model))

    def forward(self, h: Tensor) -> Tensor:
        """(P, d) -> (M, P, d)."""
        x = h[None].expand(len(self.weight), -1, -1)  # (M, P, d)
        return x + F.silu(torch.baddbmm(self.bias[:, None, :], x, self.weight))


class RPG(nn.Module):
    def __init__(self, shape: RPGShape) -> None:
        super().__init__()
        if shape.pooling not in POOLINGS:
            raise ValueError(f"unknown model.rpg.pooling '{shape.pooling}'. Known: {', '.join(POOLINGS)}")
        if shape.temperature <= 0:
            t = shape.temperature
            raise ValueError(f"model.rpg.temperature must be > 0 for rpg (cosine / temperature; paper: 0.03), got {t}")
        if not (0.0 <= shape.item_dropout < 1.0 and 0.0 <= shape.digit_dropout < 1.0):
            raise ValueError(f"rpg needs model.rpg.item_dropout and model.rpg.digit_dropout in [0, 1), got {shape}")
        if shape.item_loss < 0 or shape.negatives < 0:
            raise ValueError(f"rpg needs model.rpg.item_loss >= 0 and model.rpg.negatives >= 0, got {shape}")
        if shape.repeat_bias and shape.item_loss > 0 and not shape.history_negatives:
            raise ValueError(
                "model.rpg.repeat_bias learns from the history's items as negatives: set "
                "model.rpg.history_negatives=true (or model.rpg.repeat_bias=false)"
            )
        check_mode(shape.repeat)
        if shape.repeat == "mixture" and (shape.history_negatives or shape.repeat_bias):
            raise ValueError(
                "model.repeat=mixture leaves the history's items out of the item softmax and learns repeats in its own "
                "head: set model.rpg.history_negatives=false and model.rpg.repeat_bias=false (or model.repeat=none)"
            )
        if shape.n_items < 2 or shape.n_digits < 1 or shape.codebook_size < 2:
            raise ValueError(f"rpg needs >= 2 items, >= 1 digit and >= 2 codes per digit, got {shape}")
        self.shape = shape
        m, k, d = shape.n_digits, shape.codebook_size, shape.d_model
        self.register_buffer("codes", torch.zeros(shape.n_items + 1, m, dtype=torch.long))  # row 0 = padding
        self.digit = nn.Embedding(m * k, d)  # token m*K + code; shared by inputs and output logits
        self.pool = nn.Linear(m * d, d) if shape.pooling == "concat" else None
        # optional per-item input vectors (row 0 = padding): memorises items beyond their codes, but the model
        # then grows with the catalogue; the output side (scores) stays digits only
        self.item = nn.Embedding(shape.n_items + 1, d, padding_idx=PAD) if shape.id_embedding else None
        self.pos = nn.Embedding(shape.max_len, d)
        self.drop = Dropout(shape.dropout)
        block = dict(d_model=d, n_heads=shape.n_heads, d_head=shape.d_head, d_ff=shape.d_ff, dropout=shape.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(**block, impl=shape.attention) for _ in range(shape.n_layers))
        self.norm = nn.LayerNorm(d)
        self.apply(init_weights)
        self.heads = DigitHeads(m, d)  # after init_weights: stays zero (identity heads)
        # one learned score for "already in the history" (repeat consumption), on the item score's scale
        self.repeat = nn.Parameter(torch.zeros(())) if shape.repeat_bias and shape.item_loss > 0 else None
        self.repeat_head = RepeatHead(d, shape.max_len) if shape.repeat == "mixture" else None
        self._csr: Tensor | None = None

    def set_codes(self, sids: Tensor) -> RPG:
        """(N, M) codes of items 1..N, each in [0, K)."""
        s = self.shape
        sids = torch.as_tensor(sids, dtype=torch.long)
        if tuple(sids.shape) != (s.n_items, s.n_digits):
            raise ValueError(f"rpg expects codes of shape ({s.n_items}, {s.n_digits}), got {tuple(sids.shape)}")
        if sids.numel() and (int(sids.min()) < 0 or int(sids.max()) >= s.codebook_size):
            raise ValueError(
                f"rpg needs every code in [0, {s.codebook_size}); got up to {int(sids.max())}. A de-dup digit "
                "does not fit parallel decoding: use quantize.dedup=random (or none)"
            )
        self.codes[1:] = sids.to(self.codes.device)
        self._csr = None
        return self

    def add_items(self, sids: Tensor) -> RPG:
        """Score A more items (items N+1..N+A, never trained on) by their (A, M) codes; an item-ID input vector
        (`id_embedding`) of a new item starts at zero."""
        sids = torch.as_tensor(sids, dtype=torch.long).to(self.codes.device)
        s = self.shape = dataclasses.replace(self.shape, n_items=self.shape.n_items + len(sids))
        self.codes = torch.cat([self.codes, torch.zeros_like(self.codes[: len(sids)])])
        if self.item is not None:
            grown = nn.Embedding(s.n_items + 1, self.item.embedding_dim, padding_idx=PAD).to(self.codes.device)
            with torch.no_grad():
                grown.weight.zero_()
                grown.weight[: self.item.num_embeddings] = self.item.weight
            self.item = grown
        return self.set_codes(torch.cat([self.codes[1 : s.n_items + 1 - len(sids)], sids]))

    def tokens(self, items: Tensor) -> Tensor:
        """(...) item_idx -> (..., M) digit token ids m*K + code."""
        offsets = torch.arange(self.shape.n_digits, device=items.device) * self.shape.codebook_size
        return self.codes[items] + offsets

    def embed(self, inputs: Tensor) -> Tensor:
        """(B, T) left-padded item_idx -> (B, T, d): pooled digit embeddings + positions, zero at padding."""
        t = inputs.shape[1]
        if t > self.shape.max_len:
            raise ValueError(f"input length {t} exceeds the model's max_len {self.shape.max_len} (data.max_history)")
        e = self.digit(self.tokens(inputs))  # (B, T, M, d)
        s = self.shape
        if self.training and s.digit_dropout > 0:  # an item known by some of its digits only
            e = e * (torch.rand(e.shape[:3], device=e.device) >= s.digit_dropout)[..., None] / (1 - s.digit_dropout)
        x = e.mean(2) if self.pool is None else self.pool(e.flatten(2))
        if self.item is not None:
            x = x + self.item(inputs)
        if self.training and s.item_dropout > 0:  # an item the model must infer from its neighbours
            x = x * (torch.rand(x.shape[:2], device=x.device) >= s.item_dropout)[..., None]
        x = x * math.sqrt(self.shape.d_model) + self.pos(torch.arange(t - 1, -1, -1, device=inputs.device))
        return self.drop(x) * (inputs != PAD)[..., None]

    def hidden(self, inputs: Tensor) -> Tensor:
        """(B, T) -> (B, T, d); position t sees inputs[:, :t+1] only."""
        t = inputs.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=inputs.device).tril()
        bias = torch.where(causal[None, None] & (inputs != PAD)[:, None, None, :], 0.0, NEG)  # (B, 1, T, T)
        x = self.embed(inputs)
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x)

    def queries(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(P, d) outputs -> queries (M, P, d), unit length / temperature, and unit code embeddings (M, K, d)."""
        s = self.shape
        q = F.normalize(self.heads(h).float(), dim=-1) * (1.0 / s.temperature)  # 1/t folded into the queries
        table = F.normalize(self.digit.weight.float(), dim=-1).view(s.n_digits, s.codebook_size, -1)
        return q, table

    def digit_logits(self, h: Tensor) -> Tensor:
        """(P, d) outputs -> (M, P, K) logits: cosine(query_m, code embeddings of digit m) / temperature."""
        q, table = self.queries(h)
        with torch.autocast(h.device.type, enabled=False):
            return torch.bmm(q, table.transpose(1, 2))  # (M, P, K): digit-major, so the loss needs no copy

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """batch: inputs (B, T), targets (B, T) next item_idx (0 = no loss).

        The paper's loss: the mean over digits of the cross-entropy of the next item's code. With
        `item_loss` > 0, plus that weight times the cross-entropy of the next item among all items (or
        `negatives` uniform ones), each item scored as at inference: the mean of its digits' logits.

        With a repeat head (`repeat=mixture`), both terms are the explore part: they skip the targets that
        repeat a history item and leave the history's items out of the item softmax; the head learns the rest."""
        inputs, targets = batch["inputs"], batch["targets"]
        hidden = self.hidden(inputs)
        head = hidden.sum() * 0.0
        if self.repeat_head is not None:
            head, is_repeat = self.repeat_head.loss(hidden, inputs, targets)
            targets = targets.masked_fill(is_repeat, PAD)
        keep = targets != PAD
        h = hidden[keep]  # (P, d)
        if h.shape[0] == 0:
            return h.sum() * 0.0 + head
        logits = self.digit_logits(h)  # (M, P, K)
        y = targets[keep]
        labels = self.codes[y].T  # (M, P)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())  # = mean over digits of the mean CE
        if self.shape.item_loss > 0:
            history = self.shape.history_negatives or self.repeat_head is not None
            seen = self.seen_items(inputs)[keep] if history else None  # item softmax only
            loss = loss + self.shape.item_loss * self.item_loss(logits, labels, y, seen)
        return loss + head

    seen_items = staticmethod(seen_items)

    def item_loss(self, logits: Tensor, labels: Tensor, y: Tensor, seen: Tensor | None = None) -> Tensor:
        """Cross-entropy of the target items y (P,) among items scored by their mean digit logit.

        Scoring every item at every position is an embedding bag: the (M*K, P) logit table, one bag of M
        rows per item. The mean of an item's digit logits ranks items exactly as `item_scores` (the mean
        of the digits' log-probabilities), since each digit's log-normaliser is shared by all items.

        `seen` (P, S) item_idx (PAD = none), the history so far: with `history_negatives`, items added to the
        sampled negatives of each position (one equal to the position's target is left out; the full softmax has
        them); with a repeat head, items left out of the softmax (none is the position's target)."""
        m, p, k = logits.shape
        table = logits.permute(0, 2, 1).reshape(m * k, p)  # row m*K + code
        n = self.shape.n_items
        if self.shape.negatives == 0 or self.shape.negatives >= n:
            scores = F.embedding_bag(self.tokens(torch.arange(1, n + 1, device=y.device)), table, mode="mean").T
            if self.repeat_head is not None and seen is not None:  # explore: the history is not a candidate
                scores = F.pad(scores, (1, 0)).scatter(1, seen, float("-inf"))[:, 1:]
            if self.repeat is not None and seen is not None:
                scores = self.with_repeat_bias(F.pad(scores, (1, 0)), seen)[:, 1:]
            return F.cross_entropy(scores, y - 1)  # (P, N): column j is item j+1
        positive = logits.gather(2, labels[..., None]).squeeze(-1).mean(0)  # (P,)
        neg = torch.randint(1, n + 1, (self.shape.negatives,), device=y.device)
        negative = F.embedding_bag(self.tokens(neg), table, mode="mean").T  # (P, negatives)
        if self.repeat_head is not None and seen is not None:  # explore: the history is not a candidate
            return sampled_softmax_loss(positive, negative.masked_fill(in_rows(neg, seen), float("-inf")), neg, y)
        if seen is not None:  # each position's own items: (M, P, S) gathered digit logits, mean over digits
            own = logits.gather(2, self.codes[seen].permute(2, 0, 1)).mean(0)  # (P, S)
            if self.repeat is not None:  # a seen item's score gets the repeat bias: own items and the target
                own = own + self.repeat
                positive = positive + self.repeat * (seen == y[:, None]).any(1)
            # every item once in the denominator: a seen item twice in the history, or also drawn among the
            # uniform negatives, counts once (as an own item)
            own = own.masked_fill((seen == PAD) | (seen == y[:, None]) | seen_before(seen), float("-inf"))
            negative = negative.masked_fill(in_rows(neg, seen), float("-inf"))
            return sampled_softmax_loss(positive, negative, neg, y, own)
        return sampled_softmax_loss(positive, negative, neg, y)

    def digit_logprobs(self, inputs: Tensor, hidden: Tensor | None = None) -> Tensor:
        """(B, T) histories -> (B, M, K) log-probabilities of every digit's codes for the next item."""
        hidden = self.hidden(inputs) if hidden is None else hidden
        return self.digit_logits(hidden[:, -1]).log_softmax(-1).transpose(0, 1)

    def _item_matrix(self) -> Tensor:
        """(N+1, M*K) sparse CSR, cached: row i holds 1/M at item i's M digit tokens (row 0, padding, is empty)."""
        if self._csr is None or self._csr.device != self.codes.device:
            n1, m = self.codes.shape
            tokens = self.tokens(torch.arange(1, n1, device=self.codes.device)).flatten()
            crow = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(n1) * m]).to(tokens.device)
            vals = torch.full((tokens.numel(),), 1.0 / m, device=tokens.device)
            with warnings.catch_warnings():  # "sparse CSR support is in beta": the matmul used here is stable
                warnings.simplefilter("ignore", UserWarning)
                size = (n1, m * self.shape.codebook_size)
                self._csr = torch.sparse_csr_tensor(crow, tokens, vals, size, check_invariants=False)
        return self._csr

    def item_scores(self, logp: Tensor) -> Tensor:
        """(B, M, K) digit log-probabilities -> (B, N+1) item scores (mean over digits); column 0 = -inf."""
        with torch.autocast(logp.device.type, enabled=False):
            scores = (self._item_matrix() @ logp.float().flatten(1).T).T  # (B, N+1)
        scores[:, PAD] = float("-inf")
        return scores

    def with_repeat_bias(self, scores: Tensor, history: Tensor) -> Tensor:
        """(B, N+1) item scores + the learned repeat bias at the (B, T) history's items (padding untouched)."""
        if self.repeat is None:
            return scores
        seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, history, True)
        seen[:, PAD] = False
        return scores + self.repeat.to(scores.dtype) * seen

    def score_all(self, inputs: Tensor) -> Tensor:
        """(B, T) left-padded histories -> (B, N+1) exact scores of every item (the contract of ItemRecommender).

        With a repeat head, the repeat / explore mixture's log-probabilities (`models.repeat`): the explore
        part is the softmax of the item scores over the items not in the history."""
        hidden = self.hidden(inputs)
        scores = self.item_scores(self.digit_logprobs(inputs, hidden))
        if self.repeat_head is not None:
            with torch.autocast(inputs.device.type, enabled=False):
                return self.repeat_head.mix(scores, hidden.float(), inputs)
        return self.with_repeat_bias(scores, inputs)

    def code_vectors(self) -> Tensor:
        """(M, K, d) L2-normalised code embeddings: the item graph's similarity (decode.graph)."""
        s = self.shape
        return F.normalize(self.digit.weight.detach().float(), dim=-1).view(s.n_digits, s.codebook_size, -1)

    def config_dict(self) -> dict:
        return asdict(self.shape)


def describe(cfg: Config) -> str:
    m, own = cfg.model, cfg.model.rpg
    text = f"{m.n_enc_layers}L pool={own.pooling} cos/{own.temperature:g} decode={cfg.eval.decode}"
    if own.item_loss > 0:  # the item-level softmax added to the paper's digit loss
        text += f" item_loss={own.item_loss:g}/{own.negatives or 'all'}{'+seen' if own.history_negatives else ''}"
        text += " +repeat_bias" if own.repeat_bias else ""
    if own.id_embedding:
        text += " +id_emb"
    if own.item_dropout or own.digit_dropout:  # input dropout of whole items / of single digits
        text += f" in_drop={own.item_dropout:g}/{own.digit_dropout:g}"
    return f"{text}{repeat(m)} {width(m)}"


def unread(m) -> tuple[str, ...]:
    """Without the item softmax (item_loss 0), its negatives and the history settings read nothing."""
    return () if m.rpg.item_loss > 0 else ("history_negatives", "repeat_bias", "negatives")


ENTRY = ModelEntry(
    "rpg", RPG, RPGShape, kind="parallel", config=RPGConfig, describe=describe, unread=unread,
    paper="Hou et al., Generating Long Semantic IDs in Parallel for Recommendation, KDD 2025",
)  # fmt: skip


__all__ = ["ENTRY", "RPG", "RPGConfig", "RPGShape", "POOLINGS"]
