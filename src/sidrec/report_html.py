"""report.html: one self-contained page (inline CSS, images as data URIs) that shows a run.

Config, data statistics, SID statistics (code usage per level, collision group sizes), training
curves, metrics next to the published rows, recall by history length, and speed. Everything comes
from the run directory's artifacts; a missing artifact leaves its section out with a note.
"""

from __future__ import annotations

import base64
import html
import io as _bytes_io
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from sidrec import io
from sidrec.report import METRIC_KEYS, PUBLISHED, rule_warnings

REPORT = "report.html"
HISTORY_BUCKETS = ((1, 2), (3, 4), (5, 7), (8, 12), (13, 20), (21, 10**9))
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1050px; margin: 24px auto; padding: 0 16px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; } th, td { padding: 3px 10px; border-bottom: 1px solid #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } tr.ours { background: #eef6ee; font-weight: 600; }
pre { background: #f6f7f9; padding: 10px; overflow-x: auto; font-size: 12px; } img { max-width: 100%; }
.note { color: #777; } .warn { color: #b00; font-weight: 600; }
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = _bytes_io.BytesIO()
    with warnings.catch_warnings():  # a panel too narrow for its labels keeps its layout, without a warning
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _figure(width: float = 9, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _table(header: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return f'<td class="n">{v:.4f}</td>' if abs(v) < 100 else f'<td class="n">{v:,.1f}</td>'
        if isinstance(v, int) and not isinstance(v, bool):
            return f'<td class="n">{v:,}</td>'
        if isinstance(v, dict | list | tuple):
            return f"<td>{_nested(v)}</td>"
        return f"<td>{html.escape(str(v))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        f'<tr class="{(classes or [""] * len(rows))[i]}">' + "".join(cell(v) for v in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _nested(value) -> str:
    """A dict as one `key: value` line per entry (zero counts left out), a list one item per line, as HTML."""
    if isinstance(value, dict):
        lines = [f"{html.escape(str(k))}: {_nested(v)}" for k, v in value.items() if v not in (0, 0.0, {}, [])]
        return "<br>".join(lines) or "none"
    if isinstance(value, list | tuple):
        return "<br>".join(_nested(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))


def _load(run_dir: Path, name: str) -> dict | None:
    return io.load_json(run_dir / name) if (run_dir / name).exists() else None


def sid_section(run_dir: Path) -> str:
    stats = _load(run_dir, io.SID_STATS)
    if stats is None or not (run_dir / io.SIDS).exists():
        return '<p class="note">No Semantic IDs in this run (an item-ID model, or quantize has not run).</p>'
    sids = np.load(run_dir / io.SIDS)
    levels, size = stats["levels"], stats["codebook_size"]
    rows = [[f"level {p['level']}", p["codes_used"], p["usage"], p["perplexity"]] for p in stats["per_level"]]
    out = _table(["level", "codes used", f"usage (of {size})", "perplexity"], rows)
    summary = {k: v for k, v in stats.items() if k not in ("per_level",)}
    out += _table(["statistic", "value"], [[k, v] for k, v in summary.items()])
    fig, axes = _figure(9, 2.8)
    fig.clf()
    for level in range(levels):
        ax = fig.add_subplot(1, levels + 1, level + 1)
        counts = np.sort(np.bincount(sids[:, level], minlength=size))[::-1]
        ax.bar(np.arange(len(counts)), counts, width=1.0, color="tab:blue")
        ax.set_title(f"level {level + 1}: items per code", fontsize=9)
        ax.set_xlabel("code (sorted)", fontsize=8)
        ax.tick_params(labelsize=7)
    ax = fig.add_subplot(1, levels + 1, levels + 1)
    _, group = np.unique(sids[:, :levels], axis=0, return_counts=True)
    sizes, freq = np.unique(group, return_counts=True)
    ax.bar(sizes, freq * sizes, color="tab:red")
    ax.set_yscale("log")
    ax.set_title("items by collision group size", fontsize=9)
    ax.set_xlabel("items sharing the L codes", fontsize=8)
    ax.tick_params(labelsize=7)
    return out + _png(fig)


def training_section(run_dir: Path) -> str:
    if not (run_dir / io.TRAIN_LOG).exists():
        return '<p class="note">No training log.</p>'
    log = io.load_train_log(run_dir)
    if not log:
        return '<p class="note">The training log is empty.</p>'
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure()
    lines = ax.plot(
        [r["epoch"] for r in log], [r["loss"] for r in log], "o-", color="tab:blue", ms=3, label="train loss"
    )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("train loss", color="tab:blue")
    evals = [r for r in log if "valid" in r]
    if evals:
        ax2 = ax.twinx()
        for key, style, color in (("ndcg@10", "s-", "tab:red"), ("recall@10", "^--", "tab:orange")):
            values = [r["valid"].get(key, np.nan) for r in evals]
            lines += ax2.plot([r["epoch"] for r in evals], values, style, color=color, ms=3, label=f"valid {key}")
        ax2.set_ylabel("validation", color="tab:red")
    (ax2 if evals else ax).legend(lines, [x.get_label() for x in lines], loc="best", fontsize=8)
    summary = _load(run_dir, io.TRAIN_SUMMARY) or {}
    rows = [[k, v] for k, v in summary.items() if not isinstance(v, dict)]
    return _png(fig) + (_table(["training", "value"], rows) if rows else "")


def metrics_section(run_dir: Path, dataset: str) -> str:
    metrics = _load(run_dir, io.METRICS)
    if metrics is None:
        return '<p class="note">Not evaluated yet (sidrec evaluate).</p>'
    rows = [
        [f"this run, {s}", *[float(metrics.get(s, {}).get(k, np.nan)) for k in METRIC_KEYS]] for s in ("valid", "test")
    ]
    classes = ["ours", "ours"]
    for rule in metrics.get("baselines", {}).values():  # the trivial rows, same split
        for split in ("valid", "test"):
            if split in rule:
                rows.append([f"{rule['label']}, {split}", *[float(rule[split].get(k, np.nan)) for k in METRIC_KEYS]])
                classes.append("")
    for name, nums in PUBLISHED.get(dataset, {}).items():
        rows.append([f"{name}, test", *nums])
        classes.append("")
    note = "" if dataset in PUBLISHED else '<p class="note">No published rows for this dataset.</p>'
    flags = rule_warnings(metrics, metrics.get("baselines", {}))
    warnings = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in flags)
    table = _table(["method", *METRIC_KEYS], rows, classes)
    return table + warnings + note + repeats_table(metrics) + cold_table(metrics)


def repeats_table(metrics: dict) -> str:
    """Where the hits come from (test, else valid): targets in the history vs new ones, for the run and the rules."""
    split = "test" if "test_repeats" in metrics else "valid"
    ours = metrics.get(f"{split}_repeats")
    if not ours:
        return ""
    rows = [["this run", *ours.values()]]
    rows += [[r["label"], *r[split]["repeats"].values()] for r in metrics.get("baselines", {}).values() if split in r]
    header = ["ranked list", "targets in history", "of those hit@10", "new targets hit@10", "top-10 slots on history"]
    return f'<p class="note">Repeats ({split}): where the hits come from.</p>' + _table(header, rows)


def cold_table(metrics: dict) -> str:
    """Recall / NDCG@10 on the targets no training sequence holds (cold) and on the others, run and rules (test,
    else valid); nothing when the split has no cold target."""
    split = "test" if "test_cold" in metrics else "valid"
    ours = metrics.get(f"{split}_cold")
    if not ours or not ours.get("cold_users"):
        return ""
    blocks = [("this run", ours)]
    rules = metrics.get("baselines", {}).values()
    blocks += [(r["label"], r[split]["cold"]) for r in rules if "cold" in r.get(split, {})]
    keys = ("recall@10", "ndcg@10")
    rows = [[name, *[float(b[part].get(k, np.nan)) for part in ("cold", "warm") for k in keys]] for name, b in blocks]
    share = f"{ours['cold_users']} targets ({100 * ours['cold_share']:.1f}%)"
    note = (
        f'<p class="note">Cold items ({split}): {share} that no training sequence holds, scored through their '
        "content alone (data.cold_items holds more out).</p>"
    )
    return note + _table(["ranked list", "cold R@10", "cold N@10", "warm R@10", "warm N@10"], rows)


def ranking_section(run_dir: Path) -> str:
    """The generative ranker's held-out AUC / GAUC and the two stages' test lists beside the retriever's."""
    ranking = _load(run_dir, io.RANKING)
    if ranking is None:
        return "<p>No ranker (rank.enabled=false).</p>"
    ev, lists = ranking["events"], ranking["lists"]
    events = _table(["held-out events", "AUC (liked)", "GAUC", "action RMSE", "events"],
                    [[split, ev[split]["auc"], ev[split]["gauc"], ev[split]["rmse"], ev[split]["events"]]
                     for split in ("valid", "test")])  # fmt: skip
    test, keys = lists["test"], ("recall@10", "ndcg@10")
    rows = [[f"{who} ({part} targets)", *[float(test[k_][part].get(k, np.nan)) for k in keys]]
            for k_, who in (("retriever", "retriever alone"), ("two_stage", f"two stages, weight {lists['weight']:g}"))
            for part in ("all", "liked")]  # fmt: skip
    return events + _table(["test list", "R@10", "N@10"], rows)


def onerec_section(run_dir: Path) -> str:
    """The list metrics (data.list_items), the reward model's AUC and each alignment round (sidrec.align)."""
    lists = (_load(run_dir, io.METRICS) or {}).get("lists")
    reward, align = _load(run_dir, io.REWARD_JSON), _load(run_dir, io.ALIGN_JSON)
    if not (lists or reward or align):
        return "<p>No held-out lists, reward model or alignment (data.list_items, reward.enabled, align.rounds).</p>"
    out = ""
    if lists:
        keys = [k for k in ("hits", "ndcg", "diversity", "coverage", "reward") if k in lists]
        out += _table([f"test lists of {lists['items']} ({lists['users']} users)", *keys],
                      [["this run", *[lists[k] for k in keys]]])  # fmt: skip
    if reward:
        rows = [[split, reward[split]["auc"], reward[split]["rmse"], reward[split]["items"]]
                for split in ("valid", "test") if split in reward]  # fmt: skip
        out += _table(["reward model, held-out sessions", "AUC (liked)", "action RMSE", "items"], rows)
    if align:
        rows = [["before", "", "", "", "", align["before"]["ndcg@10"], align["before"]["reward"]]]
        rows += [[r["round"], r["pairs"], r["reward_chosen"], r["reward_rejected"], r.get("dpo_loss", ""),
                  r["valid"]["ndcg@10"], r["valid"]["reward"]] for r in align["rounds"]]  # fmt: skip
        header = ["alignment round", "pairs", "reward chosen", "reward rejected", "DPO loss", "valid N@10",
                  "valid reward"]  # fmt: skip
        out += _table(header, rows)
    return out


def profile_section(run_dir: Path) -> str:
    """The data profile of `prepare` (repeats, history lengths, popularity skew), with two plots."""
    profile = (_load(run_dir, io.DATA_STATS) or {}).get("profile")
    if not profile or not (run_dir / io.SEQUENCES).exists():
        return '<p class="note">No data profile (prepared by an older sidrec).</p>'
    rows = [[k, v] for k, v in profile.items() if not isinstance(v, dict)]
    rows += [[f"sequence length, {k}", v] for k, v in profile["sequence_length"].items()]
    seqs = pl.read_parquet(run_dir / io.SEQUENCES)["items"].to_list()
    lengths = np.asarray([len(s) for s in seqs])
    counts = np.sort(np.bincount(np.concatenate([np.asarray(s) for s in seqs])))[::-1]
    counts = counts[counts > 0]
    fig, _ = _figure(9, 2.8)
    fig.clf()
    a, b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    a.hist(np.minimum(lengths, 60), bins=np.arange(0, 62), color="tab:blue")
    a.set_xlabel("interactions per user (60+ in the last bar)", fontsize=8)
    a.set_ylabel("users", fontsize=8)
    b.loglog(np.arange(1, len(counts) + 1), counts, color="tab:red")
    b.set_xlabel("item rank by popularity", fontsize=8)
    b.set_ylabel("interactions", fontsize=8)
    for ax in (a, b):
        ax.tick_params(labelsize=7)
    return _table(["profile", "value"], rows) + _png(fig)


def recall_by_history(run_dir: Path) -> tuple[str, list[dict]]:
    """Test Recall@5/10 per bucket of history length (items before the test target), from predictions.csv."""
    if not (run_dir / io.PREDICTIONS).exists():
        return '<p class="note">No predictions.csv.</p>', []
    seqs = pl.read_parquet(run_dir / io.SEQUENCES)
    items = pl.read_parquet(run_dir / io.ITEMS, columns=["item_idx", "item_id"])
    id_of = dict(zip(items["item_idx"].to_list(), map(str, items["item_id"].to_list()), strict=True))
    preds = pl.read_csv(run_dir / io.PREDICTIONS, infer_schema=False).with_columns(pl.col("rank").cast(pl.Int64))
    top = preds.group_by("user_id").agg(pl.col("item_id").sort_by("rank"))
    top_of = dict(zip(top["user_id"].to_list(), top["item_id"].to_list(), strict=True))
    rows = []
    lengths = np.asarray([len(s) - 1 for s in seqs["items"].to_list()])
    hits = {5: [], 10: []}
    for user, seq in zip(map(str, seqs["user_id"].to_list()), seqs["items"].to_list(), strict=True):
        ranked = top_of.get(user, [])
        for k in hits:
            hits[k].append(id_of[seq[-1]] in ranked[:k])
    hit5, hit10 = np.asarray(hits[5]), np.asarray(hits[10])
    for lo, hi in HISTORY_BUCKETS:
        mask = (lengths >= lo) & (lengths <= hi)
        if mask.any():
            label = f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"
            rows.append(
                {
                    "history": label,
                    "users": int(mask.sum()),
                    "recall@5": float(hit5[mask].mean()),
                    "recall@10": float(hit10[mask].mean()),
                }
            )
    fig, ax = _figure(7, 2.8)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["recall@5"] for r in rows], 0.4, label="Recall@5")
    ax.bar(x + 0.2, [r["recall@10"] for r in rows], 0.4, label="Recall@10")
    ax.set_xticks(x, [f"{r['history']}\n({r['users']} users)" for r in rows], fontsize=8)
    ax.set_xlabel("items before the test item")
    ax.legend(fontsize=8)
    table = _table(["history length", "users", "recall@5", "recall@10"], [list(r.values()) for r in rows])
    return table + _png(fig), rows


def speed_section(run_dir: Path) -> str:
    rows = [[f"stage {k}", f"{v:.1f} s"] for k, v in (_load(run_dir, io.TIMINGS) or {}).items()]
    metrics, summary = _load(run_dir, io.METRICS) or {}, _load(run_dir, io.TRAIN_SUMMARY) or {}
    record = _load(run_dir, "record.json") or {}
    if "samples_per_second" in summary:
        rows.append(["training samples/s", summary["samples_per_second"]])
    for split in ("valid", "test"):
        if f"{split}_users_per_second" in metrics:
            rows.append([f"evaluation users/s ({split}, beam search)", metrics[f"{split}_users_per_second"]])
    for key in ("wall_seconds", "machine", "commit", "command", "date"):
        if key in record:
            rows.append([key, record[key]])
    return _table(["measure", "value"], rows) if rows else '<p class="note">No timings.</p>'


def render(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    cfg = io.load_run_config(run_dir)  # ValueError naming the fix when this is not a run directory
    dataset = cfg.data.name if not cfg.data.path else cfg.data.path
    data_stats = _load(run_dir, io.DATA_STATS) or {}
    config_text = (run_dir / io.CONFIG).read_text()
    by_history, _ = recall_by_history(run_dir)
    sections = [
        ("Metrics (all users, all items) next to published rows", metrics_section(run_dir, dataset)),
        ("Recall by history length (test)", by_history),
        ("Training", training_section(run_dir)),
        ("Generative ranker (two stages)", ranking_section(run_dir)),
        ("Lists, reward model and alignment (OneRec)", onerec_section(run_dir)),
        ("Semantic IDs", sid_section(run_dir)),
        ("Data profile", profile_section(run_dir)),
        ("Data", _table(["statistic", "value"], [[k, v] for k, v in data_stats.items() if k != "profile"])),
        ("Speed", speed_section(run_dir)),
        ("Config", f"<pre>{html.escape(config_text)}</pre>"),
    ]
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    title = f"sidrec run: {cfg.model.name} on {dataset}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<p class="note">{html.escape(str(run_dir.resolve()))}</p>{body}</body></html>\n'
    )


def write_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.html (atomically) and return its path."""
    path = Path(run_dir) / REPORT
    text = render(run_dir)
    io.write_atomic(path, lambda p: p.write_text(text))
    return path


__all__ = ["REPORT", "render", "write_report", "recall_by_history"]
