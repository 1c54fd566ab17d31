"""Valid and test NDCG@10 / Recall@10 of a trained run, by how often the target and the newest input occur in training.

    python benchmarks/by_popularity.py RUN_DIR [--record benchmarks/results/NAME.json]

Buckets by the target's count in the training sequences (everything but each user's last two
items): 0, 1-4, 5-19, 20+. Each bucket gives its share of the split's users and the metrics over
them, so a drop from validation to test can be split into a shift of the targets' popularity (the
shares) and a drop within buckets (the metrics). The same buckets by the newest history item's count
(`by_last_input`): at test that item is the validation target, which no training sequence holds for its
user. Item-ranking models only (rpg, sasrec, hstu).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from sidrec import io
from sidrec.data.split import eval_examples, train_sequences
from sidrec.metrics import evaluate, ranking_metrics
from sidrec.models import load_model, model_kind
from sidrec.recommender import ItemRecommender
from sidrec.report import analysis_header

BUCKETS = ((0, 0), (1, 4), (5, 19), (20, None))


def per_bucket(top: np.ndarray, targets: np.ndarray, counts: np.ndarray, k: int = 10) -> dict:
    """{bucket: {users, share, ndcg@k, recall@k}} from (U, >=k) top items, (U,) targets and their training counts."""
    out = {}
    for lo, hi in BUCKETS:
        mask = (counts >= lo) & (counts <= (hi if hi is not None else np.inf))
        n = int(mask.sum())
        scores = ranking_metrics(top[mask, :k], targets[mask], ks=(k,)) if n else {}
        out[f"{lo}-{hi}" if hi is not None else f"{lo}+"] = dict(
            users=n,
            share=round(n / len(targets), 4),
            **{m: round(scores[m], 6) if n else None for m in (f"ndcg@{k}", f"recall@{k}")},
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--record", type=Path, default=None)
    splits_help = "score only these (e.g. --splits valid while choosing a setting: never look at test)"
    ap.add_argument("--splits", nargs="+", choices=("valid", "test"), default=["valid", "test"], help=splits_help)
    args = ap.parse_args()
    cfg = io.load_run_config(args.run_dir)
    if model_kind(cfg.model.name) == "sid":
        sys.exit(f"{args.run_dir}: model.name={cfg.model.name}; this script ranks with score_all (rpg, sasrec, hstu)")
    model, _ = load_model(str(args.run_dir / io.MODEL))
    sequences = pl.read_parquet(args.run_dir / io.SEQUENCES)
    train_counts = Counter(item for seq in train_sequences(sequences) for item in seq.tolist())
    rec = ItemRecommender(model, max_history=cfg.data.max_history)
    splits = {}
    for split in args.splits:
        examples = eval_examples(sequences, split, cfg.data.max_history)
        res = evaluate(rec, examples, ks=(10,), batch_size=args.batch_size, top_n=10, desc=split)
        counts = np.array([train_counts[t] for t in examples.targets.tolist()])
        last = np.array([train_counts[int(h[-1])] if len(h) else 0 for h in examples.histories])
        splits[split] = dict(all={k: round(v, 6) for k, v in res.metrics.items()},
                             buckets=per_bucket(res.top_items, examples.targets, counts),
                             by_last_input=per_bucket(res.top_items, examples.targets, last))  # fmt: skip
    record = dict(
        **analysis_header("metrics by the target's training count", args.run_dir),
        model=cfg.model.name,
        splits=splits,  # not top-level "valid" / "test": results_table reads those as run records
    )
    print(json.dumps(record, indent=2))
    if args.record:
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
