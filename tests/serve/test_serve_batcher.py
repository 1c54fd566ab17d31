"""Micro-batching: concurrent jobs share model calls, each keeps its own k, and stop() drains the queue."""

from __future__ import annotations

import asyncio

from sidrec.serve.batcher import Batcher, Metrics


def test_jobs_share_calls_and_stop_drains(toy_model):
    hists = [toy_model.encode_history(toy_model.item_ids[i : i + 2]) for i in range(12)]

    async def scenario():
        batcher = Batcher(toy_model, max_batch=8, max_wait_ms=50)
        batcher.start()
        jobs = [asyncio.ensure_future(batcher.submit([h], [None], 1 + i % 4, [False])) for i, h in enumerate(hists)]
        await asyncio.sleep(0)  # all jobs are queued before the loop takes the first batch
        await batcher.stop()  # waits for the queued jobs before it stops
        return [j.result() for j in jobs], batcher.batch_sizes

    results, sizes = asyncio.run(scenario())
    assert sum(size * n for size, n in sizes.items()) == 12 and max(sizes) == 8
    for i, (h, rows) in enumerate(zip(hists, results, strict=True)):
        expected = toy_model.recommend_encoded([h], 1 + i % 4)[0]
        assert [r.item_id for r in rows[0]] == [r.item_id for r in expected]  # a prefix of the batch's top-k


def test_metrics_histogram():
    m = Metrics()
    for ms in (0.5, 3, 3, 150, 10_000):
        m.observe("/recommend", 200, ms)
    m.observe("/recommend", 422, 1)
    snap = m.snapshot(None)
    assert snap["requests"] == {"/recommend 200": 5, "/recommend 422": 1} and snap["requests_total"] == 6
    hist = snap["latency_ms_histogram"]
    assert hist["<=1ms"] == 2 and hist["<=5ms"] == 2 and hist["<=200ms"] == 1 and hist[">5000ms"] == 1
