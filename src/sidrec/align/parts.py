"""What the `reward` and `align` stages and the list metrics of `evaluate` are built from (OneRec's pieces).

    reward -> reward.pt (best validation AUC), reward_checkpoint.pt, reward_log.jsonl, reward.json
    align  -> aligned.pt (the generator after `align.rounds` IPA rounds), align_checkpoint.pt, align.json

`evaluate` then scores the aligned generator (and, with `data.list_items`, whole lists, `lists.list_metrics`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from sidrec import io
from sidrec.align.ipa import align_round, preference_pairs
from sidrec.align.lists import list_metrics
from sidrec.align.reward import RewardModel, RewardShape, Session, SessionSet, session_auc, session_splits
from sidrec.config import Config
from sidrec.data.batches import item_inputs
from sidrec.data.schema import ACTIONS, SEQ
from sidrec.data.split import LIST, eval_examples, list_examples, train_sequences
from sidrec.metrics import evaluate
from sidrec.models import load_model, model_kind
from sidrec.parts import parts_for
from sidrec.recommender import recommend_lists
from sidrec.train import TrainFiles, epoch_rng, fit

logger = logging.getLogger(__name__)
REWARD_FILES = TrainFiles(io.REWARD, io.REWARD_CHECKPOINT, io.REWARD_LOG, metric="auc")


def check_align(cfg: Config, columns: list[str] | None = None, where: str = "") -> None:
    """ValueError naming the fix when the reward model, alignment or session targets cannot run on this config or
    (given its columns) on this data."""
    a, sid = cfg.align, model_kind(cfg.model.name) == "sid"
    if (a.rounds or cfg.train.target_items > 1) and not sid:
        raise ValueError(
            f"train.target_items={cfg.train.target_items}, align.rounds={a.rounds}: sessions and preference alignment "
            f"need a SID generator that writes SIDs token by token (model.name=tiger or decoder), not {cfg.model.name}"
        )
    if cfg.train.target_items < 1 or a.rounds < 0 or not 0 < a.share <= 1 or a.sessions < 2:
        raise ValueError(f"need train.target_items >= 1, align.rounds >= 0, 0 < align.share <= 1 and align.sessions "
                         f">= 2 (got {cfg.train.target_items}, {a.rounds}, {a.share}, {a.sessions})")  # fmt: skip
    if (a.rounds or cfg.reward.enabled) and columns is not None and ACTIONS not in columns:
        raise ValueError(
            f"reward.enabled / align.rounds: the reward model learns from the events' actions, which {where} does not "
            "keep. Use data with explicit feedback (MovieLens ratings, Amazon 2014 reviews' stars), or turn them off"
        )


def _sequences(run_dir: Path) -> tuple[pl.DataFrame, list[np.ndarray], list[np.ndarray]]:
    sequences = pl.read_parquet(run_dir / io.SEQUENCES)
    items = [np.asarray(s, dtype=np.int64) for s in sequences[SEQ].to_list()]
    actions = [np.asarray(s, dtype=np.int64) for s in sequences[ACTIONS].to_list()]
    return sequences, items, actions


def train_reward(cfg: Config, run_dir: Path, device: torch.device) -> dict:
    """Train the reward model on sessions of the training sequences (none touches the validation and test items);
    its AUC on each user's last training session (validation) and on the held-out lists (`data.list_items`)."""
    r = cfg.reward
    sequences, items, actions = _sequences(run_dir)
    check_align(cfg, sequences.columns, str(run_dir / io.SEQUENCES))
    spans = session_splits([len(s) for s in items], r.session)
    sets = {name: SessionSet(items, actions, s, r.session, r.max_history) for name, s in spans.items()}
    if LIST + SEQ in sequences.columns:  # the held-out lists, after each user's whole sequence
        held = list_examples(sequences, len(max(items, key=len)))
        rows = held.user_idx  # user_idx numbers the rows of sequences.parquet
        full = [np.concatenate([items[i], t]) for i, t in zip(rows, held.targets, strict=True)]
        acts = [np.concatenate([actions[i], a]) for i, a in zip(rows, held.target_events[ACTIONS], strict=True)]
        n = held.targets.shape[1]
        sets["test"] = SessionSet(full, acts, [Session(j, len(f) - n) for j, f in enumerate(full)], n, r.max_history)
    vectors = np.load(run_dir / io.EMBEDDINGS, mmap_mode="r") if (run_dir / io.EMBEDDINGS).exists() else None
    own = ("max_history", "d_model", "n_heads", "d_head", "dropout", "liked", "rating_weight")  # reward.* it reads
    n_items, text_dim = pl.read_parquet(run_dir / io.ITEMS).height, 0 if vectors is None else vectors.shape[1]
    model = RewardModel(RewardShape(n_items=n_items, text_dim=text_dim, **{k: getattr(r, k) for k in own}))
    if vectors is not None:
        model.set_text(vectors)
    model = model.to(device)
    train_cfg = dataclasses.replace(cfg.train, epochs=r.epochs, batch_size=r.batch_size, lr=r.lr, patience=r.patience,
                                    eval_every=1, ema=0.0, max_minutes=0.0)  # fmt: skip
    start = time.perf_counter()
    result = fit(
        model,
        batches=lambda epoch: sets["train"].batches(r.batch_size, epoch_rng(cfg.seed, epoch), device),
        batches_per_epoch=sets["train"].n_batches(r.batch_size),
        validate=lambda m: session_auc(m, sets["valid"], device),
        cfg=train_cfg,
        run_dir=run_dir,
        meta={"shape": model.config_dict()},
        seed=cfg.seed,
        files=REWARD_FILES,
    )
    best = load_reward(run_dir / io.REWARD, device)
    out = {
        "params": sum(p.numel() for p in best.parameters()),
        "sessions": {k: len(v) for k, v in sets.items()},
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
        "train_seconds": round(time.perf_counter() - start, 1),
        **{split: session_auc(best, s, device) for split, s in sets.items() if split != "train"},
    }
    logger.info("reward model: valid AUC %.4f%s", out["valid"]["auc"],
                f", held-out lists AUC {out['test']['auc']:.4f}" if "test" in out else "")  # fmt: skip
    return out


def load_reward(path: Path, device: torch.device) -> RewardModel:
    saved = torch.load(path, map_location=device, weights_only=False)
    model = RewardModel(RewardShape(**saved["shape"])).to(device)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def reward_of(model: RewardModel, histories: list[np.ndarray], actions: list[np.ndarray], device: torch.device):
    """A `RewardFn` over these histories and their actions: R(u, S) of sessions (B, N, m) of rows (B,)."""
    h = model.shape.max_history

    def reward(rows: np.ndarray, sessions: np.ndarray) -> np.ndarray:
        items = item_inputs([histories[i] for i in rows], h).to(device)
        acts = item_inputs([actions[i] for i in rows], h).to(device)
        return model.score(items, acts, torch.as_tensor(sessions, device=device)).cpu().numpy()

    return reward


def list_measures(cfg: Config, run_dir: Path, rec, sequences: pl.DataFrame, device: torch.device) -> dict:
    """The list metrics of `rec`'s lists for the users with a held-out list (and their reward, with a reward model)."""
    ex = list_examples(sequences, cfg.data.max_history)
    n = ex.targets.shape[1]
    lists = recommend_lists(rec, ex.histories, ex.user_idx, n, cfg.eval.batch_size)
    vectors = np.load(run_dir / io.EMBEDDINGS, mmap_mode="r") if (run_dir / io.EMBEDDINGS).exists() else None
    out = {"items": n, **list_metrics(lists, ex.targets, vectors, pl.read_parquet(run_dir / io.ITEMS).height)}
    if (run_dir / io.REWARD).exists() and ACTIONS in ex.events:
        model = load_reward(run_dir / io.REWARD, device)
        reward = reward_of(model, ex.histories, ex.events[ACTIONS], device)
        scores = [
            reward(rows, lists[rows][:, None])
            for rows in np.array_split(np.arange(len(lists)), max(1, len(lists) // 256))
        ]
        out["reward"] = round(float(np.concatenate(scores).mean()), 6)
    return out


def _probe(cfg: Config, parts, model, sequences, reward, valid, n: int) -> dict:
    """Validation NDCG@10 and the mean reward of the generated sessions of a fixed sample of validation users."""
    rec = parts.recommender(model, sequences, beam_width=cfg.train.valid_beam_width or None, per_epoch=True)
    ndcg = evaluate(rec, valid, ks=cfg.eval.ks, batch_size=cfg.eval.batch_size, desc="align: validate").metrics
    r, size = [], cfg.eval.batch_size
    for s in range(0, len(valid.targets), size):
        rows = np.arange(s, min(s + size, len(valid.targets)))
        sessions, _ = rec.lists([valid.histories[i] for i in rows], n, valid.user_idx[rows])
        r.append(reward(rows, sessions[:, :1])[:, 0])  # the best beam's session
    r = np.concatenate(r)
    return {"ndcg@10": round(ndcg["ndcg@10"], 6), "reward": round(float(r.mean()), 6)}


def run_alignment(cfg: Config, run_dir: Path, device: torch.device, bf16: bool) -> dict:
    """`align.rounds` IPA rounds from model.pt, each resumable (align_checkpoint.pt); writes aligned.pt."""
    a = cfg.align
    model, meta = load_model(str(run_dir / io.MODEL), device)
    sequences, _, _ = _sequences(run_dir)
    check_align(cfg, sequences.columns, str(run_dir / io.SEQUENCES))
    parts = parts_for(cfg, run_dir, device)
    examples = parts.examples(model, sequences)
    seqs, acts = train_sequences(sequences), train_sequences(sequences, ACTIONS)
    reward_model = load_reward(run_dir / io.REWARD, device)
    h = cfg.data.max_history
    valid = eval_examples(sequences, "valid", h)
    if 0 < cfg.train.eval_users < len(valid.targets):
        valid = valid.subset(np.sort(np.random.default_rng(cfg.seed).choice(len(valid.targets), cfg.train.eval_users,
                                                                             replace=False)))  # fmt: skip
    valid_reward = reward_of(reward_model, valid.histories, valid.events[ACTIONS], device)
    m = model.shape.target_items
    ckpt_path, state = run_dir / io.ALIGN_CHECKPOINT, {"rounds": []}
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["state_dict"])
        logger.info("align: resuming after round %d", len(state["rounds"]))
    before = state.get("before") or _probe(cfg, parts, model, sequences, valid_reward, valid, m)
    users = np.array([u for u, s in enumerate(seqs) if len(s)])
    for r in range(len(state["rounds"]), a.rounds):
        start = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, 60, r])
        picked = np.sort(rng.choice(users, size=max(1, round(a.share * len(users))), replace=False))
        hist = [seqs[u][-h:] for u in picked]
        reward = reward_of(reward_model, hist, [acts[u][-h:] for u in picked], device)
        rec = parts.recommender(model.eval(), sequences, beam_width=a.sessions)
        pairs, stats = preference_pairs(rec, reward, hist, picked, a.sessions, cfg.eval.batch_size)
        ref = copy.deepcopy(model).eval()  # the reference: this round's starting model
        trained = align_round(model, ref, pairs, hist, examples, a, rng, device, bf16, cfg.train.grad_clip)
        row = {"round": r + 1, "users": len(picked), **stats, **trained}
        row["valid"] = _probe(cfg, parts, model, sequences, valid_reward, valid, m)
        row["seconds"] = round(time.perf_counter() - start, 1)
        state["rounds"].append(row)
        logger.info("align round %d: %s", r + 1, row)
        state.update(state_dict=model.state_dict(), before=before)
        io.write_atomic(ckpt_path, lambda p: torch.save(state, p))
    io.write_atomic(run_dir / io.ALIGNED, lambda p: torch.save({**meta, "state_dict": model.state_dict(),
                                                                 "aligned_rounds": a.rounds}, p))  # fmt: skip
    return {"rounds": state["rounds"], "before": before, "sessions": a.sessions, "share": a.share}


__all__ = ["REWARD_FILES", "check_align", "list_measures", "load_reward", "reward_of", "run_alignment", "train_reward"]
