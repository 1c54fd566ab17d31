"""Print the README's results table from the JSON records in benchmarks/results/ (no number typed by hand).

python benchmarks/results_table.py > /tmp/table.md
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from sidrec.config import Config
from sidrec.report import METRIC_KEYS, PUBLISHED

RESULTS = Path(__file__).parent / "results"


def fmt(values) -> str:
    return " / ".join(f"{v:.4f}" for v in values)


def table(paths: list[Path]) -> None:
    print("| run | test R@5 / R@10 / N@5 / N@10 | valid R@5 / R@10 / N@5 / N@10 | wall | commit | machine | command |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        rec = json.loads(path.read_text())
        test = [rec["test"][k] for k in METRIC_KEYS]
        valid = [rec["valid"][k] for k in METRIC_KEYS]
        wall = f"{rec['wall_seconds'] / 60:.1f} min"
        print(
            f"| `{path.name}`: {rec['dataset']}, {rec['quantizer']}, {rec['model']}, seed {rec['seed']} "
            f"| {fmt(test)} | {fmt(valid)} "
            f"| {wall} | {rec['commit']} | {rec['machine']} | `{rec['command']}` |"
        )


def quantizer_table(paths: list[Path]) -> None:
    """GRID's Table 1 analogue: the same model and budget on SIDs from each tokenizer."""
    cols = ["tokenizer", "test R@5 / R@10 / N@5 / N@10", "GRID's row (published)", "collisions", "perplexity per level"]
    print("| " + " | ".join([*cols, "recon MSE", "best epoch", "wall"]) + " |")
    print("|---|---|---|---|---|---|---|---|")
    grid = {"rkmeans": "GRID RK-Means", "rvq": "GRID R-VQ", "rqvae": "GRID RQ-VAE"}
    records = {path: json.loads(path.read_text()) for path in paths}
    for path in sorted(paths, key=lambda p: list(grid).index(records[p]["config"]["quantize"]["name"])):
        rec = records[path]
        prefix = grid[rec["config"]["quantize"]["name"]]
        published = [v for k, v in PUBLISHED["beauty"].items() if k == prefix or k.startswith(prefix + " ")]
        st = rec["sid_stats"]
        ppl = " / ".join(f"{lv['perplexity']:.0f}" for lv in st["per_level"])
        recon = "-" if st.get("reconstruction_mse") is None else f"{st['reconstruction_mse']:.3f}"
        cells = [
            f"{rec['quantizer']} (`{path.name}`, {rec['commit']})",
            fmt(rec["test"][k] for k in METRIC_KEYS),
            fmt(published[0]) if published else "-",
            f"{st['collision_rate']:.1%}",
            ppl,
            recon,
            str(rec["best_epoch"]),
            f"{rec['wall_seconds'] / 60:.1f} min",
        ]
        print("| " + " | ".join(cells) + " |")


def seeds_table(paths: list[Path]) -> None:
    """One config over several seeds: each seed's test metrics, then their mean and spread."""
    print("| seed | test R@5 / R@10 / N@5 / N@10 | valid N@10 | best epoch | wall | commit |")
    print("|---|---|---|---|---|---|")
    records = sorted((json.loads(p.read_text()) for p in paths), key=lambda r: r["seed"])
    for rec in records:
        cells = [
            str(rec["seed"]),
            fmt(rec["test"][k] for k in METRIC_KEYS),
            f"{rec['valid']['ndcg@10']:.4f}",
            str(rec["best_epoch"]),
            f"{rec['wall_seconds'] / 60:.1f} min",
            rec["commit"],
        ]
        print("| " + " | ".join(cells) + " |")
    if len(records) > 1:
        columns = [[rec["test"][k] for rec in records] for k in METRIC_KEYS]
        mean = fmt(statistics.mean(c) for c in columns)
        spread = " / ".join(f"{statistics.stdev(c):.5f}" for c in columns)
        print(f"| mean of {len(records)} (sample std) | {mean} ({spread}) | | | | |")


def config_diff(config: dict, reference: dict, defaults: dict, prefix: str = "") -> dict:
    """The settings of `config` that differ from `reference`, as flat key=value pairs.

    A key one record lacks is a setting added after it was recorded (the code then behaved as the
    setting's default), so it counts at today's default (`defaults`, the same nesting).
    """
    out = {}
    for key, default in defaults.items():
        value, other = config.get(key, default), reference.get(key, default)
        if isinstance(default, dict):
            out.update(config_diff(value, other, default, f"{prefix}{key}."))
        elif value != other:
            out[f"{prefix}{key}"] = value
    return out


def variants_table(runs: list[Path]) -> None:
    """Variants of the default run, each against the default run of the same seed, on full validation.

    Records named beauty_tiger_rkmeans_<variant>_seed<N> are paired with beauty_tiger_rkmeans_seed<N>;
    settings are chosen on the validation columns only (test is shown, never used to choose).
    """
    base = {p.stem.removeprefix("beauty_tiger_rkmeans_seed"): p for p in runs}
    rows = []
    for path in runs:
        head, _, seed = path.stem.rpartition("_seed")
        variant = head.removeprefix("beauty_tiger_rkmeans_")
        if head.startswith("beauty_tiger_rkmeans_") and seed.isdigit() and seed in base:
            rows.append((variant, seed, json.loads(path.read_text()), json.loads(base[seed].read_text())))
    if not rows:
        return
    defaults = json.loads(json.dumps(dataclasses.asdict(Config())))  # tuples as lists, as in the records
    head = "| variant (settings that differ) | seed | valid R@5 / R@10 / N@5 / N@10 | minus the default run, same seed"
    print(head + " | test | commit |")
    print("|---|---|---|---|---|---|")
    for variant, seed, rec, ref in sorted(rows, key=lambda r: (r[0], int(r[1]))):
        delta = " / ".join(f"{rec['valid'][k] - ref['valid'][k]:+.4f}" for k in METRIC_KEYS)
        change = " ".join(f"{k}={v}" for k, v in config_diff(rec["config"], ref["config"], defaults).items()) or "none"
        cells = [f"{variant} (`{change}`)", seed, fmt(rec["valid"][k] for k in METRIC_KEYS), delta]
        print("| " + " | ".join([*cells, fmt(rec["test"][k] for k in METRIC_KEYS), rec["commit"]]) + " |")


def probes_table(paths: list[Path]) -> None:
    """Probes that resumed a finished run's last checkpoint with one setting changed, against that run."""
    print("| probe (how it was made) | valid R@5 / R@10 / N@5 / N@10 | minus the run it resumed | test | best epoch |")
    print("|---|---|---|---|---|")
    for path in paths:
        rec = json.loads(path.read_text())
        ref = json.loads((RESULTS / rec["resumed_from"]).read_text())
        delta = " / ".join(f"{rec['valid'][k] - ref['valid'][k]:+.4f}" for k in METRIC_KEYS)
        cells = [f"`{path.name}`: {rec['note']}", fmt(rec["valid"][k] for k in METRIC_KEYS), delta]
        print("| " + " | ".join([*cells, fmt(rec["test"][k] for k in METRIC_KEYS), str(rec["best_epoch"])]) + " |")


def main() -> None:
    found = [p for p in sorted(RESULTS.glob("*.json")) if "test" in json.loads(p.read_text())]
    probes = [p for p in found if p.stem.startswith("probe_")]
    runs = [p for p in found if p not in probes]
    table([p for p in runs if not p.stem.endswith("_zen3")])
    tokenizers = {f"beauty_tiger_{q}_seed42" for q in ("rkmeans", "rvq", "rqvae")}
    same_model = [p for p in runs if p.stem in tokenizers]  # the default model and evaluation on each tokenizer's SIDs
    if same_model:
        print()
        print("Tokenizers (GRID Table 1 analogue; same model, budget and beam 40; no weight averaging):")
        print()
        quantizer_table(same_model)
    groups = {
        "beauty_tiger_rkmeans_m54_seed": "The default run from 5c55662 to 2026-11-26 (54-minute budget, early-stopping "
        "patience 8), over seeds (now `sidrec run train.patience=8 seed=N`):",
        "beauty_tiger_rkmeans_seed": "The default run with its earlier 50-minute training budget, over seeds "
        "(`sidrec run train.patience=8 train.max_minutes=50 seed=N`):",
        "beauty_tiger_rkmeans_ema_seed": "The default run with weight averaging (run at 396c59b / 4dd9c59, where "
        "it was the default; now `sidrec run train.patience=8 train.max_minutes=50 train.ema=0.999 seed=N`):",
    }
    for prefix, title in groups.items():
        group = [p for p in runs if p.stem.startswith(prefix) and p.stem[len(prefix) :].isdigit()]
        if group:
            print()
            print(title)
            print()
            seeds_table(group)
    print()
    print("Variants of the default run, judged on the full validation split against the default run of the same seed:")
    print()
    variants_table([p for p in runs if not p.stem.endswith("_zen3")])
    if probes:
        print()
        print("Probes: a finished run resumed from its last checkpoint with one setting changed (not end-to-end runs):")
        print()
        probes_table(probes)
    earlier = [p for p in runs if p.stem.endswith("_zen3")]
    if earlier:
        print()
        print("Earlier records (`*_zen3.json`: first development machine, AMD Zen 3, fp32; older code and configs):")
        print()
        table(earlier)
    print()
    print("| published (test) | R@5 / R@10 / N@5 / N@10 |")
    print("|---|---|")
    for dataset, rows in PUBLISHED.items():
        for name, nums in rows.items():
            print(f"| {dataset}: {name} | {fmt(nums)} |")


if __name__ == "__main__":
    main()
