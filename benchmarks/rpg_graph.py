"""RPG's graph-constrained decoding against exact decoding, on a trained run's test users.

    python benchmarks/rpg_graph.py RUN_DIR [--edges 100 --beams 10 --steps 3] \
        --record benchmarks/results/rpg_graph_beauty.json

Both decoders rank the same model's digit log-probabilities: exact scores every item (one sparse
matmul), graph walks the item graph (`sidrec.decode.graph`). Reported: test Recall / NDCG @5 / @10
of each, the overlap of their top-10 lists (|graph top-10 & exact top-10| / 10, mean over users),
how often graph finds the exact top-1, users/s of each (graph build time separately), and the mean
number of distinct items graph decoding scores per user.
"""

from __future__ import annotations

import json
import time

import numpy as np
from analysis import analysis_header, load_finished_run, run_parser

from sidrec import io
from sidrec.data.split import eval_examples
from sidrec.metrics import evaluate
from sidrec.recommender import GraphRecommender, ItemRecommender


def main() -> None:
    ap = run_parser(__doc__)
    ap.add_argument("--edges", type=int, default=None, help="neighbours per item (default: the run's eval.graph_edges)")
    ap.add_argument("--beams", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    run = load_finished_run(args.run_dir, ("parallel",), "a parallel SID model for graph decoding")
    cfg, model = run.cfg, run.model
    e = cfg.eval
    edges, beams, steps = args.edges or e.graph_edges, args.beams or e.graph_beams, args.steps or e.graph_steps
    hist = cfg.data.max_history
    examples = eval_examples(run.sequences, "test", hist)
    exact = ItemRecommender(model, max_history=hist)
    graph = GraphRecommender(model, max_history=hist, beams=beams, edges=edges, steps=steps, seed=cfg.seed)
    t0 = time.perf_counter()
    graph.build_graph()
    build_s = time.perf_counter() - t0
    out = {}
    for name, rec in (("exact", exact), ("graph", graph)):
        t0 = time.perf_counter()
        res = evaluate(rec, examples, ks=(5, 10), batch_size=args.batch_size, top_n=10, desc=name)
        seconds = time.perf_counter() - t0
        out[name] = dict(metrics={k: round(v, 6) for k, v in res.metrics.items()}, seconds=round(seconds, 2),
                         users_per_s=round(len(examples.targets) / seconds, 1), top=res.top_items)  # fmt: skip
    a, b = out["exact"].pop("top"), out["graph"].pop("top")
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    n_items = model.codes.shape[0] - 1
    record = dict(
        **analysis_header("rpg graph vs exact decoding", args.run_dir),
        test_users=len(examples.targets),
        items=n_items,
        graph=dict(edges=edges, beams=beams, steps=steps, build_seconds=round(build_s, 2)),
        exact=out["exact"],
        graph_decoding=out["graph"],
        top10_overlap=round(float(overlap), 4),
        top1_agreement=round(float((a[:, 0] == b[:, 0]).mean()), 4),
        graph_items_scored_per_user=round(graph.visited, 1),
        graph_share_of_items_scored=round(graph.visited / n_items, 4),
        speedup_graph_vs_exact=round(out["graph"]["users_per_s"] / out["exact"]["users_per_s"], 3),
    )
    print(json.dumps(record, indent=2))
    if args.record:
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
