"""The `sidrec` command line: one thin command per stage, `run` for all of them, and `bench`.

sidrec run [CONFIG] [key=value ...] --out DIR
sidrec prepare | embed | quantize | train | evaluate [CONFIG] [key=value ...] --out DIR [--force]
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import typer

from sidrec import distributed, io, pipeline, plugins
from sidrec.config import Config, load_config, packaged_configs
from sidrec.config_show import describe

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    context_settings=HELP,
    rich_markup_mode=None,  # "[CONFIG] [key=value ...]" in a help text is text, not markup
    help="Generative recommendation with Semantic IDs.",
)
config_app = typer.Typer(
    no_args_is_help=True,
    context_settings=HELP,
    rich_markup_mode=None,
    help="Inspect configs: `sidrec config show CONFIG` prints one resolved, with comments.",
)
app.add_typer(config_app, name="config")

ARGS = typer.Argument(None, help="[CONFIG] [key=value ...]: a shipped config name or YAML path, then overrides")
OUT = typer.Option(Path("runs/beauty"), "--out", "-o", help="run directory (created; artifacts are reused)")
UNFINISHED = "use a run whose training was stopped before it finished (its best epoch so far)"
RUN = typer.Option(Path("runs/beauty"), "--out", "-o", help="a trained run directory (as `sidrec run --out` made it)")
FORCE = typer.Option(
    False, "--force", help="recompute stages whose settings or inputs changed, and the stages after them"
)


def _version(value: bool) -> None:
    if value:
        from sidrec import version_text

        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def main(
    _: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="print the version and exit"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also the libraries' own logs and progress bars"),
) -> None:
    """Generative recommendation with Semantic IDs."""
    VERBOSE["on"] = verbose
    try:
        plugins.load()  # your own components (SIDREC_PLUGINS, entry points): their register lines run first
    except ImportError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from err


THIRD_PARTY = ("sentence_transformers", "transformers", "huggingface_hub", "httpx", "urllib3", "filelock", "matplotlib")
VERBOSE = {"on": False}  # -v: the libraries' own INFO logs and progress bars too


def _setup() -> None:
    level = logging.INFO if distributed.is_main() else logging.WARNING  # torchrun: rank 0 logs progress
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in THIRD_PARTY:  # quiet unless -v: sidrec's own logs and bars say what happens
        logging.getLogger(name).setLevel(level if VERBOSE["on"] else logging.WARNING)


def _config(args: list[str] | None, out: Path, default: str | None = None) -> Config:
    """CONFIG (or the run directory's config.yaml, or `default`, or the defaults), then key=value overrides."""
    args = list(args or [])
    path = args.pop(0) if args and "=" not in args[0] else None
    if path is None and (out / io.CONFIG).exists():
        path = str(out / io.CONFIG)
    path = path or default
    try:
        return load_config(path, args)
    except ValueError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None


def _stage(fn, args: list[str] | None, out: Path, force: bool, **how) -> None:
    _setup()
    cfg = _config(args, out)
    try:
        cfg = pipeline.check(cfg, out, (fn.stage,), force)  # nothing is written before the checks pass
        result = fn(cfg, out, force, **how)  # writes config.yaml once the stage's fingerprint check has passed
    except ValueError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1) from None
    if distributed.is_main():
        typer.echo(f"{fn.__name__}: {'up to date, skipped' if result is None else 'done'} -> {out}")


@app.command()
def run(
    args: list[str] = ARGS,
    out: Path = OUT,
    force: bool = FORCE,
    record: Path = typer.Option(None, help="also copy the run record (JSON) to this path"),
) -> None:
    """Run every stage: prepare, embed, quantize, train, evaluate. Ends with a results table."""
    from sidrec.report import data_difference, onerec_table, ranking_table, results_table

    _setup()
    cfg = _config(args, out)
    try:
        rec = pipeline.run(cfg, out, force, command=distributed.launcher() + "sidrec " + shlex.join(sys.argv[1:]))
    except ValueError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1) from None
    if not distributed.is_main():  # torchrun: rank 0 writes and prints
        return
    if record:
        io.save_json(record, rec)
    typer.echo("\n" + results_table(rec, cfg.data.name if not cfg.data.path else "", data_difference(cfg)))
    if rec.get("ranking"):
        typer.echo("\n" + ranking_table(rec["ranking"]))
    if onerec_table(rec):
        typer.echo("\n" + onerec_table(rec))
    typer.echo(f"\n{_time_line(rec, out)}")


def _time_line(rec: dict, out: Path) -> str:
    """This command's wall time and what each stage took in it: skipped ones say so; a resumed training says
    how much of its time an earlier command spent."""
    summary = io.load_json(out / io.TRAIN_SUMMARY) if (out / io.TRAIN_SUMMARY).exists() else {}
    parts = []
    for stage, seconds in rec["stage_seconds"].items():
        if stage not in rec.get("stages_run", rec["stage_seconds"]):
            parts.append(f"{stage} up to date")
        elif stage == "train" and summary.get("earlier_seconds"):
            now = seconds - summary["earlier_seconds"]
            parts.append(f"train {now:.0f}s (+{summary['earlier_seconds']:.0f}s before it resumed)")
        else:
            parts.append(f"{stage} {seconds:.0f}s")
    return f"wall {rec['wall_seconds']:.0f}s ({', '.join(parts)}); run directory {out}"


@app.command()
def prepare(args: list[str] = ARGS, out: Path = OUT, force: bool = FORCE) -> None:
    """Load the dataset and write chronological sequences (items / sequences parquet)."""
    _stage(pipeline.prepare_data, args, out, force)


@app.command()
def embed(args: list[str] = ARGS, out: Path = OUT, force: bool = FORCE) -> None:
    """Encode item texts into vectors (embeddings.npy)."""
    _stage(pipeline.embed_items, args, out, force)


@app.command()
def quantize(args: list[str] = ARGS, out: Path = OUT, force: bool = FORCE) -> None:
    """Quantize item vectors into Semantic IDs (sids.npy, sid_stats.json)."""
    _stage(pipeline.build_sids, args, out, force)


@app.command()
def train(args: list[str] = ARGS, out: Path = OUT, force: bool = FORCE) -> None:
    """Train the generative model (model.pt); resumes from checkpoint.pt after a kill."""
    _stage(pipeline.train_model, args, out, force)


@app.command("evaluate")
def evaluate_cmd(
    args: list[str] = ARGS,
    out: Path = OUT,
    force: bool = FORCE,
    allow_unfinished: bool = typer.Option(False, help=UNFINISHED),
) -> None:
    """Score all users on validation and test (metrics.json, predictions.csv)."""
    from sidrec.report import data_difference, results_table

    _stage(pipeline.evaluate_model, args, out, force, allow_unfinished=allow_unfinished)
    if not distributed.is_main():
        return
    cfg = io.load_run_config(out)
    dataset = cfg.data.name if not cfg.data.path else ""  # published rows exist for the bundled sets only
    typer.echo("\n" + results_table(io.load_json(out / io.METRICS), dataset, data_difference(cfg)))


@app.command("rank")
def rank_cmd(args: list[str] = ARGS, out: Path = OUT, force: bool = FORCE) -> None:
    """Train the generative ranker behind the run's retriever and measure both stages (ranker.pt, ranking.json)."""
    from sidrec.report import ranking_table

    _stage(pipeline.rank_model, args, out, force)
    if distributed.is_main() and (out / io.RANKING).exists():
        typer.echo("\n" + ranking_table(io.load_json(out / io.RANKING)))


@app.command("reward")
def reward_cmd(args: list[str] = ARGS, out: Path = OUT, force: bool = FORCE) -> None:
    """Train the reward model of sessions on the events' actions (reward.pt, reward.json)."""
    from sidrec.report import onerec_table

    _stage(pipeline.reward_model, args, out, force)
    if distributed.is_main() and (out / io.REWARD_JSON).exists():
        typer.echo("\n" + onerec_table({"reward": io.load_json(out / io.REWARD_JSON)}))


@app.command("align")
def align_cmd(args: list[str] = ARGS, out: Path = OUT, force: bool = FORCE) -> None:
    """Align the trained generator to the reward model: align.rounds IPA rounds with DPO (aligned.pt, align.json)."""
    from sidrec.report import onerec_table

    _stage(pipeline.align_model, args, out, force)
    if distributed.is_main() and (out / io.ALIGN_JSON).exists():
        typer.echo("\n" + onerec_table({"align": io.load_json(out / io.ALIGN_JSON)}))


@app.command()
def sweep(
    sweep_file: str = typer.Argument(..., help="a sweep YAML path, or a shipped sweep name (grid_t1_tokenizers, ...)"),
    args: list[str] = typer.Argument(None, help="key=value overrides for every cell, e.g. data.path=PATH"),
    out: Path = typer.Option(Path("runs/sweeps"), "--out", "-o", help="cells: DIR/<sweep>/<variant>/seed<N>"),
    record_dir: Path = typer.Option(
        None, help="where <name>.json, <name>.md and the cell records go (default: OUT/records)"
    ),
    only: list[str] = typer.Option(
        None,
        "--only",
        help="run only this cell (VARIANT or VARIANT/seedN; repeatable), e.g. two processes side by "
        "side; each cell leaves its cell record, and a run without --only writes the table once all are complete",
    ),
) -> None:
    """Run a sweep: every (variant, seed) cell is an ordinary, resumable run; then a table next to GRID's rows."""
    from sidrec.sweep import load_sweep, markdown, run_sweep, select_cells

    _setup()
    try:
        spec = load_sweep(sweep_file, tuple(args or ()))
        cells = select_cells(spec, only) if only else None
        records = record_dir or out / "records"
        rec = run_sweep(spec, out / spec.name, records, shared=out, only=cells)  # other sweeps' cells are reused
    except ValueError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1) from None
    if rec is None:
        typer.echo(f"ran {len(cells)} cell(s) of {spec.name}; run without --only to write the record and table")
        return
    typer.echo("\n" + markdown(rec))


@app.command()
def bench(
    args: list[str] = ARGS,
    steps: int = typer.Option(20, help="timed training steps per model"),
    users: int = typer.Option(1024, help="users beam-searched per model"),
    record: Path = typer.Option(None, help="also write the measurements (JSON) to this path"),
    rpg: bool = typer.Option(False, help="also time RPG (beauty_rpg shape): training, exact and graph top-10"),
) -> None:
    """Training samples/s, beam-search users/s and TFLOP/s on Beauty-shaped synthetic input.

    CONFIG defaults to `beauty_tiger` (`--rpg` adds RPG); benchmarks/bench_t5.py adds HF T5 as a reference."""
    from sidrec.bench import run_bench

    _setup()
    cfg = _config(args, Path("/nonexistent"), default="beauty_tiger")
    result = run_bench(cfg, steps=steps, users=users, rpg=rpg)
    typer.echo(result)
    if record:
        io.save_json(record, result.record)


@app.command()
def configs() -> None:
    """List the shipped configs, one line each (`sidrec config show NAME` prints one in full)."""
    shipped = packaged_configs()
    width = max(map(len, shipped))
    for name in sorted(shipped):
        typer.echo(f"{name.ljust(width)}  {_summary(shipped[name])}")


def _summary(path: Path) -> str:
    """The first sentence of a config file's leading comment."""
    head = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        head.append(line.lstrip("# ").strip())
    text = " ".join(head)
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= 110 else sentence[:107] + "..."


@config_app.command("show")
def config_show(
    args: list[str] = ARGS,
    every: bool = typer.Option(False, "--all", help="also the settings this config's components do not read"),
) -> None:
    """Print the resolved config (defaults, CONFIG, then overrides) with each key's comment: the settings its
    model, tokenizer and stages read (--all: every setting)."""
    cfg = _config(args, Path("/nonexistent"))
    typer.echo(describe(cfg, None if every else pipeline.read_settings(cfg)))


@app.command()
def recommend(
    out: Path = RUN,
    history: str = typer.Option(..., help="item ids, oldest first, comma-separated: ID,ID,..."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="how many items"),
    exclude_history: bool = typer.Option(False, help="drop items already in the history"),
    skip_unknown: bool = typer.Option(False, help="drop unknown item ids instead of failing"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    allow_unfinished: bool = typer.Option(False, help=UNFINISHED),
    times: str = typer.Option("", help="each history event's timestamp (seconds), comma-separated (HSTU, ranker)"),
    actions: str = typer.Option("", help="each history event's action (e.g. its rating), comma-separated"),
) -> None:
    """Top-k items for one history, with titles and Semantic IDs, from a trained run."""
    import json

    from sidrec.api import UnknownItemsError, load

    ids = [i.strip() for i in history.split(",") if i.strip()]
    try:
        events = {name: [int(v) for v in text.split(",") if v.strip()] for name, text in
                  (("times", times), ("actions", actions)) if text}  # fmt: skip
    except ValueError:
        typer.secho("error: --times and --actions take whole numbers, comma-separated: 5,3,4", fg="red", err=True)
        raise typer.Exit(2) from None
    try:
        model = load(out, allow_unfinished=allow_unfinished)
        recs = model.recommend(ids, k, exclude_history=exclude_history, skip_unknown=skip_unknown, **events)
    except UnknownItemsError as err:
        typer.secho(f"error: {err.explain('cli')}", fg="red", err=True)
        raise typer.Exit(2) from None
    except ValueError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in recs], indent=2))
        return
    width = max(len(r.item_id) for r in recs)
    typer.echo(f"{'rank':>4}  {'item_id':<{width}}  {'score':>8}  {'sid':<16}  title")
    for r in recs:
        score = f"{r.score:8.3f}" if r.score is not None else f"{'(pop)':>8}"
        sid = "-".join(map(str, r.sid)) if r.sid else "-"
        typer.echo(f"{r.rank:>4}  {r.item_id:<{width}}  {score}  {sid:<16}  {r.title[:80]}")


@app.command("add-items")
def add_items_cmd(
    items: Path = typer.Argument(..., help="JSONL, one new item per line: item_id and its text fields"),
    out: Path = RUN,
    nice: int = typer.Option(
        10, min=0, max=19, help="lower CPU priority, so that a server on this machine keeps its latency"
    ),
) -> None:
    """Add items to a trained SID run without retraining: their SIDs come from their text (a running
    `sidrec serve` on the run picks them up within a second)."""
    import os

    from sidrec.catalog import add_items

    _setup()
    os.nice(nice)
    try:
        added = add_items(out, items)
    except ValueError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    first, n = added["first_item_idx"], added["items"]
    typer.echo(f"added {n} items (item_idx {first}..{first + n - 1}) to {out} in {added['seconds']:.1f}s")


@app.command()
def serve(
    out: Path = RUN,
    host: str = typer.Option("127.0.0.1", help="interface to bind (0.0.0.0 exposes it to the network)"),
    port: int = typer.Option(8000, help="TCP port"),
    max_batch: int = typer.Option(64, help="most histories per micro-batched model call"),
    max_wait_ms: float = typer.Option(2.0, help="how long a batch waits for more requests"),
    max_queue: int = typer.Option(512, help="histories waiting before new requests get 503 + Retry-After (0: none)"),
    threads: int = typer.Option(0, help="torch threads (0 = torch's default)"),
    beam_width: int = typer.Option(0, help="beams per request (0 = the run's eval.beam_width); fewer is faster"),
    allow_unfinished: bool = typer.Option(False, help=UNFINISHED),
) -> None:
    """HTTP API and web page over a trained run: POST /recommend, GET /items?q=, / (needs the serve extra)."""
    try:
        from sidrec.serve import serve as run_server
    except ImportError as err:
        typer.secho(f"error: {err}; install the server with: pip install 'sidrec[serve]'", fg="red", err=True)
        raise typer.Exit(1) from None
    import torch

    _setup()
    if threads:
        torch.set_num_threads(threads)
    try:
        typer.echo(f"loading {out} ...")
        run_server(out, host, port, beam_width or None, allow_unfinished, max_batch=max_batch, max_wait_ms=max_wait_ms,
                   max_queue=max_queue)  # fmt: skip
    except ValueError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None


@app.command()
def report(out: Path = RUN) -> None:
    """Write DIR/report.html: config, data and SID statistics, training curves, metrics, speed."""
    from sidrec.report_html import write_report

    try:
        path = write_report(out)
    except ValueError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
