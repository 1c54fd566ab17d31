"""Smoke tests of `sidrec bench` on tiny shapes (the GRID-size models are shrunk too, to keep it fast), with
benchmarks/bench_t5.py's HF T5 reference, and of benchmarks/train_step.py on a finished toy run."""

from __future__ import annotations

import importlib.util
import json
import shlex

import numpy as np
import torch

from bench_scripts import load_benchmark
from sidrec import bench, io
from sidrec.bench import ITEMS, run_bench, synthetic_sids
from sidrec.config import load_config

TINY = [
    "model.d_model=16",
    "model.n_heads=2",
    "model.d_head=8",
    "model.d_ff=32",
    "model.n_enc_layers=1",
    "model.n_dec_layers=1",
    "quantize.codebook_size=32",
    "train.batch_size=8",
    "train.precision=fp32",
    "train.device=cpu",
    "eval.batch_size=16",
]


def test_synthetic_sids_are_distinct_with_a_small_dedup_digit():
    sids = synthetic_sids(np.random.default_rng(0), 3, 32)
    assert sids.shape == (ITEMS, 4)
    assert len(np.unique(sids, axis=0)) == ITEMS
    assert sids[:, :3].max() < 32 and 0 <= sids[:, 3].min() and sids[:, 3].max() < 4


def test_matmul_peak_is_positive():
    assert bench.matmul_peak(torch.device("cpu"), bf16=False, n=128, repeats=2) > 0


def test_run_bench_tiny(monkeypatch):
    grid = dict(d_model=32, n_heads=2, d_head=16, d_ff=64, n_enc_layers=1, n_dec_layers=1, user_tokens=0)
    monkeypatch.setattr(bench, "GRID_SIZE", grid)
    t5_script = load_benchmark("bench_t5")
    t5 = dict(d_model=32, d_kv=16, num_heads=2, d_ff=64, num_layers=1, num_decoder_layers=1, dropout_rate=0.1)
    monkeypatch.setattr(t5_script, "T5_GRID", t5)
    reference = importlib.util.find_spec("transformers") is not None
    out = run_bench(load_config("beauty_tiger", TINY), steps=2, users=16, reference=t5_script.t5_reference)
    assert "samples/s" in out
    rec = out.record
    json.dumps(rec)  # JSON-ready
    assert len(rec["results"]) == (3 if reference else 2)
    assert rec["matmul_peak_tflops"] > 0 and "TFLOP/s" in out
    for row in rec["results"]:
        assert row["train_samples_per_s"] > 0 and row["beam_free_users_per_s"] > 0
        assert len(row["train_step_ms"]) == 2
        assert row["train_tflops"] > 0 and row["beam_free_tflops"] > 0
        expected = 100 * row["train_tflops"] / rec["matmul_peak_tflops"]
        assert abs(row["train_pct_of_peak"] - expected) < 0.05 + 0.01 * expected
    assert rec["results"][0]["params"] < rec["results"][1]["params"]
    if reference:
        assert rec["results"][2]["beam_constrained_users_per_s"] is None
        assert rec["results"][0]["train_vs_ref"] > 0 and rec["reference"].startswith("transformers")


def test_run_bench_with_rpg(monkeypatch):
    """`--rpg`: RPG's row has exact and graph top-10 users/s and the graph build time, no ratio."""
    grid = dict(d_model=16, n_heads=2, d_head=8, d_ff=32, n_enc_layers=1, n_dec_layers=1, user_tokens=0)
    monkeypatch.setattr(bench, "GRID_SIZE", grid)
    real = bench.load_config

    def small_rpg(path, overrides=()):  # the shipped shape, shrunk: a CI-sized smoke test
        small = ["model.d_model=16", "model.n_heads=2", "model.d_head=8", "model.d_ff=32", "model.n_enc_layers=1",
                 "quantize.levels=4", "quantize.codebook_size=16", "eval.graph_edges=8"]  # fmt: skip
        return real(path, [*overrides, *small])

    monkeypatch.setattr(bench, "load_config", small_rpg)
    out = run_bench(load_config("beauty_tiger", TINY), steps=2, users=16, rpg=True)
    rpg = out.record["results"][-1]
    assert rpg["model"].startswith("sidrec RPG")
    assert rpg["train_samples_per_s"] > 0 and rpg["exact_users_per_s"] > 0 and rpg["graph_users_per_s"] > 0
    assert rpg["graph_build_s"] >= 0 and rpg["train_vs_ref"] is None and out.record["reference"] == "none"
    assert "top-10 users/s graph" in out


def test_train_step_times_generators_on_a_finished_runs_batches(toy_run, tmp_path, monkeypatch):
    """benchmarks/train_step.py starts from the run's own config; one --override may set several keys."""
    record = tmp_path / "steps.json"
    decoder = "model.name=decoder model.decoder.tie_embeddings=true"
    argv = ["train_step.py", str(toy_run), "--steps", "2", "--rounds", "1", "--override", decoder, "--record"]
    monkeypatch.setattr("sys.argv", [*argv, str(record)])
    load_benchmark("train_step").main()
    out = io.load_json(record)
    assert set(out["samples_per_second"]) == {"default (fused AdamW)", "for-loop AdamW", decoder}
    assert all(v > 0 for v in out["samples_per_second"].values()) and out["ratio_to_default"][decoder] > 0
    assert shlex.split(out["command"])[1:] == [*argv, str(record)]  # the command reproduces it, quoting and all
