"""Graph-constrained decoding for parallel long-SID models (RPG, Hou et al., KDD 2025, section 3.4).

Exact top-K over all items costs one score per item and user. RPG instead links every item to the
`edges` items whose SIDs are most similar, similarity = the mean over digits of the cosine of the two
items' code embeddings mapped to [0, 1]; decoding starts from `beams` random items and, `steps`
times, replaces the beam by the best `beams` items among the beam and its neighbours, scored by the
model's digit log-probabilities (the mean over the item's digits, as exact decoding does). Only
beams x edges x steps items are scored per user.

Deviations from the reference code: the graph is built once by sparse matmuls over all items in
row chunks (no N x N matrix is held), the current beam stays a candidate of the next step, the
propagation is batched over users (no per-user Python loop), and the start items are drawn from a
seeded generator.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from tqdm.auto import tqdm

NEG_INF = float("-inf")


def digit_matrix(codes: Tensor, codebook_size: int) -> Tensor:
    """(N+1, M) item codes -> sparse CSR (N+1, M*K): row i holds 1/M at item i's M digit tokens m*K + code.

    Row 0 (padding) is empty. `matrix @ v` averages, for every item, the entries of v (M*K, ...) at its
    digits: one sparse matmul scores all items (RPG's exact decoding) or all similarities (the graph).
    """
    n1, m = codes.shape
    tokens = (codes[1:] + torch.arange(m, device=codes.device) * codebook_size).flatten()
    crow = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(n1) * m]).to(codes.device)  # row 0 empty
    vals = torch.full((tokens.numel(),), 1.0 / m, device=codes.device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the matmul used here is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, tokens, vals, (n1, m * codebook_size), check_invariants=False)


def item_graph(codes: Tensor, code_vectors: Tensor, edges: int, chunk: int = 512) -> Tensor:
    """Each item's `edges` most similar items (itself included, at similarity 1).

    Args:
        codes: (N+1, M) item codes; row 0 (padding) is ignored and never a neighbour.
        code_vectors: (M, K, d) L2-normalised code embeddings.
        edges: neighbours per item (<= N).
        chunk: items whose similarity row is computed at once.
    Returns:
        (N+1, edges) int64 item_idx in 1..N; row 0 is all ones (unused).
    """
    n1, m = codes.shape
    k = code_vectors.shape[1]
    if not 1 <= edges <= n1 - 1:
        raise ValueError(f"eval.graph_edges must be in [1, {n1 - 1}] (the number of items), got {edges}")
    sims = 0.5 * (torch.bmm(code_vectors, code_vectors.transpose(1, 2)) + 1.0)  # (M, K, K) in [0, 1]
    onehot = digit_matrix(codes, k)
    out = torch.ones(n1, edges, dtype=torch.long, device=codes.device)
    for start in tqdm(range(1, n1, chunk), desc="item graph", leave=False):
        rows = codes[start : start + chunk]  # (b, M)
        a = sims[torch.arange(m, device=codes.device), rows].flatten(1)  # (b, M*K): a[i, m*K + c] = S_m[c_im, c]
        s = (onehot @ a.T).T  # (b, N+1) mean similarity to every item
        s[:, 0] = NEG_INF
        out[start : start + chunk] = s.topk(edges, dim=1).indices
    return out


def _scores(logp: Tensor, tokens: Tensor) -> Tensor:
    """(B, M*K) flat digit log-probs, (B, C, M) item tokens -> (B, C) mean log-probability."""
    b, c, m = tokens.shape
    return logp.gather(1, tokens.reshape(b, c * m)).view(b, c, m).mean(-1)


def graph_topk(
    logp: Tensor,
    codes: Tensor,
    graph: Tensor,
    *,
    k: int,
    beams: int,
    steps: int,
    gen: torch.Generator,
    history: Tensor | None = None,
    repeat_bias: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Top-k items per user by beam propagation over the item graph.

    Args:
        logp: (B, M, K) digit log-probabilities.
        codes: (N+1, M) item codes; graph: (N+1, E) neighbours.
        k: items returned (<= beams); beams: items kept per step; steps: propagation steps.
        gen: CPU generator of the random start items.
        history, repeat_bias: (B, T) item_idx whose scores get `repeat_bias` added (the model's learned
            score for items already in the history; padding 0 matches no item).
    Returns:
        items (B, k) item_idx best first, their scores (B, k), and the distinct items scored per user (B,).
    """
    b, m, kk = logp.shape
    n = codes.shape[0] - 1
    if not 1 <= k <= beams <= n:
        raise ValueError(f"graph decoding needs 1 <= k ({k}) <= eval.graph_beams ({beams}) <= items ({n})")
    flat = logp.flatten(1)
    offsets = torch.arange(m, device=logp.device) * kk
    beam = torch.randint(1, n + 1, (b, beams), generator=gen).to(logp.device)  # (B, W) random start items
    visited = [beam]

    def score(items: Tensor) -> Tensor:  # (B, C) item_idx -> (B, C) scores
        out = _scores(flat, codes[items] + offsets)
        if history is not None and repeat_bias != 0.0:
            out = out + repeat_bias * (items[:, :, None] == history[:, None, :]).any(-1)
        return out

    for _ in range(steps):
        cand = torch.cat([beam, graph[beam].flatten(1)], dim=1)  # (B, W + W*E)
        visited.append(cand)
        cand, _ = cand.sort(dim=1)
        dup = torch.zeros_like(cand, dtype=torch.bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
        top = score(cand).masked_fill(dup, NEG_INF).topk(beams, dim=1)  # of (B, C) scores
        beam = cand.gather(1, top.indices)
    final = score(beam)  # (B, W), distinct items
    order = final.topk(k, dim=1)
    seen = torch.cat(visited, 1).sort(1).values
    n_seen = 1 + (seen[:, 1:] != seen[:, :-1]).sum(1)
    return beam.gather(1, order.indices), order.values, n_seen


__all__ = ["digit_matrix", "graph_topk", "item_graph"]
