"""The README's results table and the table that chooses the default across datasets, from the records."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from records import RESULTS, fmt, group, mean_std

from sidrec.report import METRIC_KEYS, PUBLISHED

README = Path(__file__).parents[1] / "README.md"

# The default's choice across datasets: candidate -> dataset -> record (seed 42), judged on validation NDCG@10.
DEFAULT_CHOICE = {
    "repeat / explore mixture (`model.repeat=mixture`, the default)": {
        "beauty": "beauty_default_mixture_seed42",
        "sports": "sports_default_seed42",
        "toys": "toys_default_seed42",
        "yelp": "yelp_default_seed42",
        "movielens-100k": "ml100k_default_seed42",
    },
    "history negatives + one repeat bias (the previous default)": {
        "beauty": "beauty_default_repeat_bf16_seed42",
        "sports": "sports_rpg_repeat_bf16_seed42",
        "toys": "toys_previous_default_seed42",
        "yelp": "yelp_previous_default_seed42",
        "movielens-100k": "ml100k_previous_default_seed42",
    },
}


def default_choice_table() -> None:
    """Validation NDCG@10 of each candidate per dataset with its rank there; then, over the datasets every candidate
    ran on, the mean of its score relative to the best candidate's (the rule: highest wins) and its mean rank."""
    datasets = list(next(iter(DEFAULT_CHOICE.values())))
    valid = {}
    for name, runs in DEFAULT_CHOICE.items():
        for data, stem in runs.items():
            path = RESULTS / f"{stem}.json"
            if path.exists():
                valid[name, data] = json.loads(path.read_text())["valid"]["ndcg@10"]
    complete = [d for d in datasets if all((n, d) in valid for n in DEFAULT_CHOICE)]
    print("| candidate | " + " | ".join(datasets) + " | mean relative score | mean rank |")
    print("|---" * (len(datasets) + 3) + "|")
    for name in DEFAULT_CHOICE:
        cells, ranks, relative = [], [], []
        for data in datasets:
            if (name, data) not in valid:
                cells.append("-")
                continue
            others = [valid[o, data] for o in DEFAULT_CHOICE if (o, data) in valid]
            rank = 1 + sum(v > valid[name, data] for v in others)
            cells.append(f"{valid[name, data]:.4f} ({rank})")
            if data in complete:
                ranks.append(rank)
                relative.append(valid[name, data] / max(others))
        rel = f"{statistics.mean(relative):.3f}" if relative else "-"
        mean = f"{statistics.mean(ranks):.2f}" if ranks else "-"
        print(f"| {name} | " + " | ".join(cells) + f" | {rel} | {mean} |")
    print()
    print(
        f"Means over the datasets with every candidate ({', '.join(complete) or 'none yet'}); records: "
        + ", ".join(f"`{stem}.json`" for runs in DEFAULT_CHOICE.values() for stem in runs.values())
        + "."
    )


# The README's one table: dataset -> rows (label, record prefix); rules come from the first row's records.
README_ROWS = {
    "beauty": (
        ("sidrec default", "beauty_default_mixture_seed"),
        ("SASRec", "beauty_sasrec_seed"),
        ("HSTU + MLP", "beauty_hstu_ffn_seed"),
        ("TIGER-style generator", "beauty_tiger_seed"),
    ),
    "sports": (
        ("sidrec default", "sports_default_seed"),
        ("SASRec", "sports_sasrec_seed"),
        ("HSTU", "sports_hstu_seed"),
    ),
    "toys": (("sidrec default", "toys_default_seed"),),
    "yelp": (
        ("sidrec default", "yelp_default_seed"),
        ("SASRec", "yelp_sasrec_calibrated_seed"),
    ),
}
README_PUBLISHED = ("RPG", "TIGER", "DiffGRM")  # published rows shown (where the dataset has them)


def rule_rows(recs: list[dict]) -> list[tuple[str, tuple[float, ...]]]:
    """The rules' test numbers (`evaluate` scores them on the same split; equal across seeds)."""
    rules = recs[0].get("eval", {}).get("baselines", {}) if recs else {}
    return [(r.get("label", n), tuple(r["test"][k] for k in METRIC_KEYS)) for n, r in rules.items() if "test" in r]


def readme_table(found: list[Path]) -> str:
    runs = [p for p in found if not p.stem.startswith("probe_") and not p.stem.endswith("_zen3")]
    lines = [
        "| data | method (records) | seeds | test R@5 / R@10 / N@5 / N@10 (mean ± std) | min per run | commit |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, rows in README_ROWS.items():
        first = None
        for label, prefix in rows:
            recs = group(prefix, runs)
            if not recs:
                continue
            first = first or recs
            seeds = ", ".join(str(r["seed"]) for r in recs)
            wall = statistics.mean(r["wall_seconds"] for r in recs) / 60
            record = f"`{prefix}{recs[0]['seed']}.json`" if len(recs) == 1 else f"`{prefix}*`"
            commits = ", ".join(sorted({r["commit"] for r in recs}))
            lines.append(f"| {dataset} | {label} ({record}) | {seeds} | {mean_std(recs)} | {wall:.0f} | {commits} |")
        for name, nums in rule_rows(first or []):
            lines.append(f"| {dataset} | {name} | | {fmt(nums)} | | |")
        for name, nums in PUBLISHED.get(dataset, {}).items():
            if name.startswith(README_PUBLISHED):
                lines.append(f"| {dataset} | published: {name} | | {fmt(nums)} | | |")
    return "\n".join(lines)


MARKS = ("<!-- results table: generated by benchmarks/results_table.py -->", "<!-- end of results table -->")


def write_readme(found: list[Path]) -> None:
    """Replace the README's table between MARKS with the current one."""
    text = README.read_text()
    start, end = text.index(MARKS[0]) + len(MARKS[0]), text.index(MARKS[1])
    README.write_text(text[:start] + "\n" + readme_table(found) + "\n" + text[end:])
