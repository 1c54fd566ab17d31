"""The five stages of a run, each reading the previous stage's artifacts from the run directory.

    prepare  -> items.parquet, sequences.parquet, data_stats.json
    embed    -> embeddings.npy
    quantize -> quantizer.pt, sids.npy, sid_stats.json
    train    -> model.pt (best on validation), checkpoint.pt, train_log.jsonl, training.png
    evaluate -> metrics.json, predictions.csv

A stage whose artifacts exist is skipped unless `force`. `run` chains them and writes record.json.
Item-ID models (`models.KIND[name] == "id"`: SASRec, HSTU) need no SIDs: `run` skips embed and
quantize for them, and `_parts` (the one place that branches on the model kind) swaps the training
examples and the recommender.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import torch

from sidrec import io
from sidrec.config import Config
from sidrec.data.batches import IDExamples, SIDExamples
from sidrec.data.schema import ITEM, TEXT, USER
from sidrec.data.sources import load_dataset
from sidrec.data.split import eval_examples, prepare, train_sequences, training_examples
from sidrec.embed import build_embedder
from sidrec.metrics import evaluate
from sidrec.models import build_model, load_model, model_kind
from sidrec.quantize import build_quantizer
from sidrec.quantize.sids import deduplicate, sid_stats
from sidrec.recommender import ItemRecommender, SIDRecommender, item_token_table
from sidrec.report import git_commit, plot_training, run_record
from sidrec.report_html import write_report
from sidrec.train import epoch_rng, fit, use_bf16

logger = logging.getLogger(__name__)
STAGES = ("prepare", "embed", "quantize", "train", "evaluate")


def _stage(name: str, outputs: tuple[str, ...]) -> Callable:
    """Skip the stage when its outputs exist (unless force); record its wall time in timings.json."""

    def wrap(fn: Callable) -> Callable:
        def run_stage(cfg: Config, run_dir: str | Path, force: bool = False):
            run_dir = Path(run_dir)
            if not force and all((run_dir / o).exists() for o in outputs):
                logger.info("%s: artifacts exist in %s, skipped (--force to redo)", name, run_dir)
                return None
            run_dir.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(cfg.seed)
            if cfg.train.threads:
                torch.set_num_threads(cfg.train.threads)
            start = time.perf_counter()
            out = fn(cfg, run_dir, force)
            timings = io.load_json(run_dir / io.TIMINGS) if (run_dir / io.TIMINGS).exists() else {}
            timings[name] = round(time.perf_counter() - start, 2)
            io.save_json(run_dir / io.TIMINGS, timings)
            return out

        run_stage.__name__, run_stage.__doc__ = fn.__name__, fn.__doc__
        return run_stage

    return wrap


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


@_stage("prepare", (io.ITEMS, io.SEQUENCES))
def prepare_data(cfg: Config, run_dir: Path, force: bool = False) -> dict:
    """Load the dataset, build chronological sequences, write items / sequences tables."""
    prepared = prepare(load_dataset(cfg.data), cfg.data, seed=cfg.seed)
    io.write_atomic(run_dir / io.ITEMS, prepared.items.write_parquet)
    io.write_atomic(run_dir / io.SEQUENCES, prepared.sequences.write_parquet)
    io.save_json(run_dir / io.DATA_STATS, prepared.stats)
    return prepared.stats


@_stage("embed", (io.EMBEDDINGS,))
def embed_items(cfg: Config, run_dir: Path, force: bool = False) -> np.ndarray:
    """Encode every item's text with the configured embedder."""
    texts = pl.read_parquet(run_dir / io.ITEMS)[TEXT].to_list()
    vectors = build_embedder(cfg.embed).encode(texts)
    io.save_npy(run_dir / io.EMBEDDINGS, vectors)
    return vectors


@_stage("quantize", (io.SIDS, io.QUANTIZER, io.SID_STATS))
def build_sids(cfg: Config, run_dir: Path, force: bool = False) -> dict:
    """Fit the quantizer, encode every item, de-duplicate, write SIDs and their statistics."""
    x = torch.from_numpy(np.load(run_dir / io.EMBEDDINGS))
    quantizer = build_quantizer(cfg.quantize, x.shape[1], cfg.seed).fit(x)
    codes = quantizer.encode(x).cpu().numpy()
    sids = deduplicate(codes, cfg.quantize.dedup, cfg.quantize.codebook_size, cfg.seed)
    stats = sid_stats(codes, sids, cfg.quantize.codebook_size)
    err = float(((quantizer.decode(torch.from_numpy(codes)) - x) ** 2).sum(1).mean())
    stats["reconstruction_mse"] = round(err, 6)
    io.write_atomic(
        run_dir / io.QUANTIZER,
        lambda p: torch.save({"name": cfg.quantize.name, "state_dict": quantizer.state_dict()}, p),
    )
    io.save_npy(run_dir / io.SIDS, sids.astype(np.int64))
    io.save_json(run_dir / io.SID_STATS, stats)
    return stats


def level_sizes(sids: np.ndarray, codebook_size: int, levels: int) -> tuple[int, ...]:
    """K per SID level: the codebook size, and for a dedup digit its largest value + 1."""
    sizes = [codebook_size] * levels
    sizes += [int(sids[:, j].max()) + 1 for j in range(levels, sids.shape[1])]
    return tuple(sizes)


def _popularity(sequences: pl.DataFrame, n_items: int) -> np.ndarray:
    counts = np.zeros(n_items + 1)
    for seq in train_sequences(sequences):
        np.add.at(counts, seq, 1)
    return counts


class _Parts(NamedTuple):
    """What differs between SID models and item-ID models, as lazy builders over the run directory."""

    needs_sids: bool  # embed + quantize run before training
    build: Callable[[], torch.nn.Module]  # a fresh model
    examples: Callable[[torch.nn.Module, pl.DataFrame], object]  # (model, sequences) -> .batches / .n_batches
    recommender: Callable[..., object]  # (model, sequences, beam_width=None) -> a Recommender


def _parts(cfg: Config, run_dir: Path, device: torch.device) -> _Parts:
    """The one place that branches on the model kind (ValueError for an unknown model.name)."""
    hist, bf16 = cfg.data.max_history, use_bf16(cfg.train.precision, device)
    if model_kind(cfg.model.name) == "id":
        return _Parts(
            needs_sids=False,
            build=lambda: build_model(cfg.model, max_history=hist, n_items=pl.read_parquet(run_dir / io.ITEMS).height),
            examples=lambda model, sequences: IDExamples(train_sequences(sequences), max_history=hist),
            recommender=lambda model, sequences, beam_width=None: ItemRecommender(model, max_history=hist, bf16=bf16),
        )

    @cache
    def sids() -> np.ndarray:
        return np.load(run_dir / io.SIDS)

    def examples(model, sequences: pl.DataFrame) -> SIDExamples:
        seqs = train_sequences(sequences)
        users, positions = training_examples(seqs, hist, cfg.train.sliding_window)
        tokens = item_token_table(sids(), model.shape.offsets)
        return SIDExamples(seqs, users, positions, sids(), tokens, max_history=hist, user_tokens=cfg.model.user_tokens)

    def build() -> torch.nn.Module:
        sizes = level_sizes(sids(), cfg.quantize.codebook_size, cfg.quantize.levels)
        return build_model(cfg.model, level_sizes=sizes, max_history=hist)

    def recommender(model, sequences: pl.DataFrame, beam_width: int | None = None) -> SIDRecommender:
        pop = _popularity(sequences, sids().shape[0])
        beam, constrained = beam_width or cfg.eval.beam_width, cfg.eval.constrained
        return SIDRecommender(model, sids(), beam_width=beam, constrained=constrained, popularity=pop, bf16=bf16)

    return _Parts(True, build, examples, recommender)


@_stage("train", (io.MODEL, io.TRAIN_SUMMARY))
def train_model(cfg: Config, run_dir: Path, force: bool = False) -> dict:
    """Train the model on its training examples; keep the best-validation weights."""
    if force:
        for name in (io.CHECKPOINT, io.TRAIN_LOG, io.MODEL, io.TRAIN_SUMMARY):
            (run_dir / name).unlink(missing_ok=True)
    device = _device(cfg.train.device)
    parts = _parts(cfg, run_dir, device)
    sequences = pl.read_parquet(run_dir / io.SEQUENCES)
    model = parts.build().to(device)
    examples = parts.examples(model, sequences)
    valid = eval_examples(sequences, "valid", cfg.data.max_history)
    if 0 < cfg.train.eval_users < len(valid.targets):
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(valid.targets), cfg.train.eval_users, replace=False))
        valid = type(valid)(valid.user_idx[keep], [valid.histories[i] for i in keep], valid.targets[keep])

    def validate(m) -> dict[str, float]:
        rec = parts.recommender(m, sequences, beam_width=cfg.train.valid_beam_width or None)
        return evaluate(rec, valid, ks=cfg.eval.ks, batch_size=cfg.eval.batch_size, desc="validate").metrics

    logger.info(
        "training %s: %d params, %d examples/epoch",
        cfg.model.name,
        sum(p.numel() for p in model.parameters()),
        len(examples),
    )
    result = fit(
        model,
        batches=lambda epoch: examples.batches(cfg.train.batch_size, epoch_rng(cfg.seed, epoch), device),
        batches_per_epoch=examples.n_batches(cfg.train.batch_size),
        validate=validate,
        cfg=cfg.train,
        run_dir=run_dir,
        meta={"model": cfg.model.name, "shape": model.config_dict()},
        seed=cfg.seed,
    )
    plot_training(result.history, run_dir / io.TRAIN_PLOT)
    summary = {
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
        "valid_subset": result.best_valid,
        "samples_per_second": round(result.samples_per_second, 1),
    }
    io.save_json(run_dir / io.TRAIN_SUMMARY, summary)
    return summary


def build_recommender(cfg: Config, run_dir: str | Path, device: str | None = None) -> tuple[object, dict]:
    """The trained model of `run_dir` as a Recommender (evaluation and serving), with the model's metadata.

    `device` overrides `cfg.train.device` ("auto", "cpu", "cuda", ...).
    """
    run_dir = Path(run_dir)
    dev = _device(device or cfg.train.device)
    model, meta = load_model(str(run_dir / io.MODEL), dev)
    rec = _parts(cfg, run_dir, dev).recommender(model, pl.read_parquet(run_dir / io.SEQUENCES))
    return rec, meta


@_stage("evaluate", (io.METRICS, io.PREDICTIONS))
def evaluate_model(cfg: Config, run_dir: Path, force: bool = False) -> dict:
    """Score all users on validation and test; write metrics.json and predictions.csv (test)."""
    rec, meta = build_recommender(cfg, run_dir)
    sequences = pl.read_parquet(run_dir / io.SEQUENCES)
    items = pl.read_parquet(run_dir / io.ITEMS)
    out: dict = {"best_epoch": meta.get("epoch")}
    if _parts(cfg, run_dir, _device(cfg.train.device)).needs_sids:
        out.update(beam_width=cfg.eval.beam_width, constrained=cfg.eval.constrained)
    for split in ("valid", "test"):
        examples = eval_examples(sequences, split, cfg.data.max_history)
        start = time.perf_counter()
        res = evaluate(rec, examples, ks=cfg.eval.ks, batch_size=cfg.eval.batch_size, top_n=cfg.eval.top_n, desc=split)
        seconds = time.perf_counter() - start
        out[split] = {k: round(v, 6) for k, v in res.metrics.items()}
        out[f"{split}_users"] = len(examples.targets)
        out[f"{split}_users_per_second"] = round(len(examples.targets) / seconds, 1)
        out[f"{split}_invalid_beam_share"] = round(res.invalid_beam_share, 6)
        out[f"{split}_popularity_filled"] = res.filled
        if split == "test":
            _write_predictions(run_dir / io.PREDICTIONS, sequences, items, res.top_items)
    io.save_json(run_dir / io.METRICS, out)
    return out


def _write_predictions(path: Path, sequences: pl.DataFrame, items: pl.DataFrame, top: np.ndarray) -> None:
    item_ids = np.asarray(items.sort("item_idx")[ITEM].to_list(), dtype=object)
    n_users, n = top.shape
    table = pl.DataFrame(
        {
            USER: np.repeat(np.asarray(sequences[USER].to_list(), dtype=object), n).tolist(),
            "rank": np.tile(np.arange(1, n + 1), n_users),
            ITEM: item_ids[top.reshape(-1) - 1].tolist(),
        }
    )
    io.write_atomic(path, table.write_csv)


def run(cfg: Config, run_dir: str | Path, force: bool = False, command: str = "") -> dict:
    """All five stages in order (three for item-ID models); returns (and writes) the run record and report.html."""
    run_dir = Path(run_dir)
    io.save_config(run_dir, cfg)
    start, commit = time.perf_counter(), git_commit()  # the code that runs, not what HEAD is at the end
    parts = _parts(cfg, run_dir, _device(cfg.train.device))  # fails on an unknown model.name before any stage
    prepare_data(cfg, run_dir, force)
    if parts.needs_sids:  # item-ID models need no embeddings and no SIDs
        embed_items(cfg, run_dir, force)
        build_sids(cfg, run_dir, force)
    train_model(cfg, run_dir, force)
    evaluate_model(cfg, run_dir, force)
    record = run_record(cfg, run_dir, wall_seconds=time.perf_counter() - start, command=command, commit=commit)
    io.save_json(run_dir / "record.json", record)
    write_report(run_dir)
    return record


__all__ = [
    "STAGES",
    "prepare_data",
    "embed_items",
    "build_sids",
    "train_model",
    "evaluate_model",
    "build_recommender",
    "run",
]
