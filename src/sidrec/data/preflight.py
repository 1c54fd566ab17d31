"""Pre-flight: every check that can fail on the config or the data, run before the first file is written.

A run that stops here leaves nothing on disk (not even config.yaml). Where a safe choice exists (the
codebook size of a small catalog) it is taken and logged instead of failing. The prepared data is
kept for the prepare stage (`take_prepared`), so the dataset is read once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

from sidrec import io
from sidrec.config import Config
from sidrec.data.encoding import MODES
from sidrec.data.schema import SEQ
from sidrec.data.sources import load_dataset
from sidrec.data.split import Prepared, prepare

logger = logging.getLogger(__name__)
STAGES = ("prepare", "embed", "quantize", "train", "evaluate")
MAX_SHARE_WITHOUT_TEXT = 0.5  # above this, SIDs would be learned mostly from ids spelled as text
_prepared: dict[tuple, Prepared] = {}  # one entry: the data checked by the last preflight, for prepare_data


def take_prepared(cfg: Config) -> Prepared:
    """The data `preflight` prepared for this config (once), or freshly prepared."""
    key = (cfg.data, cfg.seed)
    cached = _prepared.pop(key, None)
    _prepared.clear()
    return cached if cached is not None else prepare(load_dataset(cfg.data), cfg.data, seed=cfg.seed)


def small_codebook(n_items: int) -> int:
    """A codebook size for a catalog smaller than the configured one: the largest power of 2 <= items / 4."""
    k = 2
    while k * 2 <= n_items / 4:
        k *= 2
    return k


def _config_checks(cfg: Config, names: Mapping[str, Iterable[str]]) -> None:
    d, q, e = cfg.data, cfg.quantize, cfg.eval
    problems = []
    for key, valid in names.items():
        section, _, field = key.partition(".")
        value = getattr(getattr(cfg, section), field)
        if value not in set(valid):
            problems.append(f"{key}={value!r} is unknown; choose one of {', '.join(valid)}")
    if d.encoding_errors not in MODES:
        problems.append(f"data.encoding_errors={d.encoding_errors!r} is unknown; choose one of {', '.join(MODES)}")
    if d.min_interactions < 3:
        problems.append(
            f"data.min_interactions={d.min_interactions}: leave-one-out needs >= 3 interactions per user "
            "(a training, a validation and a test item); set it to 3 or more"
        )
    if d.max_history < 1:
        problems.append(f"data.max_history={d.max_history}: a history needs >= 1 item; set it to 1 or more")
    if q.levels < 1:
        problems.append(f"quantize.levels={q.levels}: a Semantic ID needs >= 1 level; TIGER uses 3")
    if q.codebook_size < 2:
        problems.append(f"quantize.codebook_size={q.codebook_size}: a codebook needs >= 2 codes; TIGER uses 256")
    if not e.ks or min(e.ks) < 1:
        problems.append(f"eval.ks={list(e.ks)}: each cut-off must be >= 1, e.g. eval.ks=[5,10]")
    elif e.beam_width < max(e.ks):
        problems.append(f"eval.beam_width={e.beam_width} is below max(eval.ks)={max(e.ks)}; raise it to >= {max(e.ks)}")
    if cfg.train.batch_size < 1 or e.batch_size < 1:
        problems.append("train.batch_size and eval.batch_size must be >= 1")
    if problems:
        raise ValueError("the config cannot run: " + "; ".join(problems))


def _data_checks(cfg: Config, prepared: Prepared, needs_sids: bool) -> None:
    stats, text = prepared.stats, prepared.stats["text"]
    how = f"template {text['template']!r}" if text["template"] else "the items have no text field"
    if needs_sids and text["share_without_text"] > MAX_SHARE_WITHOUT_TEXT and not cfg.data.allow_missing_text:
        raise ValueError(
            f"{stats['source']}: {text['items_without_text']} of {stats['items']} items "
            f"({100 * text['share_without_text']:.0f}%) have no text ({how}), so their "
            "Semantic IDs would be learned from their ids. Give the items text fields (data.items_path= for the "
            "table format; data.text_template= to pick fields), or set data.allow_missing_text=true to run anyway"
        )
    train_lengths = prepared.sequences[SEQ].list.len() - 2
    if not bool((train_lengths >= 2).any()):
        raise ValueError(
            f"{stats['source']}: no training example: every user has fewer than 4 interactions, so no training "
            "history has a next item to predict (the last two are the validation and test targets). Use more data"
        )


def named(cfg: Config) -> Config:
    """A run on a data.path keeps the default data.name only in name: it is named after its folder (the record
    names the data used, and a sweep's cells compare their settings with it)."""
    if cfg.data.path and cfg.data.name == "beauty":
        return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, name=Path(cfg.data.path).name))
    return cfg


def preflight(
    cfg: Config,
    run_dir: Path,
    *,
    stages: Iterable[str] = STAGES,
    force: bool = False,
    needs_sids: bool = True,
    reads_text: bool = False,
    names: Mapping[str, Iterable[str]] | None = None,
    needed: Mapping[str, str] | None = None,
) -> Config:
    """Check the config and (when prepare will run) the data; return the config to run.

    Args:
        cfg: the resolved config.
        run_dir: the run directory; its existing artifacts tell which stages will run.
        stages: the stages about to run.
        force: the stages will redo existing artifacts.
        needs_sids: the model trains on Semantic IDs (embed and quantize run).
        reads_text: an item-ID model that reads the item text embeddings (embed runs, quantize does not).
        names: config key -> valid values (registries: quantize.name, embed.name, ...).
        needed: run-directory files the stages read that an earlier stage, not about to run, makes -> that stage.

    Raises:
        ValueError: a check failed; the message names the key or file and the fix.
    """
    stages = tuple(stages)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {run_dir} is a file, not a run directory: name a folder (created if missing)")
    missing = {f: stage for f, stage in (needed or {}).items() if not (run_dir / f).exists()}
    if missing:
        (name, stage), first = next(iter(missing.items())), stages[0]
        raise ValueError(
            f"{run_dir} has no {name}, which `sidrec {first}` reads: run `sidrec {stage}` (and the stages before it) "
            f"on this directory first, or the whole pipeline with `sidrec run ... --out {run_dir}`"
        )
    _config_checks(cfg, names or {})
    if not needs_sids and set(stages) <= {"embed", "quantize"} and not (reads_text and set(stages) == {"embed"}):
        raise ValueError(
            f"model.name={cfg.model.name} is an item-ID model: it uses no Semantic IDs (and embeddings only with "
            f"model.{cfg.model.name}.text_items=true). Run `sidrec train` after `sidrec prepare`, or set "
            "model.name=tiger"
        )
    cfg = named(cfg)
    n_items = 0
    if "prepare" in stages and (force or not all((run_dir / f).exists() for f in (io.ITEMS, io.SEQUENCES))):
        prepared = prepare(load_dataset(cfg.data), cfg.data, seed=cfg.seed)
        _data_checks(cfg, prepared, needs_sids)
        _prepared.clear()
        _prepared[(cfg.data, cfg.seed)] = prepared
        n_items = prepared.items.height
    elif (run_dir / io.ITEMS).exists():
        n_items = pl.scan_parquet(run_dir / io.ITEMS).select(pl.len()).collect().item()
    # Chosen whenever the catalog size is known, not only when quantize runs: a rerun of the same command
    # must resolve to the same config, or the quantize stage's fingerprint would no longer match.
    if needs_sids and 0 < n_items < cfg.quantize.codebook_size:
        if n_items < 2:
            raise ValueError(f"{n_items} item: Semantic IDs need >= 2 items")
        k = small_codebook(n_items)
        logger.warning(
            "quantize.codebook_size=%d is more than this catalog of %d items allows (k-means needs >= one item per "
            "code): using %d (a power of 2 <= items / 4). Set quantize.codebook_size to choose",
            cfg.quantize.codebook_size,
            n_items,
            k,
        )
        cfg = dataclasses.replace(cfg, quantize=dataclasses.replace(cfg.quantize, codebook_size=k))
    return cfg
