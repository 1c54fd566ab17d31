"""The analytic FLOP counts behind `sidrec bench`'s TFLOP/s agree with torch's own count of the model's matmuls."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from sidrec import flops
from sidrec.data.batches import encoder_inputs
from sidrec.recommender import SIDRecommender, item_token_table

SIZES = (8, 8, 3)


def size_of(model) -> flops.EncDecSize:
    s = model.shape
    return flops.EncDecSize(s.d_model, s.n_heads, s.d_head, s.d_ff, s.n_enc_layers, s.n_dec_layers, s.level_sizes)


def counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_forward_and_training_step_counts(make_tiger, make_sids):
    model = make_tiger(SIZES, n_enc_layers=2, n_dec_layers=2)
    sids = make_sids(40, SIZES)
    table = item_token_table(sids, model.shape.offsets)
    hists = [np.arange(1, 7) for _ in range(5)]  # 6 items x 3 tokens: no padding
    tokens, positions = encoder_inputs(hists, table, max_history=6)
    batch = {"tokens": tokens, "positions": positions, "codes": torch.from_numpy(sids[:5])}
    memory = tokens.shape[1]
    assert counted(lambda: model.loss(batch)) == 5 * flops.forward(size_of(model), memory)
    model.train()
    assert counted(lambda: model.loss(batch).backward()) == flops.train_step(size_of(model), memory, batch=5)


def test_beam_search_count(make_tiger, make_sids):
    model = make_tiger(SIZES, n_enc_layers=1, n_dec_layers=2)
    sids = make_sids(40, SIZES)
    rec = SIDRecommender(model, sids, beam_width=4, constrained=False, bf16=False)
    hists = [np.arange(1, 7) for _ in range(3)]
    memory = 6 * len(SIZES)
    assert counted(lambda: rec.recommend(hists, k=4)) == 3 * flops.beam_search(size_of(model), memory, beams=4)
