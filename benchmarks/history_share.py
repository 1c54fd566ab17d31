"""How often a trained run recommends items its user already has, and how often targets repeat one.

    python benchmarks/history_share.py RUN_DIR [--splits valid] [--record benchmarks/results/NAME.json]

Per split: the share of top-10 slots that hold an item of the user's history (everything before the
target, not only the model's window), the share of users with at least one, the share whose newest
history item is in their top 10, and the share of targets that repeat a history item. On data whose
targets never repeat (Amazon 5-core), every such slot is a wasted one. Item-ranking models only (rpg,
sasrec, hstu); the ranking is the run's exact one (`score_all`), in fp32.
"""

from __future__ import annotations

import json

import numpy as np
from analysis import analysis_header, load_finished_run, run_parser

from sidrec import io
from sidrec.data.schema import SEQ
from sidrec.data.split import eval_examples
from sidrec.metrics import evaluate
from sidrec.recommender import ItemRecommender


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
    args = run_parser(__doc__, splits=("valid",)).parse_args()
    run = load_finished_run(args.run_dir, ("parallel", "id"), "an item-ranking model (score_all)")
    cfg, sequences = run.cfg, run.sequences
    rec = ItemRecommender(run.model, max_history=cfg.data.max_history)
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
