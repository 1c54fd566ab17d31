"""What a person reads at the end of a run: the run record, the results table, the training plot."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import yaml

from sidrec import io
from sidrec.config import Config, config_to_dict
from sidrec.distributed import machine
from sidrec.embed import embedder_label
from sidrec.models import entry

METRIC_KEYS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")


def _published() -> dict[str, dict[str, tuple[float, ...]]]:
    """Published test numbers (R@5, R@10, N@5, N@10) per bundled dataset, from `datasets/published.yaml`."""
    text = (Path(__file__).parent / "datasets" / "published.yaml").read_text()
    return {data: {name: tuple(nums) for name, nums in rows.items()} for data, rows in yaml.safe_load(text).items()}


PUBLISHED = _published()


RECORDS = "benchmarks/results"  # where the tools write records, relative to the repository root


def git_commit(where: Path | None = None) -> str:
    """HEAD's short hash, "-dirty" if tracked files other than benchmarks/results/ differ from it.

    Args:
        where: a folder inside the repository (default: this package's, the code that runs).
    """
    where = where or Path(__file__).parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=where,
        )
        dirty = subprocess.run(
            # records written by the tools (benchmarks/results) are output, not code: a run that finishes
            # while another run's record awaits its commit does not make this one's code "-dirty"
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", f":(top,exclude){RECORDS}"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=where,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def quantizer_label(cfg: Config) -> str:
    """e.g. 'opq 16x256 dedup=random +collab 64/w3' (the collaborative part: dimensions / window)."""
    q = cfg.quantize
    collab = f" +collab {q.collab_dim}/w{q.collab_window}" if q.collab_dim else ""
    weight = f"x{q.collab_weight:g}" if q.collab_dim and q.collab_weight != 1 else ""
    return f"{q.name} {q.levels}x{q.codebook_size} dedup={q.dedup}{collab}{weight}"


def run_record(cfg: Config, run_dir: Path, *, wall_seconds: float, command: str, commit: str = "") -> dict:
    """The benchmark record of a finished run (the format of benchmarks/results/*.json)."""
    metrics = io.load_json(run_dir / io.METRICS)
    spec = entry(cfg.model.name)
    sid = spec.needs_sids  # item-ID models (SASRec, HSTU) use no embedder and no quantizer
    embedder = embedder_label(cfg.embed)
    record = {
        "dataset": cfg.data.name if not cfg.data.path else cfg.data.path,
        "quantizer": quantizer_label(cfg) if sid else "none",
        "model": spec.label(cfg),
        "embedder": embedder if sid else "none",
        "commit": commit or git_commit(),
        "command": command,
        "machine": machine(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": cfg.seed,
        "wall_seconds": round(wall_seconds, 1),
        "stage_seconds": io.load_json(run_dir / io.TIMINGS) if (run_dir / io.TIMINGS).exists() else {},
        "valid": metrics.get("valid", {}),
        "test": metrics.get("test", {}),
        "best_epoch": metrics.get("best_epoch"),
        "eval": {k: v for k, v in metrics.items() if k not in ("valid", "test")},
        "config": config_to_dict(cfg),
    }
    if (run_dir / io.TRAIN_SUMMARY).exists():
        summary = io.load_json(run_dir / io.TRAIN_SUMMARY)
        keys = (
            "epochs",
            "epochs_planned",
            "best_epoch",
            "steps",
            "train_seconds",
            "samples_per_second",
            "precision",
            "segments",
        )
        record["train"] = {k: summary[k] for k in keys if k in summary}
        record["time_capped"] = bool(summary.get("time_capped", False))
    if sid and (run_dir / io.SID_STATS).exists():
        record["sid_stats"] = io.load_json(run_dir / io.SID_STATS)
    if cfg.rank.enabled and (run_dir / io.RANKING).exists():  # the generative ranker behind the retriever
        record["ranking"] = io.load_json(run_dir / io.RANKING)
    for key, name in (("reward", io.REWARD_JSON), ("align", io.ALIGN_JSON)):  # OneRec's stages (sidrec.align)
        if (run_dir / name).exists() and (cfg.reward.enabled or cfg.align.rounds):
            record[key] = io.load_json(run_dir / name)
    return record


def ranking_table(ranking: dict) -> str:
    """The ranker's held-out AUC / GAUC and the test lists of the retriever alone and of the two stages."""
    ev, lists = ranking["events"], ranking["lists"]
    lines = [f"ranker ({ranking['ranker']}, {ranking['params']:,} params): liked AUC valid {ev['valid']['auc']:.4f} "
             f"test {ev['test']['auc']:.4f}, GAUC test {ev['test']['gauc']:.4f} ({ev['test']['gauc_users']} users), "
             f"action RMSE test {ev['test']['rmse']:.3f}"]  # fmt: skip
    test = lists["test"]
    width = 46
    lines.append("test list".ljust(width) + "".join(k.rjust(11) for k in METRIC_KEYS))
    lines.append("-" * len(lines[-1]))
    for who, label in (("retriever", "retriever alone"), ("two_stage", f"two stages (weight {lists['weight']:g})")):
        for part in ("all", "liked"):
            name = f"{label}, {'all' if part == 'all' else 'liked'} targets"
            lines.append(
                name.ljust(width) + "".join(f"{test[who][part].get(k, float('nan')):11.4f}" for k in METRIC_KEYS)
            )
    return "\n".join(lines)


def onerec_table(record: dict) -> str:
    """The reward model's AUC, each alignment round's rewards and validation NDCG@10, and the test lists' metrics
    (whichever of them the run has)."""
    lines = []
    if record.get("reward"):
        r = record["reward"]
        held = f", held-out lists {r['test']['auc']:.4f}" if "test" in r else ""
        lines.append(f"reward model ({r['params']:,} params): liked AUC valid {r['valid']['auc']:.4f}{held}")
    if record.get("align"):
        a, prev = record["align"], record["align"]["before"]
        lines.append(f"alignment, validation before: NDCG@10 {prev['ndcg@10']:.4f}, reward {prev['reward']:.4f}")
        for row in a["rounds"]:
            v = row["valid"]
            lines.append(
                f"  round {row['round']}: {row['pairs']} pairs, reward chosen {row['reward_chosen']:.4f} / rejected "
                f"{row['reward_rejected']:.4f}, DPO loss {row.get('dpo_loss', float('nan')):.4f}; validation NDCG@10 "
                f"{v['ndcg@10']:.4f}, reward {v['reward']:.4f}"
            )
    lists = record.get("eval", {}).get("lists") or record.get("lists")
    if lists:
        keys = [k for k in ("hits", "ndcg", "diversity", "coverage", "reward") if k in lists]
        values = ", ".join(f"{k} {lists[k]:.4f}" for k in keys)
        lines.append(f"test lists of {lists['items']} ({lists['users']} users): {values}")
    return "\n".join(lines)


def results_table(metrics: dict, dataset: str = "beauty", differs: str = "") -> str:
    """Our validation / test numbers next to the published ones, as a fixed-width table.

    Without test numbers (eval.splits=[valid], while tuning) the published test rows are left out too,
    so nothing invites a comparison with the test split. `differs` says how this run's data differ from
    the published rows' full data (e.g. a user sample); it is printed under the table so that the two
    are not read as comparable.
    """
    rules = metrics.get("baselines") or metrics.get("eval", {}).get("baselines", {})  # metrics.json or a record

    def numbers(scores: dict) -> tuple[float, ...]:
        return tuple(scores.get(k, float("nan")) for k in METRIC_KEYS)

    rows = []
    for split in ("valid", "test") if metrics.get("test") else ("valid",):
        rows.append((f"sidrec (this run), {split}", numbers(metrics.get(split, {}))))
        rows += [(f"{r.get('label', n)}, {split}", numbers(r[split])) for n, r in rules.items() if split in r]
    if metrics.get("test"):
        rows += [(f"{name}, test (published, full data)", nums) for name, nums in PUBLISHED.get(dataset, {}).items()]
    width = max(len(r[0]) for r in rows) + 2
    lines = ["method".ljust(width) + "".join(k.rjust(11) for k in METRIC_KEYS)]
    lines.append("-" * len(lines[0]))
    lines += [name.ljust(width) + "".join(f"{v:11.4f}" for v in nums) for name, nums in rows]
    lines += rule_warnings(metrics, rules)
    if not metrics.get("test"):
        lines.append("test: not scored (eval.splits=[valid]); score it once, for the setting chosen on validation")
    elif differs and PUBLISHED.get(dataset):
        lines.append(f"note: this run's data differ from the published rows' ({differs}): not comparable")
    return "\n".join(lines)


def rule_warnings(metrics: dict, rules: dict, key: str = "ndcg@10") -> list[str]:
    """One line per trivial rule (`baselines`) that this run does not beat on `key` (test when scored, else valid)."""
    split = "test" if metrics.get("test") else "valid"
    ours = metrics.get(split, {}).get(key)
    out = []
    for name, scores in rules.items():
        theirs = scores.get(split, {}).get(key)
        if ours is not None and theirs is not None and ours <= theirs:
            out.append(
                f"WARNING: this run's {split} {key} ({ours:.4f}) does not beat the rule '{scores.get('label', name)}' "
                f"({theirs:.4f}): the model learned less than a rule with no training"
            )
    return out


def data_difference(cfg: Config) -> str:
    """How a run's data differ from the full bundled set the published rows use ('' = they do not)."""
    d, default = cfg.data, type(cfg.data)()
    changed = [
        f"data.{key}={getattr(d, key)}"
        for key in ("max_users", "kcore", "min_interactions", "max_history")
        if getattr(d, key) != getattr(default, key)
    ]
    return ", ".join(changed)


def plot_training(history: list[dict], path: Path) -> None:
    """Training loss and validation NDCG@10 per epoch, as a PNG."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4))
    lines = ax.plot(
        [r["epoch"] for r in history], [r["loss"] for r in history], "o-", color="tab:blue", label="train loss"
    )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("train loss", color="tab:blue")
    evals = [r for r in history if "valid" in r]
    if evals:
        ax2 = ax.twinx()
        scores = [r["valid"].get("ndcg@10", 0) for r in evals]
        lines += ax2.plot([r["epoch"] for r in evals], scores, "s-", color="tab:red", label="valid NDCG@10")
        best = evals[max(range(len(evals)), key=scores.__getitem__)]  # the first of equal bests, as training keeps
        lines.append(ax2.axvline(best["epoch"], color="tab:green", ls="--", label=f"best epoch {best['epoch']}"))
        ax2.set_ylabel("valid NDCG@10", color="tab:red")
    top = ax2 if evals else ax  # the twin axes are drawn last: a legend on them stays above every line
    top.legend(lines, [line.get_label() for line in lines], loc="best", fontsize="small", framealpha=0.9)
    ax.set_title("sidrec training")
    fig.tight_layout()
    io.write_atomic(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
