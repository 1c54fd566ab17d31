"""RPG's graph-constrained decoding: the item graph and beam propagation against exact top-k."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sidrec.decode.graph import graph_topk, item_graph

N, M, K, D = 60, 4, 6, 8


def setup(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    codes = torch.zeros(N + 1, M, dtype=torch.long)
    codes[1:] = torch.randint(0, K, (N, M), generator=gen)
    vectors = F.normalize(torch.randn(M, K, D, generator=gen), dim=-1)
    logp = torch.randn(5, M, K, generator=gen).log_softmax(-1)
    return codes, vectors, logp


def exact(logp, codes):
    return torch.stack([logp[:, m, codes[1:, m]] for m in range(M)], -1).mean(-1)  # (B, N)


def test_graph_neighbours_are_the_most_similar_items():
    codes, vectors, _ = setup()
    graph = item_graph(codes, vectors, edges=5, chunk=7)
    assert graph.shape == (N + 1, 5) and int(graph[1:].min()) >= 1
    sims = 0.5 * (torch.einsum("mkd,mjd->mkj", vectors, vectors) + 1)  # (M, K, K)
    full = torch.stack([sims[m][codes[1:, m]][:, codes[1:, m]] for m in range(M)]).mean(0)  # (N, N)
    for i in range(1, N + 1):
        got = full[i - 1, graph[i] - 1]
        assert got.min() >= full[i - 1].topk(5).values.min() - 1e-5
    assert (graph[1:, 0] == torch.arange(1, N + 1)).float().mean() > 0.9  # an item is its own nearest


def test_full_propagation_finds_the_exact_top1():
    codes, vectors, logp = setup()
    graph = item_graph(codes, vectors, edges=N)  # complete graph: one step sees every item
    items, scores, seen = graph_topk(logp, codes, graph, k=3, beams=4, steps=1, gen=torch.Generator().manual_seed(0))
    full = exact(logp, codes)
    ref = full.topk(3)
    torch.testing.assert_close(scores, ref.values)  # the exact top-3 scores (items may tie: shared codes)
    torch.testing.assert_close(full.gather(1, items - 1), scores)
    assert (seen == N).all()


def test_repeat_bias_moves_the_history_items():
    """A model's learned repeat bias is added to the scores of the history's items, as in exact decoding."""
    codes, vectors, logp = setup()
    graph = item_graph(codes, vectors, edges=N)
    full = exact(logp, codes)
    history = full.topk(2).indices + 1  # each user's two best items are in their history
    history = torch.cat([torch.zeros(5, 1, dtype=torch.long), history], 1)  # and a padding slot
    gen = torch.Generator().manual_seed(0)
    kwargs = dict(k=3, beams=4, steps=1, gen=gen, history=history, repeat_bias=-50.0)
    items, scores, _ = graph_topk(logp, codes, graph, **kwargs)
    ref = full.scatter_add(1, history[:, 1:] - 1, torch.full((5, 2), -50.0)).topk(3)
    torch.testing.assert_close(scores, ref.values)
    assert not (items[:, :, None] == history[:, None, :]).any()


def test_sparse_graph_returns_distinct_items_and_finds_top1_on_a_small_catalogue():
    codes, vectors, logp = setup(1)
    graph = item_graph(codes, vectors, edges=20)
    items, scores, seen = graph_topk(logp, codes, graph, k=5, beams=8, steps=4, gen=torch.Generator().manual_seed(0))
    for row in items:
        assert len(set(row.tolist())) == 5
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    assert (seen <= N).all()
    ref = exact(logp, codes).argmax(1) + 1
    assert (items[:, 0] == ref).float().mean() >= 0.8


def test_bad_sizes_name_the_setting():
    codes, vectors, logp = setup()
    with pytest.raises(ValueError, match="graph_edges"):
        item_graph(codes, vectors, edges=N + 1)
    graph = item_graph(codes, vectors, edges=4)
    with pytest.raises(ValueError, match="graph_beams"):
        graph_topk(logp, codes, graph, k=5, beams=3, steps=1, gen=torch.Generator())
