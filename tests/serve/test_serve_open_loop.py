"""benchmarks/serve_load.py's open loop against a live server: latency from each request's scheduled time."""

from __future__ import annotations

import asyncio
import json

from bench_scripts import load_benchmark


def test_the_open_loop_client_measures_from_the_scheduled_time(server, toy_model):
    serve_load = load_benchmark("serve_load")
    port = int(server.rsplit(":", 1)[1])
    bodies = [json.dumps({"history": toy_model.item_ids[i : i + 3], "k": 5}).encode() for i in range(5)]
    row = asyncio.run(serve_load.open_loop(port, bodies, rate=40, seconds=1.0, max_conns=4, seed=0))
    assert row["requests"] > 10 and row["answered_200"] == row["requests"] and row["errors"] == 0
    assert row["status_counts"] == {"200": row["requests"]}
    assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"] <= row["latency_ms"]["max"]
