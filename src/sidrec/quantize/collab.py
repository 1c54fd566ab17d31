"""Collaborative item vectors for Semantic IDs: item co-occurrence in the training histories, factorised.

Text alone gives two items that users buy together unrelated SIDs when their titles differ, and near-equal
SIDs to items with near-equal titles that users treat differently (Beauty's 12,101 items have 79 groups of
colliding OPQ codes from MiniLM title vectors). LETTER (Wang et al., "Learnable Item Tokenization for
Generative Recommendation", CIKM 2024) and ColaRec (Wang et al., "Content-Based Collaborative Generation for
Recommendation", CIKM 2024) put collaborative signal into the item tokenizer with learned objectives. This
is the plainest form of the idea, with no training: the positive pointwise mutual information (PPMI) of
items that occur within `window` positions of each other in a user's *training* part (closer pairs count
more: 1 / distance), factorised by a seeded randomised SVD (Levy & Goldberg, "Neural Word Embedding as
Implicit Matrix Factorization", NeurIPS 2014), rows L2-normalised, weighted and appended to the text
vector before quantization (`quantize.collab_dim`, `quantize.collab_weight`, `quantize.collab_window`).

Validation and test targets are never read (`train_sequences`). An item with no co-occurrence in training
gets a zero collaborative part (its SID comes from its text alone), or, with `quantize.collab_cold=neighbours`,
the mean of its nearest items' by text (`from_text_neighbours`; LIGER, Yang et al., 2024, on cold items
needing a content route).
"""

from __future__ import annotations

import numpy as np
import torch


def cooccurrence(train_seqs: list[np.ndarray], n_items: int, window: int) -> torch.Tensor:
    """Symmetric co-occurrence counts (n_items, n_items), sparse: pairs within `window` positions, weight 1/distance.

    `train_seqs` hold item_idx values 1..n_items (row i of the result is item_idx i + 1).
    """
    if window < 1:
        raise ValueError(f"quantize.collab_window={window}: give how many positions apart two items co-occur, e.g. 3")
    lengths = np.fromiter((len(s) for s in train_seqs), dtype=np.int64, count=len(train_seqs))
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in train_seqs]) - 1 if len(train_seqs) else np.zeros(0)
    seq_id = np.repeat(np.arange(len(train_seqs)), lengths)
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        same = seq_id[d:] == seq_id[:-d]  # both positions in one user's sequence
        a, b = flat[d:][same], flat[:-d][same]
        keep = a != b  # an item repeated next to itself says nothing about other items
        a, b = a[keep], b[keep]
        rows += [a, b]
        cols += [b, a]
        vals.append(np.full(2 * len(a), 1.0 / d))
    index = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]))  # window >= 1: never empty
    values = torch.from_numpy(np.concatenate(vals))
    return torch.sparse_coo_tensor(index.long(), values.double(), (n_items, n_items), check_invariants=True).coalesce()


def ppmi(counts: torch.Tensor) -> torch.Tensor:
    """Positive PMI of a sparse symmetric count matrix: max(0, log(c_ij * total / (c_i * c_j))), sparse."""
    idx, c = counts.indices(), counts.values()
    total = c.sum()
    row_sums = torch.zeros(counts.shape[0], dtype=c.dtype).index_add_(0, idx[0], c)
    pmi = torch.log(c * total / (row_sums[idx[0]] * row_sums[idx[1]]))
    keep = pmi > 0
    return torch.sparse_coo_tensor(idx[:, keep], pmi[keep].float(), counts.shape, check_invariants=True).coalesce()


def collab_vectors(train_seqs: list[np.ndarray], n_items: int, dim: int, window: int, seed: int) -> np.ndarray:
    """(n_items, dim) float32: L2-normalised rows of U sqrt(S) from a rank-`dim` SVD of the PPMI matrix.

    Rows of items with no positive PMI (never co-occurring with another item in training) are zero.
    """
    if dim < 1:
        raise ValueError(f"quantize.collab_dim={dim}: give the collaborative vector's size, e.g. 64 (0 = off)")
    p = ppmi(cooccurrence(train_seqs, n_items, window))
    out = np.zeros((n_items, dim), dtype=np.float32)
    if p.values().numel() == 0:
        return out
    # Randomised SVD, oversampled to twice the rank with 10 power iterations: on Beauty the 64th singular value
    # is 0.4% below that of a rank-256, 20-iteration run (rank + 16 with 6 iterations: 3.4% below); the top
    # `dim` are kept.
    q = min(2 * dim, n_items)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        u, s, _ = torch.svd_lowrank(p, q=q, niter=10)
    k = min(dim, q)
    x = (u[:, :k] * s[:k].clamp_min(0).sqrt()).numpy()
    has = np.zeros(n_items, dtype=bool)
    has[p.indices()[0].numpy()] = True
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out[:, :k] = np.where(has[:, None], x / np.maximum(norms, 1e-12), 0.0)
    return out


def from_text_neighbours(text: np.ndarray, collab: np.ndarray, rows: np.ndarray, k: int = 10) -> np.ndarray:
    """Collaborative vectors for the `rows` of `text` (A, D): the L2-normalised mean of the collaborative vectors
    of their k nearest items by text cosine among the items that have one (`collab` rows not all zero)."""
    has = np.flatnonzero(np.abs(collab).sum(1) > 0)
    out = np.zeros((len(rows), collab.shape[1]), dtype=np.float32)
    if len(has) == 0 or len(rows) == 0:
        return out
    norm = torch.nn.functional.normalize
    a = norm(torch.from_numpy(np.array(text[rows], dtype=np.float32)), dim=1)
    b = norm(torch.from_numpy(np.array(text[has], dtype=np.float32)), dim=1)
    for start in range(0, len(rows), 4096):  # (chunk, items with collab) similarities at a time
        near = (a[start : start + 4096] @ b.T).topk(min(k, len(has)), dim=1).indices.numpy()
        mean = collab[has[near]].mean(axis=1)
        out[start : start + 4096] = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return out


COLD = ("zero", "neighbours")  # quantize.collab_cold


def item_collab(
    train_seqs: list[np.ndarray], text: np.ndarray, dim: int, window: int, seed: int, cold: str
) -> np.ndarray:
    """Every item's collaborative vector (`collab_vectors`); items without co-occurrence per `cold` (COLD)."""
    if cold not in COLD:
        raise ValueError(f"unknown quantize.collab_cold '{cold}': {' | '.join(COLD)}")
    collab = collab_vectors(train_seqs, text.shape[0], dim, window, seed)
    if cold == "neighbours":
        rows = np.flatnonzero(np.abs(collab).sum(1) == 0)
        collab[rows] = from_text_neighbours(text, collab, rows)
    return collab


def with_collab(text: np.ndarray, collab: np.ndarray, weight: float) -> np.ndarray:
    """The vectors the quantizer sees: [text, weight * collab] per item, float32 (N, D_text + dim), in memory."""
    if weight <= 0:
        raise ValueError(
            f"quantize.collab_weight={weight}: give a positive weight (or quantize.collab_dim=0 to turn it off)"
        )
    return np.concatenate([np.asarray(text, dtype=np.float32), weight * collab], axis=1)
