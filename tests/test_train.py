"""The training loop: learning-rate shape, resuming from checkpoint.pt (one segment per call, one precision),
precision choice, weight averaging."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sidrec import io
from sidrec.config import TrainConfig
from sidrec.distributed import bf16_units, machine
from sidrec.models import load_model
from sidrec.train import WeightAverage, epoch_rng, fit, lr_factor, use_bf16

SIZES = (4, 4)


def test_lr_warmup_is_linear():
    factors = [lr_factor(s, warmup=4, total=20, min_ratio=0.1) for s in range(4)]
    assert factors == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_lr_cosine_decay():
    warmup, total, floor = 4, 20, 0.1
    decay = [lr_factor(s, warmup=warmup, total=total, min_ratio=floor) for s in range(warmup, total + 5)]
    assert decay[0] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))  # non-increasing
    assert lr_factor(12, warmup=warmup, total=total, min_ratio=floor) == pytest.approx(floor + (1 - floor) / 2)
    assert lr_factor(total, warmup=warmup, total=total, min_ratio=floor) == pytest.approx(floor)
    assert lr_factor(total + 100, warmup=warmup, total=total, min_ratio=floor) == pytest.approx(floor)  # stays


def test_lr_without_warmup():
    assert lr_factor(0, warmup=0, total=10, min_ratio=0.0) == pytest.approx(1.0)
    assert lr_factor(5, warmup=0, total=10, min_ratio=0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def test_lr_depends_on_the_step_only():
    import inspect

    assert list(inspect.signature(lr_factor).parameters) == ["step", "warmup", "total", "min_ratio"]


def test_use_bf16():
    cpu = torch.device("cpu")
    assert use_bf16("fp32", cpu) is False
    assert use_bf16("bf16", cpu) is True
    assert use_bf16("fp32", torch.device("cuda")) is False  # no CUDA needed to decide
    assert use_bf16("auto", torch.device("cuda")) is True
    assert use_bf16("auto", cpu) is (bf16_units() != "no native bf16")
    assert bf16_units() in ("AMX", "AVX512-BF16", "no native bf16")
    with pytest.raises(ValueError, match="train.precision must be auto, bf16 or fp32, got 'fp16'"):
        use_bf16("fp16", cpu)


def test_epoch_rng_is_reproducible():
    a, b = epoch_rng(1, 3).permutation(10), epoch_rng(1, 3).permutation(10)
    assert (a == b).all()
    assert not (a == epoch_rng(1, 4).permutation(10)).all()


def batches_for(n_batches: int = 2):
    """A fixed tiny data set; batch contents depend on the epoch like the real pipeline's."""
    sids = np.array([[a, b] for a in range(4) for b in range(4)])

    def make(epoch: int):
        rng = epoch_rng(0, epoch)
        for _ in range(n_batches):
            items = rng.integers(0, len(sids), size=(4, 3))
            tokens = torch.from_numpy(np.stack([(sids[row] + [2, 6]).reshape(-1) for row in items]))
            positions = torch.from_numpy(np.tile(np.repeat([2, 1, 0], 2), (4, 1)))
            codes = torch.from_numpy(sids[rng.integers(0, len(sids), size=4)])
            yield {"tokens": tokens, "positions": positions, "codes": codes}

    return make


class Trainer:
    """Runs `fit` on a tiny model in `run_dir`, recording which epochs it was asked for."""

    def __init__(self, make_tiger, run_dir) -> None:
        self.make_tiger, self.run_dir = make_tiger, run_dir
        self.epochs_asked: list[int] = []
        self.on_epoch = lambda model, epoch: None

    def __call__(self, epochs: int, seed: int = 0, **cfg):
        model = self.make_tiger(SIZES, seed=seed)
        data = batches_for()
        scores = iter(np.linspace(0.1, 0.9, 9))

        def batches(epoch: int):
            self.epochs_asked.append(epoch)
            self.on_epoch(model, epoch)
            return data(epoch)

        cfg = TrainConfig(**{"epochs": epochs, "warmup_steps": 2, "precision": "fp32", "max_minutes": 0, **cfg})
        result = fit(
            model,
            batches=batches,
            batches_per_epoch=2,
            validate=lambda m: {"ndcg@10": float(next(scores))},
            cfg=cfg,
            run_dir=self.run_dir,
            meta={"model": "tiger", "shape": model.config_dict()},
            seed=0,
        )
        return model, result


def log_rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / io.TRAIN_LOG).read_text().splitlines()]


def test_fit_writes_artifacts(make_tiger, tmp_path):
    model, result = Trainer(make_tiger, tmp_path)(2, ema=0)  # no averaging: model.pt holds the raw weights
    assert result.epochs_run == 2 and result.best_epoch == 2
    assert [row["epoch"] for row in log_rows(tmp_path)] == [1, 2]
    assert all(math.isfinite(row["loss"]) and "valid" in row for row in log_rows(tmp_path))
    assert torch.load(tmp_path / io.CHECKPOINT, weights_only=False)["state"]["epoch"] == 2
    loaded, meta = load_model(str(tmp_path / io.MODEL))
    assert meta["epoch"] == 2 and meta["valid"] == {"ndcg@10": pytest.approx(0.2)}
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)


def test_fit_resumes_from_the_checkpoint(make_tiger, tmp_path):
    trainer = Trainer(make_tiger, tmp_path)
    trainer(2)
    assert trainer.epochs_asked == [1, 2]
    saved = torch.load(tmp_path / io.CHECKPOINT, weights_only=False)

    def weights_are_restored(model, epoch):
        for name, value in model.state_dict().items():
            torch.testing.assert_close(value, saved["model"][name])

    trainer.on_epoch = weights_are_restored
    _, result = trainer(3, seed=1)  # a differently initialised model: the checkpoint must replace it
    assert trainer.epochs_asked == [1, 2, 3]  # starts from epoch 3
    assert result.epochs_run == 3
    rows = log_rows(tmp_path)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    # the step counter resumed at 4: the last of 6 steps (index 5) used the schedule's step-5 rate
    assert rows[-1]["lr"] == pytest.approx(TrainConfig().lr * lr_factor(5, warmup=2, total=6, min_ratio=0.05))
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert torch.load(tmp_path / io.CHECKPOINT, weights_only=False)["state"]["epoch"] == 3


def test_a_row_logged_after_the_checkpoint_is_dropped_when_its_epoch_is_trained_again(make_tiger, tmp_path):
    """A kill between an epoch's log row and its checkpoint: the resume trains that epoch again, logged once."""
    trainer = Trainer(make_tiger, tmp_path)
    trainer(2)
    stale = {**log_rows(tmp_path)[-1], "epoch": 3, "loss": 99.0}  # epoch 3 logged, its checkpoint never written
    with open(tmp_path / io.TRAIN_LOG, "a") as f:
        f.write(json.dumps(stale) + "\n")
    trainer(3)
    rows = log_rows(tmp_path)
    assert [row["epoch"] for row in rows] == [1, 2, 3] and rows[-1]["loss"] != 99.0
    (tmp_path / io.CHECKPOINT).unlink()  # no checkpoint at all: rows of a run that saved none go too
    Trainer(make_tiger, tmp_path)(1)
    assert [row["epoch"] for row in log_rows(tmp_path)] == [1]


def test_a_resume_adds_a_segment_that_names_its_machine_and_keeps_the_precision(make_tiger, tmp_path):
    trainer = Trainer(make_tiger, tmp_path)
    _, first = trainer(2)
    assert [(s["from_epoch"], s["to_epoch"], s["precision"]) for s in first.segments] == [(0, 2, "fp32")]
    assert first.earlier_seconds == 0 and first.segments[0]["machine"] == machine()
    _, resumed = trainer(3)
    assert [(s["from_epoch"], s["to_epoch"]) for s in resumed.segments] == [(0, 2), (2, 3)]
    assert resumed.earlier_seconds == first.segments[0]["seconds"]
    assert resumed.seconds == pytest.approx(sum(s["seconds"] for s in resumed.segments), abs=0.2)
    with pytest.raises(ValueError, match=r"epochs 3-3 trained in fp32 on .* trains in bf16; .*retrain with --force"):
        trainer(4, precision="bf16")  # half a run in fp32, half in bf16 would be neither
    assert trainer.epochs_asked == [1, 2, 3]
    _, done = trainer(3, precision="bf16")  # nothing left to train: nothing mixes
    assert len(done.segments) == 2


def test_a_checkpoint_without_segments_resumes_with_its_epochs_marked_not_recorded(make_tiger, tmp_path):
    trainer = Trainer(make_tiger, tmp_path)
    trainer(2)
    ckpt = torch.load(tmp_path / io.CHECKPOINT, weights_only=False)
    del ckpt["state"]["segments"]  # as written before segments were kept
    torch.save(ckpt, tmp_path / io.CHECKPOINT)
    _, resumed = trainer(3)
    first, second = resumed.segments
    assert (first["from_epoch"], first["to_epoch"], first["machine"]) == (0, 2, "not recorded")
    assert resumed.earlier_seconds == round(ckpt["state"]["seconds"], 1) and second["precision"] == "fp32"
    with pytest.raises(ValueError, match="epochs 3-3 trained in fp32"):  # the known part decides
        trainer(4, precision="bf16")


def test_fit_with_every_epoch_done_trains_nothing(make_tiger, tmp_path):
    trainer = Trainer(make_tiger, tmp_path)
    trainer(2)
    _, result = trainer(2)
    assert trainer.epochs_asked == [1, 2]
    assert result.epochs_run == 2
    assert len(log_rows(tmp_path)) == 2


def test_early_stopping_on_patience(make_tiger, tmp_path):
    model = make_tiger(SIZES)
    result = fit(
        model,
        batches=batches_for(),
        batches_per_epoch=2,
        validate=lambda m: {"ndcg@10": 0.5},  # never improves after the first pass
        cfg=TrainConfig(epochs=10, warmup_steps=1, precision="fp32", patience=2, max_minutes=0),
        run_dir=tmp_path,
        meta={"model": "tiger", "shape": model.config_dict()},
        seed=0,
    )
    assert result.epochs_run == 3 and result.best_epoch == 1


def test_time_cap_stops_between_epochs_and_a_resume_goes_on_exactly(make_tiger, tmp_path, monkeypatch):
    """The cap ends training after the epoch in which it is reached; the schedule never changes, so a resume
    under a larger cap ends with the weights of an uncapped run."""
    import sidrec.train as train_mod

    clock = {"now": 0.0}
    monkeypatch.setattr(train_mod.time, "perf_counter", lambda: clock["now"])
    trainer = Trainer(make_tiger, tmp_path / "capped")
    (tmp_path / "capped").mkdir()
    trainer.on_epoch = lambda model, epoch: clock.update(now=clock["now"] + 40.0)  # each epoch: 40 s
    _, capped = trainer(4, max_minutes=1.0)  # 60 s: reached during epoch 2
    assert capped.time_capped and capped.epochs_run == 2 and capped.steps == 4
    assert trainer.epochs_asked == [1, 2]
    _, again = trainer(4, max_minutes=1.0)  # the same cap: nothing more to do
    assert again.time_capped and trainer.epochs_asked == [1, 2]
    model, resumed = trainer(4, max_minutes=0)  # no cap: epochs 3 and 4, as an uncapped run has them
    assert not resumed.time_capped and resumed.epochs_run == 4 and trainer.epochs_asked == [1, 2, 3, 4]
    uncapped = Trainer(make_tiger, tmp_path / "uncapped")
    (tmp_path / "uncapped").mkdir()
    reference, full = uncapped(4)
    assert not full.time_capped and full.steps == resumed.steps == 8
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_zero_epochs_still_saves_a_model(make_tiger, tmp_path):
    _, result = Trainer(make_tiger, tmp_path)(0)
    assert result.epochs_run == 0
    assert (tmp_path / io.MODEL).exists()


def test_weight_average_follows_the_decay():
    model = torch.nn.Linear(3, 2)
    avg = WeightAverage(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.update(step=1000)  # past the warm-up: decay 0.9
    torch.testing.assert_close(avg.model.weight, start + 0.1)
    avg.update(step=0)  # warm-up: decay min(0.9, 1/10), the average jumps most of the way
    torch.testing.assert_close(avg.model.weight, start + 0.1 + 0.9 * 0.9)
    assert not avg.model.weight.requires_grad and not avg.model.training
    with pytest.raises(ValueError, match="train.ema"):
        WeightAverage(model, decay=1.0)


def test_fit_with_ema_validates_and_saves_the_average(make_tiger, tmp_path):
    seen = []
    model = make_tiger(SIZES)
    result = fit(
        model,
        batches=batches_for(),
        batches_per_epoch=2,
        validate=lambda m: seen.append(m) or {"ndcg@10": 0.1 * len(seen)},
        cfg=TrainConfig(epochs=2, warmup_steps=1, precision="fp32", max_minutes=0, ema=0.5),
        run_dir=tmp_path,
        meta={"model": "tiger", "shape": model.config_dict()},
        seed=0,
    )
    assert result.best_epoch == 2 and all(m is not model for m in seen)
    loaded, _ = load_model(str(tmp_path / io.MODEL))
    saved = torch.load(tmp_path / io.CHECKPOINT, weights_only=False)
    differs = False
    for name, value in loaded.state_dict().items():
        torch.testing.assert_close(value, saved["ema"][name])  # model.pt holds the average...
        differs |= not torch.equal(value, model.state_dict()[name])
    assert differs  # ... not the raw weights


def test_fit_resumes_the_weight_average(make_tiger, tmp_path):
    trainer = Trainer(make_tiger, tmp_path)
    trainer(2, ema=0.5)
    first = torch.load(tmp_path / io.CHECKPOINT, weights_only=False)["ema"]
    trainer(3, ema=0.5)
    assert trainer.epochs_asked == [1, 2, 3]
    last = torch.load(tmp_path / io.CHECKPOINT, weights_only=False)["ema"]
    assert any(not torch.equal(first[k], last[k]) for k in first)
    plain = Trainer(make_tiger, tmp_path / "plain")
    (tmp_path / "plain").mkdir()
    plain(1, ema=0)  # a checkpoint without an average cannot resume with one
    with pytest.raises(ValueError, match="holds no weight average"):
        plain(2, ema=0.5)
