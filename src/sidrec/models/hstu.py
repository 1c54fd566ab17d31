"""HSTU: Hierarchical Sequential Transduction Units over item IDs, predicting the next item at every position.

Zhai et al., "Actions Speak Louder than Words: Trillion-Parameter Sequential Transducers for
Generative Recommendations", ICML 2024. Each layer (eqs. 1-3 of the paper):

    U, V, Q, K = split(SiLU(W_1 LayerNorm(x)))                       one projection, four parts
    A          = SiLU(Q K^T + rab) / n, causal                        pointwise attention, no softmax
    y          = x + W_2 Dropout(LayerNorm(A V) * U)                  gated, normalised, residual

Same embeddings, tied item scores, objectives and training contract as SASRec (`id_objectives`).

`rab` is the relative attention bias: one learned scalar per position distance i - j in [0, max_len)
(every distance its own bucket), plus, with `model.hstu.time_bias` on data with timestamps, one per time
bucket of t_i - t_j (the time from event j to the query's event i), bucketed as in Meta's code: floor(ln(max(dt,
1)) / 0.301), 128 buckets. With `model.hstu.actions`, each event's action (e.g. its rating) has an embedding
added to its item's, as the paper's action tokens are. Both read the events the data keeps (`times`,
`actions` in sequences.parquet: MovieLens, Amazon 2014); a model asked to read what the data lacks stops.

Deviations from the paper:
- Time bias from the query's own event time (t_i - t_j); Meta's code uses the next event's time for each query
  in training (the target's) and the last event's at inference. Without timestamps (the bundled P5 sets have
  positions) only the position bias is learned; served without event times, a time-aware model ranks with
  the position bias alone.
- `n` is `max_len` (the paper's padded sequence length), whatever the padding of a batch, so the
  attention scale is the same in training and at inference.
- Outputs pass a final LayerNorm. Items are scored by a plain dot product with `temperature` 0, or,
  as in the reference code, by the cosine similarity / temperature (the shipped configs: 0.05).
- `n_heads` x `d_head` is the width of each of U, V, Q and K. HSTU has no MLP, so `d_ff` is unused
  unless `hstu_ffn` (off by default) adds one after each layer: x = x + Dropout(W_4 Dropout(SiLU(W_3
  LayerNorm(x)))), width d_ff. The phonism/genrec reproduction, whose Beauty numbers are our target,
  has such an MLP (4 x d, SiLU) in every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidrec.config import Config
from sidrec.models.id_objectives import IDScoring, IDSequenceModel, IDShape, sampled_only
from sidrec.models.layers import Dropout, init_weights
from sidrec.models.registry import ModelEntry, scoring, width

TIME_BUCKETS = 128  # Meta's num_buckets
ACTION_VALUES = 256  # action embedding rows: actions are ints in 1..255 (data.split.MAX_ACTION); 0 = none


def time_buckets(times: Tensor, n: int = TIME_BUCKETS) -> Tensor:
    """(B, T) timestamps (seconds) -> (B, T, T) bucket of t_i - t_j for query i and key j: floor(ln(max(|dt|, 1)) /
    0.301), clamped to [0, n - 1] (Meta's generative-recommenders, RelativeBucketedTimeAndPositionBasedBias)."""
    return bucketize(times[:, :, None] - times[:, None, :], n)


def bucketize(dt: Tensor, n: int = TIME_BUCKETS) -> Tensor:
    """Time differences (seconds) -> their buckets, floor(ln(max(|dt|, 1)) / 0.301) clamped to [0, n - 1]."""
    return (dt.abs().clamp(min=1).float().log() / 0.301).long().clamp(0, n - 1)


class _Lookup(torch.autograd.Function):
    """`table[index]` for a small 1-d table and a large index tensor, with the table's gradient summed by
    `bincount` in one pass (the default scatter-add of an index backward is several times slower on a CPU)."""

    @staticmethod
    def forward(ctx, table: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.n = table.shape[0]
        return table[index]

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        summed = torch.bincount(index.reshape(-1), weights=grad.reshape(-1).float(), minlength=ctx.n)
        return summed.to(grad.dtype), None


def lookup(table: Tensor, index: Tensor) -> Tensor:
    """`table[index]` (table 1-d), with a fast gradient for the table."""
    return _Lookup.apply(table, index) if table.requires_grad and torch.is_grad_enabled() else table[index]


class HSTULayer(nn.Module):
    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        d_head: int,
        max_len: int,
        dropout: float,
        d_ff: int = 0,
        time_bias: bool = False,
    ) -> None:
        super().__init__()
        self.n_heads, self.d_head, self.max_len = n_heads, d_head, max_len
        self.rel_time_bias = nn.Parameter(torch.zeros(TIME_BUCKETS)) if time_bias else None
        inner = n_heads * d_head
        self.norm_in = nn.LayerNorm(d_model)
        self.uvqk = nn.Linear(d_model, 4 * inner, bias=False)
        self.norm_attn = nn.LayerNorm(inner)
        self.out = nn.Linear(inner, d_model)
        self.rel_pos_bias = nn.Parameter(torch.zeros(max_len))  # rab by distance i - j (query i, key j <= i)
        self.dropout = Dropout(dropout)
        self.ffn = (
            nn.Sequential(
                nn.LayerNorm(d_model),
                nn.Linear(d_model, d_ff),
                nn.SiLU(),
                Dropout(dropout),
                nn.Linear(d_ff, d_model),
                Dropout(dropout),
            )
            if d_ff > 0
            else None
        )

    def split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, T, dh)

    def forward(self, x: Tensor, allowed: Tensor, buckets: Tensor | None = None) -> Tensor:
        """x: (B, T, d); allowed: (B, 1, T, T) bool (causal and non-padding keys); buckets: (B, T, T) time buckets
        (`time_buckets`) or None. Returns (B, T, d)."""
        y, u, _, _ = self._attend(x, allowed, buckets)
        return self._output(x, y, u)

    def _attend(self, x: Tensor, allowed: Tensor, buckets: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The pointwise attention of `forward`: (attended values (B, T, H*dh), gate u, keys (B, H, T, dh), values
        (B, H, T, dh))."""
        b, t, _ = x.shape
        u, v, q, k = F.silu(self.uvqk(self.norm_in(x))).chunk(4, dim=-1)  # each (B, T, H*dh)
        k, v = self.split(k), self.split(v)
        idx = torch.arange(t, device=x.device)
        distance = (idx[:, None] - idx[None, :]).clamp(0, self.max_len - 1)  # (T, T)
        scores = self.split(q) @ k.transpose(-1, -2) + lookup(self.rel_pos_bias, distance)
        if self.rel_time_bias is not None and buckets is not None:
            scores = scores + lookup(self.rel_time_bias, buckets)[:, None]
        attn = F.silu(scores) / self.max_len * allowed.to(scores.dtype)
        return (attn @ v).transpose(1, 2).reshape(b, t, -1), u, k, v  # (B, T, H*dh)

    def _output(self, x: Tensor, y: Tensor, u: Tensor) -> Tensor:
        x = x + self.out(self.dropout(self.norm_attn(y) * u))
        return x if self.ffn is None else x + self.ffn(x)

    def with_candidates(
        self,
        x: Tensor,
        xc: Tensor,
        allowed: Tensor,
        keys: Tensor,
        buckets: Tensor | None,
        cand_buckets: Tensor | None,
        cut: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """`forward` of history tokens x (B, T, d) together with candidate tokens xc (B, C, d): each candidate
        attends to the real history keys (keys: (B, T) bool) before its position and to itself, never to another
        candidate (a ranker scoring candidates, or training on items the user did not choose). cut: (B, C) each
        candidate's position (it sees history tokens 0..cut-1); None: all right after the history. buckets: the
        history's (B, T, T) time buckets; cand_buckets: (B, T) with cut None, else (B, C, T), the buckets of each
        candidate's time against each history token's. Costs C x T scores for the candidates, not (T + C)^2 as
        `forward` over the concatenation would."""
        b, t, _ = x.shape
        c = xc.shape[1]
        y, u, k, v = self._attend(x, allowed, buckets)
        uc, vc, qc, kc = F.silu(self.uvqk(self.norm_in(xc))).chunk(4, dim=-1)
        idx = torch.arange(t, device=x.device)
        top = self.max_len - 1
        if cut is None:  # all at position t
            bias = lookup(self.rel_pos_bias, (t - idx).clamp(0, top))  # (T,)
            sees = keys[:, None, None, :]  # (B, 1, 1, T)
        else:
            bias = lookup(self.rel_pos_bias, (cut[..., None] - idx).clamp(0, top))[:, None]  # (B, 1, C, T)
            sees = ((idx < cut[..., None]) & keys[:, None, :])[:, None]
        qc_, kc_ = self.split(qc), self.split(kc)
        cand = qc_ @ k.transpose(-1, -2) + bias  # (B, H, C, T)
        own = (qc_ * kc_).sum(-1) + self.rel_pos_bias[0]  # (B, H, C): a candidate with itself
        if self.rel_time_bias is not None and cand_buckets is not None:
            tb = lookup(self.rel_time_bias, cand_buckets)
            cand = cand + (tb[:, None, None, :] if tb.dim() == 2 else tb[:, None])
            own = own + self.rel_time_bias[0]  # its own time: dt 0, bucket 0
        ac = F.silu(cand) / self.max_len * sees.to(cand.dtype)
        yc = ac @ v + (F.silu(own) / self.max_len)[..., None] * self.split(vc)  # (B, H, C, dh)
        return self._output(x, y, u), self._output(xc, yc.transpose(1, 2).reshape(b, c, -1), uc)


class HSTU(IDSequenceModel):
    def __init__(self, shape: IDShape) -> None:
        super().__init__(shape)
        self.layers = nn.ModuleList(
            HSTULayer(
                d_model=shape.d_model,
                n_heads=shape.n_heads,
                d_head=shape.d_head,
                max_len=shape.max_len,
                dropout=shape.dropout,
                d_ff=shape.d_ff if shape.hstu_ffn else 0,
                time_bias=shape.time_bias,
            )
            for _ in range(shape.n_layers)
        )
        self.action = nn.Embedding(ACTION_VALUES, shape.d_model, padding_idx=0) if shape.actions else None
        self.apply(init_weights)

    @property
    def events(self) -> tuple[str, ...]:
        return (("times",) if self.shape.time_bias else ()) + (("actions",) if self.shape.actions else ())

    def hidden(self, inputs: Tensor, times: Tensor | None = None, actions: Tensor | None = None) -> Tensor:
        """(B, T) left-padded item_idx -> (B, T, d); position t attends to positions <= t only. `times` (B, T)
        timestamps and `actions` (B, T) action ids in step with the inputs, where the model reads them."""
        allowed = self.allowed(inputs)
        x = self.embed(inputs)
        if self.action is not None and actions is not None:
            x = x + self.drop(self.action(actions.clamp(0, ACTION_VALUES - 1))) * (inputs != 0)[..., None]
        buckets = time_buckets(times) if self.shape.time_bias and times is not None else None
        for layer in self.layers:
            x = layer(x, allowed, buckets)
        return self.norm(x)


@dataclass(frozen=True)
class HSTUConfig(IDScoring):
    """`model.hstu.*`: the item-ID scoring, and the optional MLP."""

    hstu_ffn: bool = False  # a pre-norm SiLU MLP (width d_ff) after each layer; not in the paper
    time_bias: bool = False  # relative attention bias by time bucket too (data with timestamps: MovieLens, Amazon 2014)
    actions: bool = False  # each event's action (e.g. its rating) embedded and added to its item's


def describe(cfg: Config) -> str:
    m = cfg.model
    events = "".join(f" +{k}" for k in ("time_bias", "actions") if getattr(m.hstu, k))
    return f"{m.n_enc_layers}L {scoring(m, m.hstu)} {width(m, ffn=m.hstu.hstu_ffn)}{events}"


ENTRY = ModelEntry(
    "hstu", HSTU, IDShape, kind="id", config=HSTUConfig, describe=describe,
    unread=lambda m: (*(() if m.hstu.hstu_ffn else ("d_ff",)), *sampled_only(m.hstu)),  # no MLP without hstu_ffn
    paper="Zhai et al., Actions Speak Louder than Words: Trillion-Parameter Sequential Transducers, ICML 2024",
)  # fmt: skip
