"""SIDRecommender: k distinct real items per user, free decoding with popularity fill, token table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sidrec.recommender import SIDRecommender, item_token_table

HISTORIES = [np.array([1, 2, 3]), np.array([4]), np.array([5, 1, 3, 2, 4, 1, 3, 2]), np.array([2, 2])]


def check_rows(items: np.ndarray, n_items: int, k: int) -> None:
    assert items.shape == (len(HISTORIES), k)
    for row in items:
        assert len(set(row.tolist())) == k  # distinct
        assert row.min() >= 1 and row.max() <= n_items  # real item_idx, never the padding item 0


@pytest.mark.parametrize("k", [1, 5, 8])
def test_recommend_returns_k_distinct_real_items(make_tiger, make_sids, k):
    sizes = (4, 4, 3)
    sids = make_sids(20, sizes, seed=1)
    rec = SIDRecommender(make_tiger(sizes), sids, beam_width=8, constrained=True, bf16=False)
    out = rec.recommend(HISTORIES, k)
    check_rows(out.items, 20, k)
    assert out.invalid_beams == 0 and out.filled == 0
    assert np.isfinite(out.scores).all()
    assert (np.diff(out.scores, axis=1) <= 1e-6).all()  # best first
    leaf_sids = {int(item): tuple(sids[item - 1].tolist()) for item in out.items.reshape(-1)}
    assert all(len(s) == 3 for s in leaf_sids.values())


def test_too_few_beams_are_filled_by_popularity(make_tiger, make_sids):
    sizes = (4, 4, 3)
    sids = make_sids(20, sizes, seed=2)
    popularity = np.zeros(21)
    popularity[1:] = np.arange(20)  # item 20 the most popular, then 19, ...
    rec = SIDRecommender(make_tiger(sizes), sids, beam_width=3, constrained=True, popularity=popularity, bf16=False)
    out = rec.recommend(HISTORIES, 7)
    check_rows(out.items, 20, 7)
    assert out.filled == 4 * len(HISTORIES)
    assert np.isfinite(out.scores[:, :3]).all() and np.isneginf(out.scores[:, 3:]).all()
    for row in out.items:
        fill = [i for i in range(20, 0, -1) if i not in row[:3]][:4]
        assert row[3:].tolist() == fill  # by popularity, skipping items the beams already gave


def test_free_decoding_counts_invalid_beams_and_fills(make_tiger, make_sids):
    sizes = (8, 8)
    sids = make_sids(5, sizes, seed=3)  # 5 valid SIDs among 64: most free beams name no item
    model = make_tiger(sizes, seed=3)
    free = SIDRecommender(model, sids, beam_width=16, constrained=False, bf16=False)
    out = free.recommend(HISTORIES, 5)
    check_rows(out.items, 5, 5)
    assert 0 < out.invalid_beams <= 16 * len(HISTORIES)
    valid_beams = 16 * len(HISTORIES) - out.invalid_beams  # each valid beam names one distinct item here
    assert out.filled == 5 * len(HISTORIES) - valid_beams
    assert np.isneginf(out.scores).sum() == out.filled
    constrained = SIDRecommender(model, sids, beam_width=16, constrained=True, bf16=False).recommend(HISTORIES, 5)
    check_rows(constrained.items, 5, 5)
    assert constrained.invalid_beams == 0 and constrained.filled == 0


def test_duplicate_sids_yield_one_random_item_per_beam_then_the_rest(make_tiger):
    """GRID's alternative to the de-dup digit: a shared SID's beam takes one of its items at random (seeded);
    the other waits until every beam has placed one."""
    sizes = (2, 2)
    sids = np.array([[0, 0], [0, 0], [1, 1], [0, 1], [1, 0]])  # items 1 and 2 share a SID
    picked = set()
    for seed in range(6):
        rec = SIDRecommender(make_tiger(sizes), sids, beam_width=4, bf16=False, seed=seed)
        out = rec.recommend(HISTORIES, 5)
        assert out.filled == 0
        for row, scores in zip(out.items, out.scores, strict=True):
            assert sorted(row.tolist()) == [1, 2, 3, 4, 5]
            where = {int(item): pos for pos, item in enumerate(row)}
            first, second = sorted((1, 2), key=where.get)
            assert where[second] == 4  # after the four beams' picks
            assert scores[where[first]] == scores[where[second]]  # both carry their SID's score
            picked.add(first)
        again = SIDRecommender(make_tiger(sizes), sids, beam_width=4, bf16=False, seed=seed).recommend(HISTORIES, 5)
        assert (again.items == out.items).all()  # seeded
    assert picked == {1, 2}  # either item can take the beam's rank


def test_item_token_table_layout():
    sids = np.array([[0, 1], [2, 3], [1, 0]])
    table = item_token_table(sids, (2, 6))
    assert table.dtype == np.int64
    assert table.tolist() == [[0, 0], [2, 7], [4, 9], [3, 6]]  # row 0 = padding item; token = offset + code


def test_item_tokens_match_the_model_vocabulary(make_tiger, make_sids):
    sizes = (4, 4, 3)
    model = make_tiger(sizes, user_tokens=3)
    sids = make_sids(10, sizes)
    table = SIDRecommender(model, sids, bf16=False).item_tokens
    offsets = model.shape.offsets
    assert offsets == (5, 9, 13)  # PAD, BOS, 3 user tokens, then the levels
    for level, size in enumerate(sizes):
        assert table[1:, level].min() >= offsets[level] and table[1:, level].max() < offsets[level] + size
    assert table.max() < model.shape.vocab_size


def loop_reference(rec: SIDRecommender, leaves: np.ndarray, scores: np.ndarray, k: int, seed: int):
    """The per-row loop the vectorised mapping replaces: each beam's drawn item, then the rest, then popularity."""
    items, out_scores, filled = np.zeros((len(leaves), k), np.int64), np.full((len(leaves), k), -np.inf), 0
    valid = (leaves >= 0) & np.isfinite(scores)
    counts = np.array([len(rec.trie.leaf_items[leaf]) for leaf in leaves[valid]], dtype=np.int64)
    picks = iter(np.random.default_rng(seed).integers(0, counts))  # drawn in row-major beam order
    for row in range(len(leaves)):
        chosen: list[int] = []
        first, rest = [], []
        for leaf, score in zip(leaves[row], scores[row], strict=True):
            if leaf < 0 or not np.isfinite(score):
                continue
            pick = next(picks)
            group = rec.trie.leaf_items[leaf]
            first.append((group[pick], score))
            rest += [(item, score) for j, item in enumerate(group) if j != pick]
        for item, score in first + rest:
            if len(chosen) < k:
                out_scores[row, len(chosen)] = score
                chosen.append(int(item))
        for item in rec.fallback:
            if len(chosen) >= k:
                break
            if item not in chosen:
                chosen.append(int(item))
                filled += 1
        items[row] = chosen
    return items, out_scores, filled


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_leaf_mapping_equals_the_loop(make_tiger, monkeypatch, seed):
    """Leaves with several items (no de-dup digit), invalid and unfilled beams, popularity fill."""
    import torch

    from sidrec.decode.beam import BeamResult

    rng = np.random.default_rng(seed)
    sizes = (3, 3)
    sids = rng.integers(0, 3, size=(25, 2))  # 25 items on at most 9 SIDs: shared leaves
    popularity = np.concatenate([[0.0], rng.random(25)])
    rec = SIDRecommender(
        make_tiger(sizes), sids, beam_width=5, constrained=False, popularity=popularity, bf16=False, seed=seed
    )
    n_leaves = len(rec.trie.leaf_items)
    b, w = 6, 5
    leaves = np.stack([rng.permutation(np.arange(-1, n_leaves))[:w] for _ in range(b)])  # distinct, some -1
    scores = -np.sort(rng.random((b, w)), axis=1)
    scores[rng.random((b, w)) < 0.2] = -np.inf  # beams never filled
    result = BeamResult(torch.zeros(b, w, 2, dtype=torch.long), torch.from_numpy(scores), torch.from_numpy(leaves))
    monkeypatch.setattr(rec, "_beams", lambda histories, users: result)
    for k in (1, 4, 9):
        rec.rng = np.random.default_rng(seed)
        out = rec.recommend([np.array([1])] * b, k)
        items, ref_scores, filled = loop_reference(rec, leaves, scores, k, seed)
        assert (out.items == items).all() and out.filled == filled
        np.testing.assert_array_equal(out.scores, ref_scores)
        assert out.invalid_beams == int(((leaves < 0) & np.isfinite(scores)).sum())


@pytest.mark.parametrize("gate", [30.0, -30.0])
def test_a_repeat_head_ranks_history_items_by_its_gate(make_tiger, make_sids, gate):
    """The mixture: a gate sure of a repeat puts the history's distinct items first; sure of a new item, none."""
    sizes = (4, 4, 3)
    sids = make_sids(20, sizes, seed=3)
    model = make_tiger(sizes, repeat="mixture")
    with torch.no_grad():
        model.repeat_head.gate.weight.zero_()
        model.repeat_head.gate.bias.fill_(gate)
    rec = SIDRecommender(model, sids, beam_width=8, constrained=True, bf16=False)
    k = 6
    out = rec.recommend(HISTORIES, k)
    check_rows(out.items, 20, k)
    assert (np.diff(out.scores, axis=1) <= 1e-6).all()  # best first
    for history, row in zip(HISTORIES, out.items, strict=True):
        distinct = set(history[-6:].tolist())  # the model's max_history
        if gate > 0:
            n = min(len(distinct), k)
            assert set(row[:n].tolist()) <= distinct and len(set(row[:n].tolist())) == n
        else:
            assert not distinct & set(row.tolist())


def test_sharpening_beams_keeps_each_rows_mass_and_order():
    from sidrec.recommender import _sharpen

    logp = np.log(np.array([[0.4, 0.2, 0.1], [0.05, 0.05, 1.0]]))
    logp[1, 2] = -np.inf
    assert _sharpen(logp, 1.0) is logp
    out = _sharpen(logp, 2.0)
    np.testing.assert_allclose(np.exp(out).sum(1), np.exp(logp).sum(1))  # the beams keep their mass
    assert (np.argsort(-out, 1) == np.argsort(-logp, 1)).all() and out[1, 2] == -np.inf
    assert np.exp(out[0, 0]) < 0.4  # flatter: the top beam gives mass to the others
    empty = np.full((1, 3), -np.inf)
    assert (_sharpen(empty, 2.0) == empty).all()


def test_sid_logprob_equals_the_beam_scores_and_cold_candidates_join_the_ranking(make_tiger, make_sids):
    sizes = (4, 4, 3)
    sids = make_sids(20, sizes, seed=1)
    model = make_tiger(sizes)
    plain = SIDRecommender(model, sids, beam_width=8, constrained=True, bf16=False).recommend(HISTORIES, 8)
    scored = SIDRecommender(model, sids, beam_width=8, bf16=False).sid_logprob(HISTORIES, None, plain.items)
    np.testing.assert_allclose(scored, plain.scores, rtol=1e-4, atol=1e-4)  # the beam's sums, item by item
    cold = np.setdiff1d(np.arange(1, 21), plain.items[0])[:3]  # items the first row's beams did not reach
    text = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    rec = SIDRecommender(model, sids, beam_width=8, bf16=False, cold=(cold, text), cold_candidates=3)
    out = rec.recommend(HISTORIES, 8)
    check_rows(out.items, 20, 8)
    assert (np.diff(out.scores, axis=1) <= 1e-6).all()  # one ranking: beams and cold candidates by log-probability
    extra = rec.sid_logprob(HISTORIES[:1], None, cold[None])[0]
    merged = sorted([*plain.scores[0], *[s for s, i in zip(extra, cold, strict=True) if i not in plain.items[0]]])
    np.testing.assert_allclose(out.scores[0], merged[::-1][:8], rtol=1e-4, atol=1e-4)


def test_item_recommender_scores_a_large_catalog_in_groups_of_histories(monkeypatch, make_id_model):
    from sidrec.recommender import ItemRecommender

    model = make_id_model("sasrec", n_items=30)
    histories = [np.array([1 + i % 7, 2 + i % 5, 3]) for i in range(10)]
    whole = ItemRecommender(model, max_history=8).recommend(histories, 5)
    monkeypatch.setattr(ItemRecommender, "MAX_SCORES", 3 * 31)  # three histories' scores at a time
    calls = []
    original = model.score_all
    monkeypatch.setattr(model, "score_all", lambda inputs: calls.append(len(inputs)) or original(inputs))
    grouped = ItemRecommender(model, max_history=8).recommend(histories, 5)
    assert calls == [3, 3, 3, 1]
    assert np.array_equal(grouped.items, whole.items) and np.allclose(grouped.scores, whole.scores, atol=1e-6)
