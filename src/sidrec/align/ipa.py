"""Iterative preference alignment (IPA) of a SID generator with DPO, OneRec's sec. 3.4.

One round: for a sample of users (`align.share`), beam-search N sessions (`align.sessions`) from the current
model, score each with the reward model R(u, S), take the best as chosen and the worst as rejected; then train
on next-token loss + lambda x DPO loss (Rafailov et al., "Direct Preference Optimization", NeurIPS 2023):

    L_DPO = -log sigmoid(beta x [(log pi(c) - log ref(c)) - (log pi(r) - log ref(r))])

where log pi(S) is the sum of the log-probabilities of S's SID tokens (`token_logp`), and the reference `ref` is
the model as it was at the start of the round (the previous round's model; the supervised one in round 1).
Each DPO step also takes a batch of the supervised training examples, so the model keeps its next-token skill.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sidrec.config import AlignConfig
from sidrec.data.batches import SIDExamples, sid_batch

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""reward(rows (B,), sessions (B, N, m) item_idx) -> (B, N) R(u, S) of those users' sessions."""


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float):
    """Mean DPO loss over pairs and the share of pairs whose implicit reward margin is positive."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(margin).mean(), (margin > 0).float().mean()


class Pairs(NamedTuple):
    rows: np.ndarray  # (P,) which of the sampled histories each pair belongs to
    chosen: np.ndarray  # (P, m) item_idx
    rejected: np.ndarray  # (P, m)


def preference_pairs(rec, reward: RewardFn, histories: list[np.ndarray], users: np.ndarray, n: int,
                     batch_size: int = 128) -> tuple[Pairs, dict]:  # fmt: skip
    """The N best beams per history from `rec` (a SIDRecommender), scored by `reward`: chosen = the reward's best,
    rejected = its worst, for histories with two or more complete sessions. Returns the pairs and mean rewards."""
    m = rec.model.shape.target_items
    rows, chosen, rejected, stats = [], [], [], {"all": [], "top_beam": [], "chosen": [], "rejected": []}
    for s in range(0, len(histories), batch_size):
        part = np.arange(s, min(s + batch_size, len(histories)))
        sessions, logp = rec.lists([histories[i] for i in part], m, users[part], width=n)  # (B, N, m)
        complete = np.isfinite(logp) & (sessions > 0).all(-1)
        r = np.where(complete, reward(part, sessions), np.nan)
        for i, row in enumerate(part):
            if complete[i].sum() < 2:
                continue
            best, worst = int(np.nanargmax(r[i])), int(np.nanargmin(r[i]))
            rows.append(row)
            chosen.append(sessions[i, best])
            rejected.append(sessions[i, worst])
            stats["all"].append(float(np.nanmean(r[i])))
            stats["top_beam"].append(float(r[i, 0]) if complete[i, 0] else np.nan)
            stats["chosen"].append(float(r[i, best]))
            stats["rejected"].append(float(r[i, worst]))
    pairs = Pairs(
        np.asarray(rows, dtype=np.int64), np.asarray(chosen).reshape(-1, m), np.asarray(rejected).reshape(-1, m)
    )
    summary = {f"reward_{k}": round(float(np.nanmean(v)), 6) if v else float("nan") for k, v in stats.items()}
    return pairs, {**summary, "pairs": len(rows)}


def align_round(
    model: nn.Module,
    ref: nn.Module,
    pairs: Pairs,
    histories: list[np.ndarray],
    examples: SIDExamples,
    cfg: AlignConfig,
    rng: np.random.Generator,
    device: torch.device,
    bf16: bool = False,
    grad_clip: float = 1.0,
) -> dict:
    """Train `model` on next-token loss + lambda x DPO over `pairs` for `cfg.epochs` passes; `ref` stays fixed."""
    if len(pairs.rows) == 0:
        return {"steps": 0}
    ref.eval()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    h = model.shape.max_history

    def batch(rows: np.ndarray, items: np.ndarray) -> dict[str, Tensor]:
        return sid_batch([histories[i] for i in pairs.rows[rows]], items[rows], examples.sids, examples.item_tokens,
                         max_history=h, device=device)  # fmt: skip

    logs = {"dpo_loss": [], "ntp_loss": [], "pair_accuracy": []}
    for _ in range(cfg.epochs):
        order = rng.permutation(len(pairs.rows))
        for s in range(0, len(order), cfg.batch_size):
            rows = order[s : s + cfg.batch_size]
            chosen, rejected = batch(rows, pairs.chosen), batch(rows, pairs.rejected)
            model.train()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                with torch.no_grad():
                    ref_c, ref_r = ref.token_logp(chosen).sum(1), ref.token_logp(rejected).sum(1)
                pol_c, pol_r = model.token_logp(chosen).sum(1), model.token_logp(rejected).sum(1)
                dpo, accuracy = dpo_loss(pol_c, pol_r, ref_c, ref_r, cfg.beta)
                ntp = model.loss(examples.batch(rng.choice(len(examples), min(len(examples), cfg.batch_size * 4)),
                                                device))  # fmt: skip
                loss = ntp + cfg.lam * dpo
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            logs["dpo_loss"].append(float(dpo.detach()))
            logs["ntp_loss"].append(float(ntp.detach()))
            logs["pair_accuracy"].append(float(accuracy))
    model.eval()
    return {"steps": len(logs["dpo_loss"]), **{k: round(float(np.mean(v)), 6) for k, v in logs.items()}}


__all__ = ["Pairs", "RewardFn", "align_round", "dpo_loss", "preference_pairs"]
