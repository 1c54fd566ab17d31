"""A prefix trie over the valid Semantic IDs, stored as dense per-level child tables.

Level l has one node per distinct l-code prefix (level 0: the root). `children[l][node, code]` is the
level-(l+1) node reached by appending `code`, or -1 when no valid SID continues that way. Nodes of
the last level are leaves; `leaf_items[leaf]` lists the items with that full SID (one item each
when SIDs are de-duplicated). Dense tables make a constrained beam step two gathers, no Python.
Building is vectorised too (sized for 10^6+ items): the level-(l+1) node of a row is the rank of the
key `node_l * K_l + code_l` among the distinct keys, which numbers nodes in the lexicographic order of
their prefixes (as `np.unique(prefixes, axis=0)` would, at the cost of one 1-D sort per level).

Example: SIDs (0, 1), (0, 2), (3, 1) give children[0] = [[0, -1, -1, 1]] (root -> prefixes (0,) and
(3,)), and children[1] = [[-1, 0, 1, -1], [-1, 2, -1, -1]] (leaves 0, 1, 2).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class SIDTrie:
    def __init__(self, sids: np.ndarray, level_sizes: tuple[int, ...], item_ids: np.ndarray | None = None) -> None:
        """Args:
        sids: (N, L) level-local codes, row i the SID of item `item_ids[i]`.
        level_sizes: K_l per level.
        item_ids: (N,) the item each row names (default 1..N, row i -> item_idx i + 1).
        """
        sids = np.asarray(sids, dtype=np.int64)
        n, n_levels = sids.shape
        if n_levels != len(level_sizes):
            raise ValueError(f"SIDs have {n_levels} levels, level_sizes gives {len(level_sizes)}")
        if (sids < 0).any() or (sids >= np.asarray(level_sizes)).any():
            raise ValueError("a SID code lies outside its level's codebook")
        self.level_sizes = tuple(int(k) for k in level_sizes)
        item_ids = np.arange(1, n + 1) if item_ids is None else np.asarray(item_ids)
        self.children: list[Tensor] = []
        parent = np.zeros(n, dtype=np.int64)  # node of each row's prefix at the current level
        n_parent = 1
        for level in range(n_levels):
            key = parent * self.level_sizes[level] + sids[:, level]  # (N,) lexicographic order of the prefixes
            _, child = np.unique(key, return_inverse=True)
            child = child.reshape(-1)
            table = np.full((n_parent, self.level_sizes[level]), -1, dtype=np.int64)
            table[parent, sids[:, level]] = child
            self.children.append(torch.from_numpy(table))
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
        self.children = [c.to(device) for c in self.children]
        self.leaf_first_item = self.leaf_first_item.to(device)
        return self

    def allowed(self, level: int, nodes: Tensor) -> Tensor:
        """(M,) level-`level` nodes (-1 = off the trie) -> (M, K_level) bool mask of valid next codes."""
        table = self.children[level]
        rows = table[nodes.clamp(min=0)]  # (M, K)
        return (rows >= 0) & (nodes >= 0)[:, None]

    def advance(self, level: int, nodes: Tensor, codes: Tensor) -> Tensor:
        """Follow `codes` from `nodes`; -1 where the path leaves the trie."""
        nxt = self.children[level][nodes.clamp(min=0), codes]
        return torch.where(nodes >= 0, nxt, torch.full_like(nxt, -1))

    def paths(self) -> np.ndarray:
        """Every root-to-leaf path, (n_leaves, L): for tests and inspection."""
        paths = np.zeros((1, 0), dtype=np.int64)
        for table in self.children:
            t = table.cpu().numpy()
            nodes, codes = np.nonzero(t >= 0)
            order = np.argsort(t[nodes, codes], kind="stable")
            paths = np.concatenate([paths[nodes[order]], codes[order, None]], axis=1)
        return paths
