"""Training-step timing on the real batches of a finished run, for speed decisions about the step itself.

`sidrec bench` times synthetic Beauty-shaped batches against Hugging Face T5; this script takes the
real length-bucketed batches of a run directory (sequences.parquet + sids.npy of a finished
`sidrec run`) and times variants of the step against the run's own config, in the same process:

    python benchmarks/train_step.py runs/tiger                        # the run's model, fused vs for-loop AdamW
    python benchmarks/train_step.py runs/tiger --compile              # + torch.compile (inductor)
    python benchmarks/train_step.py runs/tiger --override model.dropout=0
    python benchmarks/train_step.py runs/tiger --override "model.name=decoder model.decoder.tie_embeddings=true"

An `--override` is one variant: one or more key=value pairs separated by spaces, applied to the run's config
(its `config.yaml`); variants that keep the run's tokenizer (e.g. another SID generator) train on the same SIDs.

Variants run one after another on the same batches, in interleaved rounds (run it alone on the
machine: timings are wall-clock), after 20 warm-up steps each; it prints each variant's best
samples/s over the rounds and the ratio to the default.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import polars as pl
import torch

from sidrec import io
from sidrec.config import load_config
from sidrec.parts import parts_for
from sidrec.report import git_commit, machine
from sidrec.train import _optimizer, epoch_rng, use_bf16


def time_steps(cfg, run_dir: Path, steps: int, *, fused: bool = True, compile_: bool = False) -> float:
    """Samples/s of `steps` AdamW steps (after 20 warm-up steps) on the run's first epoch of batches."""
    device = torch.device("cpu")
    parts = parts_for(cfg, run_dir, device)
    torch.manual_seed(cfg.seed)
    model = parts.build().train()
    batches = list(parts.examples(model, pl.read_parquet(run_dir / io.SEQUENCES)).batches(
        cfg.train.batch_size, epoch_rng(cfg.seed, 1)))  # fmt: skip
    batches = batches * -(-(steps + 20) // len(batches))  # a small run's epoch, repeated up to the steps asked
    opt = _optimizer(model, cfg.train)
    if not fused:  # the for-loop AdamW, same groups and hyper-parameters
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in opt.param_groups]
        opt = torch.optim.AdamW(groups, lr=cfg.train.lr, betas=(0.9, 0.98), fused=False, foreach=False)
    bf16 = use_bf16(cfg.train.precision, device)

    def loss_of(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model.loss(batch)

    loss_fn = torch.compile(loss_of, dynamic=True) if compile_ else loss_of
    samples, start = 0, 0.0
    for i, batch in enumerate(batches[: steps + 20]):
        if i == 20:
            start, samples = time.perf_counter(), 0
        loss = loss_fn(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        loss.item()
        samples += len(batch["codes"])
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run (config.yaml, sequences.parquet, sids.npy)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each variant's best is kept")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(dynamic=True)")
    parser.add_argument("--record", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument("--override", action="append", default=[], help="key=value pairs of one variant (repeatable)")
    args = parser.parse_args()
    base = io.load_run_config(args.run_dir)  # names the fix when this is not a run directory
    config = args.run_dir / io.CONFIG
    variants = {"default (fused AdamW)": dict(cfg=base), "for-loop AdamW": dict(cfg=base, fused=False)}
    if args.compile:
        variants["torch.compile"] = dict(cfg=base, compile_=True)
    for override in args.override:
        variants[override] = dict(cfg=load_config(config, override.split()))
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):  # interleaved rounds, so a drift in machine speed hits every variant
        for name, kw in variants.items():
            runs[name].append(time_steps(run_dir=args.run_dir, steps=args.steps, **kw))
    results = {name: max(values) for name, values in runs.items()}  # best round: the least disturbed
    ref = results["default (fused AdamW)"]
    print(f"{'variant':32s} {'samples/s':>10s} {'ratio':>7s}")
    for name, sps in results.items():
        print(f"{name:32s} {sps:10.0f} {sps / ref:7.2f}")
    if args.record:
        record = {
            "benchmark": "training step variants on real batches (benchmarks/train_step.py)",
            "command": "python " + shlex.join(sys.argv),
            "commit": git_commit(),
            "machine": machine(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "steps": args.steps,
            "rounds": runs,
            "samples_per_second": {k: round(v, 1) for k, v in results.items()},
            "ratio_to_default": {k: round(v / ref, 3) for k, v in results.items()},
        }
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
