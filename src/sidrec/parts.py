"""What differs between the model kinds, in one place: SID generators, parallel SID models, item-ID models.

`parts_for(cfg, run_dir, device)` returns lazy builders over a run directory: a fresh model, its
training examples and its recommender. Item-ID models (registry kind "id": SASRec, HSTU)
need no SIDs; parallel SID models (RPG) need SIDs but train on item sequences, as the item-ID models
do, and score every item (or walk the item graph, `eval.decode=graph`); SID generators (TIGER,
decoder-only) train on sliding-window SID targets and recommend by beam search.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import torch

from sidrec import catalog, io
from sidrec.config import Config
from sidrec.data.batches import IDExamples, SIDExamples, session_ends
from sidrec.data.schema import TIMES
from sidrec.data.split import session_examples, train_sequences, training_examples
from sidrec.models import build_model, entry, model_kind
from sidrec.recommender import GraphRecommender, ItemRecommender, SIDRecommender, item_token_table
from sidrec.train import use_bf16


def level_sizes(sids: np.ndarray, codebook_size: int, levels: int) -> tuple[int, ...]:
    """K per SID level: the codebook size, and for a dedup digit its largest value + 1."""
    sizes = [codebook_size] * levels
    sizes += [int(sids[:, j].max()) + 1 for j in range(levels, sids.shape[1])]
    return tuple(sizes)


def popularity(sequences: pl.DataFrame, n_items: int) -> np.ndarray:
    counts = np.zeros(n_items + 1)
    for seq in train_sequences(sequences):
        np.add.at(counts, seq, 1)
    return counts


# Decoders of the parallel SID models (`eval.decode`): the model, the config, bf16 -> a Recommender.
DECODERS: dict[str, Callable[[torch.nn.Module, Config, bool], object]] = {
    "exact": lambda model, cfg, bf16: ItemRecommender(model, max_history=cfg.data.max_history, bf16=bf16),
    "graph": lambda model, cfg, bf16: GraphRecommender(
        model,
        max_history=cfg.data.max_history,
        beams=cfg.eval.graph_beams,
        edges=cfg.eval.graph_edges,
        steps=cfg.eval.graph_steps,
        bf16=bf16,
        seed=cfg.seed,
    ),  # fmt: skip
}
DECODER_SETTINGS = {"exact": (), "graph": ("eval.graph_beams", "eval.graph_edges", "eval.graph_steps", "seed")}


class Parts(NamedTuple):
    """What differs between SID models and item-ID models, as lazy builders over the run directory."""

    needs_sids: bool  # embed + quantize run before training
    build: Callable[[], torch.nn.Module]  # a fresh model
    examples: Callable[[torch.nn.Module, pl.DataFrame], object]  # (model, sequences) -> .batches / .n_batches
    recommender: Callable[..., object]  # (model, sequences, beam_width=None, per_epoch=False) -> a Recommender
    validates: tuple[str, ...] = ()  # the eval.* settings the per-epoch validation's recommender reads
    evaluates: tuple[str, ...] = ()  # ... and the final evaluation's (both: fingerprint keys)


def parts_for(cfg: Config, run_dir: Path, device: torch.device) -> Parts:
    """The one place that branches on the model kind (ValueError for an unknown model.name)."""
    hist, bf16 = cfg.data.max_history, use_bf16(cfg.train.precision, device)
    if cfg.train.windows not in ("last", "all"):
        raise ValueError(f"unknown train.windows '{cfg.train.windows}': last | all")

    def windows(model, sequences: pl.DataFrame) -> IDExamples:  # rpg and the item-ID models
        wanted = getattr(model, "events", ())
        missing = [name for name in wanted if name not in sequences.columns]
        if missing:
            raise ValueError(
                f"model.name={cfg.model.name} reads the events' {' and '.join(missing)}, which this data does not "
                f"keep (data.name={cfg.data.name}: {io.SEQUENCES} has {sequences.columns}). Use data with timestamps"
                " and actions (MovieLens, Amazon 2014 reviews), or turn model.hstu.time_bias / actions off"
            )
        events = {name: train_sequences(sequences, name) for name in wanted}
        return IDExamples(
            train_sequences(sequences), max_history=hist, all_windows=cfg.train.windows == "all", events=events
        )

    if model_kind(cfg.model.name) == "id":

        def build_id() -> torch.nn.Module:
            n_items = pl.read_parquet(run_dir / io.ITEMS).height
            if not reads_text(cfg):
                return build_model(cfg.model, max_history=hist, n_items=n_items)
            trained = popularity(pl.read_parquet(run_dir / io.SEQUENCES), n_items) > 0
            text = np.load(run_dir / io.EMBEDDINGS)
            return build_model(cfg.model, max_history=hist, n_items=n_items, text=text, trained=trained)

        return Parts(
            needs_sids=False,
            build=build_id,
            examples=windows,
            recommender=lambda model, sequences, beam_width=None, per_epoch=False: ItemRecommender(
                model, max_history=hist, bf16=bf16
            ),
        )

    @cache
    def sids() -> np.ndarray:  # the trained items' (training and its validation)
        return np.load(run_dir / io.SIDS)

    @cache
    def every_sid() -> np.ndarray:  # the whole catalog's: the trained items', then any added since (sidrec.catalog)
        return catalog.sids(run_dir)

    if model_kind(cfg.model.name) == "parallel":
        if cfg.eval.decode not in DECODERS:
            raise ValueError(f"unknown eval.decode '{cfg.eval.decode}' for model.name={cfg.model.name}: "
                             f"{' | '.join(DECODERS)}")  # fmt: skip

        def parallel_recommender(model, sequences, beam_width=None, per_epoch=False):
            decode = "exact" if per_epoch else cfg.eval.decode  # per-epoch validation scores every item (cheap)
            if not per_epoch and len(every_sid()) > model.shape.n_items:  # items added after training: by codes
                model.add_items(torch.from_numpy(every_sid()[model.shape.n_items :]))
            return DECODERS[decode](model, cfg, bf16)

        return Parts(
            needs_sids=True,
            build=lambda: build_model(
                cfg.model, max_history=hist, codes=sids(), codebook_size=cfg.quantize.codebook_size
            ),
            examples=windows,
            recommender=parallel_recommender,
            evaluates=("eval.decode", *DECODER_SETTINGS[cfg.eval.decode]),
        )

    def examples(model, sequences: pl.DataFrame) -> SIDExamples:
        seqs = train_sequences(sequences)
        tokens = item_token_table(sids(), model.shape.offsets)
        m, gap = cfg.train.target_items, cfg.train.session_gap
        ends = None  # sessions: cut at gaps longer than train.session_gap (with timestamps), else the whole sequence
        if m > 1 and gap and TIMES in sequences.columns:
            ends = session_ends(train_sequences(sequences, TIMES), gap * 3600)
        if m > 1:  # OneRec: each session cut into chunks of m items, one example per chunk
            users, positions = session_examples(seqs, ends, m)
        else:
            users, positions = training_examples(seqs, hist, cfg.train.sliding_window)
        return SIDExamples(
            seqs, users, positions, sids(), tokens, max_history=hist, user_tokens=cfg.model.user_tokens,
            target_items=m, ends=ends,
        )  # fmt: skip

    def build() -> torch.nn.Module:
        sizes = level_sizes(sids(), cfg.quantize.codebook_size, cfg.quantize.levels)
        return build_model(cfg.model, level_sizes=sizes, max_history=hist, target_items=cfg.train.target_items)

    def recommender(model, sequences: pl.DataFrame, beam_width: int | None = None, per_epoch=False) -> SIDRecommender:
        table = sids() if per_epoch else every_sid()  # the trie holds added items' SIDs too
        pop = popularity(sequences, table.shape[0])
        beam, constrained = beam_width or cfg.eval.beam_width, cfg.eval.constrained
        cold = None
        if cfg.eval.cold_candidates and not per_epoch:  # items without training interactions that have a text vector
            text = np.load(run_dir / io.EMBEDDINGS, mmap_mode="r")
            cold = (np.nonzero(pop[1 : len(text) + 1] == 0)[0] + 1, text)
        return SIDRecommender(
            model, table, beam_width=beam, constrained=constrained, popularity=pop, bf16=bf16, seed=cfg.seed,
            cold=cold, cold_candidates=cfg.eval.cold_candidates,
        )  # fmt: skip

    beam = ("eval.constrained",) + (() if cfg.train.valid_beam_width else ("eval.beam_width",))
    final = ("eval.beam_width", "eval.constrained", "eval.cold_candidates")
    return Parts(True, build, examples, recommender, validates=beam, evaluates=final)


def reads_text(cfg: Config) -> bool:
    """Whether the model reads the items' text embeddings: SID models (through their SIDs), and item-ID models
    with `model.<name>.text_items`."""
    if model_kind(cfg.model.name) != "id":
        return True
    return bool(getattr(entry(cfg.model.name).own(cfg.model), "text_items", False))


def stages(cfg: Config) -> tuple[str, ...]:
    """The stages a run of this config chains: all five for SID models; item-ID models skip quantize, and embed
    too unless they read the item text; `reward` and `align` before evaluate with reward.enabled / align.rounds,
    `rank` last with rank.enabled."""
    rank = ("rank",) if cfg.rank.enabled else ()  # the generative ranker behind the retriever
    after = (("reward",) if cfg.reward.enabled or cfg.align.rounds else ()) + (("align",) if cfg.align.rounds else ())
    if model_kind(cfg.model.name) != "id":
        return ("prepare", "embed", "quantize", "train", *after, "evaluate", *rank)
    return ("prepare", *(("embed",) if reads_text(cfg) else ()), "train", *after, "evaluate", *rank)


def recommender_settings(cfg: Config, per_epoch: bool = False) -> tuple[str, ...]:
    """The eval.* settings the recommender reads, in per-epoch validation or in the final evaluation."""
    built = parts_for(cfg, Path("."), torch.device("cpu"))  # builders only: nothing is read
    return built.validates if per_epoch else built.evaluates


__all__ = [
    "DECODERS",
    "DECODER_SETTINGS",
    "Parts",
    "recommender_settings",
    "level_sizes",
    "parts_for",
    "popularity",
    "reads_text",
    "stages",
]
