"""One explicit training loop for any model with `loss(batch) -> scalar`: `Trainer` (resume, one epoch,
validate and save), with its state in a `TrainState`; `fit` runs it.

The loop knows no model. Two optional hooks: `epoch_metrics() -> dict`, merged into each epoch's row
of `train_log.jsonl` (the MoE generators log their expert load), and `unused_parameters` (True when a
step may leave parameters without a gradient, which DistributedDataParallel must be told).

AdamW, linear warm-up then cosine decay over `epochs` x batches-per-epoch steps (the schedule
follows steps only, so the same seed and config give the same run on a fast or a slow machine;
`max_minutes` is an optional safety cap that stops training early and is reported as
`time_capped`, never a change of schedule), gradient clipping, bf16 autocast, an optional exponential
moving average of the weights (`ema`: validated and saved in place of the raw weights; Polyak &
Juditsky 1992), validation every `eval_every` epochs with early stopping on NDCG@10, the
best-validation weights kept in `model.pt`,
and the full training state in `checkpoint.pt` after every epoch, so a killed run resumes where it
stopped (`sidrec train` / `sidrec run` again with the same run directory). The state keeps one segment per
call that trained (its epochs, seconds, precision, machine, date), so a resumed run says where each part
ran; a resume never changes the precision (a run half in fp32, half in bf16 would be neither).

Under torchrun (`sidrec.distributed`), the model is wrapped in DistributedDataParallel through
`_LossOf` (DDP's hooks run on `forward`, and `loss(batch)` is the forward). Each rank trains on its
contiguous shard of every global batch, with its loss weighted by its share of the batch's loss terms
(`weight`, see `data.batches`), so the all-reduced gradient is the one-process gradient of the global
batch's mean loss (up to float summation order). Rank 0 alone validates and writes; it broadcasts
the loop state (best score, patience, the wall-clock cap) after every epoch, so all ranks stop together.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sidrec import distributed, io
from sidrec.config import TrainConfig

logger = logging.getLogger(__name__)

Batches = Callable[[int], Iterator[dict[str, torch.Tensor]]]  # epoch -> batches (on the model's device)
Validate = Callable[[nn.Module], dict[str, float]]


class TrainFiles(NamedTuple):
    """Where a training writes in its run directory, and the validation metric that picks its best epoch."""

    model: str = io.MODEL  # best-validation weights
    checkpoint: str = io.CHECKPOINT  # last epoch's full state (resume)
    log: str = io.TRAIN_LOG  # one JSON row per epoch
    metric: str = "ndcg@10"  # higher is better


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict[str, float]
    epochs_run: int
    seconds: float
    samples_per_second: float
    steps: int = 0
    time_capped: bool = False  # stopped by the `max_minutes` safety cap before the schedule ended
    precision: str = "fp32"  # what training ran in: bf16 (autocast) or fp32, `train.precision=auto` resolved here
    history: list[dict] = field(default_factory=list)
    # one entry per call that trained (several when resumed): from_epoch, to_epoch, seconds, precision, machine, date
    segments: list[dict] = field(default_factory=list)
    earlier_seconds: float = 0.0  # the part of `seconds` that earlier calls trained (before a resume)


def lr_factor(step: int, *, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to `min_ratio` at `total` steps (and flat after it)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class WeightAverage:
    """An exponential moving average of a model's parameters, kept in a frozen copy of the model.

    The decay is warmed up as (1 + step) / (10 + step), so the average follows the weights closely
    early on and settles at `decay` (a horizon of about 1 / (1 - decay) steps) later.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema={decay}: the EMA decay must lie in (0, 1), e.g. 0.999 (0 turns it off)")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._src = [p for p in model.parameters()]
        self._dst = [p for p in self.model.parameters()]
        self._src_buffers = list(model.buffers())
        self._dst_buffers = list(self.model.buffers())

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the current weights in (after optimizer step `step`, counted from 0)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self._dst, [p.detach() for p in self._src], 1.0 - decay)
        for dst, src in zip(self._dst_buffers, self._src_buffers, strict=True):
            dst.copy_(src)


class _LossOf(nn.Module):
    """`forward(batch) = model.loss(batch)`: what DistributedDataParallel wraps, so its hooks run."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.loss(batch)


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel as DDP

    unused = bool(getattr(model, "unused_parameters", False))  # e.g. experts that no token was routed to
    ids = [device.index if device.index is not None else distributed.local_rank()] if device.type == "cuda" else None
    return DDP(_LossOf(model), device_ids=ids, find_unused_parameters=unused)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "pos" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    device = next(model.parameters()).device
    # One fused kernel for all parameters: 1.04x the for-loop AdamW in training samples/s (benchmarks/train_step.py).
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), fused=fused or None)


@dataclass
class TrainState:
    """Everything the loop carries from epoch to epoch; saved in checkpoint.pt (as a dict) and broadcast to ranks."""

    epoch: int = 0  # epochs done
    best: float = -1.0  # best validation NDCG@10 so far
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    bad: int = 0  # validation passes without a gain (early stopping)
    history: list[dict] = field(default_factory=list)  # the rows of train_log.jsonl
    seconds: float = 0.0  # wall time of every call that trained this run
    samples: int = 0
    step: int = 0  # optimizer steps (the LR schedule's clock)
    time_capped: bool = False
    # one entry per call that trained (several when resumed): from_epoch, to_epoch, seconds, precision, machine, date
    segments: list[dict] = field(default_factory=list)

    @classmethod
    def from_checkpoint(cls, saved: dict) -> TrainState:
        names = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in saved.items() if k in names})
        if "segments" not in saved:  # a checkpoint from before segments were kept: its epochs, where unknown
            unknown = {"precision": "not recorded", "machine": "not recorded", "date": "not recorded"}
            earlier = {"from_epoch": 0, "to_epoch": state.epoch, "seconds": state.seconds, **unknown}
            state.segments = [earlier] if state.epoch else []
        return state


class Trainer:
    """The training loop: `resume` (or start), then `epoch` and `validate_and_save` until a stop; see `fit`."""

    def __init__(self, model: nn.Module, *, cfg: TrainConfig, run_dir: str | Path, meta: dict, seed: int,
                 validate: Validate, on_step: Callable[[int, float], None] | None = None,
                 files: TrainFiles = TrainFiles()) -> None:  # fmt: skip
        self.model, self.cfg, self.run_dir, self.meta, self.seed = model, cfg, Path(run_dir), meta, seed
        self.files, self.model_path = files, self.run_dir / files.model
        self.validate, self.on_step = validate, on_step
        self.device = next(model.parameters()).device
        self.world = distributed.world_size() if distributed.active() else 1
        self.main = distributed.is_main()
        self.net = _data_parallel(model, self.device) if self.world > 1 else None
        self.opt = _optimizer(model, cfg)
        self.ema = WeightAverage(model, cfg.ema) if cfg.ema else None
        self.best_model = self.ema.model if self.ema else model  # the weights that are validated and saved
        bf16 = use_bf16(cfg.precision, self.device)
        self.autocast = dict(device_type=self.device.type, dtype=torch.bfloat16, enabled=bf16)
        self.precision = "bf16" if bf16 else "fp32"
        self.ckpt_path = self.run_dir / files.checkpoint
        self.state = TrainState()
        self.start_wall = time.perf_counter()
        self.segment_start: float | None = None

    def resume(self) -> float:
        """Load checkpoint.pt if there is one (else seed torch); returns the seconds earlier calls trained."""
        if self.ckpt_path.exists():
            ckpt = torch.load(self.ckpt_path, map_location=self.device, weights_only=False)
            self.model.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["optimizer"])
            if self.ema:
                if "ema" not in ckpt:
                    raise ValueError(f"{self.ckpt_path} holds no weight average but train.ema={self.cfg.ema}: resume "
                                     "with train.ema=0 or retrain with --force")  # fmt: skip
                self.ema.model.load_state_dict(ckpt["ema"])
            self.state = TrainState.from_checkpoint(ckpt["state"])
            self.state.time_capped = False  # a resume under a larger (or no) cap goes on from there
            torch.set_rng_state(ckpt["torch_rng"])
            logger.info("resuming from %s after epoch %d", self.ckpt_path, self.state.epoch)
        else:
            torch.manual_seed(self.seed)
        if self.main:  # rows past the checkpoint (a kill between a row's append and its checkpoint) are trained again
            _write_log(self.run_dir / self.files.log, self.state.history)
        known = [s for s in self.state.segments if s["precision"] != "not recorded"]
        if known and known[-1]["precision"] != self.precision and self.state.epoch < self.cfg.epochs:
            last = known[-1]
            raise ValueError(
                f"{self.ckpt_path}: epochs {last['from_epoch'] + 1}-{last['to_epoch']} trained in {last['precision']} "
                f"on {last['machine']}, but here train.precision={self.cfg.precision} trains in {self.precision}; one "
                f"run keeps one precision: resume it on a machine where it trains in {last['precision']}, or retrain "
                "with --force"
            )
        self.start_wall = time.perf_counter() - self.state.seconds
        if self.capped():
            self.state.time_capped = True
        self.state = distributed.broadcast(self.state)  # rank 0's clock and checkpoint decide
        return sum(s["seconds"] for s in self.state.segments)

    def capped(self) -> bool:
        cap = self.cfg.max_minutes * 60
        return bool(cap) and time.perf_counter() - self.start_wall > cap

    def running(self) -> bool:
        st, cfg = self.state, self.cfg
        return st.epoch < cfg.epochs and st.bad < cfg.patience and not st.time_capped

    def epoch(self, epoch: int, batches: Batches, batches_per_epoch: int) -> dict:
        """Train one epoch; its row of train_log.jsonl (loss, lr, seconds, samples/s, the model's own metrics)."""
        model, cfg, st = self.model, self.cfg, self.state
        total = cfg.epochs * batches_per_epoch
        model.train()
        t0, samples, loss_sum, n = time.perf_counter(), 0, 0.0, 0
        if self.world > 1:  # dropout masks: each rank its own stream, the same after a resume
            torch.manual_seed(int(np.random.default_rng([self.seed, epoch, distributed.rank()]).integers(2**62)))
        bar = tqdm(batches(epoch), total=batches_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                   mininterval=2, disable=not self.main)  # fmt: skip
        for batch in bar:
            weight = batch.pop("weight", None)  # this rank's loss terms (torchrun); 0 for a stand-in row
            with torch.autocast(**self.autocast):
                loss = model.loss(batch) if self.net is None else self.net(batch)
            if weight is not None:  # weight by the share of the global batch: DDP then averages to its mean
                w = float(weight)
                total_w, total_loss = distributed.all_sum([w, float(loss.detach()) * w])
                loss_value = total_loss / total_w
                loss = loss * (w * self.world / total_w)
            else:
                loss_value = None
            factor = lr_factor(st.step, warmup=cfg.warmup_steps, total=total, min_ratio=cfg.min_lr_ratio)
            for group in self.opt.param_groups:
                group["lr"] = cfg.lr * factor
            st.step += 1
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.opt.step()
            if self.ema:
                self.ema.update(st.step - 1)
            samples += len(next(iter(batch.values()))) if weight is None or float(weight) > 0 else 0
            loss_value = loss.item() if loss_value is None else loss_value
            loss_sum, n = loss_sum + loss_value, n + 1
            if self.on_step is not None:
                self.on_step(st.step, loss_value)
            if n % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / n:.3f}", sps=f"{samples / (time.perf_counter() - t0):.0f}")
        train_s = time.perf_counter() - t0
        if self.world > 1:
            samples = int(distributed.all_sum([samples])[0])
        st.samples += samples
        row = {
            "epoch": epoch,
            "loss": loss_sum / max(n, 1),
            "lr": self.opt.param_groups[0]["lr"],
            "train_seconds": round(train_s, 2),
            "samples_per_second": round(samples / max(train_s, 1e-9), 1),
        }
        return {**row, **(model.epoch_metrics() if hasattr(model, "epoch_metrics") else {})}  # e.g. MoE load

    def validate_and_save(self, epoch: int, row: dict) -> None:
        """Validate when due (keeping the best weights in model.pt), log the row, checkpoint; one stop decision."""
        cfg, st = self.cfg, self.state
        if self.main and self.capped() and epoch < cfg.epochs:  # checked between epochs: a resume continues exactly
            st.time_capped = True
            logger.warning(
                "train.max_minutes=%g reached: training stops after epoch %d of %d (time_capped); "
                "resume with a larger train.max_minutes or 0",
                cfg.max_minutes,
                epoch,
                cfg.epochs,
            )
        if self.main and (epoch % cfg.eval_every == 0 or st.time_capped or epoch == cfg.epochs):
            self.model.eval()
            valid = self.validate(self.best_model)
            row["valid"] = valid
            score = valid.get(self.files.metric, 0.0)
            if score > st.best:
                st.best, st.best_epoch, st.best_valid, st.bad = score, epoch, valid, 0
                _save_model(self.model_path, self.best_model, {**self.meta, "epoch": epoch, "valid": valid})
            else:
                st.bad += 1
            logger.info("epoch %d loss %.4f valid %s", epoch, row["loss"], json.dumps(valid))
        st.epoch = epoch
        st.seconds = time.perf_counter() - self.start_wall
        st.segments[-1].update(to_epoch=epoch, seconds=round(st.seconds - self.segment_start, 1))
        st.history.append(row)
        if self.main:
            _append_log(self.run_dir / self.files.log, row)
            _save_checkpoint(self.ckpt_path, self.model, self.opt, dataclasses.asdict(st), self.ema)
        self.state = distributed.broadcast(st)  # one stop decision for all ranks

    def fit(self, batches: Batches, batches_per_epoch: int) -> TrainResult:
        """Resume (or start), train until the schedule ends, patience runs out or the time cap is hit."""
        earlier_seconds = self.resume()
        self.segment_start = None  # this call's stretch of epochs is kept in the checkpoint: where each part ran
        while self.running():
            epoch = self.state.epoch + 1
            if self.segment_start is None:
                self.segment_start = self.state.seconds
                where = {"precision": self.precision, "machine": distributed.machine(), "date": _now()}
                self.state.segments.append(
                    {"from_epoch": self.state.epoch, "to_epoch": self.state.epoch, "seconds": 0.0, **where}
                )
            row = self.epoch(epoch, batches, batches_per_epoch)
            self.validate_and_save(epoch, row)
        if self.main and not self.model_path.exists():  # no validation ran (epochs=0): the last weights
            _save_model(self.model_path, self.best_model, {**self.meta, "epoch": self.state.epoch, "valid": {}})
        distributed.barrier()
        st = self.state
        return TrainResult(
            best_epoch=st.best_epoch,
            best_valid=st.best_valid,
            epochs_run=st.epoch,
            seconds=st.seconds,
            samples_per_second=st.samples / max(st.seconds, 1e-9),
            steps=st.step,
            time_capped=st.time_capped,
            precision=self.precision,
            history=st.history,
            segments=st.segments,
            earlier_seconds=round(earlier_seconds, 1),
        )


def fit(
    model: nn.Module,
    *,
    batches: Batches,
    batches_per_epoch: int,
    validate: Validate,
    cfg: TrainConfig,
    run_dir: str | Path,
    meta: dict,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
    files: TrainFiles = TrainFiles(),
) -> TrainResult:
    """Train `model` in place; write model.pt (best), checkpoint.pt (last) and train_log.jsonl (or `files`' names).

    `on_step(step, loss)` (optional) sees every optimizer step's loss (under torchrun: the global batch's).
    Under torchrun, `batches` yields this rank's shards, each with a "weight" (its loss terms).
    """
    trainer = Trainer(model, cfg=cfg, run_dir=run_dir, meta=meta, seed=seed, validate=validate, on_step=on_step,
                      files=files)  # fmt: skip
    return trainer.fit(batches, batches_per_epoch)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _save_model(path: Path, model: nn.Module, meta: dict) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    io.write_atomic(path, lambda p: torch.save({**meta, "state_dict": state}, p))


def _save_checkpoint(
    path: Path, model: nn.Module, opt: torch.optim.Optimizer, state: dict, ema: WeightAverage | None
) -> None:
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "state": state,
        "torch_rng": torch.get_rng_state(),
    }
    if ema:
        ckpt["ema"] = ema.model.state_dict()
    io.write_atomic(path, lambda p: torch.save(ckpt, p))


def _append_log(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _write_log(path: Path, rows: list[dict]) -> None:
    io.write_atomic(path, lambda p: p.write_text("".join(json.dumps(row) + "\n" for row in rows)))


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The shuffling RNG of one epoch: the same after a resume as in an uninterrupted run."""
    return np.random.default_rng([seed, epoch])


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether bf16 autocast pays off: always on CUDA; on CPU only with native bf16 units.

    Without AMX / AVX512-BF16 (e.g. AMD Zen 3), CPU bf16 matmuls are emulated and run two orders of
    magnitude slower than fp32, so `auto` picks fp32 there.
    """
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"train.precision must be auto, bf16 or fp32, got {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return True
    return distributed.bf16_units() != "no native bf16"
