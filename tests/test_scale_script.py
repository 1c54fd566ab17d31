"""benchmarks/scale.py's RPG part: where graph decoding starts to serve more users per second than exact."""

from __future__ import annotations

from bench_scripts import load_benchmark


def test_the_crossover_is_the_smallest_catalog_where_graph_decoding_wins():
    scale = load_benchmark("scale")
    rows = [
        {"items": 10, "graph_batch32_users_per_second": 5, "exact_batch32_users_per_second": 9},
        {"items": 100, "graph_batch32_users_per_second": 5, "exact_batch32_users_per_second": 4},
        {"items": 1000, "graph_batch32_users_per_second": 5, "exact_batch32_users_per_second": 1},
    ]
    assert scale.crossover(rows, 32) == "graph faster from 100 items (of those measured)"
    assert scale.crossover(rows[:1], 32) == "exact faster at every size measured"
