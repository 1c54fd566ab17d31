"""`sidrec bench`: training and beam-search throughput on Beauty-shaped synthetic input.

Input (seeded): 12,101 items with distinct random SIDs (`quantize.levels` x `quantize.codebook_size`
plus a dedup digit of 4), 20-item histories = 80 encoder tokens, batches of `train.batch_size`: the
shape of the published TIGER / GRID timings (batch 256, 80 history tokens). Timed on the same inputs:
our TIGER as configured, our TIGER at the GRID / TIGER size (d 128, 4+4 layers, 6 heads x 64, d_ff
1024, no user tokens) and, with `reference`, a reference model given by the caller
(`benchmarks/bench_t5.py` adds Hugging Face `T5ForConditionalGeneration` with that config).
With `rpg`, also RPG (parallel long SIDs) at the shipped `beauty_rpg` shape over random M-digit codes
of the same 12,101 items: training on the same histories (every position a target, as it trains)
and recommendation by exact scoring of every item and by graph decoding (untrained weights: the
speed of both does not depend on them; graph decoding's agreement with exact decoding is measured on
a trained run by `benchmarks/rpg_graph.py`).

Training: AdamW steps as `train.fit` takes them (clipping, `use_bf16` autocast); samples/s = batch /
median step time after warm-up. Beam search: width 10 over `users` users in batches of
`eval.batch_size` through `SIDRecommender` (trie-constrained and free). The models run interleaved in
one process (fair ratios on a noisy machine); with a reference, each row's ratios are ours / its.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor, nn

from sidrec import flops
from sidrec.config import Config, ModelConfig, config_to_dict, load_config, resolve_config_path
from sidrec.data.batches import encoder_inputs, item_inputs
from sidrec.models import build_model, model_kind
from sidrec.models.generator import SIDGenerator
from sidrec.recommender import GraphRecommender, ItemRecommender, SIDRecommender, item_token_table
from sidrec.report import git_commit, machine
from sidrec.train import _optimizer, use_bf16

logger = logging.getLogger(__name__)

ITEMS, HISTORY, DEDUP, BEAMS, WARMUP, ROUNDS = 12_101, 20, 4, 10, 2, 4
GRID_SIZE = dict(d_model=128, n_heads=6, d_head=64, d_ff=1024, n_enc_layers=4, n_dec_layers=4, user_tokens=0)


class BenchResult(str):
    """The printable table (a `str`), with the measurements as a JSON-ready dict in `.record`."""

    record: dict

    def __new__(cls, table: str, record: dict) -> BenchResult:
        obj = super().__new__(cls, table)
        obj.record = record
        return obj


@dataclass
class Setup:
    cfg: Config
    device: torch.device
    bf16: bool
    sids: np.ndarray  # (ITEMS, levels + 1) level-local codes
    train: tuple[np.ndarray, np.ndarray, np.ndarray]  # histories (n, HISTORY), user ids (n,), target items (n,)

    @property
    def autocast(self) -> dict:
        return dict(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)


@dataclass
class Entry:
    """One timed model: its training closure, its beam-search closures by mode, and its timings."""

    name: str
    params: int
    step: Callable[[int], None]  # one optimizer step on pre-built batch i
    beam: dict[str, Callable[[list[np.ndarray], np.ndarray], object]]  # mode -> search(histories, users)
    size: flops.EncDecSize | None  # for the analytic FLOP counts (None: not counted for this architecture)
    step_s: list[float] = field(default_factory=list)
    beam_s: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # model-specific facts for the record (RPG: graph build time)
    reference: bool = False  # the row the others' ratios are taken against


def synthetic_sids(rng: np.random.Generator, levels: int, codebook_size: int) -> np.ndarray:
    """(ITEMS, levels + 1) distinct SIDs: random codes, then TIGER's dedup digit (rank among equals).

    Rows whose prefix is shared by more than `DEDUP` items are re-drawn until every SID fits.
    """
    if codebook_size**levels * DEDUP < ITEMS:
        raise ValueError(f"bench needs quantize.codebook_size ** quantize.levels * {DEDUP} >= {ITEMS} distinct SIDs")
    codes = rng.integers(0, codebook_size, size=(ITEMS, levels))
    while True:
        inv = np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1)
        order = np.argsort(inv, kind="stable")
        rank = np.empty(ITEMS, dtype=np.int64)
        rank[order] = np.arange(ITEMS) - np.searchsorted(inv[order], inv[order])
        bad = rank >= DEDUP
        if not bad.any():
            return np.concatenate([codes, rank[:, None]], axis=1)
        codes[bad] = rng.integers(0, codebook_size, size=(int(bad.sum()), levels))


def train_batches(s: Setup, model: SIDGenerator) -> list[dict[str, Tensor]]:
    """`model`'s training batches (tokens, positions, codes), plus an attention mask and flat-vocabulary labels
    (what a Hugging Face encoder-decoder reference takes)."""
    table, size = item_token_table(s.sids, model.shape.offsets), s.cfg.train.batch_size
    hists, users, targets = s.train
    out = []
    for sl in (slice(i, i + size) for i in range(0, len(hists), size)):
        tokens, pos = encoder_inputs(
            list(hists[sl]), table, max_history=HISTORY, users=users[sl], user_tokens=model.shape.user_tokens
        )
        codes = torch.from_numpy(s.sids[targets[sl] - 1])
        labels = codes + torch.tensor(model.shape.offsets)
        b = {"tokens": tokens, "positions": pos, "codes": codes, "mask": (tokens != 0).long(), "labels": labels}
        b.update(items=item_inputs(list(hists[sl]), HISTORY), target=torch.from_numpy(targets[sl]))  # a repeat head's
        out.append({k: v.to(s.device) for k, v in b.items()})
    return out


def stepper(s: Setup, model: nn.Module, loss_fn, batches: list[dict]) -> Callable[[int], None]:
    """One training step on batch i as `train.fit` takes it (AdamW, clipping, autocast); ends in eval mode."""
    opt = _optimizer(model, s.cfg.train)

    def step(i: int) -> None:
        model.train()
        with torch.autocast(**s.autocast):
            loss = loss_fn(batches[i % len(batches)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s.cfg.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), s.cfg.train.grad_clip)
        opt.step()
        loss.item()  # waits for the device
        model.eval()  # dropout off for the beam searches timed between training rounds

    return step


def _ours(s: Setup, name: str, model_cfg: ModelConfig) -> tuple[Entry, SIDGenerator]:
    sizes = (s.cfg.quantize.codebook_size,) * s.cfg.quantize.levels + (DEDUP,)
    model = build_model(model_cfg, level_sizes=sizes, max_history=HISTORY).to(s.device)
    beam = {}
    for mode in ("constrained", "free"):
        rec = SIDRecommender(model, s.sids, beam_width=BEAMS, constrained=mode == "constrained", bf16=s.bf16)
        beam[mode] = lambda h, u, rec=rec: rec.recommend(h, k=BEAMS, users=u)
    params = sum(p.numel() for p in model.parameters())
    sh, size = model.shape, None  # FLOPs are counted for encoder-decoders only (sidrec.flops)
    if hasattr(sh, "n_enc_layers") and hasattr(sh, "n_dec_layers") and not getattr(sh, "experts", 0):
        size = flops.EncDecSize(sh.d_model, sh.n_heads, sh.d_head, sh.d_ff, sh.n_enc_layers, sh.n_dec_layers, sizes)
    return Entry(name, params, stepper(s, model, model.loss, train_batches(s, model)), beam, size), model


def _rpg(s: Setup) -> Entry:
    """RPG at the shipped `beauty_rpg` shape: training on the bench histories, exact and graph decoding."""
    cfg = load_config(resolve_config_path("beauty_rpg"))
    rng = np.random.default_rng(s.cfg.seed)
    codes = rng.integers(0, cfg.quantize.codebook_size, (ITEMS, cfg.quantize.levels))
    model = build_model(cfg.model, max_history=HISTORY, codes=codes, codebook_size=cfg.quantize.codebook_size)
    model = model.to(s.device)
    hists, size = s.train[0], s.cfg.train.batch_size
    seqs = np.concatenate([hists, s.train[2][:, None]], axis=1)  # (n, HISTORY + 1): every position has a target
    batches = [
        {"inputs": item_inputs(list(seqs[i : i + size, :-1]), HISTORY).to(s.device),
         "targets": item_inputs(list(seqs[i : i + size, 1:]), HISTORY).to(s.device)}
        for i in range(0, len(seqs), size)
    ]  # fmt: skip
    e = cfg.eval
    exact = ItemRecommender(model, max_history=HISTORY, bf16=s.bf16)
    graph = GraphRecommender(model, max_history=HISTORY, beams=e.graph_beams, edges=e.graph_edges,
                             steps=e.graph_steps, bf16=s.bf16, seed=s.cfg.seed)  # fmt: skip
    t0 = time.perf_counter()
    graph.build_graph()
    graph_s = time.perf_counter() - t0
    decode = {
        "exact": lambda h, u: exact.recommend(h, k=BEAMS),
        "graph": lambda h, u: graph.recommend(h, k=BEAMS),
    }
    m, q = cfg.model, cfg.quantize
    name = f"sidrec RPG (beauty_rpg: {q.name} {q.levels}x{q.codebook_size}, {m.n_enc_layers}L d{m.d_model})"
    params = sum(p.numel() for p in model.parameters())
    entry = Entry(name, params, stepper(s, model, model.loss, batches), decode, None)
    entry.extra = {"graph_build_s": round(graph_s, 2), "graph": dict(beams=e.graph_beams, edges=e.graph_edges,
                                                                      steps=e.graph_steps)}  # fmt: skip
    return entry


def matmul_peak(device: torch.device, bf16: bool, n: int = 2048, repeats: int = 5) -> float:
    """The machine's dense matmul rate (TFLOP/s) in the benchmark's precision: best of `repeats` n x n products."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):  # the first product warms up the kernels
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e12


def _measure(entries: list[Entry], steps: int, hists: np.ndarray, users: np.ndarray, eval_batch: int) -> None:
    """Fill `step_s` and `beam_s` of every entry, interleaving the models round by round."""
    for e in entries:
        logger.info("warm-up: %s", e.name)
        for i in range(WARMUP):
            e.step(i)
        for search in e.beam.values():
            search(list(hists[:16]), users[:16])
    rounds = max(1, min(ROUNDS, steps))
    for r in range(rounds):
        n = steps // rounds + (r < steps % rounds)
        for e in entries[r % len(entries) :] + entries[: r % len(entries)]:
            logger.info("train round %d/%d: %s, %d steps", r + 1, rounds, e.name, n)
            for _ in range(n):
                t0 = time.perf_counter()
                e.step(WARMUP + len(e.step_s))
                e.step_s.append(time.perf_counter() - t0)
    starts = list(range(0, len(hists), eval_batch))
    for j, start in enumerate(starts):
        h, u = list(hists[start : start + eval_batch]), users[start : start + eval_batch]
        order = [(e, m) for e in entries for m in e.beam]
        for e, mode in order[j % len(order) :] + order[: j % len(order)]:
            logger.info("beam batch %d/%d: %s, %s", j + 1, len(starts), e.name, mode)
            t0 = time.perf_counter()
            e.beam[mode](h, u)
            e.beam_s[mode] = e.beam_s.get(mode, 0.0) + time.perf_counter() - t0


Reference = Callable[[Setup, SIDGenerator], tuple["Entry | None", str]]


def run_bench(
    cfg: Config, *, steps: int, users: int, rpg: bool = False, reference: Reference | None = None
) -> BenchResult:
    """Time training and beam search of our model (configured and GRID size) and, if given, a reference.

    Args:
        cfg: the configuration (model, quantize levels / codebook size, batch sizes, precision, device).
        steps: timed training steps per model (after warm-up).
        users: users beam-searched per model and mode.
        rpg: also time RPG (shipped `beauty_rpg` shape): training, exact and graph decoding.
        reference: (setup, our GRID-size model) -> (its Entry, marked `reference`, or None; a note for the record);
            `benchmarks/bench_t5.py` gives Hugging Face T5 with the TIGER / GRID config.
    Returns:
        The fixed-width table (a str) whose `.record` holds the measurements as a dict.
    """
    if steps < 1 or users < 1 or model_kind(cfg.model.name) != "sid":
        raise ValueError(f"bench needs a SID generator (model.name=tiger), steps, users >= 1; got {cfg.model.name}, "
                         f"{steps}, {users}")  # fmt: skip
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if cfg.train.device == "auto" else cfg.train.device)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    sids = synthetic_sids(rng, cfg.quantize.levels, cfg.quantize.codebook_size)
    n = cfg.train.batch_size * min(steps + WARMUP, 8)  # distinct training batches, cycled
    train = (rng.integers(1, ITEMS + 1, (n, HISTORY)), rng.integers(0, 1 << 30, n), rng.integers(1, ITEMS + 1, n))
    s = Setup(cfg, device, use_bf16(cfg.train.precision, device), sids, train)
    eval_hists, eval_users = rng.integers(1, ITEMS + 1, (users, HISTORY)), rng.integers(0, 1 << 30, users)
    m = cfg.model
    desc = f"{m.n_enc_layers}+{m.n_dec_layers} d{m.d_model} {m.n_heads}x{m.d_head} ff{m.d_ff}"
    ours, _ = _ours(s, f"sidrec, config {desc}", m)
    grid, grid_model = _ours(s, "sidrec, GRID size 4+4 d128 6x64 ff1024", replace(m, **GRID_SIZE))
    entries, ref_note = [ours, grid], "none"
    if reference is not None:
        ref, ref_note = reference(s, grid_model)
        entries += [ref] if ref is not None else []
    if rpg:
        entries.append(_rpg(s))
    logger.info("bench on %s (bf16 %s): %d models, %d steps, %d users", device, s.bf16, len(entries), steps, users)
    peak = [matmul_peak(device, s.bf16)]
    _measure(entries, steps, eval_hists, eval_users, cfg.eval.batch_size)
    peak.append(matmul_peak(device, s.bf16))  # before and after: the best of the two is the peak
    record = _record(s, entries, steps, users, ref_note, max(peak))
    return BenchResult(_table(record), record)


def _record(s: Setup, entries: list[Entry], steps: int, users: int, ref_note: str, peak: float) -> dict:
    """The measurements as a JSON-ready dict (the format of benchmarks/results/bench_*.json)."""
    cfg, q, rows = s.cfg, s.cfg.quantize, []
    memory = HISTORY * (q.levels + 1)
    for e in entries:
        med = statistics.median(e.step_s)
        row = dict(model=e.name, params=e.params, train_samples_per_s=round(cfg.train.batch_size / med, 1))
        row.update(train_step_ms_median=round(1000 * med, 2), train_step_ms=[round(1000 * t, 2) for t in e.step_s])
        step_flops = flops.train_step(e.size, memory, cfg.train.batch_size) if e.size else None
        train_tflops = step_flops / med / 1e12 if step_flops else None
        row.update(train_gflop_per_step=round(step_flops / 1e9, 3) if step_flops else None)
        row.update(train_tflops=round(train_tflops, 6) if step_flops else None)
        row.update(train_pct_of_peak=round(100 * train_tflops / peak, 2) if step_flops else None)
        per_user = flops.beam_search(e.size, memory, BEAMS) if e.size else None
        row["beam_gflop_per_user"] = round(per_user / 1e9, 4) if per_user else None
        for mode in ("exact", "graph"):  # parallel decoding (RPG): top-10 per user, no beam search
            row[f"{mode}_users_per_s"] = round(users / e.beam_s[mode], 1) if mode in e.beam_s else None
        row.update(e.extra)
        for mode in ("constrained", "free"):
            ups = users / e.beam_s[mode] if mode in e.beam_s else None
            counted = ups and per_user
            row[f"beam_{mode}_users_per_s"] = round(ups, 1) if ups else None
            row[f"beam_{mode}_tflops"] = round(ups * per_user / 1e12, 6) if counted else None
            row[f"beam_{mode}_pct_of_peak"] = round(100 * ups * per_user / 1e12 / peak, 2) if counted else None
        rows.append(row)
    ref = next((r for r, e in zip(rows, entries, strict=True) if e.reference), None)  # ratios: ours / the reference's
    pairs = {"train_vs_ref": ("train_samples_per_s",) * 2, "beam_free_vs_ref": ("beam_free_users_per_s",) * 2}
    pairs["beam_constrained_vs_ref_free"] = ("beam_constrained_users_per_s", "beam_free_users_per_s")
    for r in rows:
        same_task = r.get("exact_users_per_s") is None  # RPG trains on every position: no ratio to another's samples
        r.update({k: round(r[a] / ref[b], 3) if ref and r[a] and same_task else None for k, (a, b) in pairs.items()})
    inp = dict(items=ITEMS, sid_levels=[q.codebook_size] * q.levels + [DEDUP], history_items=HISTORY)
    inp.update(encoder_tokens=HISTORY * (q.levels + 1), train_batch_size=cfg.train.batch_size, seed=cfg.seed)
    inp.update(eval_batch_size=cfg.eval.batch_size, beam_width=BEAMS, timed_steps=steps, warmup_steps=WARMUP)
    rec = dict(benchmark="sidrec bench", date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    rec.update(commit=git_commit(), machine=machine(), device=str(s.device), threads=torch.get_num_threads())
    rec.update(precision="bf16" if s.bf16 else "fp32", reference=ref_note, input={**inp, "users": users})
    rec["matmul_peak_tflops"] = round(peak, 4)
    rec["flops"] = (
        f"analytic (sidrec.flops): matmul FLOPs only, 2mnk each; training = 3x forward; peak = best {2048}^3 "
        f"{rec['precision']} matmul, timed before and after the models"
    )
    rec["timing"] = (
        f"train: batch / median step time of {steps} AdamW steps after {WARMUP} warm-up, models interleaved in rounds; "
        "beam: users / total time of a model's search over all batches (interleaved), after a warm-up batch"
    )
    return {**rec, "results": rows, "config": config_to_dict(cfg)}


def _table(rec: dict) -> str:
    """The record as a fixed-width table, then its context lines."""

    def fmt(v: float | None, spec: str, unit: str = "") -> str:
        return "n/a" if v is None else format(v, spec) + unit

    def cells(r: dict) -> list[str]:
        nums = [fmt(r[k], ",.0f") for k in keys] + [fmt(r[k], ".2f", "x") for k in ratios]
        eff = [f"{fmt(r[k], '.3f')} ({fmt(r[p], '.1f', '%')})" for k, p in effs]
        return [r["model"], f"{r['params'] / 1e6:.2f}M", *nums, *eff]

    head = ("model", "params", "train samples/s", "beam-10 users/s constr.", "beam-10 users/s free")
    head += ("top-10 users/s exact", "top-10 users/s graph")
    head += ("train vs ref", "free beam vs ref", "constr. beam vs ref", "train TFLOP/s (peak)", "free beam TFLOP/s")
    effs = (("train_tflops", "train_pct_of_peak"), ("beam_free_tflops", "beam_free_pct_of_peak"))
    keys = ("train_samples_per_s", "beam_constrained_users_per_s", "beam_free_users_per_s")
    keys += ("exact_users_per_s", "graph_users_per_s")
    ratios = ("train_vs_ref", "beam_free_vs_ref", "beam_constrained_vs_ref_free")
    rows = [cells(r) for r in rec["results"]]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    inp = rec["input"]
    return "\n".join(
        [line(head), "-" * len(line(head)), *(line(c) for c in rows), ""]
        + [
            f"input: {inp['items']:,} items, SIDs {'x'.join(map(str, inp['sid_levels']))} (last: dedup digit), "
            f"{inp['history_items']}-item histories = {inp['encoder_tokens']} encoder tokens, seed {inp['seed']}",
            f"timed: {inp['timed_steps']} train steps per model at batch {inp['train_batch_size']} (median step, "
            f"{inp['warmup_steps']} warm-up); {inp['users']} users per model and mode at eval batch "
            f"{inp['eval_batch_size']}, beam width {inp['beam_width']}",
            f"reference: {rec['reference']}; ratios are ours / the reference's (free beam: free vs free decoding; "
            "constr. beam: our default trie-constrained search vs the reference's free one)",
            f"peak: {rec['matmul_peak_tflops']:.3f} TFLOP/s ({rec['flops']})",
            f"machine: {rec['machine']}",
            f"device: {rec['device']}, precision: {rec['precision']}, commit: {rec['commit']}, date: {rec['date']}",
        ]
    )
