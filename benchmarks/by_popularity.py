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

import json
from collections import Counter

import numpy as np
from analysis import analysis_header, load_finished_run, run_parser

from sidrec import io
from sidrec.data.split import eval_examples, train_sequences
from sidrec.metrics import evaluate, ranking_metrics
from sidrec.recommender import ItemRecommender

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
    args = run_parser(__doc__, splits=("valid", "test")).parse_args()
    run = load_finished_run(args.run_dir, ("parallel", "id"), "an item-ranking model (score_all)")
    cfg, sequences = run.cfg, run.sequences
    train_counts = Counter(item for seq in train_sequences(sequences) for item in seq.tolist())
    rec = ItemRecommender(run.model, max_history=cfg.data.max_history)
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
