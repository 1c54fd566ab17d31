"""`sidrec bench` against Hugging Face T5 with the TIGER / GRID config (what GRID trains), on the same inputs.

    python benchmarks/bench_t5.py [CONFIG] [key=value ...] [--rpg] [--steps 20] [--users 1024] \
        --record benchmarks/results/bench_cpu.json

Adds `T5ForConditionalGeneration` (d 128, 4+4 layers, 6 heads x 64, d_ff 1024, dropout 0.1; the vocabulary of
our GRID-size model) as the reference row of `sidrec.bench.run_bench`: trained on the same batches (flat
vocabulary labels), searched with `generate` (beam 10; it has no trie, so it decodes free). Every other row's
ratios are ours / T5's. Needs `transformers` (installed with sentence-transformers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sidrec import flops
from sidrec.bench import BEAMS, HISTORY, Entry, Setup, run_bench, stepper, train_batches
from sidrec.config import load_config
from sidrec.data.batches import encoder_inputs
from sidrec.recommender import item_token_table

T5_GRID = dict(d_model=128, d_kv=64, num_heads=6, d_ff=1024, num_layers=4, num_decoder_layers=4, dropout_rate=0.1)
T5_TOKENS = dict(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)  # PAD = decoder start; BOS never emitted
GENERATE = dict(num_beams=BEAMS, num_return_sequences=BEAMS, max_new_tokens=4, min_new_tokens=4, do_sample=False)


def t5_reference(s: Setup, grid) -> tuple[Entry | None, str]:
    """HF T5 with the TIGER / GRID config, fed the inputs of our GRID-size model `grid` (same vocabulary)."""
    if not hasattr(grid.shape, "n_dec_layers"):
        return None, "skipped: HF T5 is compared with encoder-decoder models only (model.name=tiger)"
    try:
        import transformers
        from transformers import T5Config, T5ForConditionalGeneration
    except ImportError:
        return None, "skipped: transformers is not installed"
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=grid.shape.vocab_size, **T5_GRID, **T5_TOKENS)).to(s.device)
    table = item_token_table(s.sids, grid.shape.offsets)

    def loss_fn(b: dict) -> Tensor:
        return t5(input_ids=b["tokens"], attention_mask=b["mask"], labels=b["labels"]).loss

    @torch.no_grad()
    def generate(hists: list[np.ndarray], users: np.ndarray) -> Tensor:
        ids = encoder_inputs(hists, table, max_history=HISTORY)[0].to(s.device)
        with torch.autocast(**s.autocast):
            return t5.generate(input_ids=ids, attention_mask=(ids != 0).long(), **GENERATE).cpu()

    params, step = sum(p.numel() for p in t5.parameters()), stepper(s, t5, loss_fn, train_batches(s, grid))
    g = grid.shape  # T5's LM head spans the whole vocabulary at every decoder position
    size = flops.EncDecSize(g.d_model, g.n_heads, g.d_head, g.d_ff, g.n_enc_layers, g.n_dec_layers,
                            (g.vocab_size,) * len(g.level_sizes))  # fmt: skip
    name = "HF T5, GRID config 4+4 d128 6x64 ff1024"
    note = f"transformers {transformers.__version__} T5ForConditionalGeneration; generate() decodes free"
    return Entry(name, params, step, {"free": generate}, size, reference=True), note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("args", nargs="*", help="[CONFIG] [key=value ...] (CONFIG defaults to beauty_tiger)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--users", type=int, default=1024)
    ap.add_argument("--rpg", action="store_true", help="also time RPG (beauty_rpg shape)")
    ap.add_argument("--record", type=Path, default=None)
    args = ap.parse_args()
    rest = list(args.args)
    cfg = load_config(rest.pop(0) if rest and "=" not in rest[0] else "beauty_tiger", rest)
    result = run_bench(cfg, steps=args.steps, users=args.users, rpg=args.rpg, reference=t5_reference)
    print(result)
    if args.record:
        rec = {**result.record, "command": "python " + " ".join(sys.argv)}
        args.record.write_text(json.dumps(rec, indent=1) + "\n")


if __name__ == "__main__":
    main()
