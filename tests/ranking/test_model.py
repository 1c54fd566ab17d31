"""The generative ranker: what each token sees, training and ranking layouts agreeing, padding, learning."""

from __future__ import annotations

import numpy as np
import torch

from sidrec.ranking.examples import history_tokens, interleave
from sidrec.ranking.model import HSTURanker, RankerShape


def ranker(**kw) -> HSTURanker:
    torch.manual_seed(0)
    shape = RankerShape(n_items=30, max_events=8, d_model=16, n_heads=2, d_head=8, dropout=0.0, **kw)
    model = HSTURanker(shape).eval()
    with torch.no_grad():  # the biases start at zero, the embeddings small: give them weight so that tests see them
        model.item.weight[1:].normal_()
        model.action.weight[1:].normal_()
        for layer in model.layers:
            layer.rel_pos_bias.normal_()
            layer.rel_time_bias.normal_()
    return model


EVENTS = (np.array([3, 7, 9, 4]), np.array([5, 1, 4, 2]), np.array([100, 200, 5000, 90000]))


def tokens(items=EVENTS[0], actions=EVENTS[1], times=EVENTS[2]):
    return history_tokens([items], [actions], [times], max_events=8, device=torch.device("cpu"))


@torch.no_grad()
def test_a_candidate_sees_the_history_and_nothing_after_it():
    model = ranker()

    def out(cands, actions=EVENTS[1]):  # each candidate's output, all placed after the history
        toks = tokens(actions=actions)
        t = toks["items"].shape[1]
        cand = torch.tensor([cands])
        cut, now = torch.full(cand.shape, t), toks["now"][:, None].expand(cand.shape)
        return model.encode(toks["items"], toks["actions"], toks["times"], cand, cut, now)[1][0]

    base = out([5, 6, 8])
    assert torch.equal(out([5, 11, 12])[0], base[0]) and torch.equal(out([5])[0], base[0])  # not the other candidates
    assert not torch.allclose(out([5], actions=np.array([5, 1, 4, 5]))[0], base[0])  # the last event's action: seen


@torch.no_grad()
def test_ranking_a_candidate_equals_reading_it_as_the_next_event():
    """The candidate's output in one-pass ranking equals its item token's output in the training layout."""
    model = ranker()
    toks = tokens()
    logit_rank = model.score(toks["items"], toks["actions"], torch.tensor([[6]]), toks["times"], toks["now"])
    items, actions, times = EVENTS
    it, ac, tt = interleave(np.r_[items, 6], np.r_[actions, 3], np.r_[times, 10**6])  # the next event: item 6
    h, _ = model.encode(*(torch.from_numpy(a)[None] for a in (it, ac, tt)))
    liked, _, engaged = model.heads(h[0, -2])  # its item token (its action token comes after it, unseen)
    expected = torch.nn.functional.logsigmoid(liked) + engaged
    assert torch.allclose(logit_rank[0, 0], expected, atol=1e-5)


@torch.no_grad()
def test_a_token_does_not_see_later_tokens():
    model = ranker()
    it, ac, tt = (torch.from_numpy(a)[None] for a in interleave(*EVENTS))
    h, _ = model.encode(it, ac, tt)
    later = ac.clone()
    later[0, -1] = 1  # the last event's action
    h2, _ = model.encode(it, later, tt)
    assert torch.equal(h[0, :-1], h2[0, :-1]) and not torch.allclose(h[0, -1], h2[0, -1])


@torch.no_grad()
def test_left_padding_does_not_change_the_scores():
    model = ranker()
    short = (EVENTS[0][2:], EVENTS[1][2:], EVENTS[2][2:])
    alone = history_tokens([short[0]], [short[1]], [short[2]], 8, torch.device("cpu"))
    both = history_tokens([short[0], EVENTS[0]], [short[1], EVENTS[1]], [short[2], EVENTS[2]], 8, torch.device("cpu"))
    cands = torch.tensor([[5, 6], [5, 6]])
    a = model.score(alone["items"], alone["actions"], cands[:1], alone["times"], alone["now"])
    b = model.score(both["items"], both["actions"], cands, both["times"], both["now"])
    assert both["items"].shape[1] > alone["items"].shape[1]
    assert torch.allclose(a[0], b[0], atol=1e-5)


def test_the_towers_learn_a_liked_item():
    """Item 7 is always rated 5, item 8 always 1: after training, the liked tower ranks 7 over 8."""
    torch.manual_seed(0)
    model = HSTURanker(RankerShape(n_items=10, max_events=4, d_model=16, n_heads=1, d_head=16, dropout=0.0,
                                   time_bias=False, negatives=0))  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    rng = np.random.default_rng(0)
    for _ in range(60):
        rows = []
        for _ in range(16):
            items = rng.choice([1, 2, 3, 7, 8], 4)
            actions = np.where(items == 7, 5, np.where(items == 8, 1, rng.integers(1, 6, 4)))
            rows.append(interleave(items, actions, None))
        it = torch.tensor(np.stack([r[0] for r in rows]))
        ac = torch.tensor(np.stack([r[1] for r in rows]))
        loss = model.loss({"items": it, "actions": ac, "labels": torch.where(it > 0, ac.roll(-1, 1), 0)})
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    toks = history_tokens([np.array([1, 2])], [np.array([3, 4])], None, 4, torch.device("cpu"))
    with torch.no_grad():
        s = model.score(toks["items"], toks["actions"], torch.tensor([[7, 8]]))
    assert s[0, 0] > s[0, 1] + 1.0


@torch.no_grad()
def test_one_pass_scoring_equals_the_general_candidate_layout():
    """`score` (all candidates right after the history) equals `encode` with each candidate's position given as T."""
    model = ranker()
    short = (EVENTS[0][1:], EVENTS[1][1:], EVENTS[2][1:])
    toks = history_tokens([short[0], EVENTS[0]], [short[1], EVENTS[1]], [short[2], EVENTS[2]], 8, torch.device("cpu"))
    cands = torch.tensor([[5, 6, 0], [11, 12, 13]])
    fast = model.score(toks["items"], toks["actions"], cands, toks["times"], toks["now"])
    t = toks["items"].shape[1]
    _, h = model.encode(toks["items"], toks["actions"], toks["times"], cands, torch.full(cands.shape, t),
                        toks["now"][:, None].expand(cands.shape))  # fmt: skip
    liked, _, engaged = model.heads(h)
    slow = torch.nn.functional.logsigmoid(liked) + engaged
    assert torch.allclose(fast, slow, atol=1e-5)


@torch.no_grad()
def test_a_training_negative_sees_only_the_history_before_its_event():
    """A candidate placed at event 2's item token equals a candidate after the history cut before event 2."""
    model = ranker()
    it, ac, tt = (torch.from_numpy(a)[None] for a in interleave(*EVENTS))
    cand = torch.tensor([[11]])
    _, at_event = model.encode(it, ac, tt, cand, torch.tensor([[4]]), tt[:, 4:5])
    _, after = model.encode(it[:, :4], ac[:, :4], tt[:, :4], cand, None, tt[:, 3])
    assert torch.allclose(at_event, after, atol=1e-5)
