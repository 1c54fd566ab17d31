"""Micro-batching: concurrent requests share one model call (one beam search), and server metrics.

Requests queue up; one background task takes what is queued (up to `max_batch` histories, waiting at
most `max_wait_ms` for more after the first), runs the model once on a single worker thread, and
hands each request its rows. A larger k costs nothing extra in beam search, so a batch runs at the
largest k asked and each request keeps its own first k (the ranking is the same prefix).

Beyond saturation a queue only grows: with `max_queue`, a request that would find more than that many
histories already waiting is refused at once (`Overloaded`; the server answers 503 with Retry-After) instead
of waiting behind them.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from sidrec.api import Model, Recommendation

LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass
class _Job:
    histories: list[np.ndarray]
    users: list[str | None]
    k: int
    exclude: list[bool]
    future: asyncio.Future
    events: list[dict[str, np.ndarray]] = field(default_factory=list)  # per history: times / actions given


class Overloaded(Exception):
    """More histories are waiting than `max_queue`: the request is refused, not queued."""


class Batcher:
    """Collects concurrent recommendation jobs into batched `Model.recommend_encoded` calls."""

    def __init__(self, model: Model, *, max_batch: int = 64, max_wait_ms: float = 2.0, max_queue: int = 0) -> None:
        self.model, self.max_batch, self.max_wait = model, max_batch, max_wait_ms / 1000
        self.max_queue = max_queue  # histories waiting before new requests are refused (0 = no limit)
        self.waiting = 0  # histories queued and not yet taken by the model loop
        self.refused = 0
        self.queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self.closing = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidrec-model")  # one torch model
        self.task: asyncio.Task | None = None
        self.batch_sizes: dict[int, int] = {}
        self.model_seconds = 0.0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish every job queued so far (a sentinel ends the loop after them), then stop the worker thread."""
        if self.task:
            await self.queue.put(None)
            await self.task
        self.executor.shutdown(wait=True)

    async def submit(
        self,
        histories: list[np.ndarray],
        users: list[str | None],
        k: int,
        exclude: list[bool],
        events: list[dict[str, np.ndarray]] | None = None,
    ) -> list[list[Recommendation]]:
        """`events`: per history, the event columns given with it (times, actions; {} for none). Overloaded when
        more than `max_queue` histories are already waiting."""
        if self.max_queue and self.waiting + len(histories) > self.max_queue:
            self.refused += 1
            raise Overloaded(f"{self.waiting} histories are waiting (the limit is {self.max_queue})")
        future = asyncio.get_running_loop().create_future()
        self.waiting += len(histories)
        await self.queue.put(_Job(histories, users, k, exclude, future, events or [{} for _ in histories]))
        return await future

    async def _take(self) -> list[_Job]:
        jobs: list[_Job] = []
        rows, deadline = 0, None
        while rows < self.max_batch:
            if jobs and self.queue.empty():
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
            else:
                job = await self.queue.get()
            if job is None:  # stop(): nothing is queued after the sentinel
                self.closing = True
                break
            if not jobs:
                deadline = time.perf_counter() + self.max_wait
            jobs.append(job)
            rows += len(job.histories)
            self.waiting -= len(job.histories)
        return jobs

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closing:
            jobs = await self._take()
            if not jobs:
                continue
            start = time.perf_counter()
            rows = [(j, r) for j in jobs for r in range(len(j.histories))]
            groups: dict[tuple[str, ...], list[tuple[_Job, int]]] = {}  # one model call per set of events given
            for j, r in rows:
                groups.setdefault(tuple(sorted(j.events[r])), []).append((j, r))
            results: dict[tuple[int, int], list[Recommendation]] = {}
            failed = None
            for names, part in groups.items():
                k = max(j.k for j, _ in part)
                call = partial(
                    self.model.recommend_encoded,
                    [j.histories[r] for j, r in part],
                    k,
                    users=[j.users[r] for j, r in part],
                    exclude_history=[j.exclude[r] for j, r in part],
                    events={n: [j.events[r][n] for j, r in part] for n in names},
                )
                try:
                    out = await loop.run_in_executor(self.executor, call)
                except Exception as err:  # the model failed for the batch: every waiting request learns why
                    failed = err
                    break
                results.update({(id(j), r): recs for (j, r), recs in zip(part, out, strict=True)})
            if failed is not None:
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(failed)
                continue
            self.model_seconds += time.perf_counter() - start
            self.batch_sizes[len(rows)] = self.batch_sizes.get(len(rows), 0) + 1
            for j in jobs:
                if not j.future.done():  # a client that went away cancelled its future
                    j.future.set_result([results[(id(j), r)][: j.k] for r in range(len(j.histories))])


@dataclass
class Metrics:
    """Request counts by route and status, and a latency histogram (cumulative-free bucket counts)."""

    started: float = field(default_factory=time.time)
    requests: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    latency_sum_ms: float = 0.0

    def observe(self, route: str, status: int, ms: float) -> None:
        key = f"{route} {status}"
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency_sum_ms += ms
        for i, edge in enumerate(LATENCY_BUCKETS_MS):
            if ms <= edge:
                self.buckets[i] += 1
                return
        self.buckets[-1] += 1

    def snapshot(self, batcher: Batcher | None) -> dict:
        total = sum(self.requests.values())
        labels = [f"<={b}ms" for b in LATENCY_BUCKETS_MS] + [f">{LATENCY_BUCKETS_MS[-1]}ms"]
        out = {
            "uptime_seconds": round(time.time() - self.started, 1),
            "requests_total": total,
            "requests": dict(sorted(self.requests.items())),
            "latency_ms_histogram": dict(zip(labels, self.buckets, strict=True)),
            "latency_ms_mean": round(self.latency_sum_ms / total, 3) if total else None,
        }
        if batcher is not None:
            calls = sum(batcher.batch_sizes.values())
            rows = sum(size * n for size, n in batcher.batch_sizes.items())
            out["model_calls"] = calls
            out["model_rows"] = rows
            out["mean_batch_size"] = round(rows / calls, 2) if calls else None
            out["model_seconds"] = round(batcher.model_seconds, 3)
            out["queued"] = batcher.queue.qsize()
            out["refused_overloaded"] = batcher.refused
        return out
