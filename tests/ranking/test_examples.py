"""The ranker's examples: interleaved tokens, the held-out split of each user's events, negatives."""

from __future__ import annotations

import numpy as np
import torch

from sidrec.ranking.examples import EventWindows, Window, interleave, split_windows


def test_interleave_by_hand():
    items, actions, times = interleave(np.array([5, 6, 7]), np.array([4, 2, 5]), np.array([10, 20, 30]))
    assert items.tolist() == [5, 0, 6, 0, 7, 0] and actions.tolist() == [0, 4, 0, 2, 0, 5]
    assert times.tolist() == [10, 10, 10, 20, 20, 30]  # an item token: the previous event's time
    assert interleave(np.array([5]), np.array([4]), np.array([10]), before=3)[2].tolist() == [3, 10]
    assert interleave(np.array([5]), np.array([4]), None)[2] is None


def test_split_windows_by_hand():
    out = split_windows([20], holdout=3, max_events=8)
    assert out["train"] == [Window(0, 6, 14, 6), Window(0, 0, 6, 0)]  # labels end 2 x 3 events before the end
    assert out["valid"] == [Window(0, 9, 17, 14)] and out["test"] == [Window(0, 12, 20, 17)]
    short = split_windows([4], holdout=3, max_events=8)
    assert short["train"] == [] and short["valid"] == [Window(0, 0, 1, 0)] and short["test"] == [Window(0, 0, 4, 1)]


def seqs():
    items = [np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8, 9])]
    actions = [np.array([5, 4, 3, 2, 1, 5]), np.array([1, 2, 3])]
    times = [np.arange(6) * 10, np.arange(3) * 100]
    return items, actions, times


def test_labels_sit_on_item_tokens_and_negatives_at_their_event():
    items, actions, times = seqs()
    windows = [Window(0, 2, 6, 4), Window(1, 0, 3, 0)]
    pools = [np.tile(np.array([[9, 4]]), (6, 1)), np.tile(np.array([[1, 8]]), (3, 1))]
    ex = EventWindows(items, actions, times, windows, max_events=4, negatives=3, pools=pools)
    b = ex.batch(windows, torch.device("cpu"), np.random.default_rng(0))
    assert b["items"][0].tolist() == [3, 0, 4, 0, 5, 0, 6, 0] and b["labels"][0].tolist() == [0, 0, 0, 0, 1, 0, 5, 0]
    assert b["items"][1].tolist() == [0, 0, 7, 0, 8, 0, 9, 0] and b["labels"][1].tolist() == [0, 0, 1, 0, 2, 0, 3, 0]
    neg, cut = b["negatives"], b["negative_cut"]
    assert (
        neg.shape == (2, 9)
        and cut[0, :6].tolist() == [4, 4, 4, 6, 6, 6]
        and cut[1].tolist() == [2] * 3 + [4] * 3 + [6] * 3
    )
    assert set(neg[0, :6].tolist()) <= {9, 4, 0} and neg[0, 6:].tolist() == [0, 0, 0]  # row 0 has 2 labels x 3
    own = b["items"].gather(1, cut)
    assert not ((neg == own) & (neg > 0)).any()  # an event's own item is never its negative
    assert torch.equal(b["negative_times"], b["times"].gather(1, cut))
    assert b["negative_events"].tolist() == [[True, True, False], [True, True, True]]
    assert "negatives" not in ex.batch(windows, torch.device("cpu"))  # no rng (evaluation): no negatives


def test_popular_negatives_follow_popularity():
    items, actions, times = seqs()
    popularity = np.zeros(10)
    popularity[9] = 1.0  # only item 9 can be drawn
    ex = EventWindows(items, actions, None, [Window(0, 0, 6, 0)], 6, negatives=2, popularity=popularity)
    b = ex.batch(ex.windows, torch.device("cpu"), np.random.default_rng(0))
    assert set(b["negatives"][0].tolist()) == {9} and "negative_times" not in b


def test_mixed_negatives_draw_half_from_the_pool_and_half_by_popularity():
    items, actions, times = seqs()
    popularity = np.zeros(10)
    popularity[9] = 1.0  # by popularity: only item 9
    pools = [np.full((6, 3), 8), np.full((3, 3), 8)]  # from the pool: only item 8
    ex = EventWindows(items, actions, None, [Window(0, 0, 6, 2)], 6, negatives=4, popularity=popularity, pools=pools,
                      hard=2)  # fmt: skip
    neg = ex.batch(ex.windows, torch.device("cpu"), np.random.default_rng(0))["negatives"][0].view(4, 4)
    assert (neg[:, :2] == 8).all() and (neg[:, 2:] == 9).all()
