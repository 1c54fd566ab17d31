"""How often a trained run recommends items its user already has, and how often targets repeat one.

    python benchmarks/history_share.py RUN_DIR [--splits valid] [--record benchmarks/results/NAME.json]

Per split: the share of top-10 slots that hold an item of the user's history (everything before the
target, not only the model's window), the share of users with at least one, the share whose newest
history item is in their top 10, and the share of targets that repeat a history item. On data whose
targets never repeat (Amazon 5-core), every such slot is a wasted one. Item-ranking models only (rpg,
sasrec, hstu); the ranking is the run's exact one (`score_all`), in fp32.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

from sidrec import io
from sidrec.data.schema import SEQ
from sidrec.data.split import eval_examples
from sidrec.metrics import evaluate
from sidrec.models import load_model, model_kind
from sidrec.recommender import ItemRecommender
from sidrec.report import analysis_header


def history_share(top: np.ndarray, targets: np.ndarray, histories: list[np.ndarray]) -> dict:
    """Shares over users from (U, k) top items, (U,) targets and each user's (full) history."""
    in_hist = np.array([np.isin(row, h) for row, h in zip(top, histories, strict=True)])
    newest = np.array([len(h) > 0 and h[-1] in row for row, h in zip(top, histories, strict=True)])
    repeats = np.array([t in h for t, h in zip(targets, histories, strict=True)])
    return dict(
        slots_in_history=round(float(in_hist.mean()), 4),
        users_with_one=round(float(in_hist.any(1).mean()), 4),
        newest_in_top=round(float(newest.mean()), 4),
        targets_repeating=round(float(repeats.mean()), 4),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--record", type=Path, default=None)
    splits_help = "score only these (e.g. --splits valid while choosing a setting: never look at test)"
    ap.add_argument("--splits", nargs="+", choices=("valid", "test"), default=["valid"], help=splits_help)
    args = ap.parse_args()
    cfg = io.load_run_config(args.run_dir)
    if model_kind(cfg.model.name) == "sid":
        sys.exit(f"{args.run_dir}: model.name={cfg.model.name}; this script ranks with score_all (rpg, sasrec, hstu)")
    model, _ = load_model(str(args.run_dir / io.MODEL))
    sequences = pl.read_parquet(args.run_dir / io.SEQUENCES)
    rec = ItemRecommender(model, max_history=cfg.data.max_history)
    splits = {}
    for split in args.splits:
        examples = eval_examples(sequences, split, cfg.data.max_history)
        cut = 2 if split == "valid" else 1
        full = [np.asarray(seq[: len(seq) - cut], dtype=np.int64) for seq in sequences[SEQ].to_list()]
        res = evaluate(rec, examples, ks=(10,), batch_size=args.batch_size, top_n=10, desc=split)
        splits[split] = dict(metrics={k: round(v, 6) for k, v in res.metrics.items()},
                             **history_share(res.top_items, examples.targets, full))  # fmt: skip
    record = dict(
        **analysis_header("top-10 slots holding history items", args.run_dir), model=cfg.model.name, splits=splits
    )
    print(json.dumps(record, indent=2))
    if args.record:
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
