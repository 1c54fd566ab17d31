"""Million-item catalogs on one CPU: RK-Means 3x256 fit + encode, trie build, constrained beam search; and
RPG's exact and graph decoding.

    python benchmarks/scale.py --items 1000000 10000000 --record benchmarks/results/scale_cpu.json
    python benchmarks/scale.py --rpg-items 100000 1000000 10000000 --record benchmarks/results/scale_rpg_cpu.json

For each catalog size a child process (so peak RSS is that size's alone) writes synthetic clustered
item vectors chunk by chunk into a .npy under a temporary folder (plain file writes: the array is never
held in memory): 384-d float32, seeded, 256 topics x 16 sub-topics x 16 leaves plus noise, every part
with a decaying spectrum (variance ~ 1/d over the dimensions), unit-normalised, like sentence
embeddings. (Isotropic noise leaves the last level nothing to split: perplexity 5 of 256 in a 10^5-item
trial.) Then it runs what `sidrec quantize` runs: RK-Means 3x256 (50 k-means iterations) fitted on the
default `quantize.fit_sample`, every item encoded in chunks read from the file, the TIGER de-dup digit.
At 10^6 items (`--beam-items`) it also builds the SID trie and times constrained beam search (default
TIGER size, beam 40, k 10) over random 20-item histories. The TIGER weights are random (untrained):
beam-search speed does not depend on them. Peak RSS is the child's `ru_maxrss`. Times are wall-clock
seconds; run it alone on the machine.

`--rpg-items`: for each size a child process builds the default RPG (OPQ 16 x 256 codes, random and untrained:
decoding speed does not depend on the weights or on which codes the items have) over random codes, then times,
over random 20-item histories at batches of 32 and 512 users: exact decoding (every item scored,
`ItemRecommender`, at most `MAX_SCORES` scores held at once) and graph decoding (`GraphRecommender`, the default
beams, edges and steps). The item graph is built (and timed) up to `--graph-build-max` items; its build scores
every pair of items (N^2 work), so larger catalogs get a random graph of the same shape for the decoding times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from sidrec.config import ModelConfig, QuantizeConfig
from sidrec.decode.trie import SIDTrie
from sidrec.models import build_model
from sidrec.quantize import RQKMeans
from sidrec.quantize.sids import deduplicate, sid_stats
from sidrec.quantize.stream import CHUNK, encode_chunked, fit_points
from sidrec.recommender import SIDRecommender
from sidrec.report import git_commit, machine

DIM, TOPICS, SUB, LEAF = 384, 256, 16, 16
RPG_BATCHES = (32, 512)  # users per decoding call (the peer comparison's two batch sizes)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def write_vectors(path: Path, n: int, seed: int) -> None:
    """n x 384 float32 clustered unit vectors into a .npy, CHUNK rows at a time."""
    rng = np.random.default_rng(seed)
    scale = np.arange(1, DIM + 1, dtype=np.float32) ** -0.5  # (D,) standard deviation per dimension
    scale *= np.sqrt(DIM / (scale**2).sum())  # total variance D, as for i.i.d. unit normals

    def normal(*shape: int, r: np.random.Generator = rng) -> np.ndarray:
        return r.standard_normal(shape, dtype=np.float32) * scale

    topics = normal(TOPICS, DIM)
    subs = topics.repeat(SUB, 0) + 0.6 * normal(TOPICS * SUB, DIM)
    leaves = subs.repeat(LEAF, 0) + 0.4 * normal(len(subs) * LEAF, DIM)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, DIM)})
        for i, start in enumerate(range(0, n, CHUNK)):
            r = np.random.default_rng([seed, i])
            m = min(CHUNK, n - start)
            x = leaves[r.integers(0, len(leaves), m)] + 0.15 * normal(m, DIM, r=r)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            x.astype(np.float32).tofile(f)


def beam_users_per_second(sids: np.ndarray, users: int, seed: int) -> dict:
    sizes = tuple([256] * 3 + [int(sids[:, 3].max()) + 1])
    torch.manual_seed(seed)
    model = build_model(ModelConfig(), level_sizes=sizes, max_history=20).eval()  # untrained weights
    start = time.perf_counter()
    rec = SIDRecommender(model, sids, beam_width=40, constrained=True, bf16=False, seed=seed)
    setup = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    hists = [rng.integers(1, len(sids) + 1, 20) for _ in range(users)]
    rec.recommend(hists[:64], 10)  # warm-up
    start = time.perf_counter()
    for i in range(0, users, 256):
        rec.recommend(hists[i : i + 256], 10)
    seconds = time.perf_counter() - start
    return {
        "users": users,
        "beam_width": 40,
        "k": 10,
        "users_per_batch": 256,
        "model": "tiger, default ModelConfig (d 128, 2+2 layers), random untrained weights",
        "recommender_setup_seconds": round(setup, 2),
        "seconds": round(seconds, 2),
        "users_per_second": round(users / seconds, 1),
    }


def one(n: int, folder: Path, seed: int, beam: bool, users: int) -> dict:
    """Everything for one catalog size, in this (child) process."""
    torch.set_num_threads(int(os.environ.get("SCALE_THREADS", "1")))
    path = folder / f"x{n}.npy"
    out: dict = {"items": n, "dim": DIM, "storage": "float32 .npy on disk, read in chunks"}
    t = time.perf_counter()
    write_vectors(path, n, seed)
    out["generate_seconds"] = round(time.perf_counter() - t, 1)
    x = np.load(path, mmap_mode="r")
    cfg = QuantizeConfig()
    q = RQKMeans.from_config(cfg, DIM, seed)
    t = time.perf_counter()
    q.fit(fit_points(x, cfg.fit_sample, seed))
    out["fit_seconds"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    codes = encode_chunked(q, x)
    out["encode_seconds"] = round(time.perf_counter() - t, 1)
    out["fit_plus_encode_seconds"] = round(out["fit_seconds"] + out["encode_seconds"], 1)
    out["rkmeans"] = {"levels": cfg.levels, "codebook_size": cfg.codebook_size, "kmeans_iters": cfg.kmeans_iters,
                      "fit_sample": cfg.fit_sample, "encode_chunk_rows": CHUNK}  # fmt: skip
    t = time.perf_counter()
    sids = deduplicate(codes, "tiger", cfg.codebook_size, seed)
    out["dedup_seconds"] = round(time.perf_counter() - t, 1)
    stats = sid_stats(codes, sids, cfg.codebook_size)
    out["sids"] = {k: stats[k] for k in ("collision_rate", "max_collision_group", "dedup_max")}
    out["sids"]["perplexity_per_level"] = [round(level["perplexity"], 1) for level in stats["per_level"]]
    out["peak_rss_gib_quantize"] = round(peak_rss_gib(), 2)
    if beam:
        t = time.perf_counter()
        trie = SIDTrie(sids, tuple([256] * 3 + [int(sids[:, 3].max()) + 1]))
        out["trie_build_seconds"] = round(time.perf_counter() - t, 2)
        tables = [t for t in trie.children + trie.keys if t is not None]
        out["trie_table_mib"] = round(sum(t.numel() * t.element_size() for t in tables) / 2**20, 1)
        out["trie_sparse_levels"] = [level for level, c in enumerate(trie.children) if c is None]
        del trie
        out["beam_search"] = beam_users_per_second(sids, users, seed)
    out["peak_rss_gib"] = round(peak_rss_gib(), 2)
    path.unlink()
    return out


def rpg_one(n: int, seed: int, users: int, batches: tuple[int, ...], graph_build_max: int) -> dict:
    """RPG exact and graph decoding at one catalog size, in this (child) process."""
    from sidrec.config import EvalConfig
    from sidrec.recommender import GraphRecommender, ItemRecommender

    torch.set_num_threads(int(os.environ.get("SCALE_THREADS", "1")))
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    codes = rng.integers(0, 256, (n, 16), dtype=np.int64)
    model = build_model(ModelConfig(), max_history=20, codes=codes, codebook_size=256).eval()  # the default: rpg
    del codes
    ev = EvalConfig()
    out: dict = {"items": n, "model": "rpg, default ModelConfig (OPQ 16 x 256 codes), random untrained weights",
                 "setup_seconds": round(time.perf_counter() - t, 1)}  # fmt: skip
    hists = [rng.integers(1, n + 1, 20) for _ in range(users)]
    exact = ItemRecommender(model, max_history=20)
    graph = GraphRecommender(model, max_history=20, beams=ev.graph_beams, edges=ev.graph_edges,
                             steps=ev.graph_steps, seed=seed)  # fmt: skip
    if n <= graph_build_max:
        t = time.perf_counter()
        graph.build_graph()
        out["graph_build_seconds"] = round(time.perf_counter() - t, 1)
    else:
        graph.graph = torch.from_numpy(rng.integers(1, n + 1, (n + 1, ev.graph_edges), dtype=np.int64))
        out["graph"] = "random (the build scores every pair of items); decoding speed does not depend on the links"
    out["graph_settings"] = {"beams": ev.graph_beams, "edges": ev.graph_edges, "steps": ev.graph_steps}
    for name, rec in (("exact", exact), ("graph", graph)):
        for b in batches:
            with torch.inference_mode():
                rec.recommend(hists[:b], 10)  # warm-up
                start = time.perf_counter()
                for i in range(0, users, b):
                    rec.recommend(hists[i : i + b], 10)
            out[f"{name}_batch{b}_users_per_second"] = round(users / (time.perf_counter() - start), 1)
    out["exact_users_per_pass"] = max(1, ItemRecommender.MAX_SCORES // (n + 1))
    out["peak_rss_gib"] = round(peak_rss_gib(), 2)
    return out


def crossover(rows: list[dict], batch: int) -> str:
    """The smallest measured catalog where graph decoding serves more users/s than exact decoding."""
    wins = [
        r["items"]
        for r in rows
        if r[f"graph_batch{batch}_users_per_second"] > r[f"exact_batch{batch}_users_per_second"]
    ]
    return (
        f"graph faster from {min(wins):,} items (of those measured)" if wins else "exact faster at every size measured"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--beam-items", type=int, default=1_000_000, help="the size whose trie and beam search are timed")
    ap.add_argument("--users", type=int, default=1024, help="users beam-searched")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dir", default=None, help="where the vectors are written (default: a temporary folder)")
    ap.add_argument("--record", default=None, help="write the JSON record here")
    ap.add_argument("--append", action="store_true", help="add the results to those already in --record")
    ap.add_argument("--rpg-items", type=int, nargs="+", default=[], help="time RPG decoding at these sizes instead")
    ap.add_argument("--graph-build-max", type=int, default=100_000, help="largest catalog whose item graph is built")
    ap.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)  # child: one size, JSON to stdout
    ap.add_argument("--rpg-one", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, Path(args.dir), args.seed, args.one == args.beam_items, args.users)))
        return
    if args.rpg_one:
        print(json.dumps(rpg_one(args.rpg_one, args.seed, args.users, RPG_BATCHES, args.graph_build_max)))
        return
    results, commit, command = [], git_commit(), "python " + shlex.join(sys.argv)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for n in args.rpg_items or args.items:
            cmd = [sys.executable, __file__, "--one", str(n), "--dir", folder, "--seed", str(args.seed)]
            if args.rpg_items:
                cmd = [sys.executable, __file__, "--rpg-one", str(n), "--graph-build-max", str(args.graph_build_max)]
                cmd += ["--seed", str(args.seed)]
            cmd += ["--beam-items", str(args.beam_items), "--users", str(args.users)]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"size {n} failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["child_wall_seconds"] = round(time.perf_counter() - start, 1)
            row.update(commit=commit, command=command, date=date)
            results.append(row)
            print(json.dumps(row, indent=2), flush=True)
    threads = int(os.environ.get("SCALE_THREADS", "1"))
    torch.set_num_threads(threads)
    record = {
        "benchmark": "large catalogs on CPU (benchmarks/scale.py); each result row names its commit, command, date",
        "machine": machine(),
        "threads": threads,
        "note": "synthetic clustered 384-d unit vectors; beam search with untrained TIGER weights (speed only)",
        "results": results,
    }
    if args.rpg_items:
        record["note"] = "RPG decoding over random codes with untrained weights (speed and memory only)"
        record["crossover"] = {f"batch{b}": crossover(results, b) for b in RPG_BATCHES}
    if args.record and args.append and Path(args.record).exists():
        old = json.loads(Path(args.record).read_text())
        if old["machine"] != record["machine"]:
            sys.exit(f"--append: {args.record} was measured on {old['machine']}, not {record['machine']}")
        record["results"] = old["results"] + results
    if args.record:
        Path(args.record).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
