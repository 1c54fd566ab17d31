"""GRU4Rec: a recurrent network over item IDs that predicts the next item at every position.

Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based Recommendations with Recurrent Neural Networks",
ICLR 2016; trained with full softmax cross-entropy as in Hidasi & Karatzoglou, "Recurrent Neural Networks
with Top-k Gains for Session-based Recommendations", CIKM 2018. Item embeddings, `n_layers` GRU layers of
width d, a final LayerNorm, and tied item scores; objectives, the repeat / explore mixture and the training
contract are SASRec's (`id_objectives`).

Deviations from the paper: histories are the windows every item-ID model here trains on (not
session-parallel mini-batches); the inputs carry the "items from the end" position embedding of
`IDSequenceModel` (a GRU sees the order anyway); dropout sits on the inputs and between GRU layers. Each
history runs from its first item: left padding is moved out of the GRU's way (packed sequences), so a
history scores the same alone and in a batch of longer ones.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sidrec.config import Config
from sidrec.models.id_objectives import PAD, IDScoring, IDSequenceModel, IDShape, sampled_only
from sidrec.models.registry import ModelEntry, scoring


class GRU4Rec(IDSequenceModel):
    def __init__(self, shape: IDShape) -> None:
        super().__init__(shape)
        d = shape.d_model
        self.gru = nn.GRU(
            d, d, num_layers=shape.n_layers, batch_first=True, dropout=shape.dropout * (shape.n_layers > 1)
        )

    def hidden(self, inputs: Tensor) -> Tensor:
        """(B, T) left-padded item_idx -> (B, T, d) outputs; position t sees only inputs[:, :t+1]."""
        b, t = inputs.shape
        x = self.embed(inputs)  # (B, T, d), zero at padding
        lengths = (inputs != PAD).sum(1)  # (B,)
        shift = (torch.arange(t, device=inputs.device)[None] + (t - lengths)[:, None]) % t  # left -> right aligned
        right = x.gather(1, shift[..., None].expand(-1, -1, x.shape[-1]))
        packed = pack_padded_sequence(right, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, d), right aligned
        back = (torch.arange(t, device=inputs.device)[None] - (t - lengths)[:, None]) % t  # right -> left aligned
        out = out.gather(1, back[..., None].expand(-1, -1, out.shape[-1]))
        return self.norm(out) * (inputs != PAD)[..., None]


def describe(cfg: Config) -> str:
    m = cfg.model
    return f"{m.n_enc_layers}L gru {scoring(m, m.gru4rec)} d{m.d_model}"


ENTRY = ModelEntry(
    "gru4rec", GRU4Rec, IDShape, kind="id", config=IDScoring, describe=describe,
    unread=lambda m: ("n_heads", "d_head", "d_ff", "attention", *sampled_only(m.gru4rec)),  # a GRU has no attention
    paper="Hidasi et al., Session-based Recommendations with Recurrent Neural Networks, ICLR 2016",
)  # fmt: skip


__all__ = ["ENTRY", "GRU4Rec"]
