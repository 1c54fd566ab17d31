"""The events tables (RESULTS.md): HSTU on MovieLens with and without the events' timestamps and actions, from
the records ml100k_hstu[_events|_time]_seed<N>.json, beside the numbers Meta publishes for ML-1M / ML-20M
(benchmarks/published_ml.yaml; other data sizes, shown as context); and the generative ranker behind that
retriever (ml100k_rank_<variant>_seed<N>.json, their `ranking` block) with its serving cost
(two_stage_latency*.json)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import yaml
from records import RESULTS, group

PUBLISHED_ML = Path(__file__).parent / "published_ml.yaml"
ROWS = {
    "ml100k_hstu_seed": "HSTU (`ml100k_hstu`: Meta's ML-1M settings), items only",
    "ml100k_hstu_time_seed": "HSTU + time bias (`model.hstu.time_bias=true`)",
    "ml100k_hstu_events_seed": "HSTU + time bias + actions (`model.hstu.time_bias=true model.hstu.actions=true`)",
    "ml100k_default_seed": "sidrec default (RPG), for reference",
}
KEYS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")


def cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")


def events_table() -> None:
    paths = sorted(RESULTS.glob("ml100k_*.json"))
    found = {prefix: group(prefix, paths) for prefix in ROWS}
    if not any(found.get(p) for p in ROWS if p != "ml100k_default_seed"):
        return
    print("Events on MovieLens-100K (the ratings' timestamps and values kept beside the items; leave-one-out, every")
    print("item ranked). Test, mean ± sample std over seeds:\n")
    print("| run | seeds | R@5 | R@10 | N@5 | N@10 | wall (mean) | commit |")
    print("|---|---|---|---|---|---|---|---|")
    for prefix, label in ROWS.items():
        recs = found.get(prefix) or []
        if not recs:
            continue
        cells = " | ".join(cell([r["test"][k] for r in recs]) for k in KEYS)
        wall = statistics.mean(r["wall_seconds"] for r in recs) / 60
        seeds = ", ".join(str(r["seed"]) for r in recs)
        commits = ", ".join(sorted({r["commit"] for r in recs}))
        print(f"| {label} | {seeds} | {cells} | {wall:.1f} min | {commits} |")
    published = yaml.safe_load(PUBLISHED_ML.read_text()) if PUBLISHED_ML.exists() else {}
    for data, rows in published.items():
        for name, scores in rows.items():
            print(
                f"| published on {data} (not this data): {name} | | - | {scores['recall@10']:.4f} | - | "
                f"{scores['ndcg@10']:.4f} | | |"
            )
    print()


RANK_ROWS = {
    "ml100k_rank_default_seed": "liked, action and engaged towers (`ml100k_hstu_rank`)",
    "ml100k_rank_liked_seed": "liked and action towers (`rank.negatives=0`)",
}


def ranking_table() -> None:
    paths = sorted(RESULTS.glob("ml100k_rank_*.json"))
    found = {prefix: [r for r in group(prefix, paths) if "ranking" in r] for prefix in RANK_ROWS}
    if not any(found.values()):
        return
    print("Two stages on MovieLens-100K: HSTU with time bias and actions retrieves 100 items, the generative ranker")
    print("reorders them (blend weight chosen on validation NDCG@10 of liked targets). Ranker: AUC / GAUC of")
    print("'rated 4+' on each user's last 5 events (held out from its training). Lists: test NDCG@10 on all")
    print("targets and on liked ones (the target rated 4+). Mean ± sample std over seeds:\n")
    print("| ranker | seeds | AUC | GAUC | retriever N@10 all / liked | two stages N@10 all / liked | weights | wall "
          "| commit |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for prefix, label in RANK_ROWS.items():
        recs = found[prefix]
        if not recs:
            continue
        ev = [r["ranking"]["events"]["test"] for r in recs]
        test = [r["ranking"]["lists"]["test"] for r in recs]
        retr = " / ".join(cell([t["retriever"][p]["ndcg@10"] for t in test]) for p in ("all", "liked"))
        two = " / ".join(cell([t["two_stage"][p]["ndcg@10"] for t in test]) for p in ("all", "liked"))
        weights = ", ".join(f"{r['ranking']['lists']['weight']:g}" for r in recs)
        wall = statistics.mean(r["wall_seconds"] for r in recs) / 60
        seeds = ", ".join(str(r["seed"]) for r in recs)
        commits = ", ".join(sorted({r["commit"] for r in recs}))
        print(
            f"| {label} | {seeds} | {cell([e['auc'] for e in ev])} | {cell([e['gauc'] for e in ev])} | {retr} | "
            f"{two} | {weights} | {wall:.1f} min | {commits} |"
        )
    print()
    for path in sorted(RESULTS.glob("two_stage_latency*.json")):
        rec = json.loads(path.read_text())
        ms = rec["single_request_ms"]
        print(
            f"Serving cost (`{path.name}`, {rec['machine']}): one request (k=10) p50 / p99 "
            f"{ms['retriever']['p50']:.2f} / {ms['retriever']['p99']:.2f} ms for the retriever alone, "
            f"{ms['two_stage']['p50']:.2f} / {ms['two_stage']['p99']:.2f} ms with the ranker over "
            f"{rec['candidates']} candidates ({rec['ratio_p50']}x / {rec['ratio_p99']}x), interleaved in one run.\n"
        )
