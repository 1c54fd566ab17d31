"""torchrun-style data parallelism: two gloo processes train like one process on the same global batch.

Both runs go through `pipeline.run` on the shipped `toy` config (dropout off: with dropout on, each rank
draws its own masks, so only the no-dropout losses can match). The global batch size 113 leaves a last
batch of one example per epoch, so one rank trains on a stand-in row with weight 0 there.
Tolerance: per-step losses agree within 1e-5 relative (float32 sums taken in another order).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from sidrec.config import load_config
from sidrec.data.batches import shard_batches

# fp32: the claim is that two ranks compute one process's arithmetic; bf16 autocast (`auto` on AMX / AVX512-BF16
# CPUs) rounds the two reductions differently, by about 1e-4 of the loss
OVERRIDES = ["train.epochs=2", "train.batch_size=113", "model.dropout=0", "train.threads=1", "train.precision=fp32"]
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_recording_losses(run_dir: Path) -> list[list[float]]:
    """pipeline.run on `run_dir` with `fit` reporting every step's loss."""
    from sidrec import pipeline

    losses: list[list[float]] = []
    original = pipeline.fit
    pipeline.fit = functools.partial(original, on_step=lambda step, loss: losses.append([step, loss]))
    try:
        pipeline.run(load_config("toy_tiger", OVERRIDES), run_dir)
    finally:
        pipeline.fit = original
    return losses


def _worker(rank: int, world: int, port: int, run_dir: str, report_dir: str) -> None:
    """One torchrun-like rank: the env torchrun sets, then the run; writes what it saw to report_dir."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    root, writes = os.path.realpath(run_dir), []

    def audit(event: str, args: tuple) -> None:  # every file this process opens for writing in the run directory
        if event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            path = os.path.realpath(os.fsdecode(args[0]))
            mode, flags = args[1] or "", args[2] or 0
            if path.startswith(root) and (any(c in str(mode) for c in "wax+") or flags & WRITE_FLAGS):
                writes.append(os.path.basename(path))
        elif event in ("os.rename", "os.replace", "os.remove"):
            path = os.path.realpath(os.fsdecode(args[1] if event != "os.remove" else args[0]))  # the name it gets
            if path.startswith(root):
                writes.append(os.path.basename(path))

    sys.addaudithook(audit)
    losses = _run_recording_losses(Path(run_dir))
    report = {"losses": losses, "writes": sorted(set(writes))}
    Path(report_dir, f"rank{rank}.json").write_text(json.dumps(report))


def test_two_gloo_ranks_train_like_one_process_and_only_rank_0_writes(tmp_path):
    single = _run_recording_losses(tmp_path / "one")
    reports = tmp_path / "reports"
    reports.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "two"), str(reports)), nprocs=2, join=True)
    rank0, rank1 = (json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1))
    steps = 2 * -(-2035 // 113)  # 2 epochs x 19 global batches of the toy data
    assert len(single) == steps and [s for s, _ in single] == list(range(1, steps + 1))
    for report in (rank0, rank1):  # every rank reports the global batch's loss
        assert [s for s, _ in report["losses"]] == [s for s, _ in single]
        np.testing.assert_allclose([v for _, v in report["losses"]], [v for _, v in single], rtol=1e-5)
    assert rank1["writes"] == [], rank1["writes"]
    assert {"model.pt", "checkpoint.pt", "train_log.jsonl", "sids.npy", "metrics.json"} <= set(rank0["writes"])
    record = json.loads((tmp_path / "two" / "record.json").read_text())
    assert record["world_size"] == 2 and record["stages_run"] == ["prepare", "embed", "quantize", "train", "evaluate"]
    log = [json.loads(line) for line in (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]  # one log, written once


def test_shards_concatenate_to_the_global_batch_and_an_empty_one_gets_a_stand_in():
    batches = [np.arange(10), np.arange(10, 13), np.array([13])]
    parts = [shard_batches(batches, rank, 3) for rank in range(3)]
    for b, batch in enumerate(batches[:2]):
        assert np.array_equal(np.concatenate([parts[r][b][0] for r in range(3)]), batch)
        assert all(parts[r][b][1] for r in range(3))
    assert [parts[r][2][1] for r in range(3)] == [False, False, True]  # only rank 2 holds the real row
    assert [parts[r][2][0].tolist() for r in range(3)] == [[13], [13], [13]]


def test_one_process_yields_unchanged_batches():
    from sidrec.data.batches import IDExamples

    seqs = [np.arange(1, 2 + i % 5) for i in range(30)]
    ex = IDExamples(seqs, max_history=4)
    plain = list(ex.batches(8, np.random.default_rng(0)))
    assert all("weight" not in b for b in plain)
    shards = [list(ex.batches(8, np.random.default_rng(0), rank=r, world=2)) for r in range(2)]
    for b, batch in enumerate(plain):
        got = sum(float(shards[r][b]["weight"]) for r in range(2))
        assert got == int((batch["targets"] > 0).sum())  # the ranks' loss terms add up to the global batch's


def test_torchrun_cli_trains_the_toy_run(toy_run, tmp_path):
    """`torchrun --nproc_per_node=2 -m sidrec train` (CPU, gloo) on a toy run's SIDs: rank 0 prints, one log."""
    import shutil
    import subprocess

    from sidrec import io

    out = tmp_path / "run"
    shutil.copytree(toy_run, out)
    for name in (io.MODEL, io.CHECKPOINT, io.TRAIN_LOG, io.TRAIN_SUMMARY, io.METRICS, io.PREDICTIONS):
        (out / name).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    cmd += ["-m", "sidrec", "train", "train.epochs=1", "train.threads=1", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("train_model: done") == 1  # rank 0 alone prints
    assert len((out / io.TRAIN_LOG).read_text().splitlines()) == 1 and (out / io.MODEL).exists()


def test_records_name_the_torchrun_launch(monkeypatch):
    from sidrec import distributed

    for var in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.launcher() == ""  # a plain command
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert distributed.launcher() == "torchrun --nproc_per_node=2 -m "
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert distributed.launcher() == "torchrun --nnodes=2 --nproc_per_node=8 -m "
