"""Beam search against brute-force enumeration on a tiny code space (L=3 levels of K=4 codes)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sidrec.decode.beam import beam_search
from sidrec.decode.trie import SIDTrie

L, K, B = 3, 4, 2
SIZES = (K,) * L
ALL = list(itertools.product(range(K), repeat=L))  # the 64 code sequences


def bigram_table(seed: int = 0) -> torch.Tensor:
    """(B, L, K+1, K) log-probs per user, level and previous code (+1; index 0 = none at level 0)."""
    gen = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(B, L, K + 1, K, generator=gen)).log_softmax(-1)


def bigram_step(table: torch.Tensor, width: int):
    """A stateless step: log p(code | user, level, previous code)."""

    def step(level: int, prev: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
        user = torch.arange(len(prev)) // width
        return table[user, level, prev + 1]

    return step


def bigram_score(table: torch.Tensor, user: int, seq: tuple[int, ...]) -> float:
    prevs = (-1, *seq[:-1])
    return sum(float(table[user, lvl, p + 1, c]) for lvl, (p, c) in enumerate(zip(prevs, seq, strict=True)))


def brute_force(score, user: int, candidates=ALL) -> list[tuple[float, tuple[int, ...]]]:
    return sorted(((score(user, seq), seq) for seq in candidates), key=lambda t: -t[0])


def check_top(result, ranked_by_user: list, n: int) -> None:
    for user in range(B):
        expected = ranked_by_user[user][:n]
        assert result.codes[user, :n].tolist() == [list(seq) for _, seq in expected]
        assert result.scores[user, :n].tolist() == pytest.approx([s for s, _ in expected], abs=1e-5)


def test_exhaustive_beam_equals_brute_force():
    table = bigram_table()
    w = K**L
    result = beam_search(
        bigram_step(table, w), batch_size=B, beam_width=w, level_sizes=SIZES, trie=None, constrained=False
    )
    assert result.codes.shape == (B, w, L) and result.scores.shape == (B, w)
    ranked = [brute_force(lambda u, s: bigram_score(table, u, s), u) for u in range(B)]
    check_top(result, ranked, w)
    assert (result.leaves == -1).all()  # no trie: no leaves


def test_width_one_is_greedy():
    table = bigram_table(seed=3)
    result = beam_search(
        bigram_step(table, 1), batch_size=B, beam_width=1, level_sizes=SIZES, trie=None, constrained=False
    )
    for user in range(B):
        prev, greedy = -1, []
        for level in range(L):
            prev = int(table[user, level, prev + 1].argmax())
            greedy.append(prev)
        assert result.codes[user, 0].tolist() == greedy
        assert float(result.scores[user, 0]) == pytest.approx(bigram_score(table, user, tuple(greedy)), abs=1e-5)


def valid_sids(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([ALL[i] for i in sorted(rng.choice(len(ALL), size=n, replace=False))])


@pytest.mark.parametrize("width", [10, 13, 64])
def test_constrained_beams_are_the_best_valid_sids(width):
    table = bigram_table(seed=1)
    sids = valid_sids(10)
    trie = SIDTrie(sids, SIZES)
    result = beam_search(
        bigram_step(table, width), batch_size=B, beam_width=width, level_sizes=SIZES, trie=trie, constrained=True
    )
    valid = [tuple(s) for s in sids.tolist()]
    ranked = [brute_force(lambda u, s: bigram_score(table, u, s), u, valid) for u in range(B)]
    check_top(result, ranked, len(valid))  # W >= number of valid SIDs: all of them, by score
    finite = torch.isfinite(result.scores)
    assert finite.sum(1).tolist() == [len(valid)] * B  # the rest are unfilled (-inf)
    paths = trie.paths()
    for user in range(B):
        for beam in range(len(valid)):
            leaf = int(result.leaves[user, beam])
            assert paths[leaf].tolist() == result.codes[user, beam].tolist()


def test_free_decoding_marks_invalid_beams():
    table = bigram_table(seed=2)
    sids = valid_sids(10, seed=2)
    trie = SIDTrie(sids, SIZES)
    w = K**L
    result = beam_search(
        bigram_step(table, w), batch_size=B, beam_width=w, level_sizes=SIZES, trie=trie, constrained=False
    )
    valid = {tuple(s) for s in sids.tolist()}
    ranked = [brute_force(lambda u, s: bigram_score(table, u, s), u) for u in range(B)]
    check_top(result, ranked, w)  # the trie changes nothing but the leaves
    for user in range(B):
        for beam in range(w):
            is_valid = tuple(result.codes[user, beam].tolist()) in valid
            assert (int(result.leaves[user, beam]) >= 0) == is_valid


def test_constrained_without_trie_raises():
    with pytest.raises(ValueError, match="needs a trie"):
        beam_search(
            bigram_step(bigram_table(), 2), batch_size=B, beam_width=2, level_sizes=SIZES, trie=None, constrained=True
        )


def prefix_tables(seed: int = 0) -> list[torch.Tensor]:
    """Per level l, (B, K**l, K) log-probs given the whole prefix (encoded base K)."""
    gen = torch.Generator().manual_seed(seed)
    return [(3 * torch.randn(B, K**level, K, generator=gen)).log_softmax(-1) for level in range(L)]


def prefix_score(tables, user: int, seq: tuple[int, ...]) -> float:
    total, index = 0.0, 0
    for level, code in enumerate(seq):
        total += float(tables[level][user, index, code])
        index = index * K + code
    return total


class PrefixStep:
    """A stateful step: log-probs depend on the full prefix, which it tracks only through `parent`.

    Its per-row state (the prefix so far) must be reordered with `state[parent]`; a wrong parent
    gives wrong scores. It also asserts that beams never cross users.
    """

    def __init__(self, tables, width: int) -> None:
        self.tables, self.width = tables, width
        self.prefix: torch.Tensor | None = None  # (B*W,) base-K code of each row's prefix

    def __call__(self, level: int, prev: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(prev))
        user = rows // self.width
        if level == 0:
            assert (prev == -1).all()
            self.prefix = torch.zeros(len(prev), dtype=torch.long)
        else:
            assert (parent // self.width == user).all(), "a beam continued another user's beam"
            self.prefix = self.prefix[parent] * K + prev
        return self.tables[level][user, self.prefix]


@pytest.mark.parametrize("width", [3, 7, 64])
def test_parent_reorders_per_beam_state(width):
    tables = prefix_tables()
    result = beam_search(
        PrefixStep(tables, width), batch_size=B, beam_width=width, level_sizes=SIZES, trie=None, constrained=False
    )
    for user in range(B):
        # the reported scores are those of the reported codes under the full-prefix model
        for beam in range(width):
            seq = tuple(result.codes[user, beam].tolist())
            assert float(result.scores[user, beam]) == pytest.approx(prefix_score(tables, user, seq), abs=1e-5)
        # and equal a plain-Python beam search over full prefixes
        beams = [((), 0.0)]
        for _ in range(L):
            cands = [(seq + (c,), prefix_score(tables, user, seq + (c,))) for seq, _ in beams for c in range(K)]
            beams = sorted(cands, key=lambda t: -t[1])[:width]
        assert result.codes[user].tolist() == [list(seq) for seq, _ in beams]
    if width == K**L:
        ranked = [brute_force(lambda u, s: prefix_score(tables, u, s), u) for u in range(B)]
        check_top(result, ranked, width)
