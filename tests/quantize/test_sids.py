from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sidrec.quantize.sids import deduplicate, sid_stats


def test_tiger_dedup_hand_example():
    codes = np.array([[1, 2], [1, 2], [0, 3], [1, 2], [0, 3], [2, 2]])
    sids = deduplicate(codes, "tiger", codebook_size=4, seed=0)
    expected = np.array([[1, 2, 0], [1, 2, 1], [0, 3, 0], [1, 2, 2], [0, 3, 1], [2, 2, 0]])
    np.testing.assert_array_equal(sids, expected)
    assert len(np.unique(sids, axis=0)) == len(sids)


def test_tiger_dedup_makes_random_codes_unique():
    codes = np.random.default_rng(0).integers(0, 3, size=(200, 2))
    sids = deduplicate(codes, "tiger", codebook_size=3, seed=0)
    assert sids.shape == (200, 3)
    np.testing.assert_array_equal(sids[:, :2], codes)
    assert len(np.unique(sids, axis=0)) == 200


def test_random_dedup_keeps_levels_and_uniqueness():
    codes = np.array([[0, 1], [0, 1], [0, 1], [1, 1], [0, 2]])
    sids = deduplicate(codes, "random", codebook_size=5, seed=0)
    assert sids.shape == codes.shape
    assert len(np.unique(sids, axis=0)) == len(sids)
    np.testing.assert_array_equal(sids[:, 0], codes[:, 0])  # prefixes untouched
    np.testing.assert_array_equal(sids[[0, 3, 4]], codes[[0, 3, 4]])  # first occurrences untouched
    assert set(sids[1:3, 1]) <= {0, 3, 4}  # re-drawn among codes unused under prefix (0,)
    np.testing.assert_array_equal(sids, deduplicate(codes, "random", codebook_size=5, seed=0))


def test_random_dedup_full_prefix_raises():
    codes = np.array([[0, 0], [0, 1], [0, 1], [1, 0]])
    with pytest.raises(ValueError, match="dedup=tiger"):
        deduplicate(codes, "random", codebook_size=2, seed=0)


def test_none_and_unknown_methods():
    codes = np.array([[0, 1], [0, 1]])
    np.testing.assert_array_equal(deduplicate(codes, "none", codebook_size=4, seed=0), codes)
    with pytest.raises(ValueError, match="tiger, random, none"):
        deduplicate(codes, "hash", codebook_size=4, seed=0)


def test_sid_stats_hand_example():
    codes = np.array([[0, 1], [0, 1], [1, 0], [1, 1]])
    sids = deduplicate(codes, "tiger", codebook_size=4, seed=0)  # last column 0, 1, 0, 0
    stats = sid_stats(codes, sids, codebook_size=4)
    json.dumps(stats)  # plain types only
    level1, level2 = stats["per_level"]
    expected = {"level": 1, "codes_used": 2, "usage": 0.5, "perplexity": pytest.approx(2.0), "max_items_per_code": 2}
    assert level1 == expected
    h2 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert level2["codes_used"] == 2 and level2["perplexity"] == pytest.approx(math.exp(h2))
    assert level2["max_items_per_code"] == 3  # code 1 of level 2: items 0, 1 and 3
    assert stats["collision_rate"] == 0.5  # items 0 and 1 share (0, 1)
    assert stats["collision_groups"] == 1 and stats["max_collision_group"] == 2
    assert stats["unique_sid_share"] == 1.0
    assert stats["dedup_extra_levels"] == 1 and stats["dedup_max"] == 1
    plain = sid_stats(codes, codes, codebook_size=4)
    assert plain["unique_sid_share"] == 0.75 and plain["dedup_extra_levels"] == 0 and plain["dedup_max"] == 0


def test_extend_unique_keeps_the_taken_sids_and_dedups_the_new_ones_their_way():
    from sidrec.quantize.sids import extend_unique

    taken = deduplicate(np.array([[0, 1], [0, 1], [2, 3]]), "tiger", 4, 0)  # (0,1,0) (0,1,1) (2,3,0)
    new = np.array([[0, 1], [1, 1], [0, 1]])
    assert extend_unique(taken, new, "tiger", 4, 0).tolist() == [[0, 1, 2], [1, 1, 0], [0, 1, 3]]
    with pytest.raises(ValueError, match="more than the trained model's collision digit holds"):
        extend_unique(taken, new, "tiger", 4, 0, limit=3)
    taken = np.array([[0, 1], [2, 3]])
    out = extend_unique(taken, np.array([[0, 1], [0, 1], [5, 5]]), "random", 8, 0)  # codes in [0, K)
    rows = {tuple(r) for r in [*taken.tolist(), *out.tolist()]}
    assert len(rows) == 5 and out[:, 0].tolist() == [0, 0, 5] and out[2].tolist() == [5, 5]
    assert extend_unique(taken, np.array([[0, 1]]), "none", 4, 0).tolist() == [[0, 1]]
