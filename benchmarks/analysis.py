"""The shared start of the scripts in `benchmarks/` that analyse a finished run directory (not part of sidrec).

`by_popularity.py`, `history_share.py` and `rpg_graph.py` take the same command line (a run directory,
`--batch-size`, `--record`, and for the first two `--splits`) and load the same things from the run: its
config, its trained model and its sequences. Each needs a kind of model (the first two an item ranker with
`score_all`, the third RPG); a run of another kind stops with a message that names the run, its model and
the models the script accepts.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch

from sidrec import io
from sidrec.config import Config
from sidrec.distributed import machine
from sidrec.models import REGISTRY, load_model, model_kind
from sidrec.report import git_commit

SPLITS_HELP = "score only these (e.g. --splits valid while choosing a setting: never look at test)"


def run_parser(doc: str, *, splits: tuple[str, ...] | None = None) -> argparse.ArgumentParser:
    """The common arguments; `splits` is the default of `--splits` (None: the script has no `--splits`)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--record", type=Path, default=None)
    if splits is not None:
        ap.add_argument("--splits", nargs="+", choices=("valid", "test"), default=list(splits), help=SPLITS_HELP)
    return ap


@dataclass
class FinishedRun:
    """What an analysis reads from a run directory."""

    cfg: Config
    model: object
    sequences: pl.DataFrame


def load_finished_run(run_dir: Path, kinds: tuple[str, ...], needs: str) -> FinishedRun:
    """The run's config, model and sequences; SystemExit when its model is not of one of `kinds`
    ('sid', 'parallel', 'id'), saying what the script `needs` and which models qualify."""
    if not (run_dir / io.MODEL).exists():
        raise SystemExit(f"{run_dir}: no {io.MODEL}; train it first (sidrec run ... --out {run_dir})")
    cfg = io.load_run_config(run_dir)
    if model_kind(cfg.model.name) not in kinds:
        accepted = ", ".join(name for name in REGISTRY if model_kind(name) in kinds)
        raise SystemExit(f"{run_dir}: model.name={cfg.model.name}; this script needs {needs} ({accepted})")
    model, _ = load_model(str(run_dir / io.MODEL))
    return FinishedRun(cfg, model, pl.read_parquet(run_dir / io.SEQUENCES))


def analysis_header(benchmark: str, run_dir: Path) -> dict:
    """The fields a record about a finished run directory starts with (benchmarks/rpg_graph.py, by_popularity.py):
    what it measures, the command, this code's commit, the machine, and the run with its model's commit."""
    run_record = run_dir / "record.json"
    return dict(
        benchmark=benchmark,
        command="python " + shlex.join(sys.argv),
        commit=git_commit(),
        machine=machine(),
        threads=torch.get_num_threads(),
        run=str(run_dir),
        model_commit=io.load_json(run_record).get("commit") if run_record.exists() else None,
    )
