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


def test_a_full_queue_refuses_new_requests(toy_model):
    import pytest

    from sidrec.serve.batcher import Overloaded

    hists = [toy_model.encode_history(toy_model.item_ids[i : i + 2]) for i in range(4)]

    async def scenario():
        batcher = Batcher(toy_model, max_batch=8, max_wait_ms=1, max_queue=3)  # not started: nothing drains
        waiting = [asyncio.ensure_future(batcher.submit([h], [None], 5, [False])) for h in hists[:3]]
        await asyncio.sleep(0)
        assert batcher.waiting == 3
        with pytest.raises(Overloaded, match="3 histories are waiting"):
            await batcher.submit([hists[3]], [None], 5, [False])
        batcher.start()  # the model takes the queued three: room again
        results = await asyncio.gather(*waiting)
        again = await batcher.submit([hists[3]], [None], 5, [False])
        await batcher.stop()
        return results, again, batcher

    results, again, batcher = asyncio.run(scenario())
    assert len(results) == 3 and len(again[0]) == 5 and batcher.refused == 1 and batcher.waiting == 0


def test_the_server_sheds_load_with_503_and_retry_after(toy_model):
    import json
    import urllib.error
    import urllib.request

    from sidrec.serve import start_background

    srv, thread, url = start_background(toy_model, max_queue=1)
    try:
        body = {"requests": [{"history": toy_model.item_ids[:2]}, {"history": toy_model.item_ids[2:4]}]}
        req = urllib.request.Request(url + "/recommend/batch", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as err:
            assert err.code == 503 and err.headers["Retry-After"] == "1"
            assert "at capacity" in json.loads(err.read())["error"]
        one = {"history": toy_model.item_ids[:2], "k": 3}
        head = {"Content-Type": "application/json"}
        single = urllib.request.Request(url + "/recommend", json.dumps(one).encode(), head)
        with urllib.request.urlopen(single, timeout=10) as r:  # one history fits
            assert r.status == 200
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
