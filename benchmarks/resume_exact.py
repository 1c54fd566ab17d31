"""A training run killed and resumed against the same run never stopped: does it end with the same weights?

    python benchmarks/resume_exact.py beauty_decoder model.decoder.experts=4 model.decoder.expert_top_k=2 \
        train.epochs=2 seed=42 \
        --work runs/resume_exact --record benchmarks/results/resume_exact_beauty_decoder_moe.json

`sidrec prepare`, `embed` and `quantize` run once into WORK/inputs, which is copied to WORK/straight and
WORK/killed. `sidrec train` trains WORK/straight without a stop. In WORK/killed the same command is killed
with SIGKILL (what a session's end or an out-of-memory kill does; its whole process group) --kill-after
seconds after epoch --kill-epoch is logged and checkpointed, i.e. inside the next epoch, and then run again:
it resumes from checkpoint.pt. The record compares every tensor of model.pt (the best-validation weights) and
of checkpoint.pt (the last weights, the optimizer's state, the RNG state), and each epoch's loss and
validation metrics in train_log.jsonl. Identical weights give an identical evaluation, so the evaluate stage
is not run. What it shows holds for one machine, thread count and precision (a resume keeps the precision;
`train.segments` of a record names the machine of each part).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from sidrec import io
from sidrec.report import git_commit


def sidrec(stage: str, args: list[str], out: Path, log: Path) -> subprocess.Popen:
    """`sidrec STAGE ARGS --out OUT` in its own process group, its output appended to LOG."""
    cmd = [sys.executable, "-m", "sidrec", stage, *args, "--out", str(out)]
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, log: Path) -> None:
    if proc.wait() != 0:
        sys.exit(f"{shlex.join(proc.args)} failed (rc {proc.returncode}); its output is in {log}")


def train_killed(args: list[str], run_dir: Path, log: Path, kill_epoch: int, kill_after: float) -> dict:
    """Train, SIGKILL `kill_after` s after epoch `kill_epoch` is logged and a checkpoint is on disk, train again.

    Waiting for the checkpoint (written just after the log row) makes the resume a resume on a loaded machine too."""
    t0 = time.perf_counter()
    proc = sidrec("train", args, run_dir, log)
    logged = None
    ckpt = run_dir / io.CHECKPOINT
    while proc.poll() is None:
        if logged is None and ckpt.exists() and any(r["epoch"] == kill_epoch for r in io.load_train_log(run_dir)):
            logged = time.perf_counter()
        if logged is not None and time.perf_counter() - logged >= kill_after:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        time.sleep(0.1)
    else:
        sys.exit(f"training ended (rc {proc.returncode}) before the kill: --kill-epoch must be below train.epochs")
    first = time.perf_counter() - t0
    saved = torch.load(ckpt, weights_only=False)["state"]["epoch"]
    t0 = time.perf_counter()
    resumed = sidrec("train", args, run_dir, log)
    finish(resumed, log)
    return dict(
        killed_after_seconds=round(first, 1),
        checkpoint_epoch_at_kill=saved,
        resume_seconds=round(time.perf_counter() - t0, 1),
    )


def flat(obj, prefix: str = "") -> dict:
    """Every leaf of nested dicts / lists / tuples, keyed by its path."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in flat(val, f"{prefix}{key}.").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, val in enumerate(obj) for k, v in flat(val, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): obj}


def compare(a: dict, b: dict) -> dict:
    """Tensors bit for bit (and their largest absolute difference), other leaves by equality."""
    fa, fb = flat(a), flat(b)
    differ, worst, tensors = [], 0.0, 0
    for key in sorted(set(fa) | set(fb)):
        x, y = fa.get(key), fb.get(key)
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            tensors += 1
            same = x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y)
            if not same and x.shape == y.shape and x.is_floating_point():
                worst = max(worst, float((x.double() - y.double()).abs().max()))
        else:
            same = x == y
        if not same:
            differ.append(key)
    return dict(leaves=len(set(fa) | set(fb)), tensors=tensors, differing=differ[:20], n_differing=len(differ),
                max_abs_difference=worst)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("args", nargs="+", help="CONFIG, then key=value overrides (as for sidrec run)")
    ap.add_argument("--work", type=Path, required=True, help="an empty or absent folder for the three run dirs")
    ap.add_argument("--kill-epoch", type=int, default=1, help="kill during the epoch after this one")
    ap.add_argument("--kill-after", type=float, default=60.0, help="seconds after that epoch is logged")
    ap.add_argument("--record", type=Path, default=None)
    args = ap.parse_args()
    if args.work.exists() and any(args.work.iterdir()):
        sys.exit(f"{args.work} is not empty: give an empty or absent --work folder")
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "commands.log"
    t0 = time.perf_counter()
    for stage in ("prepare", "embed", "quantize"):
        finish(sidrec(stage, args.args, args.work / "inputs", log), log)
    inputs_seconds = time.perf_counter() - t0
    for name in ("straight", "killed"):
        shutil.copytree(args.work / "inputs", args.work / name)
    t0 = time.perf_counter()
    finish(sidrec("train", args.args, args.work / "straight", log), log)
    straight_seconds = time.perf_counter() - t0
    kill = train_killed(args.args, args.work / "killed", log, args.kill_epoch, args.kill_after)
    a, b = args.work / "straight", args.work / "killed"
    ckpt_a, ckpt_b = (torch.load(d / io.CHECKPOINT, weights_only=False) for d in (a, b))
    model_a, model_b = (torch.load(d / io.MODEL, weights_only=False) for d in (a, b))
    state_keys = ("model", "optimizer", "torch_rng", "ema")
    checkpoint = compare({k: ckpt_a.get(k) for k in state_keys}, {k: ckpt_b.get(k) for k in state_keys})
    best = compare(model_a, model_b)
    fields = ("epoch", "loss", "lr", "valid")
    rows_a, rows_b = io.load_train_log(a), io.load_train_log(b)
    epochs = [
        dict(
            epoch=ra["epoch"],
            straight_loss=ra["loss"],
            resumed_loss=rb["loss"],
            straight_valid_ndcg10=ra.get("valid", {}).get("ndcg@10"),
            resumed_valid_ndcg10=rb.get("valid", {}).get("ndcg@10"),
            same=all(ra.get(f) == rb.get(f) for f in fields),
        )  # fmt: skip
        for ra, rb in zip(rows_a, rows_b, strict=False)
    ]
    identical = (
        not checkpoint["n_differing"] and not best["n_differing"]
        and len(rows_a) == len(rows_b) and all(e["same"] for e in epochs)
    )  # fmt: skip
    record = dict(
        benchmark="a training run killed (SIGKILL) inside an epoch and resumed, against the same run never stopped",
        command="python " + shlex.join(sys.argv),
        commit=git_commit(),
        args=args.args,
        segments=dict(straight=ckpt_a["state"]["segments"], resumed=ckpt_b["state"]["segments"]),
        inputs_seconds=round(inputs_seconds, 1),
        straight_train_seconds=round(straight_seconds, 1),
        kill=dict(epoch_logged=args.kill_epoch, seconds_after=args.kill_after, **kill),
        epochs=epochs,
        log_rows=dict(straight=len(rows_a), resumed=len(rows_b)),
        checkpoint=checkpoint,
        best_model=best,
        bit_identical=identical,
    )
    if args.record:
        io.save_json(args.record, record)
    print(f"\n{'epoch':>5}  {'loss straight':>14}  {'loss resumed':>14}  {'valid N@10 straight':>19}  {'resumed':>8}")
    for e in epochs:
        print(f"{e['epoch']:>5}  {e['straight_loss']:>14.6f}  {e['resumed_loss']:>14.6f}  "
              f"{e['straight_valid_ndcg10'] or 0:>19.4f}  {e['resumed_valid_ndcg10'] or 0:>8.4f}")  # fmt: skip
    print(f"\nkilled {kill['killed_after_seconds']:.0f} s into training (checkpoint of epoch "
          f"{kill['checkpoint_epoch_at_kill']} on disk), resumed in {kill['resume_seconds']:.0f} s")  # fmt: skip
    print(
        f"checkpoint.pt: {checkpoint['tensors']} tensors, {checkpoint['n_differing']} differ; model.pt: "
        f"{best['tensors']} tensors, {best['n_differing']} differ -> "
        + ("bit-identical" if identical else f"NOT identical (max |diff| {checkpoint['max_abs_difference']:.3g})")
    )
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
