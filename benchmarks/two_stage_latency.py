"""Serving cost of the two stages: latency per request of retrieval alone and of retrieval + the generative ranker.

    python benchmarks/two_stage_latency.py /work/runs/ml100k_rank_default_seed42 \
        --record benchmarks/results/two_stage_latency_ml100k.json

Loads a run that has a ranker (`rank.enabled=true`) through the public API (`sidrec.load`) and answers the test
users' histories (the last data.max_history events before each test item, with their times and actions) one
request at a time (k=10), through `Model.recommend`, as a server's single request does: once with the two
stages, once with the run's retriever alone, the two interleaved request by request so that both see the same
machine state. Records p50 / p90 / p99 / mean milliseconds of each, their ratios, and the same for batches of
`--batch` requests (users/s), with the command, commit, machine and wall time. A run whose validation chose
weight 0 (the retriever's order: the ranker is skipped) is timed at weight 1, so that the ranker runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

import sidrec
from sidrec import io
from sidrec.data.split import eval_examples
from sidrec.report import git_commit, machine


def summary(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {k: round(float(v), 3) for k, v in
            {"p50": np.percentile(a, 50), "p90": np.percentile(a, 90), "p99": np.percentile(a, 99),
             "mean": a.mean(), "max": a.max()}.items()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--requests", type=int, default=500, help="single requests per side")
    ap.add_argument("--batch", type=int, default=64, help="requests per batched call")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weight", type=float, default=0.0, help="blend weight timed (0: the run's; 1 if that is 0)")
    ap.add_argument("--record", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = sidrec.load(args.run)
    two = model.recommender
    if not hasattr(two, "retriever"):
        sys.exit(f"{args.run} has no ranker: run it with rank.enabled=true")
    chosen = two.weight
    two.weight = args.weight or chosen or 1.0  # weight 0 skips the ranker: time the two stages at a weight that runs it
    sides = {"retriever": two.retriever, "two_stage": two}
    cfg = model.config
    ex = eval_examples(pl.read_parquet(args.run / io.SEQUENCES), "test", cfg.data.max_history)
    ids = model.item_ids
    rng = np.random.default_rng(0)
    rows = rng.choice(len(ex.targets), min(args.requests, len(ex.targets)), replace=False)
    times, actions = ex.events["times"], ex.events["actions"]
    requests = [([ids[i - 1] for i in ex.histories[r]], times[r].tolist(), actions[r].tolist()) for r in rows]
    for name in sides:  # warm-up
        model.recommender = sides[name]
        for h, t, a in requests[:20]:
            model.recommend(h, k=10, times=t, actions=a)
    ms: dict[str, list[float]] = {name: [] for name in sides}
    for i, (h, t, a) in enumerate(requests):
        for name in sides if i % 2 == 0 else reversed(sides):  # interleaved, alternating which goes first
            model.recommender = sides[name]
            s = time.perf_counter()
            model.recommend(h, k=10, times=t, actions=a)
            ms[name].append((time.perf_counter() - s) * 1000)
    batched: dict[str, float] = {}
    for name in sides:
        model.recommender = sides[name]
        s = time.perf_counter()
        for b in range(0, len(requests), args.batch):
            part = requests[b : b + args.batch]
            model.recommend_batch([p[0] for p in part], k=10, times=[p[1] for p in part], actions=[p[2] for p in part])
        batched[name] = round(len(requests) / (time.perf_counter() - s), 1)
    model.recommender = two
    single = {name: summary(v) for name, v in ms.items()}
    record = {
        "benchmark": "two_stage_latency",
        "run": str(args.run),
        "candidates": cfg.rank.candidates,
        "weight_timed": two.weight,
        "weight_chosen_on_validation": chosen,
        "ranker_params": sum(p.numel() for p in two.ranker.parameters()),
        "requests": len(requests),
        "single_request_ms": single,
        "ratio_p50": round(single["two_stage"]["p50"] / single["retriever"]["p50"], 2),
        "ratio_p99": round(single["two_stage"]["p99"] / single["retriever"]["p99"], 2),
        f"batch{args.batch}_users_per_second": batched,
        "threads": args.threads,
        "command": "python " + shlex.join(sys.argv),
        "commit": git_commit(),
        "machine": machine(),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    for name, s in single.items():
        print(f"{name:10s} p50 {s['p50']:7.2f} ms  p90 {s['p90']:7.2f}  p99 {s['p99']:7.2f}  "
              f"batch{args.batch} {batched[name]:8.1f} users/s")  # fmt: skip
    print(f"two stages / retriever: p50 {record['ratio_p50']}x, p99 {record['ratio_p99']}x")
    if args.record:
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
