"""Batched beam search over fixed-length code sequences, optionally constrained by a prefix trie.

A pure function of a step callable: it knows nothing about models. The callable gets the previous
codes of every beam and the parent index of each surviving beam (to reorder its KV cache), and
returns log-probabilities over the next level's codes. Constraining masks every code that leaves
the trie, so every finished beam is a valid SID (Rajput et al., NeurIPS 2023, sec. 3.2; GRID).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from sidrec.decode.trie import SIDTrie

StepFn = Callable[[int, Tensor, Tensor], Tensor]
"""step(level, prev_codes (B*W,), parent (B*W,)) -> log-probs (B*W, K_level).

`prev_codes` is -1 at level 0; `parent[i]` is the index (into the previous step's B*W rows) that
row i continues, so the callable can reorder per-beam state with `state[parent]`.
"""


class BeamResult(NamedTuple):
    codes: Tensor  # (B, W, L) level-local codes, best beam first; (B, W, m x L) for lists of m items
    scores: Tensor  # (B, W) summed log-probabilities; -inf for an unfilled beam
    leaves: Tensor  # (B, W) trie leaf of each beam, -1 when the SID is not a valid one; (B, W, m) for lists


def beam_search(
    step: StepFn,
    *,
    batch_size: int,
    beam_width: int,
    level_sizes: tuple[int, ...],
    trie: SIDTrie | None,
    constrained: bool,
    device: torch.device | str = "cpu",
    items: int = 1,
) -> BeamResult:
    """Keep the `beam_width` most probable code prefixes per user, level by level.

    All W beams exist from the start; at level 0 every beam but the first scores -inf, so the
    first expansion picks W distinct codes. With `constrained`, codes leaving the trie get -inf.
    With `items` m > 1 a beam is a list of m SIDs generated in turn (OneRec's sessions; the step callable
    sees levels 0 .. m x L - 1): the trie restarts at every item, and constrained lists never name an item
    twice (the last code of an item whose leaf the beam already holds gets -inf).
    """
    if constrained and trie is None:
        raise ValueError("constrained decoding needs a trie")
    b, w, n_levels = batch_size, beam_width, len(level_sizes)
    scores = torch.full((b, w), float("-inf"), device=device)
    scores[:, 0] = 0.0
    nodes = torch.zeros(b * w, dtype=torch.long, device=device)  # trie node per beam (root = 0)
    codes = torch.zeros(b * w, 0, dtype=torch.long, device=device)
    chosen = torch.zeros(b * w, 0, dtype=torch.long, device=device)  # leaves of the beam's finished items
    prev = torch.full((b * w,), -1, dtype=torch.long, device=device)
    parent = torch.arange(b * w, device=device)
    for token in range(n_levels * items):
        level, size = token % n_levels, level_sizes[token % n_levels]
        logp = step(token, prev, parent).float()  # (B*W, K)
        if constrained:
            logp = logp.masked_fill(~trie.allowed(level, nodes), float("-inf"))
            if level == n_levels - 1 and chosen.shape[1]:  # no item twice in a list
                again = (trie.next_nodes(level, nodes)[:, :, None] == chosen[:, None, :]).any(-1)
                logp = logp.masked_fill(again, float("-inf"))
        total = (scores.reshape(-1, 1) + logp).reshape(b, w * size)  # (B, W*K)
        k = min(w, w * size)
        scores, flat = total.topk(k, dim=1)  # (B, W)
        beam, code = flat // size, flat % size
        parent = (beam + torch.arange(b, device=device)[:, None] * w).reshape(-1)  # (B*W,)
        prev = code.reshape(-1)
        codes = torch.cat([codes[parent], prev[:, None]], dim=1)
        nodes = trie.advance(level, nodes[parent], prev) if trie is not None else nodes
        if items > 1:  # lists: carry each beam's finished items; after an item's last code, restart at the root
            chosen = chosen[parent]
            if level == n_levels - 1:
                leaf = nodes[:, None] if trie is not None else torch.full_like(prev[:, None], -1)
                chosen, nodes = torch.cat([chosen, leaf], 1), torch.zeros_like(nodes)
    if items > 1:
        return BeamResult(codes.reshape(b, w, -1), scores, chosen.reshape(b, w, items))
    leaves = nodes if trie is not None else torch.full_like(nodes, -1)
    return BeamResult(codes.reshape(b, w, -1), scores, leaves.reshape(b, w))
