"""Data-parallel training against one process, on two finished run directories of the same config.

    OMP_NUM_THREADS=1 torchrun --nproc_per_node=2 -m sidrec run beauty_rpg train.threads=1 --out runs/ddp/2x1
    sidrec run beauty_rpg train.threads=2 --out runs/ddp/1x2
    python benchmarks/ddp_compare.py runs/ddp/1x2 runs/ddp/2x1 --record benchmarks/results/ddp_beauty_cpu.json

Reported for each run: processes x threads, training samples/s (the training loop only: the median
over epochs of train_log.jsonl's per-epoch rate, and the whole fit including rank-0 validation), epochs,
best epoch, wall time, validation and test metrics; then the data-parallel run's speed ratio and its
metric differences. Whether those differences are within seed noise is for the reader to judge against
the same config's seed spread (the note names it); this script only measures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

from sidrec import io
from sidrec.report import git_commit, machine


def summarize(run_dir: Path) -> dict:
    record = io.load_json(run_dir / "record.json")
    rows = io.load_train_log(run_dir)
    cfg = io.load_run_config(run_dir)
    return dict(
        run=str(run_dir),
        command=record["command"],
        commit=record["commit"],
        processes=record.get("world_size", 1),
        threads_per_process=cfg.train.threads,
        loop_samples_per_second=round(statistics.median(r["samples_per_second"] for r in rows), 1),
        fit_samples_per_second=record["train"]["samples_per_second"],
        train_seconds=record["train"]["train_seconds"],
        epochs=record["train"]["epochs"],
        best_epoch=record["best_epoch"],
        wall_seconds=record["wall_seconds"],
        from_empty_dir=record.get("from_empty_dir"),  # False when the run started from copied inputs
        stages_run=record.get("stages_run"),
        stage_seconds=record["stage_seconds"],
        valid=record["valid"],
        test=record["test"],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("single", type=Path, help="run directory trained by one process")
    ap.add_argument("ddp", type=Path, help="run directory trained under torchrun")
    ap.add_argument("--record", type=Path, default=None)
    args = ap.parse_args()
    one, ddp = summarize(args.single), summarize(args.ddp)
    if ddp["processes"] < 2:
        sys.exit(f"{args.ddp}: its record has no world_size > 1; train it under torchrun")
    a, b = io.load_run_config(args.single), io.load_run_config(args.ddp)
    differ = [k for k in ("data", "quantize", "model", "eval") if getattr(a, k) != getattr(b, k)]
    if differ or a.seed != b.seed or a.train.epochs != b.train.epochs or a.train.batch_size != b.train.batch_size:
        sys.exit(f"the two runs' configs differ ({', '.join(differ) or 'seed / train'}): compare like with like")
    record = dict(
        benchmark="data-parallel training (torchrun, gloo) vs one process",
        command="python " + shlex.join(sys.argv),
        commit=git_commit(),
        machine=machine().rsplit(",", 1)[0],  # threads: per run below
        single=one,
        ddp=ddp,
        loop_speed_ratio=round(ddp["loop_samples_per_second"] / one["loop_samples_per_second"], 3),
        fit_speed_ratio=round(ddp["fit_samples_per_second"] / one["fit_samples_per_second"], 3),
        test_difference={k: round(ddp["test"][k] - one["test"][k], 6) for k in one["test"]},
        valid_difference={k: round(ddp["valid"][k] - one["valid"][k], 6) for k in one["valid"]},
    )
    print(json.dumps(record, indent=2))
    if args.record:
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
