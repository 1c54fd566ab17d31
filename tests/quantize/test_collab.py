"""Collaborative item vectors: co-occurrence counts, PPMI, the factorised vectors, the text + collab input."""

from __future__ import annotations

import numpy as np
import pytest

from sidrec.quantize.collab import collab_vectors, cooccurrence, ppmi, with_collab


def dense(t):
    return t.to_dense().numpy()


def test_cooccurrence_counts_pairs_within_the_window_weighted_by_distance():
    c = dense(cooccurrence([np.array([1, 2, 3]), np.array([4, 1])], n_items=5, window=2))
    expected = np.zeros((5, 5))
    for a, b, w in ((1, 2, 1.0), (2, 3, 1.0), (1, 3, 0.5), (4, 1, 1.0)):  # item_idx pairs; row = item_idx - 1
        expected[a - 1, b - 1] += w
        expected[b - 1, a - 1] += w
    np.testing.assert_allclose(c, expected)
    assert c[4].sum() == 0  # item 5 never occurs


def test_pairs_never_cross_users_or_pair_an_item_with_itself():
    c = dense(cooccurrence([np.array([1, 1]), np.array([2])], n_items=2, window=3))
    assert c.sum() == 0  # [1, 1] is a self-pair; 1 and 2 are in different users' sequences


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="collab_window"):
        cooccurrence([np.array([1, 2])], n_items=2, window=0)


def test_ppmi_keeps_only_positive_associations():
    # two pairs that always occur together, and a hub seen with everything: the hub's PMI is not positive
    seqs = [np.array([1, 2])] * 5 + [np.array([3, 4])] * 5 + [np.array([5, i]) for i in (1, 2, 3, 4)]
    p = dense(ppmi(cooccurrence(seqs, n_items=5, window=1)))
    assert p[0, 1] > 0 and p[2, 3] > 0 and p[0, 2] == 0
    assert (p >= 0).all() and np.allclose(p, p.T)
    assert p[4, 0] < p[0, 1]


def two_communities(n_users: int = 200, seed: int = 0) -> list[np.ndarray]:
    """Users who each shop in one of two groups of items: 1-10 or 11-20. Item 21 is never bought."""
    rng = np.random.default_rng(seed)
    return [rng.choice(np.arange(1, 11) + 10 * (u % 2), size=6) for u in range(n_users)]


def test_items_bought_together_get_close_vectors():
    x = collab_vectors(two_communities(), n_items=21, dim=4, window=3, seed=0)
    assert x.shape == (21, 4) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x[:20], axis=1), 1.0, atol=1e-5)
    assert np.all(x[20] == 0)  # no co-occurrence in training: zero, its SID comes from the text alone
    cos = x[:20] @ x[:20].T
    same = cos[:10, :10].mean() + cos[10:, 10:].mean()
    across = cos[:10, 10:].mean()
    assert same / 2 > across + 0.5


def test_collab_vectors_are_seeded():
    seqs = two_communities()
    a = collab_vectors(seqs, n_items=21, dim=3, window=2, seed=1)
    b = collab_vectors(seqs, n_items=21, dim=3, window=2, seed=1)
    np.testing.assert_array_equal(a, b)


def test_no_cooccurrence_at_all_gives_zeros():
    x = collab_vectors([np.array([1]), np.array([2])], n_items=3, dim=2, window=1, seed=0)
    assert x.shape == (3, 2) and not x.any()


def test_with_collab_appends_the_weighted_part():
    text = np.ones((3, 2), dtype=np.float32)
    collab = np.eye(3, dtype=np.float32)
    out = with_collab(text, collab, 0.5)
    assert out.shape == (3, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 2:], 0.5 * np.eye(3))
    with pytest.raises(ValueError, match="collab_weight"):
        with_collab(text, collab, 0.0)
    with pytest.raises(ValueError, match="collab_dim"):
        collab_vectors([np.array([1, 2])], n_items=2, dim=0, window=1, seed=0)


def test_an_item_without_cooccurrence_takes_its_text_neighbours_collaborative_vector():
    from sidrec.quantize.collab import item_collab

    seqs = [np.array([1, 2, 3, 1, 2]), np.array([2, 3, 1]), np.array([1, 3, 2])]
    text = np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32)
    zero = item_collab(seqs, text, 2, 2, 0, "zero")
    near = item_collab(seqs, text, 2, 2, 0, "neighbours")
    warm = np.abs(zero).sum(1) > 0
    assert warm.any() and (~warm).any()
    assert np.allclose(near[warm], zero[warm])  # only the rows without co-occurrence change
    assert np.allclose(np.linalg.norm(near[~warm], axis=1), 1, atol=1e-5)  # each a normalised mean of warm rows
    with pytest.raises(ValueError, match="unknown quantize.collab_cold 'x': zero | neighbours"):
        item_collab(seqs, text, 2, 2, 0, "x")
