"""The stages of a run, each reading the previous stage's artifacts from the run directory.

    prepare  -> items.parquet, sequences.parquet, data_stats.json
    embed    -> embeddings.npy
    quantize -> quantizer.pt, sids.npy, sid_stats.json
    train    -> model.pt (best on validation), checkpoint.pt, train_log.jsonl, training.png
    reward   -> reward.pt, reward.json (with reward.enabled or align.rounds: a reward model of sessions, `sidrec.align`)
    align    -> aligned.pt, align.json (with align.rounds: preference alignment of the generator, OneRec's IPA)
    evaluate -> metrics.json, predictions.csv (with data.list_items: the list metrics too)
    rank     -> ranker.pt, ranking.json (with rank.enabled: a generative ranker behind the model, `sidrec.ranking`)

A stage whose artifacts exist and match its fingerprint (the config keys and input files it read,
`sidrec.fingerprint`) is skipped; one that does not match stops the command unless `force`.
`run` checks every stage first, chains them and writes record.json. Item-ID models need no SIDs: `run`
skips embed and quantize for them; `parts.parts_for` (the one place that branches on the model kind)
swaps the model, the training examples and the recommender.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from sidrec import catalog, distributed, fingerprint, io
from sidrec.align.parts import check_align, list_measures, run_alignment, train_reward
from sidrec.baselines import LABELS, cold_breakdown, item_counts, repeat_breakdown, rule_scores, trivial_rules
from sidrec.config import Config
from sidrec.data.preflight import preflight, take_prepared
from sidrec.data.schema import TEXT
from sidrec.data.sources import source_files
from sidrec.data.split import eval_examples, train_sequences
from sidrec.embed import EMBEDDERS, build_embedder, embed_to_file
from sidrec.metrics import evaluate, explore_temperature_on_valid, write_predictions
from sidrec.models import entry, load_model, needs_sids
from sidrec.parts import parts_for, reads_text, recommender_settings
from sidrec.parts import stages as run_stages
from sidrec.quantize import QUANTIZERS, build_quantizer, quantizer_settings
from sidrec.quantize.collab import item_collab, with_collab
from sidrec.quantize.sids import DEDUP_METHODS, EXTRA_DIGIT, deduplicate, sid_stats
from sidrec.quantize.stream import encode_chunked, fit_points, reconstruction_mse
from sidrec.ranking.parts import check_rank, load_ranker, train_and_measure
from sidrec.ranking.two_stage import TwoStageRecommender
from sidrec.report import git_commit, plot_training, run_record
from sidrec.report_html import write_report
from sidrec.stages import SPECS, plan, producers, stage, stage_status
from sidrec.train import epoch_rng, fit, use_bf16

logger = logging.getLogger(__name__)
STAGES = ("prepare", "embed", "quantize", "train", "reward", "align", "evaluate", "rank")


def _device(name: str) -> torch.device:
    dev = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))
    if dev.type == "cuda" and dev.index is None and distributed.active():  # torchrun: one GPU per local rank
        dev = torch.device("cuda", distributed.local_rank())
    return dev


def _sid(cfg: Config) -> bool:
    return needs_sids(cfg.model.name)


def _text(cfg: Config) -> tuple[str, ...]:
    return (io.EMBEDDINGS,) if reads_text(cfg) else ()


def _train_keys(cfg: Config) -> tuple[str, ...]:
    # The model's own settings (its registry entry says which), then per-epoch validation's: eval.ks and what
    # its recommender reads (beam search: eval.constrained, and eval.beam_width when valid_beam_width is 0).
    model = tuple(f"model.{k}" for k in entry(cfg.model.name).settings(cfg.model))
    keys = model + ("train", "seed", "data.max_history", "eval.ks", *recommender_settings(cfg, per_epoch=True))
    return keys + (("quantize.levels", "quantize.codebook_size") if _sid(cfg) else ())


def _eval_keys(cfg: Config) -> tuple[str, ...]:
    # precision: bf16 or fp32 decoding; seed: the draw among items that share a SID (quantize.dedup=none)
    what = ("eval.ks", "eval.splits", "eval.top_n", "eval.explore_temperature", *recommender_settings(cfg))
    return (*what, "data.max_history", "train.precision", "seed")


@stage(
    "prepare",
    keys=lambda cfg: ("data", "seed") if cfg.data.max_users or cfg.data.cold_items else ("data",),  # seed: draws
    inputs=lambda cfg: tuple(fingerprint.SOURCE + name for name in source_files(cfg.data)),  # the data files
    outputs=lambda cfg: (io.ITEMS, io.SEQUENCES),
)
def prepare_data(cfg: Config, run_dir: Path, fresh: bool = False) -> dict:
    """Load the dataset, build chronological sequences, write items / sequences tables."""
    prepared = take_prepared(cfg)  # read and checked by `check` when it ran first
    io.write_atomic(run_dir / io.ITEMS, prepared.items.write_parquet)
    io.write_atomic(run_dir / io.SEQUENCES, prepared.sequences.write_parquet)
    io.save_json(run_dir / io.DATA_STATS, prepared.stats)
    return prepared.stats


@stage("embed", keys=lambda cfg: ("embed",), inputs=lambda cfg: (io.ITEMS,), outputs=lambda cfg: (io.EMBEDDINGS,))
def embed_items(cfg: Config, run_dir: Path, fresh: bool = False) -> np.ndarray:
    """Encode every item's text with the configured embedder, in chunks, into a memory-mapped embeddings.npy."""
    texts = pl.read_parquet(run_dir / io.ITEMS)[TEXT].to_list()
    return embed_to_file(build_embedder(cfg.embed), texts, run_dir / io.EMBEDDINGS, chunk_size=cfg.embed.chunk_size)


def _quantize_keys(cfg: Config) -> tuple[str, ...]:
    # The quantizer's own settings and the common ones (the collaborative part's only when collab_dim > 0).
    return tuple(f"quantize.{k}" for k in quantizer_settings(cfg.quantize)) + ("seed",)


@stage(
    "quantize",
    keys=_quantize_keys,
    inputs=lambda cfg: (io.EMBEDDINGS, io.SEQUENCES) if cfg.quantize.collab_dim else (io.EMBEDDINGS,),
    outputs=lambda cfg: (io.SIDS, io.QUANTIZER, io.SID_STATS),
)
def build_sids(cfg: Config, run_dir: Path, fresh: bool = False) -> dict:
    """Fit the quantizer (on a sample of a large catalog), encode every item in chunks, de-duplicate, write SIDs."""
    x = np.load(run_dir / io.EMBEDDINGS, mmap_mode="r")  # (N, D), paged in chunk by chunk
    q = cfg.quantize
    if q.collab_dim:  # text + collaborative vectors, in memory (N x (D + collab_dim) float32)
        seqs = train_sequences(pl.read_parquet(run_dir / io.SEQUENCES))
        collab = item_collab(seqs, x, q.collab_dim, q.collab_window, cfg.seed, q.collab_cold)
        x = with_collab(x, collab, q.collab_weight)
    quantizer = build_quantizer(cfg.quantize, x.shape[1], cfg.seed)
    quantizer.fit(fit_points(x, cfg.quantize.fit_sample, cfg.seed))
    codes = encode_chunked(quantizer, x)
    sids = deduplicate(codes, cfg.quantize.dedup, cfg.quantize.codebook_size, cfg.seed)
    stats = sid_stats(codes, sids, cfg.quantize.codebook_size)
    stats["reconstruction_mse"] = round(reconstruction_mse(quantizer, x, codes), 6)
    if 0 < cfg.quantize.fit_sample < x.shape[0]:
        stats["fit_sample"] = cfg.quantize.fit_sample
    io.write_atomic(
        run_dir / io.QUANTIZER,
        lambda p: torch.save({"name": cfg.quantize.name, "state_dict": quantizer.state_dict()}, p),
    )
    io.save_npy(run_dir / io.SIDS, sids.astype(np.int64))
    io.save_json(run_dir / io.SID_STATS, stats)
    return stats


@stage(
    "train",
    keys=_train_keys,
    inputs=lambda cfg: (io.SEQUENCES, io.SIDS) if _sid(cfg) else (io.SEQUENCES, io.ITEMS) + _text(cfg),
    outputs=lambda cfg: (io.MODEL, io.TRAIN_SUMMARY),
)
def train_model(cfg: Config, run_dir: Path, fresh: bool = False) -> dict:
    """Train the model on its training examples; keep the best-validation weights."""
    main = distributed.is_main()
    if fresh and main:
        for name in (io.CHECKPOINT, io.TRAIN_LOG, io.MODEL, io.TRAIN_SUMMARY):
            (run_dir / name).unlink(missing_ok=True)
    distributed.barrier()  # every rank sees the same checkpoint (or none) before `fit` reads it
    rank, world = (distributed.rank(), distributed.world_size()) if distributed.active() else (0, 1)
    device = _device(cfg.train.device)
    parts = parts_for(cfg, run_dir, device)
    sequences = pl.read_parquet(run_dir / io.SEQUENCES)
    model = parts.build().to(device)
    examples = parts.examples(model, sequences)
    valid = eval_examples(sequences, "valid", cfg.data.max_history)
    if 0 < cfg.train.eval_users < len(valid.targets):
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(valid.targets), cfg.train.eval_users, replace=False))
        valid = valid.subset(keep)

    def validate(m) -> dict[str, float]:
        rec = parts.recommender(m, sequences, beam_width=cfg.train.valid_beam_width or None, per_epoch=True)
        return evaluate(rec, valid, ks=cfg.eval.ks, batch_size=cfg.eval.batch_size, desc="validate").metrics

    logger.info(
        "training %s: %d params, %d examples/epoch",
        cfg.model.name,
        sum(p.numel() for p in model.parameters()),
        len(examples),
    )
    result = fit(
        model,
        batches=lambda epoch: examples.batches(
            cfg.train.batch_size, epoch_rng(cfg.seed, epoch), device, rank=rank, world=world
        ),
        batches_per_epoch=examples.n_batches(cfg.train.batch_size),
        validate=validate,
        cfg=cfg.train,
        run_dir=run_dir,
        meta={"model": cfg.model.name, "shape": model.config_dict()},
        seed=cfg.seed,
    )
    summary = {
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
        "epochs_planned": cfg.train.epochs,
        "steps": result.steps,
        "time_capped": result.time_capped,
        "train_seconds": round(result.seconds, 1),
        "valid_subset": result.best_valid,
        "samples_per_second": round(result.samples_per_second, 1),
        "precision": result.precision,  # what `train.precision=auto` resolved to on this machine
        "segments": result.segments,  # more than one: resumed from a checkpoint (each names its machine)
        "earlier_seconds": result.earlier_seconds,  # trained before this command resumed the run
    }
    if main:
        plot_training(result.history, run_dir / io.TRAIN_PLOT)
        io.save_json(run_dir / io.TRAIN_SUMMARY, summary)
    return summary


def build_recommender(
    cfg: Config, run_dir: str | Path, device: str | None = None, allow_unfinished: bool = False, ranked: bool = True
) -> tuple[object, dict]:
    """The trained model of `run_dir` as a Recommender (evaluation and serving), with the model's metadata.

    `device` overrides `cfg.train.device` ("auto", "cpu", "cuda", ...). A model with a repeat head gets its explore
    temperature: eval.explore_temperature's one value, or the one `evaluate` chose on validation (metrics.json),
    so serving ranks as the test did. A run whose training did not finish (killed: no train_summary.json) is
    refused unless `allow_unfinished`. A run with a trained ranker (`rank` stage) gives the two stages unless not
    `ranked`.
    """
    run_dir = Path(run_dir)
    if not allow_unfinished and not (run_dir / io.TRAIN_SUMMARY).exists():
        raise ValueError(
            f"training in {run_dir} did not finish (no {io.TRAIN_SUMMARY}: {io.MODEL} is its best epoch so far). "
            f"Resume it with `sidrec train --out {run_dir}`, or use it as it is with --allow-unfinished "
            "(Python: allow_unfinished=True)"
        )
    dev = _device(device or cfg.train.device)
    model, meta = load_model(str(run_dir / (io.ALIGNED if cfg.align.rounds else io.MODEL)), dev)
    if getattr(model, "repeat_head", None) is not None:
        temps, metrics = cfg.eval.explore_temperature, run_dir / io.METRICS
        chosen = io.load_json(metrics).get("explore_temperature") if metrics.exists() else None
        t = temps[0] if len(temps) == 1 else chosen["chosen"] if chosen else 1.0
        model.repeat_head.temperature.fill_(float(t))
    rec = parts_for(cfg, run_dir, dev).recommender(model, pl.read_parquet(run_dir / io.SEQUENCES))
    if ranked and (run_dir / io.RANKING).exists():
        rank = cfg.rank
        weight = io.load_json(run_dir / io.RANKING)["lists"]["weight"]
        ranker = load_ranker(run_dir / io.RANKER, dev)
        bf16 = use_bf16(cfg.train.precision, dev)
        rec = TwoStageRecommender(rec, ranker, candidates=rank.candidates, weight=weight, bf16=bf16)
    return rec, meta


@stage(
    "evaluate",
    keys=_eval_keys,
    inputs=lambda cfg: (
        (io.MODEL, io.SEQUENCES, io.ITEMS)
        + ((io.SIDS, catalog.ADDED_SIDS) if _sid(cfg) else ())
        + _text(cfg)
        + _aligned(cfg)
    ),  # embeddings: the text_knn rule, eval.cold_candidates
    outputs=lambda cfg: (io.METRICS,) + ((io.PREDICTIONS,) if "test" in cfg.eval.splits else ()),
)
def evaluate_model(cfg: Config, run_dir: Path, fresh: bool = False, allow_unfinished: bool = False) -> dict:
    """Score all users on validation and test; write metrics.json and predictions.csv (test)."""
    rec, meta = build_recommender(cfg, run_dir, allow_unfinished=allow_unfinished, ranked=False)  # the retriever
    sequences = pl.read_parquet(run_dir / io.SEQUENCES)
    items = pl.read_parquet(run_dir / io.ITEMS)
    splits = check_splits(cfg.eval.splits)
    out: dict = {"best_epoch": meta.get("epoch"), "splits": list(splits)}
    if parts_for(cfg, run_dir, _device(cfg.train.device)).needs_sids:
        out.update(beam_width=cfg.eval.beam_width, constrained=cfg.eval.constrained)
    if len(cfg.eval.explore_temperature) > 1:
        out["explore_temperature"] = explore_temperature_on_valid(cfg, rec, sequences, splits)
    counts = item_counts(train_sequences(sequences), items.height)
    vectors = np.load(run_dir / io.EMBEDDINGS, mmap_mode="r") if (run_dir / io.EMBEDDINGS).exists() else None
    rules = trivial_rules(counts, vectors)  # with the item text embedded, the content-only rule too
    out["baselines"] = {name: {"label": LABELS[name]} for name in rules}
    for split in splits:
        examples = eval_examples(sequences, split, cfg.data.max_history)
        start = time.perf_counter()
        res = evaluate(rec, examples, ks=cfg.eval.ks, batch_size=cfg.eval.batch_size, top_n=cfg.eval.top_n, desc=split)
        seconds = time.perf_counter() - start
        out[split] = {k: round(v, 6) for k, v in res.metrics.items()}
        out[f"{split}_users"] = len(examples.targets)
        out[f"{split}_users_per_second"] = round(len(examples.targets) / seconds, 1)
        out[f"{split}_invalid_beam_share"] = round(res.invalid_beam_share, 6)
        out[f"{split}_popularity_filled"] = res.filled
        out[f"{split}_repeats"] = repeat_breakdown(res.top_items, examples.histories, examples.targets)
        out[f"{split}_cold"] = cold_breakdown(res.top_items, examples.targets, counts, cfg.eval.ks)
        for name, rule in rules.items():  # the trivial rows, on the same examples
            out["baselines"][name][split] = rule_scores(name, rule, examples, counts, cfg.eval.ks, cfg.eval.top_n)
        if split == "test":
            write_predictions(run_dir / io.PREDICTIONS, sequences, items, res.top_items)
    if cfg.data.list_items and "test" in splits:  # whole lists against the held-out ones (and their reward)
        out["lists"] = list_measures(cfg, run_dir, rec, sequences, _device(cfg.train.device))
    io.save_json(run_dir / io.METRICS, out)
    return out


def _aligned(cfg: Config) -> tuple[str, ...]:
    reward = (io.REWARD,) if cfg.data.list_items and (cfg.reward.enabled or cfg.align.rounds) else ()
    return ((io.ALIGNED,) if cfg.align.rounds else ()) + reward  # the model scored; the reward of its lists


_TRAINER = ("train.precision", "train.warmup_steps", "train.min_lr_ratio", "train.grad_clip", "train.weight_decay")


@stage(
    "reward",
    keys=lambda cfg: ("reward", "seed", *_TRAINER),
    inputs=lambda cfg: (io.SEQUENCES, io.ITEMS) + _text(cfg),
    outputs=lambda cfg: (io.REWARD, io.REWARD_JSON),
)
def reward_model(cfg: Config, run_dir: Path, fresh: bool = False) -> dict:
    """Train the reward model of sessions on the events' actions (`sidrec.align.reward`); reward.json its AUC."""
    if fresh:
        for name in (io.REWARD_CHECKPOINT, io.REWARD_LOG, io.REWARD, io.REWARD_JSON):
            (run_dir / name).unlink(missing_ok=True)
    out = train_reward(cfg, run_dir, _device(cfg.train.device))
    io.save_json(run_dir / io.REWARD_JSON, out)
    return out


@stage(
    "align",
    keys=lambda cfg: (
        "align",
        "seed",
        "data.max_history",
        "eval.ks",
        "eval.batch_size",
        "train.eval_users",
        "train.valid_beam_width",
        "train.sliding_window",
        "train.session_gap",
        "train.grad_clip",
        "train.precision",
        *recommender_settings(cfg),
    ),  # fmt: skip
    inputs=lambda cfg: (io.SEQUENCES, io.SIDS, io.MODEL, io.REWARD),
    outputs=lambda cfg: (io.ALIGNED, io.ALIGN_JSON),
)
def align_model(cfg: Config, run_dir: Path, fresh: bool = False) -> dict:
    """Align the trained generator to the reward model with `align.rounds` IPA rounds (DPO); writes aligned.pt."""
    if fresh:
        for name in (io.ALIGN_CHECKPOINT, io.ALIGNED, io.ALIGN_JSON):
            (run_dir / name).unlink(missing_ok=True)
    device = _device(cfg.train.device)
    out = run_alignment(cfg, run_dir, device, use_bf16(cfg.train.precision, device))
    io.save_json(run_dir / io.ALIGN_JSON, out)
    return out


def _rank_keys(cfg: Config) -> tuple[str, ...]:
    # the ranker's settings, how it trains (train.* it shares), and what its retriever's lists depend on
    return ("rank", "seed", "data.max_history", "eval.ks", "eval.batch_size", *_TRAINER, *recommender_settings(cfg))


@stage(
    "rank",
    keys=_rank_keys,
    inputs=lambda cfg: (io.SEQUENCES, io.ITEMS, io.MODEL, io.METRICS),  # METRICS: the retriever's chosen settings
    outputs=lambda cfg: (io.RANKER, io.RANKING),
)
def rank_model(cfg: Config, run_dir: Path, fresh: bool = False) -> dict:
    """Train the generative ranker on the events behind the trained retriever; measure both (ranking.json)."""
    if fresh:
        for name in (io.RANK_CHECKPOINT, io.RANK_LOG, io.RANKER, io.RANKING):
            (run_dir / name).unlink(missing_ok=True)
    device = _device(cfg.train.device)
    retriever, _ = build_recommender(cfg, run_dir, ranked=False)
    out = train_and_measure(cfg, run_dir, retriever, device, use_bf16(cfg.train.precision, device))
    io.save_json(run_dir / io.RANKING, out)
    return out


def read_settings(cfg: Config) -> set[str]:
    """The dotted settings the stages of this config's run read (their fingerprints), plus where and how fast."""
    stages = run_stages(cfg)
    keys = {k for name in stages for k in fingerprint.select(cfg, SPECS[name].keys(cfg))}
    sections = {k.split(".")[0] for k in keys}
    return keys | {k for k in fingerprint.RUNTIME_KEYS if k.split(".")[0] in sections}


def check_splits(splits: tuple[str, ...]) -> tuple[str, ...]:
    """eval.splits in the order they are scored: valid before test; ValueError for anything else."""
    unknown = [s for s in splits if s not in ("valid", "test")]
    if unknown or not splits or len(set(splits)) != len(splits):
        raise ValueError(f"eval.splits={list(splits)}: give [valid] (tuning: test is not scored) or [valid,test]")
    return tuple(s for s in ("valid", "test") if s in splits)


def check(cfg: Config, run_dir: str | Path, stages: tuple[str, ...] = STAGES, force: bool = False) -> Config:
    """Pre-flight (data/preflight.py) for the stages about to run: nothing is written; returns the config to run."""
    names = {"embed.name": tuple(EMBEDDERS), "quantize.name": tuple(QUANTIZERS), "quantize.dedup": DEDUP_METHODS}
    spec = entry(cfg.model.name)  # ValueError for an unknown model.name
    temps = cfg.eval.explore_temperature
    if not temps or min(temps) <= 0 or (len(temps) > 1 and cfg.model.repeat != "mixture"):
        raise ValueError(
            f"eval.explore_temperature={list(temps)}: give temperatures > 0; several (chosen on validation) need "
            f"model.repeat=mixture (this run: model.repeat={cfg.model.repeat})"
        )
    sid = spec.needs_sids  # SID generators and parallel SID models (RPG)
    if spec.kind == "parallel" and cfg.quantize.dedup in EXTRA_DIGIT:
        raise ValueError(
            f"model.name={cfg.model.name} predicts every digit from a codebook of quantize.codebook_size codes; "
            "TIGER's extra de-dup digit does not fit: set quantize.dedup=random (or none)"
        )
    check_align(cfg)
    distributed.init(cfg.train.device)  # torchrun: rank 0 reads the data; every rank gets its config

    made_by = producers(cfg)  # files the stages read that a stage not about to run makes
    needed = {f: made_by[f] for s in stages for f in SPECS[s].inputs(cfg) if made_by.get(f) not in (*stages, None)}

    def checked() -> Config:
        names_ = names if sid else {}
        return preflight(
            cfg, Path(run_dir), stages=stages, force=force, needs_sids=sid, reads_text=reads_text(cfg), names=names_,
            needed=needed,
        )  # fmt: skip

    return distributed.broadcast(distributed.on_main(checked))


def run(cfg: Config, run_dir: str | Path, force: bool = False, command: str = "") -> dict:
    """Every stage in order (`parts.stages`: no SIDs for item-ID models; rank last with rank.enabled); returns (and
    writes) the run record and report.html.

    Every stage's fingerprint is checked first (`plan`): a stale one stops the run before anything is
    written, unless `force`, which recomputes the stale stages and those after them that change.
    """
    run_dir = Path(run_dir)
    start, commit = time.perf_counter(), git_commit()  # the code that runs, not what HEAD is at the end
    cfg = check(cfg, run_dir, STAGES, force)  # every check that can fail runs before the first file is written
    parts_for(cfg, run_dir, _device(cfg.train.device))  # fails on an unknown model.name before any stage
    check_splits(cfg.eval.splits)
    stages = run_stages(cfg)  # ID models need no SIDs (nor the item text, unless they read it)
    empty = not any((run_dir / o).exists() for s in stages for o in SPECS[s].outputs(cfg))
    distributed.on_main(lambda: (plan(cfg, run_dir, force, stages), io.save_config(run_dir, cfg)))
    redone: set[str] = set()
    steps = {"prepare": prepare_data, "embed": embed_items, "quantize": build_sids}
    steps.update(train=train_model, reward=reward_model, align=align_model, evaluate=evaluate_model, rank=rank_model)
    for name in stages:
        steps[name](cfg, run_dir, force, redone)
        if name == "prepare" and ({"rank", "reward"} & set(stages)):  # their events are known once the data is read
            columns, where = list(pl.read_parquet_schema(run_dir / io.SEQUENCES)), f"data.name={cfg.data.name}"
            if "rank" in stages:
                check_rank(cfg, columns, where)
            check_align(cfg, columns, where)

    def finish() -> dict:
        record = run_record(cfg, run_dir, wall_seconds=time.perf_counter() - start, command=command, commit=commit)
        record["from_empty_dir"] = empty  # only such a record's wall time and command describe one whole run
        record["stages_run"] = [s for s in stages if s in redone]
        if distributed.world_size() > 1:
            record["world_size"] = distributed.world_size()  # torchrun processes that trained
        io.save_json(run_dir / "record.json", record)
        write_report(run_dir)
        return record

    return distributed.broadcast(distributed.on_main(finish))


__all__ = [
    "STAGES",
    "SPECS",
    "check",
    "plan",
    "stage_status",
    "check_splits",
    "prepare_data",
    "embed_items",
    "build_sids",
    "train_model",
    "evaluate_model",
    "rank_model",
    "reward_model",
    "align_model",
    "build_recommender",
    "run",
]
