"""The cold-start table (RESULTS.md): records of `sidrec run ... data.cold_items=<share>` named
cold_<data>_<method>_seed<seed>.json, split into the test targets no training sequence holds (cold), the others
(warm) and all of them, beside the published cold-start numbers (benchmarks/published_cold.yaml)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import yaml
from records import RESULTS

PUBLISHED_COLD = Path(__file__).parent / "published_cold.yaml"
METHODS = {  # record name part -> label
    "default": "sidrec default (RPG over text + collaborative SIDs)",
    "default_neighbours": "sidrec default, cold items' collaborative part from their text neighbours",
    "tiger": "TIGER-style (`beauty_tiger`, trie-constrained beam search)",
    "tiger_cand20": "the same models + 20 cold candidates by text (`eval.cold_candidates=20`, evaluation only)",
    "sasrec_text": "SASRec with text items (`beauty_sasrec model.sasrec.text_items=true`)",
    "sasrec": "SASRec, item IDs only (`beauty_sasrec`)",
}
RULES = {"text_knn": "text kNN over the history (rule)", "popular": "most popular (rule)"}
KEYS = ("recall@10", "ndcg@10")


def cell(values: list[float]) -> str:
    std = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{std}"


def parts(block: dict) -> list[dict]:
    """(cold, warm, overall) metric dicts of one evaluation: a run's test metrics or a rule's."""
    return [block["cold"]["cold"], block["cold"]["warm"], block]


def row(label: str, blocks: list[dict], recs: list[dict], note: str = "") -> str:
    cols = []
    for i in range(3):
        cols.append(" / ".join(cell([parts(b)[i][k] for b in blocks]) for k in KEYS))
    users = ", ".join(str(b["cold"]["cold_users"]) for b in blocks)  # per seed: each seed draws its own items
    seeds = ", ".join(str(r["seed"]) for r in recs)
    wall = f"{statistics.mean(r['wall_seconds'] for r in recs) / 60:.1f} min" if note != "rule" else "-"
    commits = ", ".join(sorted({r["commit"] for r in recs}))
    flag = " (time-capped: training stopped at train.max_minutes)" if any(r.get("time_capped") for r in recs) else ""
    return f"| {label}{flag} | {seeds} | {cols[0]} | {cols[1]} | {cols[2]} | {users} | {wall} | {commits} |"


def cold_records(dataset: str) -> dict[str, list[dict]]:
    """method -> its end-to-end records (from an empty directory) in seed order."""
    out: dict[str, list[dict]] = {}
    for method in METHODS:
        recs = []
        for p in sorted(RESULTS.glob(f"cold_{dataset}_{method}_seed*.json")):
            if not p.stem[len(f"cold_{dataset}_{method}_seed") :].isdigit():
                continue
            rec = json.loads(p.read_text())
            again = rec.get("stages_run") == ["evaluate"]  # another run's model, evaluated with other settings
            if (rec.get("from_empty_dir") or again) and "test_cold" in rec.get("eval", {}):
                recs.append(rec)
        if recs:
            out[method] = sorted(recs, key=lambda r: r["seed"])
    return out


def cold_table() -> None:
    published = yaml.safe_load(PUBLISHED_COLD.read_text()) if PUBLISHED_COLD.exists() else {}
    datasets = sorted({p.stem.split("_")[1] for p in RESULTS.glob("cold_*_seed*.json")})
    if not datasets:
        return
    print("Cold-start items (`data.cold_items`: a share of the items, drawn per seed among the test targets, keeps")
    print("only its test-target rows, so no model trains on them; test targets with no training interaction are")
    print("cold). Test Recall / NDCG@10, mean ± sample std over seeds; the rules are scored on each seed's split.\n")
    for dataset in datasets:
        found = cold_records(dataset)
        if not found:
            continue
        share = {r["config"]["data"].get("cold_items") for recs in found.values() for r in recs}
        print(f"{dataset} (data.cold_items={', '.join(str(s) for s in sorted(share))}):\n")
        print(
            "| method | seeds | cold R@10 / N@10 | warm R@10 / N@10 | all R@10 / N@10 | cold test users | wall "
            "| commit |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for method, recs in found.items():
            print(row(METHODS[method], [r["test"] | {"cold": r["eval"]["test_cold"]} for r in recs], recs))
        base = found.get("default") or next(iter(found.values()))
        for name, label in RULES.items():
            if all(name in r["eval"].get("baselines", {}) for r in base):
                blocks = [r["eval"]["baselines"][name]["test"] for r in base]
                print(row(label, blocks, base, note="rule"))
        for name, scores in (published.get(dataset) or {}).items():
            recall = scores.get("cold_recall@10")
            print(f"| published: {name} (cold items of its own split) | | {recall:.4f} / - | | | | | |")
        print()
