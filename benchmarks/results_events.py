"""The events table (RESULTS.md): HSTU on MovieLens with and without the events' timestamps and actions, from
the records ml100k_hstu[_events|_time]_seed<N>.json, beside the numbers Meta publishes for ML-1M / ML-20M
(benchmarks/published_ml.yaml; other data sizes, shown as context)."""

from __future__ import annotations

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
