"""The stage machinery: what each stage reads and writes, its status in a run directory, and the decorator that
registers a stage function (skipped while up to date, stopped when stale unless forced, timed).

`pipeline` registers the five stages of a run with `stage`; a stage that follows them (`ranking`'s `rank`)
registers itself the same way. `plan` checks every stage of a command before anything is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

from sidrec import distributed, fingerprint, io
from sidrec.config import Config

logger = logging.getLogger(__name__)


class StageSpec(NamedTuple):
    """What a stage reads and writes; `fingerprint` keys its outputs by the first two."""

    name: str
    keys: Callable[[Config], tuple[str, ...]]  # config keys or sections whose values shape the outputs
    inputs: Callable[[Config], tuple[str, ...]]  # run-directory files read (earlier stages' outputs)
    outputs: Callable[[Config], tuple[str, ...]]  # files written; all present = the stage is done


SPECS: dict[str, StageSpec] = {}


def stage_status(spec: StageSpec, cfg: Config, run_dir: Path) -> tuple[str, list[str], list[str]]:
    """('missing' | 'current' | 'stale', changed settings, changed input files) of one stage in `run_dir`.

    'missing': some output is absent, so the stage runs (training resumes from its checkpoint, which
    must then match); 'current': outputs present and the fingerprint matches; 'stale': it does not.
    """
    fp = fingerprint.compute(cfg, run_dir, spec.keys(cfg), spec.inputs(cfg))
    old = fingerprint.stored(run_dir, spec.name)
    done = all((run_dir / o).exists() for o in spec.outputs(cfg))
    if spec.name == "train" and done and _capped_run_can_go_on(cfg, run_dir):
        done = False  # a time-capped run resumes under a larger (or no) cap
    resumable = spec.name == "train" and (run_dir / io.CHECKPOINT).exists()
    if not done and not resumable:
        return "missing", [], []
    lines = fingerprint.changes(old, fp)
    if not lines:
        return ("current" if done else "missing"), [], []
    old_inputs = (old or {}).get("inputs", {})
    files = [name for name in fp.inputs if old is not None and old_inputs.get(name) != fp.inputs[name]]
    settings = [line for line in lines if not line.startswith("input ")]
    return "stale", settings, files


def _capped_run_can_go_on(cfg: Config, run_dir: Path) -> bool:
    summary = io.load_json(run_dir / io.TRAIN_SUMMARY)
    if not summary.get("time_capped") or not (run_dir / io.CHECKPOINT).exists():
        return False
    cap = cfg.train.max_minutes * 60
    return not cap or cap > summary.get("train_seconds", float("inf"))


def producers(cfg: Config) -> dict[str, str]:
    return {out: spec.name for spec in SPECS.values() for out in spec.outputs(cfg)}


def _explained(files: list[str], settings: list[str], redone: set[str], cfg: Config, has_record: bool) -> bool:
    """Whether a stale stage only follows an earlier stage redone by this same command (recomputed without --force)."""
    made_by = producers(cfg)
    return has_record and not settings and all(made_by.get(f) in redone for f in files)


def stage(name: str, *, keys, inputs, outputs) -> Callable:
    """Register a stage; skip it while up to date, stop on a stale one (unless `force`), record its wall time."""
    spec = StageSpec(name, keys, inputs, outputs)
    SPECS[name] = spec

    def wrap(fn: Callable) -> Callable:
        def run_stage(cfg: Config, run_dir: str | Path, force: bool = False, redone: set[str] | None = None, **how):
            run_dir = Path(run_dir)
            redone = set() if redone is None else redone
            distributed.init(cfg.train.device)

            def begin() -> str:  # rank 0 (torchrun): check, then record the config and the fingerprint
                status, settings, files = stage_status(spec, cfg, run_dir)
                if status == "current":
                    fingerprint.note_new_inputs(run_dir, name, fingerprint_of(spec, cfg, run_dir))
                    return status
                has_record = fingerprint.stored(run_dir, name) is not None
                if status == "stale" and not force and not _explained(files, settings, redone, cfg, has_record):
                    found = fingerprint.changes(fingerprint.stored(run_dir, name), fingerprint_of(spec, cfg, run_dir))
                    raise fingerprint.StaleRunError(fingerprint.stale_message(run_dir, {name: found}))
                run_dir.mkdir(parents=True, exist_ok=True)
                io.save_config(run_dir, cfg)
                fingerprint.save(
                    run_dir, name, fingerprint_of(spec, cfg, run_dir)
                )  # before running: a resume checks it
                return status

            status = distributed.broadcast(distributed.on_main(begin))
            if status == "current":
                logger.info("%s: up to date in %s, skipped", name, run_dir)
                return None
            torch.manual_seed(cfg.seed)
            if cfg.train.threads:
                torch.set_num_threads(cfg.train.threads)
            start = time.perf_counter()
            if name == "train":  # every rank trains; the other stages run once, on rank 0, the others waiting
                out = fn(cfg, run_dir, status == "stale", **how)
            else:
                out = distributed.on_main(lambda: fn(cfg, run_dir, status == "stale", **how))
            redone.add(name)
            if distributed.is_main():
                timings = io.load_json(run_dir / io.TIMINGS) if (run_dir / io.TIMINGS).exists() else {}
                earlier = out.get("earlier_seconds", 0.0) if isinstance(out, dict) else 0.0  # resumed (train)
                timings[name] = round(time.perf_counter() - start + earlier, 2)  # the stage counts whole
                io.save_json(run_dir / io.TIMINGS, timings)
            return out

        run_stage.__name__, run_stage.__doc__ = fn.__name__, fn.__doc__
        run_stage.spec = spec
        run_stage.stage = name  # the stage name `check` takes
        return run_stage

    return wrap


def fingerprint_of(spec: StageSpec, cfg: Config, run_dir: Path) -> fingerprint.Fingerprint:
    return fingerprint.compute(cfg, run_dir, spec.keys(cfg), spec.inputs(cfg))


def plan(cfg: Config, run_dir: Path, force: bool, stages: tuple[str, ...]) -> dict[str, str]:
    """Each stage's status for `run`, checked before anything is written; StaleRunError lists every stale one."""
    run_dir, redo, problems, out = Path(run_dir), set(), {}, {}
    for name in stages:
        spec = SPECS[name]
        status, settings, files = stage_status(spec, cfg, run_dir)
        out[name] = status
        if status == "current":
            continue
        has_record = fingerprint.stored(run_dir, name) is not None
        if status == "stale" and not force and not _explained(files, settings, redo, cfg, has_record):
            problems[name] = fingerprint.changes(fingerprint.stored(run_dir, name), fingerprint_of(spec, cfg, run_dir))
        redo.add(name)
    if problems:
        raise fingerprint.StaleRunError(fingerprint.stale_message(run_dir, problems))
    return out


__all__ = ["SPECS", "StageSpec", "fingerprint_of", "plan", "producers", "stage", "stage_status"]
