"""What the `rank` stage (`pipeline.rank_model`) is built from: the ranker, its examples, its measures.

    rank -> ranker.pt (best validation AUC), rank_checkpoint.pt, rank_log.jsonl, ranking.json

ranking.json holds the ranker's AUC / GAUC of the liked label and the RMSE of the action on the held-out events
(`examples.split_windows`), and, for the leave-one-out validation and test users, NDCG / Recall of the retriever
alone and of the two stages, on every target and on the liked ones (the target's action >= `rank.liked`), for
each blend weight on validation and for the one chosen there on test.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm.auto import tqdm

from sidrec import io
from sidrec.config import Config
from sidrec.data.schema import ACTIONS, SEQ, TIMES
from sidrec.data.split import eval_examples
from sidrec.metrics import auc, gauc, ranking_metrics, recommend
from sidrec.ranking.examples import EventWindows, split_windows
from sidrec.ranking.model import RANKERS
from sidrec.ranking.two_stage import TwoStageRecommender, rerank
from sidrec.train import TrainFiles, epoch_rng, fit

logger = logging.getLogger(__name__)
FILES = TrainFiles(io.RANKER, io.RANK_CHECKPOINT, io.RANK_LOG, metric="auc")


def check_rank(cfg: Config, columns: list[str] | None = None, where: str = "") -> None:
    """ValueError naming the fix when the ranker cannot run on this config or (given its columns) this data."""
    r = cfg.rank
    if r.name not in RANKERS:
        raise ValueError(f"unknown rank.name '{r.name}'. Known: {', '.join(RANKERS)}")
    need = [ACTIONS] + ([TIMES] if r.time_bias else [])
    missing = [c for c in need if columns is not None and c not in columns]
    if missing:
        raise ValueError(
            f"rank.enabled: the ranker reads the events' {' and '.join(missing)}, which {where} does not keep. Use "
            "data with actions and timestamps (MovieLens ratings, Amazon 2014 reviews), set rank.time_bias=false when "
            "only timestamps are missing, or rank.enabled=false"
        )
    if not 1 <= r.holdout < r.max_events or r.candidates < max(cfg.eval.ks) or r.select not in ("liked", "all"):
        raise ValueError(
            f"rank: need 1 <= holdout ({r.holdout}) < max_events ({r.max_events}), candidates ({r.candidates}) >= "
            f"max(eval.ks) and select liked | all (got {r.select!r})"
        )
    if r.negatives_from not in ("retriever", "mixed", "popular") or r.negatives < 0 or r.pool < 1:
        raise ValueError(f"rank: negatives ({r.negatives}) >= 0, negatives_from retriever | mixed | popular (got "
                         f"{r.negatives_from!r}) and pool ({r.pool}) >= 1")  # fmt: skip


def build_ranker(cfg: Config, n_items: int) -> torch.nn.Module:
    cls, shape = RANKERS[cfg.rank.name]
    fields = {f.name for f in dataclasses.fields(shape)} - {"n_items"}
    return cls(shape(n_items=n_items, **{k: getattr(cfg.rank, k) for k in fields}))


def load_ranker(path: Path, device: torch.device) -> torch.nn.Module:
    saved = torch.load(path, map_location=device, weights_only=False)
    cls, shape = RANKERS[saved["ranker"]]
    model = cls(shape(**saved["shape"])).to(device)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def windows_of(sequences: pl.DataFrame, cfg: Config, n_items: int, retriever=None) -> dict[str, EventWindows]:
    items = [np.asarray(s, dtype=np.int64) for s in sequences[SEQ].to_list()]
    actions = [np.asarray(s, dtype=np.int64) for s in sequences[ACTIONS].to_list()]
    times = [np.asarray(s, dtype=np.int64) for s in sequences[TIMES].to_list()] if cfg.rank.time_bias else None
    spans = split_windows([len(s) for s in items], cfg.rank.holdout, cfg.rank.max_events)
    popularity = np.zeros(n_items + 1)  # of the training labels only
    for w in spans["train"]:
        np.add.at(popularity, items[w.user][w.label_from : w.end], 1)
    r = cfg.rank
    pools, hard = None, {"retriever": r.negatives, "mixed": (r.negatives + 1) // 2}.get(r.negatives_from, 0)
    if r.negatives and hard:
        events = {ACTIONS: actions, **({TIMES: times} if times is not None else {})}
        pools = retriever_pools(retriever, items, events, spans["train"], r.pool, cfg)
    return {
        name: EventWindows(
            items, actions, times, w, r.max_events, r.negatives if name == "train" else 0, popularity, pools, hard
        )  # fmt: skip
        for name, w in spans.items()
    }


@torch.no_grad()
def retriever_pools(retriever, items, events: dict, windows, k: int, cfg: Config) -> list[np.ndarray]:
    """Per user, (events, k): the retriever's top k before each training-label event (its history then: the
    `data.max_history` events before it), the items the ranker learns to tell from the chosen one."""
    pools = [np.zeros((len(s), k), dtype=np.int64) for s in items]
    todo = [(w.user, j) for w in windows for j in range(max(w.label_from, 1), w.end)]  # event 0 has no history
    hist = cfg.data.max_history
    for s in tqdm(range(0, len(todo), cfg.eval.batch_size), desc="ranker negatives", leave=False, mininterval=2):
        part = todo[s : s + cfg.eval.batch_size]
        histories = [items[u][max(0, j - hist) : j] for u, j in part]
        given = {n: [column[u][max(0, j - hist) : j] for u, j in part] for n, column in events.items()}
        rec = recommend(retriever, histories, k, None, given)
        for (u, j), row in zip(part, rec.items, strict=True):
            pools[u][j] = row
    for w in windows:  # a sequence's first event has no history: it borrows the next event's pool
        if w.label_from == 0 and len(pools[w.user]) > 1:
            pools[w.user][0] = pools[w.user][1]
    return pools


@torch.no_grad()
def event_metrics(model, windows: EventWindows, liked: int, device: torch.device, bf16: bool) -> dict[str, float]:
    """AUC and GAUC of the liked logit against action >= liked, and the action's RMSE, over the labelled events."""
    model.eval()
    logits, values = [], []
    for batch in windows.batches(256, None, device):
        labels = batch.pop("labels")
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            h, _ = model.encode(batch["items"], batch["actions"], batch.get("times"))
            logit, value, _ = model.heads(h[labels > 0])
        logits.append(logit.float().cpu().numpy())
        values.append(value.float().cpu().numpy())
    users, actions = windows.labels()
    logit, value = np.concatenate(logits), np.concatenate(values)
    g, n_users = gauc(logit, actions >= liked, users)
    out = {"auc": auc(logit, actions >= liked), "gauc": g, "rmse": float(np.sqrt(np.mean((value - actions) ** 2)))}
    return {**{k: round(v, 6) for k, v in out.items()}, "gauc_users": n_users, "events": len(actions)}


def two_stage_lists(cfg: Config, retriever, ranker, sequences: pl.DataFrame, split: str, bf16: bool) -> dict:
    """NDCG / Recall@ks of the retriever alone and of the two stages at every weight, on all and on liked targets."""
    ex = eval_examples(sequences, split, cfg.data.max_history)
    cut = 2 if split == "valid" else 1
    target_action = np.asarray([s[len(s) - cut] for s in sequences[ACTIONS].to_list()])
    liked = target_action >= cfg.rank.liked
    two = TwoStageRecommender(retriever, ranker, candidates=cfg.rank.candidates, bf16=bf16)
    items, scores, logits = [], [], []
    for s in range(0, len(ex.targets), cfg.eval.batch_size):
        rows = slice(s, s + cfg.eval.batch_size)
        events = {k: v[rows] for k, v in ex.events.items()}
        first = two.retrieve(ex.histories[rows], cfg.rank.candidates, ex.user_idx[rows], events)
        items.append(first.items)
        scores.append(first.scores)
        logits.append(two.ranker_scores(ex.histories[rows], first.items, events))
    items, scores, logits = np.concatenate(items), np.concatenate(scores), np.concatenate(logits)
    hit = (items == ex.targets[:, None]).any(1)
    c = items.shape[1]
    out = {"users": len(ex.targets), "liked_users": int(liked.sum()), f"candidate_recall@{c}": round(float(hit.mean()),
           6), f"liked_candidate_recall@{c}": round(float(hit[liked].mean()), 6)}  # fmt: skip

    def lists(top: np.ndarray) -> dict:
        return {
            "all": _rounded(ranking_metrics(top, ex.targets, cfg.eval.ks)),
            "liked": _rounded(ranking_metrics(top[liked], ex.targets[liked], cfg.eval.ks)),
        }

    out["retriever"] = lists(items)
    out["weights"] = {f"{w:g}": lists(rerank(items, scores, logits, w)[0]) for w in cfg.rank.weights}
    return out


def _rounded(d: dict) -> dict:
    return {k: round(v, 6) for k, v in d.items()}


def train_and_measure(cfg: Config, run_dir: Path, retriever, device: torch.device, bf16: bool) -> dict:
    """Train the ranker on the run's events (ranker.pt, resumable), measure it and the two-stage lists beside
    `retriever` (the run's recommender alone); returns what ranking.json holds."""
    sequences = pl.read_parquet(run_dir / io.SEQUENCES)
    check_rank(cfg, sequences.columns, f"{run_dir / io.SEQUENCES}")
    n_items = pl.read_parquet(run_dir / io.ITEMS).height
    windows = windows_of(sequences, cfg, n_items, retriever)
    model = build_ranker(cfg, n_items).to(device)
    r = cfg.rank
    train_cfg = dataclasses.replace(cfg.train, epochs=r.epochs, batch_size=r.batch_size, lr=r.lr, patience=r.patience,
                                    eval_every=1, ema=0.0, max_minutes=0.0)  # fmt: skip
    logger.info("ranker %s: %d params, %d training windows", r.name, sum(p.numel() for p in model.parameters()),
                len(windows["train"]))  # fmt: skip
    start = time.perf_counter()
    result = fit(
        model,
        batches=lambda epoch: windows["train"].batches(r.batch_size, epoch_rng(cfg.seed, epoch), device),
        batches_per_epoch=windows["train"].n_batches(r.batch_size),
        validate=lambda m: event_metrics(m, windows["valid"], r.liked, device, bf16),
        cfg=train_cfg,
        run_dir=run_dir,
        meta={"ranker": r.name, "shape": model.config_dict()},
        seed=cfg.seed,
        files=FILES,
    )
    train_seconds = time.perf_counter() - start
    ranker = load_ranker(run_dir / io.RANKER, device)
    out: dict = {
        "ranker": r.name,
        "params": sum(p.numel() for p in ranker.parameters()),
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
        "train_seconds": round(train_seconds, 1),
        "events": {split: event_metrics(ranker, windows[split], r.liked, device, bf16) for split in ("valid", "test")},
    }
    valid = two_stage_lists(cfg, retriever, ranker, sequences, "valid", bf16)
    chosen = max(r.weights, key=lambda w: (valid["weights"][f"{w:g}"][r.select]["ndcg@10"], -w))
    test = two_stage_lists(cfg, retriever, ranker, sequences, "test", bf16)
    test["two_stage"] = test.pop("weights")[f"{chosen:g}"]  # test is scored at the weight chosen on validation
    out["lists"] = {"weight": chosen, "select": r.select, "valid": valid, "test": test}
    logger.info("ranker: test AUC %.4f GAUC %.4f; weight %g", out["events"]["test"]["auc"],
                out["events"]["test"]["gauc"], chosen)  # fmt: skip
    return out


__all__ = [
    "FILES",
    "build_ranker",
    "check_rank",
    "event_metrics",
    "load_ranker",
    "retriever_pools",
    "train_and_measure",
    "two_stage_lists",
    "windows_of",
]
