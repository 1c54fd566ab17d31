"""Items added to a trained run without retraining: their Semantic IDs come from their text.

A SID model scores an item through its codes, so an item it never saw in training can be recommended
once it has a SID: its text is embedded with the run's embedder, the collaborative part of its
quantizer input (it has no co-occurrences yet) is the mean of its nearest text neighbours' (LIGER's
observation that cold items need a content route; Yang et al., 2024), the run's fitted quantizer
encodes it, and a SID already taken is made unique the run's way (`quantize.dedup`). The trained
catalog's files stay as they are; the added items live beside them:

    added_items.parquet  item_idx (N+1, ...), item_id, text
    added_sids.npy       their SIDs, row i is item N + 1 + i
    catalog.json         one entry per `add_items` call: file, SHA-256, items, time

`items(run_dir)` and `sids(run_dir)` read the whole catalog; the recommenders, the Python API, the
server (which reloads when catalog.json changes) and a later `evaluate` (whose fingerprint names the
added items, so it is stale after an addition) use them. Item-ID models cannot score an unseen item.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from sidrec import io
from sidrec.data.normalized import read_items_jsonl
from sidrec.data.schema import ITEM, ITEM_IDX, TEXT
from sidrec.data.split import train_sequences
from sidrec.data.text import render_texts
from sidrec.embed import build_embedder
from sidrec.models import entry
from sidrec.quantize import build_quantizer
from sidrec.quantize.collab import collab_vectors, from_text_neighbours, with_collab
from sidrec.quantize.sids import EXTRA_DIGIT, extend_unique

ADDED_ITEMS = "added_items.parquet"
ADDED_SIDS = "added_sids.npy"
CATALOG = "catalog.json"


def items(run_dir: Path) -> pl.DataFrame:
    """Every item of the run: the trained catalog, then the added items (item_idx 1..N+A)."""
    base = pl.read_parquet(Path(run_dir) / io.ITEMS)
    added = Path(run_dir) / ADDED_ITEMS
    return pl.concat([base, pl.read_parquet(added)]) if added.exists() else base


def sids(run_dir: Path) -> np.ndarray:
    """(N+A, L) SIDs of every item: the trained catalog's, then the added items'."""
    base = np.load(Path(run_dir) / io.SIDS)
    added = Path(run_dir) / ADDED_SIDS
    return np.concatenate([base, np.load(added)]) if added.exists() else base


def version(run_dir: Path) -> float:
    """When the catalog last changed (catalog.json's modification time; 0 before any addition)."""
    path = Path(run_dir) / CATALOG
    return path.stat().st_mtime if path.exists() else 0.0


def _collab(run_dir: Path, cfg, text: np.ndarray) -> np.ndarray:
    """New items' collaborative vectors: the mean of their 10 nearest trained items' by text cosine."""
    q = cfg.quantize
    base_text = np.load(run_dir / io.EMBEDDINGS, mmap_mode="r")
    seqs = train_sequences(pl.read_parquet(run_dir / io.SEQUENCES))
    base = collab_vectors(seqs, base_text.shape[0], q.collab_dim, q.collab_window, cfg.seed)
    every = np.concatenate([np.asarray(base_text, dtype=np.float32), np.asarray(text, dtype=np.float32)])
    rows = np.arange(len(base_text), len(every))
    return from_text_neighbours(every, np.concatenate([base, np.zeros((len(text), base.shape[1]), np.float32)]), rows)


def add_items(run_dir: str | Path, path: str | Path) -> dict:
    """Add the items of a JSONL file (one object per item: `item_id` and its text fields) to a trained SID run.

    Returns what was added: {"items": A, "first_item_idx": N+1, "seconds": ..., "ids": [...]}.
    Raises ValueError for an item-ID model, a run without a trained model, or an id the catalog has.
    """
    start, run_dir, path = time.perf_counter(), Path(run_dir), Path(path)
    cfg = io.load_run_config(run_dir)
    spec = entry(cfg.model.name)
    if not spec.needs_sids:
        raise ValueError(
            f"model.name={cfg.model.name} scores item ids it learned in training: it cannot score a new item. "
            "A Semantic-ID model (the default, tiger, decoder) can: its items' SIDs come from their text"
        )
    for name in (io.QUANTIZER, io.MODEL, io.EMBEDDINGS):
        if not (run_dir / name).exists():
            raise ValueError(f"{run_dir} has no {name}: add items to a trained run (`sidrec run --out {run_dir}`)")
    new = read_items_jsonl(path)
    catalog = items(run_dir)
    known = set(catalog[ITEM].to_list())
    clash = [i for i in new[ITEM].to_list() if i in known]
    if clash:
        raise ValueError(f"{path}: {len(clash)} item id(s) the run already has, first {clash[0]!r}; give new ids")
    if new[ITEM].n_unique() != new.height:
        raise ValueError(f"{path}: an item id occurs twice; each line is one new item")
    texts = render_texts(new, io.text_template(run_dir, cfg))
    x = build_embedder(cfg.embed).encode(texts)
    if cfg.quantize.collab_dim:
        x = with_collab(x, _collab(run_dir, cfg, x), cfg.quantize.collab_weight)
    quantizer = build_quantizer(cfg.quantize, x.shape[1], cfg.seed)
    quantizer.load_state_dict(torch.load(run_dir / io.QUANTIZER, weights_only=False)["state_dict"])
    codes = quantizer.encode(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()
    trained = np.load(run_dir / io.SIDS)  # a collision digit's vocabulary is its trained range (parts.level_sizes)
    limit = int(trained[:, -1].max()) + 1 if cfg.quantize.dedup in EXTRA_DIGIT and len(trained) else None
    added_sids = extend_unique(sids(run_dir), codes, cfg.quantize.dedup, cfg.quantize.codebook_size, cfg.seed, limit)
    first = catalog.height + 1
    rows = pl.DataFrame(
        {ITEM_IDX: np.arange(first, first + new.height, dtype=np.int64), ITEM: new[ITEM], TEXT: texts}
    ).select(catalog.columns)
    old_items = pl.read_parquet(run_dir / ADDED_ITEMS) if (run_dir / ADDED_ITEMS).exists() else rows.clear()
    old_sids = np.load(run_dir / ADDED_SIDS) if (run_dir / ADDED_SIDS).exists() else added_sids[:0]
    io.write_atomic(run_dir / ADDED_ITEMS, pl.concat([old_items, rows]).write_parquet)
    io.save_npy(run_dir / ADDED_SIDS, np.concatenate([old_sids, added_sids]))
    log = io.load_json(run_dir / CATALOG) if (run_dir / CATALOG).exists() else {"trained_items": first - 1, "added": []}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    log["added"].append({"file": str(path.resolve()), "sha256": digest, "items": new.height, "time": time.time()})
    io.save_json(run_dir / CATALOG, log)  # last: its change is what the server watches
    return {"items": new.height, "first_item_idx": first, "seconds": round(time.perf_counter() - start, 2),
            "ids": new[ITEM].to_list()}  # fmt: skip


__all__ = ["ADDED_ITEMS", "ADDED_SIDS", "CATALOG", "add_items", "items", "sids", "version"]
