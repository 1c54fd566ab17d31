"""Balanced residual k-means (OneRec): exact balance on every level, fit and encode agree, end to end on toy data."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from sidrec import io
from sidrec.cli import app
from sidrec.quantize import QUANTIZERS
from sidrec.quantize.rkmeans_balanced import BalancedRQKMeans, balanced_assign, capacities


def test_capacities_differ_by_at_most_one_and_sum_to_n():
    caps = capacities(1003, 10)
    assert caps.sum() == 1003 and caps.max() - caps.min() == 1 and caps.tolist()[:3] == [101, 101, 101]


def test_each_code_takes_its_nearest_free_points():
    x = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    assert balanced_assign(x, torch.tensor([[0.0], [5.0]])).tolist() == [0, 0, 0, 1, 1, 1]
    skewed = torch.tensor([[0.0], [0.1], [0.2], [0.3], [5.0], [5.1]])  # 4 points near code 0, capacity 3
    assert torch.bincount(balanced_assign(skewed, torch.tensor([[0.0], [5.0]]))).tolist() == [3, 3]


def test_every_level_is_exactly_balanced_and_encode_reproduces_it():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(700, 8) + 3, torch.randn(300, 8)])  # clusters of unequal size
    q = BalancedRQKMeans(dim=8, levels=3, codebook_size=16, kmeans_iters=10, seed=0).fit(x)
    codes = q.encode(x)
    for level in range(3):
        sizes = torch.bincount(codes[:, level], minlength=16)
        assert sizes.max() - sizes.min() <= 1  # 1000 items, 16 codes: 62 or 63 each
    assert q.decode(codes).shape == (1000, 8)
    plain = QUANTIZERS["rkmeans"](dim=8, levels=3, codebook_size=16, kmeans_iters=10, seed=0).fit(x).encode(x)
    assert torch.bincount(plain[:, 0], minlength=16).max() > 63  # plain k-means is not balanced here


def test_runs_end_to_end_on_the_toy_data(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "toy_tiger", "quantize.name=rkmeans_balanced", "train.epochs=1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    stats = io.load_json(tmp_path / io.SID_STATS)
    assert 0 <= io.load_json(tmp_path / io.METRICS)["test"]["ndcg@10"] <= 1 and stats
