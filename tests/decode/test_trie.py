"""The prefix trie of valid SIDs: paths, allowed codes, advancing, leaf items, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sidrec.decode.trie import SIDTrie

DOC_SIDS = np.array([[0, 1], [0, 2], [3, 1]])  # the module docstring's example


def walk(trie: SIDTrie, sid: np.ndarray) -> int:
    """The leaf reached by following `sid` from the root (-1 if it leaves the trie)."""
    node = torch.zeros(1, dtype=torch.long)
    for level, code in enumerate(sid):
        node = trie.advance(level, node, torch.tensor([int(code)]))
    return int(node[0])


def test_docstring_tables():
    trie = SIDTrie(DOC_SIDS, (4, 4))
    assert trie.children[0].tolist() == [[0, -1, -1, 1]]
    assert trie.children[1].tolist() == [[-1, 0, 1, -1], [-1, 2, -1, -1]]
    assert trie.n_levels == 2
    assert trie.paths().tolist() == DOC_SIDS.tolist()


def test_allowed_on_docstring_example():
    trie = SIDTrie(DOC_SIDS, (4, 4))
    assert trie.allowed(0, torch.tensor([0])).tolist() == [[True, False, False, True]]
    mask = trie.allowed(1, torch.tensor([0, 1, -1]))
    assert mask.tolist() == [[False, True, True, False], [False, True, False, False], [False] * 4]


def test_advance_on_docstring_example():
    trie = SIDTrie(DOC_SIDS, (4, 4))
    root = torch.zeros(3, dtype=torch.long)
    assert trie.advance(0, root, torch.tensor([0, 3, 1])).tolist() == [0, 1, -1]
    assert trie.advance(1, torch.tensor([0, 0, 1, 1, -1]), torch.tensor([1, 2, 1, 2, 1])).tolist() == [0, 1, 2, -1, -1]
    for leaf, sid in enumerate(DOC_SIDS):
        assert walk(trie, sid) == leaf
    assert [items.tolist() for items in trie.leaf_items] == [[1], [2], [3]]  # default item ids 1..N
    assert trie.leaf_first_item.tolist() == [1, 2, 3]


def test_paths_equal_sids_on_random_sets():
    """Property test (a seeded loop; hypothesis is not a dependency): paths() == the set of SIDs."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        n_levels = int(rng.integers(1, 5))
        sizes = tuple(int(k) for k in rng.integers(1, 5, size=n_levels))
        n = int(rng.integers(1, 30))
        sids = np.stack([rng.integers(0, k, size=n) for k in sizes], axis=1)  # duplicates allowed
        items = rng.permutation(n) + 100
        trie = SIDTrie(sids, sizes, item_ids=items)
        paths = trie.paths()
        distinct = {tuple(s) for s in sids.tolist()}
        assert paths.shape == (len(distinct), n_levels)
        assert {tuple(p) for p in paths.tolist()} == distinct  # every path is a SID and every SID a path
        assert paths.tolist() == sorted(paths.tolist())  # leaves in lexicographic order, none repeated
        for leaf, path in enumerate(paths):
            assert walk(trie, path) == leaf
            named = sids[np.isin(items, trie.leaf_items[leaf])]
            assert (named == path).all()  # a leaf's items all carry its SID
        assert sorted(np.concatenate(trie.leaf_items).tolist()) == sorted(items.tolist())


def test_codes_outside_the_trie_lead_nowhere():
    rng = np.random.default_rng(1)
    sizes = (3, 3, 3)
    sids = np.array([[0, 1, 2], [2, 2, 0], [0, 0, 0]])
    trie = SIDTrie(sids, sizes)
    valid = {tuple(s) for s in sids.tolist()}
    for _ in range(100):
        sid = rng.integers(0, 3, size=3)
        assert (walk(trie, sid) >= 0) == (tuple(sid.tolist()) in valid)


def test_duplicate_sids_share_a_leaf_without_dedup():
    sids = np.array([[0, 1], [2, 0], [0, 1], [0, 1]])
    trie = SIDTrie(sids, (3, 2), item_ids=np.array([10, 11, 12, 13]))
    assert trie.paths().tolist() == [[0, 1], [2, 0]]
    assert [items.tolist() for items in trie.leaf_items] == [[10, 12, 13], [11]]  # file order kept
    assert trie.leaf_first_item.tolist() == [10, 11]


@pytest.mark.parametrize(
    ("sids", "sizes", "match"),
    [
        ([[0, 4]], (4, 4), "outside its level's codebook"),
        ([[0, -1]], (4, 4), "outside its level's codebook"),
        ([[3, 1]], (3, 4), "outside its level's codebook"),
        ([[0, 1]], (4, 4, 4), "2 levels, level_sizes gives 3"),
    ],
)
def test_bad_codes_raise(sids, sizes, match):
    with pytest.raises(ValueError, match=match):
        SIDTrie(np.array(sids), sizes)


def reference_trie(sids: np.ndarray, level_sizes: tuple[int, ...]):
    """The trie as built before vectorising: a row-wise np.unique per level, a Python list per leaf."""
    n, children, parent, n_parent = len(sids), [], np.zeros(len(sids), dtype=np.int64), 1
    for level in range(sids.shape[1]):
        _, child = np.unique(sids[:, : level + 1], axis=0, return_inverse=True)
        child = child.reshape(-1)
        table = np.full((n_parent, level_sizes[level]), -1, dtype=np.int64)
        table[parent, sids[:, level]] = child
        children.append(table)
        parent, n_parent = child, int(child.max()) + 1
    order = np.argsort(parent, kind="stable")
    bounds = np.searchsorted(parent[order], np.arange(n_parent + 1))
    items = np.arange(1, n + 1)
    return children, [items[order[bounds[i] : bounds[i + 1]]] for i in range(n_parent)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_build_equals_the_row_unique_build(seed):
    rng = np.random.default_rng(seed)
    sizes = (5, 7, 3, 4)
    sids = rng.integers(0, np.array(sizes), size=(400, 4))  # with collisions: several items per leaf
    trie = SIDTrie(sids, sizes)
    children, leaf_items = reference_trie(sids, sizes)
    assert all(np.array_equal(a.numpy(), b) for a, b in zip(trie.children, children, strict=True))
    assert [x.tolist() for x in trie.leaf_items] == [x.tolist() for x in leaf_items]
    assert trie.leaf_first_item.tolist() == [x[0] for x in leaf_items]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_sparse_level_answers_like_the_dense_table(seed):
    """Levels past `dense_max` entries are binary searches over sorted keys, with the same answers."""
    from sidrec.decode.beam import beam_search

    rng = np.random.default_rng(seed)
    sizes = (4, 5, 9)
    sids = rng.integers(0, np.array(sizes), size=(120, 3))
    dense, sparse = SIDTrie(sids, sizes), SIDTrie(sids, sizes, dense_max=0)
    assert all(c is None for c in sparse.children) and all(k is not None for k in sparse.keys)
    assert np.array_equal(dense.paths(), sparse.paths())
    for level, size in enumerate(sizes):
        n_nodes = len(dense.children[level])
        nodes = torch.from_numpy(rng.integers(-1, n_nodes, 300))
        codes = torch.from_numpy(rng.integers(0, size, 300))
        assert torch.equal(dense.allowed(level, nodes), sparse.allowed(level, nodes))
        assert torch.equal(dense.advance(level, nodes, codes), sparse.advance(level, nodes, codes))
    logits = torch.randn(len(sizes), 6 * 5, max(sizes), generator=torch.Generator().manual_seed(seed))

    def step(level, prev, parent):
        return logits[level, :, : sizes[level]].log_softmax(-1)

    runs = [
        beam_search(step, batch_size=6, beam_width=5, level_sizes=sizes, trie=t, constrained=True)
        for t in (dense, sparse)
    ]
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
