"""`sidrec sweep SWEEP.yaml --out DIR`: a base config, named variants and seeds, one ordinary run per cell.

A sweep file (shipped ones: `sidrec/sweeps/*.yaml`, GRID's ablation tables):

    name: grid_t1_tokenizers
    title: "GRID Table 1: tokenizers"
    base: beauty_tiger                 # a shipped config or YAML path (optional)
    overrides: ["train.epochs=20"]     # for every cell, e.g. a shorter ablation schedule (stated in the table)
    seeds: [42, 43]
    variants:
      rkmeans: {overrides: ["quantize.name=rkmeans"], published: {recall@10: 0.0639, ndcg@10: 0.0347}}
      rvq:     {overrides: ["quantize.name=rvq"]}

Cell (variant, seed) is the run directory DIR/<name>/<variant>/seed<N>, resumable like any run; a complete
cell is skipped. Stages whose settings and inputs equal those of a cell already run, in this sweep or in another
sweep under DIR, are linked from it, not recomputed (e.g. one embedding for every variant; GRID's tables share
their base row, trained once). A variant that differs from an earlier one only in `eval.*` settings reuses that
cell's trained model and evaluates into its own directory. Variants are compared on validation NDCG@10 only;
test is reported beside, never used to choose. The result: `<record-dir>/<name>.json` (per variant: overrides,
per-seed valid / test metrics, mean, sample std, the seconds each cell's stages took, counting a linked stage
at what it cost where it ran) and `<name>.md` (a table with the published row beside ours).

Every finished cell also leaves a cell record, `<record-dir>/cells/<name>/<variant>_seed<N>.json` (its metrics,
config, commit, machine, date and stage times): small enough to commit, so a table can be finished across
machines or checkouts that do not share the run directories. A cell whose record holds the config the sweep
gives it now counts as complete and is not run again; a record made with other settings is ignored and replaced.
A cell stopped part-way resumes from its checkpoint; its record lists each stretch of epochs with its machine
(`train.segments`), and the table counts the resumed cells.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from sidrec import fingerprint, io, pipeline
from sidrec.config import Config, config_to_dict, load_config
from sidrec.data.preflight import named
from sidrec.report import METRIC_KEYS, git_commit, machine, run_record

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]
    published: dict | None = None  # metric -> the published test value (GRID reports some tables as R@10 only)


@dataclass(frozen=True)
class Sweep:
    name: str
    title: str
    base: str | None
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: tuple[Variant, ...]
    note: str = ""
    path: str = field(default="", compare=False)
    source: str = field(default="", compare=False)  # what `sidrec sweep` takes: a shipped sweep's name, or the path
    extra: tuple[str, ...] = ()  # `sidrec sweep NAME key=value ...`: for every cell (e.g. where the data lives)

    def command(self, variant: str | None = None, seed: int | None = None) -> str:
        """The command that runs this sweep (or one cell of it) again, on any machine."""
        only = f" --only {variant}/seed{seed}" if variant is not None else ""
        extra = "".join(f" {x}" for x in self.extra)
        return f"sidrec sweep {self.source or self.path}{extra}{only}"

    def config(self, variant: Variant, seed: int) -> Config:
        """The cell's config as its run will hold it (data on a path named after its folder, `preflight.named`)."""
        return named(load_config(self.base, [*self.overrides, *self.extra, *variant.overrides, f"seed={seed}"]))


def shipped_sweeps() -> dict[str, Path]:
    root = resources.files("sidrec") / "sweeps"
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def load_sweep(name_or_path: str, extra: tuple[str, ...] = ()) -> Sweep:
    """A sweep file (or the name of a shipped one) with `extra` overrides for every cell, checked: every cell's config
    must load."""
    path, source = Path(name_or_path), str(name_or_path)
    if not path.exists():
        shipped = shipped_sweeps()
        if name_or_path not in shipped:
            raise ValueError(
                f"sweep '{name_or_path}' is neither a file nor shipped. Shipped: {', '.join(sorted(shipped))}"
            )
        path = shipped[name_or_path]
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"name", "title", "base", "overrides", "seeds", "variants", "note"}
    if unknown or not isinstance(raw.get("variants"), dict) or not raw["variants"]:
        raise ValueError(f"{path}: a sweep needs `variants:` (a mapping of names to overrides); unknown keys {unknown}")
    variants = []
    for name, spec in raw["variants"].items():
        spec = spec or {}
        published = spec.get("published")
        if published is not None and (not isinstance(published, dict) or not set(published) <= set(METRIC_KEYS)):
            raise ValueError(f"{path}: variant {name}: `published` maps metrics ({', '.join(METRIC_KEYS)}) to values")
        variants.append(Variant(str(name), tuple(spec.get("overrides", [])), published))
    sweep = Sweep(
        name=str(raw.get("name", path.stem)),
        title=str(raw.get("title", path.stem)),
        base=raw.get("base"),
        overrides=tuple(raw.get("overrides", [])),
        seeds=tuple(int(s) for s in raw.get("seeds", [42])),
        variants=tuple(variants),
        note=str(raw.get("note", "")),
        path=str(path),
        source=source,
        extra=tuple(extra),
    )
    for variant in sweep.variants:
        try:
            sweep.config(variant, sweep.seeds[0])
        except ValueError as err:
            raise ValueError(f"{path}: variant {variant.name}: {err}") from None
    return sweep


def _model_key(cfg: Config) -> str:
    """Every setting but `eval.*`: cells with equal keys train the same model."""
    return repr({k: v for k, v in config_to_dict(cfg).items() if k != "eval"})


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # another file system: copy
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


ADOPTED = "adopted.json"  # in a cell: stage -> the cell that ran it, for the stages linked from another cell


def adopted(cell: Path) -> dict[str, str]:
    return io.load_json(cell / ADOPTED) if (cell / ADOPTED).exists() else {}


def stage_seconds(cell: Path) -> dict[str, float]:
    """Seconds per stage that produced `cell`: its own, and for a stage linked from another cell, that cell's."""
    own = io.load_json(cell / io.TIMINGS) if (cell / io.TIMINGS).exists() else {}
    for stage, origin in adopted(cell).items():
        theirs = Path(origin) / io.TIMINGS
        if theirs.exists() and stage in (donor := io.load_json(theirs)):
            own[stage] = donor[stage]
    return own


def _adopt(stage: str, outputs: tuple[str, ...], donor: Path, cell: Path, fp: dict) -> None:
    """Link a stage's outputs from `donor` into `cell`, record the fingerprint they were made with and where."""
    for name in outputs:
        if (donor / name).exists():
            _link(donor / name, cell / name)
    fingerprint.save(cell, stage, fingerprint.Fingerprint(fp["config"], fp["inputs"]))
    origin = adopted(donor).get(stage, str(donor))  # the cell that ran it, not one that linked it in turn
    io.save_json(cell / ADOPTED, {**adopted(cell), stage: origin})


def _reuse_stages(cfg: Config, cell: Path, donors: list[Path]) -> dict[str, Path]:
    """Link the outputs of every leading stage that an earlier cell ran with the same settings and inputs.

    Returns the reused stages, each with the cell it came from. When every stage up to `train` matches (a cell of
    another sweep with the same model and schedule), only evaluation is left to run.
    """
    reused: dict[str, Path] = {}
    stages = tuple(s for s in pipeline.run_stages(cfg) if s != "evaluate")
    for name in stages:
        if name == "evaluate":
            break
        spec = pipeline.SPECS[name]
        if pipeline.stage_status(spec, cfg, cell)[0] == "current":
            continue
        now = fingerprint.compute(cfg, cell, spec.keys(cfg), spec.inputs(cfg))
        mine = now.as_dict()  # a donor's record may name settings the stage no longer reads: `changes` skips them
        donor = next((d for d in donors if (fp := fingerprint.stored(d, name)) and not fingerprint.changes(fp, now)
                      and pipeline.stage_status(spec, cfg, d)[0] == "current"), None)  # fmt: skip
        if donor is None:
            break
        _adopt(name, spec.outputs(cfg), donor, cell, mine)
        reused[name] = donor
    return reused


def _other_cells(root: Path | None, out: Path) -> list[Path]:
    """Cells of other sweeps under `root` (root/<sweep>/<variant>/seed<N>), outside this sweep's `out`."""
    if root is None or not root.is_dir():
        return []
    return sorted(p for p in root.glob("*/*/seed*") if p.is_dir() and out.resolve() not in p.resolve().parents)


def cell_record_path(record_dir: Path, sweep: Sweep, variant: str, seed: int) -> Path:
    return Path(record_dir) / "cells" / sweep.name / f"{variant}_seed{seed}.json"


def _recorded_cell(path: Path, cfg: Config) -> dict | None:
    """The cell's record when it was made with exactly these settings, else None (a stale one is logged)."""
    if not path.exists():
        return None
    record = io.load_json(path)
    read = set()  # the settings some stage reads (fingerprint keys), not every key of the config
    for spec in pipeline.SPECS.values():
        read |= set(fingerprint.select(cfg, spec.keys(cfg)))
    changed = fingerprint.differences(record.get("config", {}), cfg, read)
    if changed:
        logger.warning(
            "%s: made with other settings than the sweep gives this cell now (%s); the cell runs again",
            path,
            "; ".join(changed[:3]),
        )
        return None
    return record


def select_cells(sweep: Sweep, only: list[str]) -> set[tuple[str, int]]:
    """`--only` values, each VARIANT or VARIANT/seedN, as (variant, seed) cells; an unknown name is an error.

    A selected variant that changes only evaluation settings brings the cell that trains its model along."""
    names, cells = {v.name for v in sweep.variants}, set()
    for item in only:
        variant, _, seed = item.partition("/")
        number = seed.removeprefix("seed")
        seeds = [int(number)] if number.isdigit() else [] if seed else list(sweep.seeds)
        if variant not in names or not seeds or not set(seeds) <= set(sweep.seeds):
            raise ValueError(
                f"--only {item}: not a cell of {sweep.name}. Use VARIANT or VARIANT/seedN with a variant from "
                f"{', '.join(sorted(names))} and a seed from {', '.join(map(str, sweep.seeds))}"
            )
        cells |= {(variant, s) for s in seeds}
    for seed in sweep.seeds:  # an evaluation-only variant re-evaluates its twin's model: the twin runs too
        twin: dict[str, str] = {}
        for variant in sweep.variants:
            first = twin.setdefault(_model_key(sweep.config(variant, seed)), variant.name)
            if (variant.name, seed) in cells:
                cells.add((first, seed))
    return cells


def run_sweep(
    sweep: Sweep, out: Path, record_dir: Path, shared: Path | None = None, only: set[tuple[str, int]] | None = None
) -> dict | None:
    """Run (or resume) every cell; write the sweep record and its markdown table; return the record.

    `shared`: a folder of other sweeps' cells (`sidrec sweep --out`); their stages are reused like this sweep's own
    (GRID's tables share a base model: each table's base row is trained once for all of them).
    `only`: run just these (variant, seed) cells, e.g. a few processes side by side; no record is written
    (returns None): a later run over every cell finds them complete and writes it.
    """
    out, start = Path(out), time.perf_counter()
    others = _other_cells(shared, out)
    done: list[Path] = []
    trained: dict[str, Path] = {}  # settings other than eval.* -> the cell that trained them
    results: dict[str, dict] = {}
    for seed in sweep.seeds:
        for variant in sweep.variants:
            cfg = sweep.config(variant, seed)
            cell = out / variant.name / f"seed{seed}"
            key = _model_key(cfg)
            record_path = cell_record_path(record_dir, sweep, variant.name, seed)
            recorded = _recorded_cell(record_path, cfg)  # finished here or on another machine
            if recorded is not None or (only is not None and (variant.name, seed) not in only):
                if pipeline.stage_status(pipeline.SPECS["train"], cfg, cell)[0] == "current":
                    done.append(cell)  # a finished cell not run now still lends its stages to the ones that run
                    trained.setdefault(key, cell)
                if recorded is not None:
                    logger.info("sweep %s: %s, seed %d: complete (%s)", sweep.name, variant.name, seed, record_path)
                    results.setdefault(variant.name, {})[seed] = recorded
                continue
            logger.info("sweep %s: %s, seed %d -> %s", sweep.name, variant.name, seed, cell)
            cell_start = time.perf_counter()
            if key in trained and trained[key] != cell:  # an evaluation-only variant: reuse the trained model
                twin = trained[key]
                for spec in (pipeline.SPECS[s] for s in pipeline.STAGES if s not in ("evaluate", "rank")):
                    if (old := fingerprint.stored(twin, spec.name)) is not None:
                        _adopt(spec.name, spec.outputs(cfg), twin, cell, old)
                pipeline.evaluate_model(cfg, cell)
                record = run_record(
                    cfg, cell, wall_seconds=time.perf_counter() - cell_start, command=sweep.command(variant.name, seed)
                )
            else:
                reused = _reuse_stages(cfg, cell, done + others)
                record = pipeline.run(cfg, cell, command=sweep.command(variant.name, seed))
                record["reused_stages"] = list(reused)
                trained.setdefault(key, cell)
            if origin := adopted(cell).get("train"):  # evaluated here, trained in another cell (also on a rerun)
                record["trained_in"] = origin
            record["stage_seconds"] = stage_seconds(cell)  # a rerun's wall is near 0: this is what the cell cost
            record["cell_seconds"] = round(sum(record["stage_seconds"].values()), 1)
            io.save_json(record_path, record)
            done.append(cell)
            results.setdefault(variant.name, {})[seed] = record
    if only is not None:
        return None
    rec = _record(sweep, results, time.perf_counter() - start)
    record_dir.mkdir(parents=True, exist_ok=True)
    io.save_json(record_dir / f"{sweep.name}.json", rec)
    table = markdown(rec)
    io.write_atomic(record_dir / f"{sweep.name}.md", lambda p: p.write_text(table + "\n"))
    return rec


CELL_KEYS = (
    "valid",
    "test",
    "reward",
    "align",
    "cell_seconds",
    "stage_seconds",
    "trained_in",
    "eval",
    "commit",
    "machine",
    "date",
    "train",
)


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def _record(sweep: Sweep, results: dict[str, dict], seconds: float) -> dict:
    variants = []
    for variant in sweep.variants:
        per_seed = results.get(variant.name, {})
        row = {"name": variant.name, "overrides": list(variant.overrides), "published": variant.published}
        row["seeds"] = {str(s): {k: r.get(k) for k in CELL_KEYS} for s, r in per_seed.items()}
        for split in ("valid", "test"):
            row[split] = {m: _stats([r[split][m] for r in per_seed.values()]) for m in METRIC_KEYS}
        row["cell_seconds"] = _stats([r["cell_seconds"] for r in per_seed.values()])
        row["trained_in"] = sorted({_variant_of(r["trained_in"]) for r in per_seed.values() if r.get("trained_in")})
        row.update(_onerec_stats(per_seed))
        ups = [r["eval"].get("test_users_per_second") for r in per_seed.values() if r.get("eval")]
        row["test_users_per_second"] = _stats(ups) if ups and None not in ups else None
        variants.append(row)
    best = max(variants, key=lambda v: v["valid"]["ndcg@10"]["mean"])["name"]
    return {
        "sweep": sweep.name,
        "title": sweep.title,
        "note": sweep.note,
        "file": sweep.source or sweep.path,
        "command": sweep.command(),
        "base": sweep.base,
        "overrides": list(sweep.overrides),
        "seeds": list(sweep.seeds),
        "chosen_on_validation": best,
        "variants": variants,
        "commit": git_commit(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(seconds, 1),
    }


LIST_KEYS = ("hits", "ndcg", "diversity", "coverage", "reward")


def _onerec_stats(per_seed: dict) -> dict:
    """Mean ± std over seeds of the test lists' metrics, the reward model's AUC on them and, with alignment, the
    validation NDCG@10 and reward before and after its last round (cells of runs with data.list_items / align)."""
    cells, out = list(per_seed.values()), {}
    lists = [c.get("eval", {}).get("lists") for c in cells]
    if cells and all(lists):
        out["lists"] = {k: _stats([x[k] for x in lists]) for k in LIST_KEYS if all(k in x for x in lists)}
    if cells and all(c.get("reward", {}).get("test") for c in cells):  # on the held-out lists
        out["reward_auc"] = _stats([c["reward"]["test"]["auc"] for c in cells])
    if cells and all(c.get("align") and c["align"]["rounds"] for c in cells):
        out["align_valid"] = {
            f"{when}_{k}": _stats([(c["align"]["before"] if when == "before" else c["align"]["rounds"][-1]["valid"])[k]
                                   for c in cells])
            for when in ("before", "after") for k in ("ndcg@10", "reward")
        }  # fmt: skip
    return out


def _variant_of(cell: str) -> str:
    """'runs/grid/grid_t8_beam/constrained/seed42' -> 'grid_t8_beam/constrained' (the row that trained it)."""
    return "/".join(Path(cell).parts[-3:-1])


def _trained_on(cell: dict) -> list[str]:
    """Where a cell trained, with the precision: one machine per stretch of epochs (several if resumed)."""
    train = cell.get("train")
    if not train:
        return [cell["machine"]]
    if not train.get("segments"):  # a record from before segments were kept
        return [f"{cell['machine']}, {train['precision']}"]
    return [
        f"{s['machine']}, {s['precision']}" if s["machine"] != "not recorded" else "a machine not recorded"
        for s in train["segments"]
    ]


def markdown(rec: dict) -> str:
    """The sweep as a table: per variant the test mean ± std, the published row, validation N@10, wall."""

    def cell(stats: dict) -> str:
        return f"{stats['mean']:.4f}" + (f" ± {stats['std']:.4f}" if stats["std"] is not None else "")

    lines = [f"### {rec['title']}", ""]
    if rec["note"]:
        lines += [rec["note"], ""]
    cells = [s for v in rec["variants"] for s in v["seeds"].values()]
    made = f"commit {rec['commit']}; {rec['machine']}"
    if all(c.get("commit") for c in cells):  # records since cell records: where each cell ran
        commits = sorted({c["commit"] for c in cells})
        machines = sorted({where for c in cells for where in _trained_on(c)})
        made = f"cells run at {', '.join(commits)} on {'; '.join(machines)}; table written at {rec['commit']}"
        if resumed := sum(len(c.get("train", {}).get("segments", [])) > 1 for c in cells):
            made += f"; {resumed} of {len(cells)} cells resumed from a checkpoint (a resume keeps the precision)"
    lines += [
        f"Base `{rec['base'] or 'defaults'}` {' '.join(rec['overrides'])}; seeds {', '.join(map(str, rec['seeds']))}; "
        f"{made}. Chosen on validation NDCG@10: **{rec['chosen_on_validation']}**.",
        "",
        "| variant | test R@5 / R@10 / N@5 / N@10 (mean ± sample std) | published | valid N@10 | test users/s | "
        "time per cell |",
        "|---|---|---|---|---|---|",
    ]
    for v in rec["variants"]:
        test = " / ".join(cell(v["test"][m]) for m in METRIC_KEYS)
        pub = ", ".join(f"{k} {x:.4f}" for k, x in (v["published"] or {}).items()) or "-"
        ups = f"{v['test_users_per_second']['mean']:.0f}" if v.get("test_users_per_second") else "-"
        wall = f"{v['cell_seconds']['mean'] / 60:.1f} min"
        if v.get("trained_in"):  # the same model as another row: only evaluated here
            wall += f" (model of {', '.join(v['trained_in'])})"
        name = f"{v['name']} (`{' '.join(v['overrides'])}`)"
        lines.append(f"| {name} | {test} | {pub} | {cell(v['valid']['ndcg@10'])} | {ups} | {wall} |")
    if any(v.get("lists") for v in rec["variants"]):
        lines += ["", *_lists_table(rec, cell)]
    return "\n".join(lines)


def _lists_table(rec: dict, cell) -> list[str]:
    """The list protocol's columns (data.list_items): test lists, the reward model, alignment on validation."""
    lines = [
        "| variant | test lists: hits / NDCG / diversity / coverage | test lists: reward | reward AUC (test lists) | "
        "alignment, valid N@10 before -> after | alignment, valid reward before -> after |",
        "|---|---|---|---|---|---|",
    ]
    for v in rec["variants"]:
        lists = v.get("lists") or {}
        quality = " / ".join(cell(lists[k]) for k in LIST_KEYS[:4] if k in lists) or "-"
        a = v.get("align_valid")
        moved = [f"{cell(a[f'before_{k}'])} -> {cell(a[f'after_{k}'])}" if a else "-" for k in ("ndcg@10", "reward")]
        reward = cell(lists["reward"]) if "reward" in lists else "-"
        auc = cell(v["reward_auc"]) if v.get("reward_auc") else "-"
        lines.append(f"| {v['name']} | {quality} | {reward} | {auc} | {moved[0]} | {moved[1]} |")
    return lines


__all__ = ["Sweep", "Variant", "load_sweep", "markdown", "run_sweep", "shipped_sweeps"]
