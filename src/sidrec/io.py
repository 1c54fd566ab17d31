"""The run directory: artifact names and atomic save / load helpers.

Every artifact is written to a temporary file in the same folder and renamed into place, so a
killed command never leaves a half-written artifact behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml

from sidrec.config import Config, config_from_dict, config_to_dict

CONFIG = "config.yaml"
ITEMS = "items.parquet"  # item_idx (1..N), item_id (original), text
SEQUENCES = "sequences.parquet"  # user_idx, user_id, items (full chronological item_idx list)
DATA_STATS = "data_stats.json"
EMBEDDINGS = "embeddings.npy"  # float32 (N, D); row i is item_idx i + 1
QUANTIZER = "quantizer.pt"
SIDS = "sids.npy"  # int64 (N, L [+1 dedup digit]); row i is item_idx i + 1
SID_STATS = "sid_stats.json"
MODEL = "model.pt"  # best-validation weights + model config + vocabulary sizes
CHECKPOINT = "checkpoint.pt"  # last epoch's full training state, for resuming
TRAIN_LOG = "train_log.jsonl"
TRAIN_SUMMARY = "train_summary.json"  # written last: its presence marks a finished training stage
TRAIN_PLOT = "training.png"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"  # user_id,rank,item_id (test split, top-n)
TIMINGS = "timings.json"
RANKER = "ranker.pt"  # the generative ranker's best-validation weights (sidrec.ranking)
RANK_CHECKPOINT = "rank_checkpoint.pt"
RANK_LOG = "rank_log.jsonl"
RANKING = "ranking.json"  # the ranker's AUC / GAUC and the two-stage lists' metrics beside the retriever's
REWARD = "reward.pt"  # the reward model R(u, S) of sessions (sidrec.align.reward), best validation AUC
REWARD_CHECKPOINT = "reward_checkpoint.pt"
REWARD_LOG = "reward_log.jsonl"
REWARD_JSON = "reward.json"  # its AUC / RMSE on held-out sessions
ALIGNED = "aligned.pt"  # the generator after preference alignment (align.rounds IPA rounds); evaluate scores it
ALIGN_CHECKPOINT = "align_checkpoint.pt"  # the rounds done so far (resume)
ALIGN_JSON = "align.json"  # per round: rewards of the sampled sessions, DPO loss, validation NDCG@10 and reward


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; an artifact gets the mode open() would give
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; it is put back at once
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, writer: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)


def save_json(path: str | Path, obj: object) -> None:
    write_atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


def load_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def load_train_log(run_dir: str | Path) -> list[dict]:
    """The rows of a run's train_log.jsonl, one per epoch ([] without a log)."""
    path = Path(run_dir) / TRAIN_LOG
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def save_npy(path: str | Path, array: np.ndarray) -> None:
    def _write(p: Path) -> None:
        with open(p, "wb") as f:
            np.save(f, array)

    write_atomic(path, _write)


def save_config(run_dir: str | Path, cfg: Config) -> None:
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    write_atomic(Path(run_dir) / CONFIG, lambda p: p.write_text(text))


def text_template(run_dir: str | Path, cfg: Config) -> str:
    """The item-text template a run used: the configured one, or the one prepare built (data_stats.json)."""
    if cfg.data.text_template:
        return cfg.data.text_template
    stats = Path(run_dir) / DATA_STATS
    return str(load_json(stats).get("text", {}).get("template", "")) if stats.exists() else ""


def load_run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise ValueError(f"{run_dir} is not a sidrec run directory (no {CONFIG}); run `sidrec run --out DIR` first")
    return config_from_dict(yaml.safe_load(path.read_text()))
