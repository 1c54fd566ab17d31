"""A prefix trie over the valid Semantic IDs, stored as dense per-level child tables.

Level l has one node per distinct l-code prefix (level 0: the root). `children[l][node, code]` is the
level-(l+1) node reached by appending `code`, or -1 when no valid SID continues that way. Nodes of
the last level are leaves; `leaf_items[leaf]` lists the items with that full SID (one item each
when SIDs are de-duplicated). Dense tables make a constrained beam step two gathers, no Python.
Building is vectorised too (sized for 10^6+ items): the level-(l+1) node of a row is the rank of the
key `node_l * K_l + code_l` among the distinct keys, which numbers nodes in the lexicographic order of
their prefixes (as `np.unique(prefixes, axis=0)` would, at the cost of one 1-D sort per level).
A level whose dense table would pass `dense_max` entries (at 10^6 items: the de-dup digit level, whose
K is the largest collision group) is kept sparse instead: its sorted keys, where child = position, and
each step is a binary search (`allowed` / `advance` give the same answers either way).

Example: SIDs (0, 1), (0, 2), (3, 1) give children[0] = [[0, -1, -1, 1]] (root -> prefixes (0,) and
(3,)), and children[1] = [[-1, 0, 1, -1], [-1, 2, -1, -1]] (leaves 0, 1, 2).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

DENSE_MAX = 1 << 24  # entries of a dense child table (128 MiB of int64) above which a level is kept sparse


class SIDTrie:
    def __init__(
        self,
        sids: np.ndarray,
        level_sizes: tuple[int, ...],
        item_ids: np.ndarray | None = None,
        dense_max: int = DENSE_MAX,
    ) -> None:
        """Args:
        sids: (N, L) level-local codes, row i the SID of item `item_ids[i]`.
        level_sizes: K_l per level.
        item_ids: (N,) the item each row names (default 1..N, row i -> item_idx i + 1).
        dense_max: a level whose dense table would have more entries is stored sparse (`keys`).
        """
        sids = np.asarray(sids, dtype=np.int64)
        n, n_levels = sids.shape
        if n_levels != len(level_sizes):
            raise ValueError(f"SIDs have {n_levels} levels, level_sizes gives {len(level_sizes)}")
        if (sids < 0).any() or (sids >= np.asarray(level_sizes)).any():
            raise ValueError("a SID code lies outside its level's codebook")
        self.level_sizes = tuple(int(k) for k in level_sizes)
        item_ids = np.arange(1, n + 1) if item_ids is None else np.asarray(item_ids)
        self.children: list[Tensor | None] = []  # dense (n_nodes, K_l) tables; None for a sparse level
        self.keys: list[Tensor | None] = []  # sparse levels: sorted node * K_l + code; the child is the position
        parent = np.zeros(n, dtype=np.int64)  # node of each row's prefix at the current level
        n_parent = 1
        for level in range(n_levels):
            key = parent * self.level_sizes[level] + sids[:, level]  # (N,) lexicographic order of the prefixes
            keys, child = np.unique(key, return_inverse=True)
            child = child.reshape(-1)
            if n_parent * self.level_sizes[level] > dense_max:
                self.children.append(None)
                self.keys.append(torch.from_numpy(keys.astype(np.int64)))
            else:
                table = np.full((n_parent, self.level_sizes[level]), -1, dtype=np.int64)
                table[parent, sids[:, level]] = child
                self.children.append(torch.from_numpy(table))
                self.keys.append(None)
            parent, n_parent = child, int(child.max()) + 1 if n else 0
        order = np.argsort(parent, kind="stable")
        bounds = np.searchsorted(parent[order], np.arange(n_parent + 1))
        self.leaf_offsets = bounds  # (n_leaves + 1,): leaf i's items are leaf_flat_items[offsets[i]:offsets[i+1]]
        self.leaf_flat_items = item_ids[order]
        self.leaf_first_item = torch.from_numpy(self.leaf_flat_items[bounds[:-1]].astype(np.int64))  # (n_leaves,)

    @property
    def leaf_items(self) -> list[np.ndarray]:
        """The items of every leaf, leaf by leaf (a Python list: for tests and inspection, not hot paths)."""
        return np.split(self.leaf_flat_items, self.leaf_offsets[1:-1])

    @property
    def n_levels(self) -> int:
        return len(self.level_sizes)

    def to(self, device: torch.device | str) -> SIDTrie:
        self.children = [None if c is None else c.to(device) for c in self.children]
        self.keys = [None if k is None else k.to(device) for k in self.keys]
        self.leaf_first_item = self.leaf_first_item.to(device)
        return self

    def allowed(self, level: int, nodes: Tensor) -> Tensor:
        """(M,) level-`level` nodes (-1 = off the trie) -> (M, K_level) bool mask of valid next codes."""
        table = self.children[level]
        if table is None:
            return self._allowed_sparse(level, nodes)
        rows = table[nodes.clamp(min=0)]  # (M, K)
        return (rows >= 0) & (nodes >= 0)[:, None]

    def _allowed_sparse(self, level: int, nodes: Tensor) -> Tensor:
        keys, k = self.keys[level], self.level_sizes[level]
        base = nodes.clamp(min=0) * k  # (M,)
        lo, hi = torch.searchsorted(keys, base), torch.searchsorted(keys, base + k)  # each node's key range
        counts = torch.where(nodes >= 0, hi - lo, torch.zeros_like(lo))  # (M,)
        rows = torch.repeat_interleave(torch.arange(len(nodes), device=nodes.device), counts)  # (C,)
        within = torch.arange(len(rows), device=nodes.device) - torch.repeat_interleave(
            counts.cumsum(0) - counts, counts
        )
        mask = torch.zeros(len(nodes), k, dtype=torch.bool, device=nodes.device)
        mask[rows, keys[lo[rows] + within] - base[rows]] = True
        return mask

    def next_nodes(self, level: int, nodes: Tensor) -> Tensor:
        """(M,) level-`level` nodes -> (M, K_level) the node each code leads to (-1 off the trie)."""
        k = self.level_sizes[level]
        if self.children[level] is not None:
            rows = self.children[level][nodes.clamp(min=0)]
            return torch.where((nodes >= 0)[:, None], rows, torch.full_like(rows, -1))
        codes = torch.arange(k, device=nodes.device).repeat(len(nodes))
        return self.advance(level, nodes.repeat_interleave(k), codes).reshape(len(nodes), k)

    def advance(self, level: int, nodes: Tensor, codes: Tensor) -> Tensor:
        """Follow `codes` from `nodes`; -1 where the path leaves the trie."""
        if self.children[level] is None:
            keys = self.keys[level]
            query = nodes.clamp(min=0) * self.level_sizes[level] + codes  # (M,)
            pos = torch.searchsorted(keys, query).clamp(max=max(len(keys) - 1, 0))
            hit = (nodes >= 0) & (keys[pos] == query) if len(keys) else torch.zeros_like(nodes, dtype=torch.bool)
            return torch.where(hit, pos, torch.full_like(pos, -1))
        nxt = self.children[level][nodes.clamp(min=0), codes]
        return torch.where(nodes >= 0, nxt, torch.full_like(nxt, -1))

    def paths(self) -> np.ndarray:
        """Every root-to-leaf path, (n_leaves, L): for tests and inspection."""
        paths = np.zeros((1, 0), dtype=np.int64)
        for level, table in enumerate(self.children):
            if table is None:  # sparse: keys are already in child order
                keys, k = self.keys[level].cpu().numpy(), self.level_sizes[level]
                paths = np.concatenate([paths[keys // k], (keys % k)[:, None]], axis=1)
                continue
            t = table.cpu().numpy()
            nodes, codes = np.nonzero(t >= 0)
            order = np.argsort(t[nodes, codes], kind="stable")
            paths = np.concatenate([paths[nodes[order]], codes[order, None]], axis=1)
        return paths
