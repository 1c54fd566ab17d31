"""Results tables from the JSON records in benchmarks/results/ (no number typed by hand).

python benchmarks/results_table.py            # writes benchmarks/RESULTS.md and the README's results table
python benchmarks/results_table.py --readme   # only prints the README's results table
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import sys
from pathlib import Path

from records import RESULTS, fmt, group, mean_std, recipe, record_defaults, settings  # noqa: F401 (recipe, record_defaults: for the tests)
from results_cold import cold_table
from results_events import events_table, ranking_table
from results_readme import README, default_choice_table, readme_table, write_readme

from sidrec.config import config_from_dict
from sidrec.report import METRIC_KEYS, PUBLISHED, quantizer_label

RESULTS_MD = Path(__file__).parent / "RESULTS.md"
# README groups: label -> (record name prefix followed by a seed number, published rows to show beside it)
HEADLINE = {
    "sidrec default (`sidrec run`: RPG, OPQ 16x256 of text + collaborative vectors, repeat / explore mixture), "
    "{machine}": ("beauty_default_mixture_seed", ("RPG", "DiffGRM", "GRID RK-Means", "TIGER")),
    "sidrec default (`sidrec run`: RPG, OPQ 16x256 of text + collaborative vectors, history negatives and "
    "repeat bias since 37ccbd4), AMD EPYC with AVX512-BF16 (bf16 autocast)": (
        "beauty_default_repeat_bf16_seed",
        ("RPG", "DiffGRM", "GRID RK-Means", "TIGER"),
    ),
    "the same default (since 37ccbd4) on the fp32-only AMD EPYC (`train.precision=auto` -> fp32)": (
        "beauty_default_repeat_seed",
        (),
    ),
    "the default 1cfede2-37ccbd4 (no history negatives), fp32-only AMD EPYC": ("beauty_default_collab_seed", ()),
    "the same on the AMD EPYC with AVX512-BF16 (`train.precision=auto` -> bf16 autocast)": (
        "beauty_default_collab_bf16_seed",
        (),
    ),
    "TIGER-style default until 947f26d (54-min time budget, patience 8)": (
        "beauty_tiger_rkmeans_m54_seed",
        ("GRID RK-Means", "TIGER"),
    ),
}
SHORT = {  # short SIDs decoded token by token (beam search), the step-based configs at full length
    "TIGER-style encoder-decoder (`beauty_tiger`: RK-Means 3x256, 2+2 blocks, 46 epochs), {machine}": (
        "beauty_tiger_seed",
        ("GRID RK-Means", "TIGER"),
    ),
    "decoder-only (`beauty_decoder`: 4 causal blocks, tied embeddings, 46 epochs), {machine}": (
        "beauty_decoder_seed",
        (),
    ),
    "decoder-only + MoE (`beauty_decoder model.decoder.experts=4 model.decoder.expert_top_k=2`: top-2 of 4 experts), "
    "{machine}": (
        "beauty_decoder_moe_seed",
        (),
    ),
}
BASELINES = {
    "SASRec (`beauty_sasrec`)": ("beauty_sasrec_seed", ("SASRec, tuned", "SASRec (TIGER")),
    "HSTU (`beauty_hstu`)": ("beauty_hstu_seed", ("HSTU",)),
    "HSTU + MLP (`beauty_hstu_ffn`)": (("beauty_hstu_ffn_seed", "beauty_hstu_ffn_do2_seed"), ("HSTU",)),
    "SASRec (`sports_sasrec`)": ("sports_sasrec_seed", ("SASRec (TIGER",)),
    "HSTU (`sports_hstu`)": ("sports_hstu_seed", ("HSTU",)),
    "HSTU + MLP (`sports_hstu_ffn`)": ("sports_hstu_ffn_seed", ("HSTU",)),
}
OTHER = {  # the default (and what it replaced) on the other bundled sets
    "sidrec default on Sports (`sidrec run sports_rpg`), {machine}": ("sports_default_seed", ("RPG",)),
    "sidrec default on Toys (`sidrec run data.name=toys`), {machine}": ("toys_default_seed", ("RPG", "TIGER")),
    "the previous default on Toys (`model.repeat=none model.rpg.history_negatives=true model.rpg.repeat_bias=true`), "
    "{machine}": ("toys_previous_default_seed", ()),
    "sidrec default on Yelp (`sidrec run data.name=yelp`), {machine}": ("yelp_default_seed", ()),
    "SASRec on Yelp (`sidrec run beauty_sasrec data.name=yelp`: explore temperature chosen on validation), {machine}": (
        "yelp_sasrec_calibrated_seed",
        (),
    ),
    "the same with the explore temperature fixed at 1 (`beauty_sasrec` before it chose one), {machine}": (
        "yelp_sasrec_seed",
        (),
    ),
    "the previous default on Yelp (`model.repeat=none model.rpg.history_negatives=true model.rpg.repeat_bias=true`), "
    "{machine}": ("yelp_previous_default_seed", ()),
}
PARALLEL = {  # long SIDs decoded in one pass (RPG)
    "RPG, text-only SIDs (the default da3500b-1cfede2), exact decoding": ("beauty_default_seed", ("RPG", "DiffGRM")),
    "RPG (`beauty_rpg` until da3500b: the newest training window only), exact decoding": (
        "beauty_rpg_seed",
        ("RPG", "DiffGRM"),
    ),
    "RPG (`sports_rpg`, history negatives and repeat bias since 37ccbd4), exact decoding, AVX512-BF16 EPYC": (
        "sports_rpg_repeat_bf16_seed",
        ("RPG",),
    ),
    "RPG (`sports_rpg` 1cfede2-37ccbd4), exact decoding, fp32-only EPYC": ("sports_rpg_collab_seed", ()),
    "the same on an AMD EPYC with AVX512-BF16 (bf16 autocast)": ("sports_rpg_collab_bf16_seed", ()),
    "RPG (`sports_rpg` da3500b-1cfede2: text-only SIDs), exact decoding": ("sports_rpg_seed", ("RPG",)),
}


def quantizer(rec: dict) -> str:
    """The record's quantizer, with the collaborative part from its config (records before a096e7f omit it)."""
    q = rec.get("config", {}).get("quantize", {})
    if "+collab" in rec["quantizer"] or not q.get("collab_dim") or rec["quantizer"] == "none":
        return rec["quantizer"]
    return quantizer_label(config_from_dict({"quantize": q}))  # the label today's records carry


def table(paths: list[Path]) -> None:
    print("| run | test R@5 / R@10 / N@5 / N@10 | valid R@5 / R@10 / N@5 / N@10 | wall | commit | machine | command |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        rec = json.loads(path.read_text())
        test = [rec["test"][k] for k in METRIC_KEYS]
        valid = [rec["valid"][k] for k in METRIC_KEYS]
        print(
            f"| `{path.name}`: {rec['dataset']}, {quantizer(rec)}, {rec['model']}, seed {rec['seed']} "
            f"| {fmt(test)} | {fmt(valid)} "
            f"| {wall(rec)} | {rec['commit']} | {rec['machine']} | `{rec['command']}` |"
        )


def wall(rec: dict) -> str:
    """Wall time; a resumed run's wall_seconds covers its last invocation only, so say so and add its training."""
    text = f"{rec['wall_seconds'] / 60:.1f} min"
    train = rec.get("train", {})
    if len(train.get("segments", [])) > 1:  # train_seconds already sums the segments
        minutes = train["train_seconds"] / 60
        text += f" (the last of {len(train['segments'])} invocations; training {minutes:.1f} min in all)"
    return text


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
            f"{quantizer(rec)} (`{path.name}`, {rec['commit']})",
            fmt(rec["test"][k] for k in METRIC_KEYS),
            fmt(published[0]) if published else "-",
            f"{st['collision_rate']:.1%}",
            ppl,
            recon,
            str(rec["best_epoch"]),
            wall(rec),
        ]
        print("| " + " | ".join(cells) + " |")


def seeds_table(paths: list[Path]) -> None:
    """One config over several seeds: each seed's test metrics, then their mean and spread (one precision only)."""
    print("| seed | test R@5 / R@10 / N@5 / N@10 | valid N@10 | best epoch | wall | commit | machine |")
    print("|---|---|---|---|---|---|---|")
    records = sorted((json.loads(p.read_text()) for p in paths), key=lambda r: r["seed"])
    for rec in records:
        cells = [
            str(rec["seed"]),
            fmt(rec["test"][k] for k in METRIC_KEYS),
            f"{rec['valid']['ndcg@10']:.4f}",
            str(rec["best_epoch"]),
            wall(rec),
            rec["commit"],
            machine([rec]),
        ]
        print("| " + " | ".join(cells) + " |")
    if len(records) > 1 and len({precision(r) for r in records}) == 1:
        columns = [[rec["test"][k] for rec in records] for k in METRIC_KEYS]
        mean = fmt(statistics.mean(c) for c in columns)
        spread = " / ".join(f"{statistics.stdev(c):.5f}" for c in columns)
        print(f"| mean of {len(records)} (sample std) | {mean} ({spread}) | | | | | |")


def config_diff(config: dict, reference: dict) -> dict:
    """The settings of a record's `config` that differ from `reference`'s, as dotted key=value pairs.

    A key one record lacks is a setting added after it was recorded, so it counts at the value the code
    then had (`records.settings`)."""
    mine, other = settings(config), settings(reference)
    return {k: v for k, v in mine.items() if other.get(k) != v}


def variants_table(runs: list[Path]) -> None:
    """Variants of the TIGER-style default run, each against that run of the same seed, on full validation.

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
    head = "| variant (settings that differ) | seed | valid R@5 / R@10 / N@5 / N@10 | minus the default run, same seed"
    print(head + " | test | commit |")
    print("|---|---|---|---|---|---|")
    for variant, seed, rec, ref in sorted(rows, key=lambda r: (r[0], int(r[1]))):
        delta = " / ".join(f"{rec['valid'][k] - ref['valid'][k]:+.4f}" for k in METRIC_KEYS)
        change = " ".join(f"{k}={v}" for k, v in config_diff(rec["config"], ref["config"]).items()) or "none"
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


def precision(rec: dict) -> str | None:
    """What the record's training ran in (bf16 autocast or fp32); None for records from before it was kept."""
    return rec.get("train", {}).get("precision")


def machine(recs: list[dict]) -> str:
    """The CPUs, thread counts and training precisions the records name, as they name them, in seed order."""
    names: list[str] = []
    for rec in recs:
        parts = [p.strip() for p in rec["machine"].split(",")]
        parts = [p for p in parts if not p.endswith(" cores") and not p.startswith("torch ")]
        name = ", ".join(parts).replace(" 1 threads", " 1 thread")
        if precision(rec):
            name += f", {precision(rec)}"
        if name not in names:
            names.append(name)
    return "; ".join(names)


def summary_table(groups: dict, paths: list[Path]) -> None:
    """One row per group of seeds (test mean ± sample std), then the published rows it is compared with.

    A label's `{machine}` is filled in from the records. Seeds trained at different precisions (bf16 autocast,
    fp32) are not one spread: each precision gets its own row.
    """
    print("| run | seeds | test R@5 / R@10 / N@5 / N@10 (mean ± sample std) | wall (mean) | commit |")
    print("|---|---|---|---|---|")
    shown: list[str] = []
    for label, (prefix, published) in groups.items():
        recs = group(prefix, paths)
        if not recs:
            print(f"| {label.replace(', {machine}', '')} | - | no end-to-end record yet | | |")
            continue
        for kind in dict.fromkeys(precision(r) for r in recs):
            part = [r for r in recs if precision(r) == kind]
            wall = statistics.mean(r["wall_seconds"] for r in part) / 60
            seeds = ", ".join(str(r["seed"]) for r in part)
            commits = ", ".join(sorted({r["commit"] for r in part}))
            name = label.replace("{machine}", machine(part)) if "{machine}" in label else label
            print(f"| {name} | {seeds} | {mean_std(part)} | {wall:.1f} min | {commits} |")
        dataset = recs[0]["dataset"]
        for name, nums in PUBLISHED.get(dataset, {}).items():
            if any(name.startswith(p) for p in published) and (dataset, name) not in shown:
                shown.append((dataset, name))
                print(f"| published: {name} ({dataset}) | | {fmt(nums)} | | |")


def current_tables(found: list[Path]) -> None:
    """The summary tables by model family (RESULTS.md's first part)."""
    runs = [p for p in found if not p.stem.startswith("probe_") and not p.stem.endswith("_zen3")]
    print("## Default runs and model families\n")
    print("End-to-end records only (from an empty run directory, no time cap hit).\n")
    for title, groups in (
        ("Default run", HEADLINE),
        ("Short SIDs decoded token by token (GRID's generators at their configs' full length)", SHORT),
        ("Item-ID baselines", BASELINES),
        ("Long SIDs decoded in parallel (RPG)", PARALLEL),
        ("Other datasets", OTHER),
    ):
        print(f"{title}:\n")
        summary_table(groups, runs)
        print()
    tokenizers = {f"beauty_tiger_{q}_seed42" for q in ("rkmeans", "rvq", "rqvae")}
    same_model = [p for p in runs if p.stem in tokenizers]
    if same_model:
        print("Tokenizers (GRID Table 1 analogue; one seed each; the TIGER-style default model and 50-minute budget")
        print("of the commit named):")
        print()
        quantizer_table(same_model)
    grid_tables(RESULTS / "sweeps")
    other_sweeps(RESULTS / "sweeps")
    print()
    cold_table()
    print()
    events_table()
    ranking_table()
    print()
    print("## The default, chosen across datasets\n")
    print("Validation NDCG@10 (seed 42; the full validation split) of the candidates for the default's handling of")
    print("items already in the history, on every dataset, with each candidate's rank there. The rule: the highest")
    print("mean relative score across the datasets wins (a candidate's validation NDCG@10 over the best one's on the")
    print("same dataset, averaged; it weighs a large loss on one dataset against small gains on others, which a mean")
    print("rank, also shown, does not).\n")
    default_choice_table()


GRID_ORDER = ("t1", "t3", "t4", "t5", "t6", "t7", "t8")


def grid_tables(folder: Path) -> None:
    """The GRID ablation tables run so far (`sidrec sweep grid_t*`), in GRID's order, as the sweeps wrote them."""
    found = sorted(folder.glob("grid_t*.md"), key=lambda p: GRID_ORDER.index(p.stem.split("_")[1]))
    if not found:
        return
    print()
    print(f"GRID's ablation tables run so far ({len(found)} of {len(GRID_ORDER)}; `sidrec sweep <name> --out")
    print("runs/grid`, each table as the sweep wrote it to `benchmarks/results/sweeps/<name>.md`):")
    for path in found:
        print()
        print(path.read_text().rstrip().replace("### ", "#### ", 1))


def other_sweeps(folder: Path) -> None:
    """The other sweeps' tables (OneRec's pieces: `sidrec sweep onerec_ml100k`), as the sweeps wrote them."""
    for path in sorted(folder.glob("onerec_*.md")):
        print()
        print(f"`sidrec sweep {path.stem}` (written to `benchmarks/results/sweeps/{path.name}`):")
        print()
        print(path.read_text().rstrip().replace("### ", "#### ", 1))


def main() -> None:
    found = [p for p in sorted(RESULTS.glob("*.json")) if "test" in json.loads(p.read_text())]
    if "--readme" in sys.argv[1:]:
        print(readme_table(found))
        return
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        print("# Results: every record\n")
        print("Generated by `python benchmarks/results_table.py` from `benchmarks/results/*.json`; do not edit.")
        print("Each record names its command, commit, machine and wall time; a command reproduces its record at")
        print("that commit. The README shows one table; the current tables by model family come first here.\n")
        current_tables(found)
        print("## Every record\n")
        history(found)
    RESULTS_MD.write_text(text.getvalue())
    write_readme(found)
    print(f"wrote {RESULTS_MD} and the results table of {README}")


def history(found: list[Path]) -> None:
    probes = [p for p in found if p.stem.startswith("probe_")]
    runs = [p for p in found if p not in probes]
    table([p for p in runs if not p.stem.endswith("_zen3")])
    tokenizers = {f"beauty_tiger_{q}_seed42" for q in ("rkmeans", "rvq", "rqvae")}
    same_model = [p for p in runs if p.stem in tokenizers]  # the TIGER model and evaluation on each tokenizer's SIDs
    if same_model:
        print()
        print("Tokenizers (GRID Table 1 analogue; same model, budget and beam 40; no weight averaging):")
        print()
        quantizer_table(same_model)
    groups = {
        "beauty_default_seed": "The step-based default run (`sidrec run seed=N`; RPG since 70b366a), over seeds:",
        "beauty_tiger_seed": "The TIGER-style encoder-decoder at its config's full 46 epochs (`sidrec run beauty_tiger "
        "seed=N`), over seeds:",
        "beauty_decoder_seed": "The decoder-only generator at its config's full 46 epochs (`sidrec run beauty_decoder "
        "seed=N`), over seeds (no mean across training precisions):",
        "beauty_decoder_moe_seed": "The decoder-only generator with MoE (`sidrec run beauty_decoder "
        "model.decoder.experts=4 model.decoder.expert_top_k=2 seed=N`), over seeds, resumed runs included "
        "(the README's table takes end-to-end ones):",
        "beauty_tiger_rkmeans_m54_seed": "The TIGER-style default run from 5c55662 to 947f26d (54-minute time budget, "
        "early-stopping patience 8), over seeds:",
        "beauty_tiger_rkmeans_seed": "The TIGER-style default run with its earlier 50-minute time budget, over seeds:",
        "beauty_tiger_rkmeans_ema_seed": "The 50-minute TIGER-style default run with weight averaging "
        "(`train.ema=0.999`):",
    }
    for prefix, title in groups.items():
        group = [p for p in runs if p.stem.startswith(prefix) and p.stem[len(prefix) :].isdigit()]
        if group:
            print()
            print(title)
            print()
            seeds_table(group)
    print()
    print("Variants of the TIGER-style default run, judged on the full validation split against that default run of")
    print("the same seed:")
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
