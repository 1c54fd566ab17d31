"""Recommenders: `recommend(histories, k) -> (item ids (B, k), scores (B, k))`.

Evaluation and serving depend only on this protocol, never on model internals.
`SIDRecommender` runs beam search over a generative SID model and maps SIDs to items;
`ItemRecommender` takes the top-k of a model's scores over all items (SASRec, HSTU; RPG's exact
decoding); `GraphRecommender` walks an item graph with a parallel SID model's digit scores (RPG).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sidrec.data.batches import encoder_inputs, item_inputs
from sidrec.decode.beam import beam_search
from sidrec.decode.graph import graph_topk, item_graph
from sidrec.decode.trie import SIDTrie
from sidrec.models.generator import SIDGenerator


class Recommendations(NamedTuple):
    items: np.ndarray  # (B, k) item_idx, best first; all distinct and real
    scores: np.ndarray  # (B, k) log-probability of the item's SID (-inf for a popularity fill); ID models: score
    invalid_beams: int  # beams whose SID names no item (free decoding only)
    filled: int  # slots filled from popularity because too few valid beams remained


class Recommender(Protocol):
    def recommend(self, histories: list[np.ndarray], k: int, users: np.ndarray | None = None) -> Recommendations: ...


def item_token_table(sids: np.ndarray, offsets: tuple[int, ...]) -> np.ndarray:
    """(N, L) codes -> (N+1, L) token ids; row 0 is the padding item (all PAD = 0)."""
    table = np.zeros((sids.shape[0] + 1, sids.shape[1]), dtype=np.int64)
    table[1:] = sids + np.asarray(offsets)
    return table


class SIDRecommender:
    """Beam search over `model`'s SID tokens, constrained by the trie of valid SIDs (or free)."""

    def __init__(
        self,
        model: SIDGenerator,
        sids: np.ndarray,
        *,
        beam_width: int = 20,
        constrained: bool = True,
        popularity: np.ndarray | None = None,
        bf16: bool = True,
        seed: int = 0,
        cold: tuple[np.ndarray, np.ndarray] | None = None,
        cold_candidates: int = 0,
    ) -> None:
        """`cold`: (item_idx (C,) of the items no training sequence holds, every item's text vectors (N, D)); with
        `cold_candidates` M > 0, each history's M nearest of them by text (`text_query`) are scored by the model
        and ranked with the beam's items (LIGER's cold candidates, Yang et al., 2024)."""
        self.model = model.eval()
        self.sids = np.asarray(sids)
        self.cold_candidates = cold_candidates if cold is not None and len(cold[0]) else 0
        if self.cold_candidates:
            vectors = np.asarray(cold[1], dtype=np.float32)
            self.text = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self.cold_items = np.asarray(cold[0], dtype=np.int64)
            self.cold_text = self.text[self.cold_items - 1]  # (C, D), once
        self.device = next(model.parameters()).device
        self.level_sizes = model.shape.level_sizes
        self.trie = SIDTrie(sids, self.level_sizes).to(self.device)
        self.item_tokens = item_token_table(sids, model.shape.offsets)
        self.beam_width = beam_width
        self.constrained = constrained
        n = sids.shape[0]
        pop = np.zeros(n + 1) if popularity is None else np.asarray(popularity, dtype=np.float64)
        self.fallback = np.argsort(-pop[1:], kind="stable") + 1  # item_idx by popularity
        self.bf16 = bf16
        self.rng = np.random.default_rng(seed)  # picks among items that share a SID (no de-dup digit)

    @torch.no_grad()
    def _beams(self, histories: list[np.ndarray], users: np.ndarray | None, items: int = 1, width: int = 0):
        shape = self.model.shape
        tokens, positions = encoder_inputs(
            histories, self.item_tokens, max_history=shape.max_history, users=users, user_tokens=shape.user_tokens
        )
        tokens, positions = tokens.to(self.device), positions.to(self.device)
        b, w = len(histories), width or self.beam_width
        dtype = torch.bfloat16 if self.bf16 else torch.float32
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.bf16):
            state = {"cache": self.model.prefill(tokens, positions, beams=w)}

            def step(level: int, prev: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
                logp, state["cache"] = self.model.step(state["cache"], level, prev, parent)
                return logp

            return beam_search(
                step,
                batch_size=b,
                beam_width=w,
                level_sizes=self.level_sizes,
                trie=self.trie,
                constrained=self.constrained,
                device=self.device,
                items=items,
            )

    def lists(
        self, histories: list[np.ndarray], items: int, users: np.ndarray | None = None, width: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Beam search over whole lists of `items` SIDs (a generator trained on sessions, `train.target_items`): the
        `width` (default: the beam width) best lists per history, (B, W, items) item_idx (0 where a beam names no
        item) and their log-probabilities (B, W)."""
        result = self._beams(histories, users, items=items, width=width)
        leaves = result.leaves.reshape(len(histories), -1, items)
        found = leaves >= 0
        named = torch.where(found, self.trie.leaf_first_item[leaves.clamp(min=0)], torch.zeros_like(leaves))
        return named.cpu().numpy(), result.scores.float().cpu().numpy()

    def recommend(self, histories: list[np.ndarray], k: int, users: np.ndarray | None = None) -> Recommendations:
        """Top-k distinct real items per history: one item per beam in beam order, then the rest, then popularity.

        A beam's SID names one item, or several when SIDs are not de-duplicated (`quantize.dedup=none`):
        then one of them, drawn at random (seeded), takes the beam's rank and the others stay free for
        the ranks after every beam has placed one (GRID's alternative to TIGER's de-dup digit, Table 7).
        Each finished beam names a distinct leaf of the trie and each item lies under one leaf, so the
        items are distinct: the mapping is a vectorised gather and sort; only rows left with fewer than
        k items take the popularity loop. A generator with a repeat head (`model.repeat=mixture`) ranks the
        history's items beside the generated ones by the repeat / explore mixture (`_mix`).
        """
        result = self._beams(histories, users)
        mixing = getattr(self.model, "repeat_head", None) is not None  # models.generator.RepeatAware
        want, k = k, max(k, self.beam_width) if mixing else k  # mixing: every beam's item, before the mixture
        leaves = result.leaves.cpu().numpy()
        scores = result.scores.cpu().numpy()
        b = len(histories)
        valid = (leaves >= 0) & np.isfinite(scores)
        invalid = int(((leaves < 0) & np.isfinite(scores)).sum())
        rows, beams = np.nonzero(valid)  # row-major: each row's beams in order
        leaf = leaves[rows, beams]
        starts, counts = self.trie.leaf_offsets[leaf], np.diff(self.trie.leaf_offsets)[leaf]
        picks = self.rng.integers(0, counts) if len(counts) else counts  # each beam's item among its SID's
        pair = np.repeat(np.arange(len(rows)), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        order = np.lexsort((within, pair, within != picks[pair], rows[pair]))  # row, picked first, beam order
        pair, within = pair[order], within[order]
        rows_rep = rows[pair]
        items = self.trie.leaf_flat_items[starts[pair] + within]
        item_scores = scores[rows, beams][pair]
        first = np.searchsorted(rows_rep, np.arange(b))  # where each row's items begin
        rank = np.arange(len(rows_rep)) - first[rows_rep]
        keep = rank < k
        out_items = np.zeros((b, k), dtype=np.int64)
        out_scores = np.full((b, k), -np.inf)
        out_items[rows_rep[keep], rank[keep]] = items[keep]
        out_scores[rows_rep[keep], rank[keep]] = item_scores[keep]
        have = np.bincount(rows_rep[keep], minlength=b)
        if self.cold_candidates:
            out_items, out_scores = self._with_cold(histories, users, out_items, out_scores)
            out_items, out_scores = out_items[:, :k], out_scores[:, :k]
            have = np.isfinite(out_scores).sum(1)
        if mixing:
            out_items, out_scores = self._mix(histories, users, out_items, out_scores)
            out_items, out_scores, k = out_items[:, :want], out_scores[:, :want], want
            have = np.isfinite(out_scores).sum(1)
        filled = 0
        for row in np.nonzero(have < k)[0]:
            seen = set(out_items[row, : have[row]].tolist())
            n = int(have[row])
            for item in self.fallback:
                if n >= k:
                    break
                if item not in seen:
                    out_items[row, n] = item
                    seen.add(int(item))
                    n += 1
                    filled += 1
        return Recommendations(out_items, out_scores, invalid, filled)

    @torch.no_grad()
    def sid_logprob(self, histories: list[np.ndarray], users: np.ndarray | None, items: np.ndarray) -> np.ndarray:
        """(B, M) item_idx -> (B, M) log-probability of each item's whole SID given its row's history (the
        generator's step function, one 'beam' per item)."""
        shape, (b, m) = self.model.shape, items.shape
        tokens, positions = encoder_inputs(
            histories, self.item_tokens, max_history=shape.max_history, users=users, user_tokens=shape.user_tokens
        )
        codes = torch.from_numpy(self.sids[items.reshape(-1) - 1]).to(self.device)  # (B*M, L)
        total = torch.zeros(b * m, device=self.device)
        prev, parent = torch.full((b * m,), -1, device=self.device), torch.arange(b * m, device=self.device)
        dtype = torch.bfloat16 if self.bf16 else torch.float32
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.bf16):
            cache = self.model.prefill(tokens.to(self.device), positions.to(self.device), beams=m)
            for level in range(codes.shape[1]):
                logp, cache = self.model.step(cache, level, prev, parent)
                total += logp.float().gather(1, codes[:, level : level + 1]).squeeze(1)
                prev = codes[:, level]
        return total.reshape(b, m).cpu().numpy()

    def _with_cold(self, histories, users, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The beam's items plus each row's `cold_candidates` nearest cold items by text, by SID log-probability."""
        m = min(self.cold_candidates, len(self.cold_items))
        sim = text_query(histories, self.text) @ self.cold_text.T  # (B, C)
        near = np.argpartition(-sim, m - 1, axis=1)[:, :m] if m < sim.shape[1] else np.tile(np.arange(m), (len(sim), 1))
        cand = self.cold_items[near]  # (B, M) item_idx
        cand_scores = self.sid_logprob(histories, users, cand)
        cand_scores[(cand[:, :, None] == items[:, None, :]).any(-1)] = -np.inf  # already among the beam's items
        all_items, all_scores = np.concatenate([items, cand], 1), np.concatenate([scores, cand_scores], 1)
        order = np.argsort(-all_scores, axis=1, kind="stable")
        all_items, all_scores = np.take_along_axis(all_items, order, 1), np.take_along_axis(all_scores, order, 1)
        return np.where(np.isfinite(all_scores), all_items, 0), all_scores

    @torch.no_grad()
    def _mix(self, histories, users, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The repeat / explore mixture (models.repeat) over B rows of generated items, best first.

        A history item scores log P(repeat) + log P_r(item) (the pointer summed over the item's positions); a
        generated item not in the history scores log P(explore) + its SID's log-probability; generated items that
        are in the history are dropped (the pointer covers them). Empty slots (score -inf) hold item 0.
        """
        shape = self.model.shape
        tokens, positions = encoder_inputs(
            histories, self.item_tokens, max_history=shape.max_history, users=users, user_tokens=shape.user_tokens
        )
        hist = item_inputs(histories, shape.max_history).to(self.device)  # (B, T)
        dtype = torch.bfloat16 if self.bf16 else torch.float32
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.bf16):
            gate, logp = self.model.repeat(tokens.to(self.device), positions.to(self.device), hist)
        gate, p = gate.float(), logp.float().exp() * (hist != 0)
        same = hist[:, :, None] == hist[:, None, :]  # (B, T, T)
        later = torch.ones_like(same[0]).triu(1)  # j' > j
        last = (hist != 0) & ~(same & later).any(-1)  # each distinct item once, at its latest position
        p_item = (same.float() @ p[..., None]).squeeze(-1)  # (B, T): summed over the item's positions
        repeat = torch.where(last, F.logsigmoid(gate)[:, None] + p_item.clamp(min=1e-30).log(), float("-inf"))
        h = hist.cpu().numpy()
        beams = np.where((items[:, :, None] == h[:, None, :]).any(-1), -np.inf, scores)
        beams = _sharpen(beams, float(self.model.repeat_head.temperature))
        beams = beams + F.logsigmoid(-gate).cpu().numpy()[:, None]
        all_items = np.concatenate([items, h], axis=1)
        all_scores = np.concatenate([beams, repeat.cpu().numpy()], axis=1)
        order = np.argsort(-all_scores, axis=1, kind="stable")
        all_items, all_scores = np.take_along_axis(all_items, order, 1), np.take_along_axis(all_scores, order, 1)
        return np.where(np.isfinite(all_scores), all_items, 0), all_scores


def text_query(histories: list[np.ndarray], vectors: np.ndarray) -> np.ndarray:
    """(B, D) each history's text profile: its items' text vectors (`vectors` (N, D), L2-normalised, row i - 1 for
    item_idx i) averaged with weight 1/2 ** age, the newest item weighing most. Items past row N are skipped."""
    out = np.zeros((len(histories), vectors.shape[1]), np.float32)
    for i, hist in enumerate(histories):
        h = np.asarray(hist, dtype=np.int64)
        weights = TEXT_DECAY ** np.arange(len(h) - 1, -1, -1, dtype=np.float32)
        known = (h >= 1) & (h <= len(vectors))
        if known.any():
            out[i] = weights[known] @ vectors[h[known] - 1]
    return out


TEXT_DECAY = 0.5  # text_query: the weight of an item one step older than the next


def _sharpen(logp: np.ndarray, temperature: float) -> np.ndarray:
    """(B, W) beam log-probabilities -> log of p^(1/t), renormalised so that each row's beams keep their mass."""
    if temperature == 1.0:
        return logp
    with np.errstate(invalid="ignore"):
        mass = np.logaddexp.reduce(logp, axis=1, keepdims=True)
        scaled = logp / temperature
        out = scaled - np.logaddexp.reduce(scaled, axis=1, keepdims=True) + mass
    return np.where(np.isfinite(mass), out, logp)  # a row without a beam stays as it is


class ItemRecommender:
    """Top-k items by `model.score_all` (any model mapping (B, T) left-padded item_idx to (B, N+1) scores).

    The padding item never appears (its score is -inf). Items already in the history are ranked
    like any other unless `mask_history` (off by default: the SID recommenders do not mask either). At most
    `MAX_SCORES` scores are held at once: with a large catalog, histories are scored in smaller groups.
    """

    MAX_SCORES = 1 << 27  # item scores held at once (512 MiB of float32): a large catalog scores fewer users per pass

    def __init__(self, model, *, max_history: int, mask_history: bool = False, bf16: bool = False) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.max_history, self.mask_history, self.bf16 = max_history, mask_history, bf16

    @torch.no_grad()
    def recommend(
        self, histories: list[np.ndarray], k: int, users: np.ndarray | None = None, events: dict | None = None
    ) -> Recommendations:
        """Top-k distinct real items per history, best first; `users` is unused (ID models have no user input).
        `events`: per-event columns in step with the histories (times, actions) for a model that reads them
        (`model.events`); a model that does is scored without the ones not given."""
        rows = max(1, self.MAX_SCORES // (self.n_items() + 1))  # histories scored at once: bounded memory
        if len(histories) > rows:
            events = events or {}
            parts = [
                self.recommend(histories[s : s + rows], k, None, {n: v[s : s + rows] for n, v in events.items()})
                for s in range(0, len(histories), rows)
            ]
            return Recommendations(np.concatenate([p.items for p in parts]), np.concatenate([p.scores for p in parts]),
                                   0, 0)  # fmt: skip
        inputs = item_inputs(histories, self.max_history).to(self.device)  # (B, T)
        wanted = getattr(self.model, "events", ())
        extra = {n: item_inputs(v, self.max_history).to(self.device) for n, v in (events or {}).items() if n in wanted}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            scores = self.model.score_all(inputs, **extra).float()  # (B, N+1)
        scores[:, 0] = float("-inf")
        if self.mask_history:
            scores.scatter_(1, inputs, float("-inf"))  # padding (0) is -inf already
        n_items = scores.shape[1] - 1
        if k > n_items:
            raise ValueError(f"asked for {k} items per user but the catalogue has only {n_items}")
        top = scores.topk(k, dim=1)
        return Recommendations(top.indices.cpu().numpy(), top.values.cpu().numpy(), 0, 0)

    def n_items(self) -> int:
        """The items the model scores (its shape's n_items; 0 when it does not say)."""
        return int(getattr(getattr(self.model, "shape", None), "n_items", 0))


class GraphRecommender:
    """RPG's graph-constrained decoding over a parallel SID model (`decode.graph`).

    The model provides `codes` (N+1, M), `digit_logprobs(inputs) -> (B, M, K)` and `code_vectors()`
    (M, K, d); the item graph is built once, on the first call. Only `beams` x `edges` x `steps`
    items are scored per user, so the result may differ from exact decoding (its overlap is measured
    by `benchmarks/rpg_graph.py`).
    """

    def __init__(
        self,
        model,
        *,
        max_history: int,
        beams: int = 10,
        edges: int = 100,
        steps: int = 3,
        bf16: bool = False,
        seed: int = 0,
    ) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.max_history, self.bf16 = max_history, bf16
        self.beams, self.edges, self.steps = beams, edges, steps
        self.gen = torch.Generator().manual_seed(seed)
        self.graph: torch.Tensor | None = None
        self.visited = 0.0  # mean distinct items scored per user, last call

    @torch.no_grad()
    def build_graph(self) -> torch.Tensor:
        if self.graph is None:
            self.graph = item_graph(self.model.codes, self.model.code_vectors(), self.edges)
        return self.graph

    @torch.no_grad()
    def recommend(self, histories: list[np.ndarray], k: int, users: np.ndarray | None = None) -> Recommendations:
        """Top-k distinct items per history, best first (`users` is unused)."""
        graph = self.build_graph()
        inputs = item_inputs(histories, self.max_history).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logp = self.model.digit_logprobs(inputs).float()
        bias = getattr(self.model, "repeat", None)  # the model's learned score for items already in the history
        items, scores, seen = graph_topk(
            logp, self.model.codes, graph, k=k, beams=max(k, self.beams), steps=self.steps, gen=self.gen,
            history=inputs, repeat_bias=0.0 if bias is None else float(bias),
        )  # fmt: skip
        self.visited = float(seen.float().mean())
        return Recommendations(items.cpu().numpy(), scores.cpu().numpy(), 0, 0)


def session_items(rec) -> int:
    """Items per generated list of a recommender: a session-trained generator's m (`train.target_items`), else 1."""
    return rec.model.shape.target_items if hasattr(rec, "lists") else 1


def recommend_lists(
    rec, histories: list[np.ndarray], users: np.ndarray, n: int, batch_size: int = 256, desc: str = "lists"
) -> np.ndarray:
    """(U, n) item_idx, one whole list per history: a generator trained on sessions (`train.target_items` m > 1,
    OneRec) gives its best generated session, filled from its next-item ranking when n > m (skipping items already
    listed); any other recommender gives its top n."""
    m = session_items(rec)
    m = m if m > 1 else 0  # a next-item model's list is its ranking
    out = np.zeros((len(histories), n), dtype=np.int64)
    for s in tqdm(range(0, len(histories), batch_size), desc=desc, leave=False, mininterval=2):
        h, u = histories[s : s + batch_size], users[s : s + batch_size]
        best = rec.lists(h, m, u)[0][:, 0] if m else np.zeros((len(h), 0), dtype=np.int64)  # (B, m)
        top = rec.recommend(h, n + m, u).items if m < n or (best == 0).any() else None
        for row in range(len(h)):
            picked = list(dict.fromkeys(int(i) for i in best[row] if i > 0))[:n]
            for item in top[row] if top is not None and len(picked) < n else ():
                if len(picked) == n:
                    break
                if int(item) not in picked:
                    picked.append(int(item))
            out[s + row, : len(picked)] = picked
    return out
