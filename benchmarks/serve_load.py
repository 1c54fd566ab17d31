"""Load test of `sidrec serve` on 127.0.0.1: N concurrent keep-alive clients, bounded in requests and time;
or, with --rate, an open loop: requests arrive at fixed Poisson rates whatever the server's pace.

    python benchmarks/serve_load.py runs/beauty --record benchmarks/results/serve_load_cpu.json
    python benchmarks/serve_load.py runs/beauty --rate 50 100 200 400 500 600 800 --max-queue 512 \
        --record benchmarks/results/serve_open_loop.json --plot benchmarks/results/serve_open_loop.png

It starts `python -m sidrec serve` on a free 127.0.0.1 port in a child process (so the client and
the server do not share a GIL), waits for /health, then runs `--clients` closed-loop clients that
each POST /recommend (k=10) with real test histories of the run (the last <= max_history items
before each user's test item) until `--requests` are done or `--max-seconds` have passed. It records
requests/s, latency percentiles (send to last byte), errors, and the server's /metrics (batch sizes).

Open loop (`--rate R ...`): for each rate, `--seconds` of Poisson arrivals, each request sent at its scheduled
time on an idle connection (or a new one, up to `--max-conns`); latency runs from the scheduled time, so a
request that waits for a connection or in the server's queue counts its wait (no coordinated omission). Per
rate: p50 / p90 / p99 / max, the responses by status (503: shed by `--max-queue`), the requests served per
second, and how late the client itself sent (send lag: the client's own limit on this machine).

The client is a minimal HTTP/1.1 keep-alive client over asyncio streams: on a 2-core machine a
heavier client (httpx, aiohttp) would take CPU from the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl

from sidrec import io
from sidrec.data.split import eval_examples
from sidrec.report import git_commit, machine

HOST = "127.0.0.1"  # never anything else: this script loads only the local machine


def histories(run_dir: Path) -> list[list[str]]:
    cfg = io.load_run_config(run_dir)
    items = pl.read_parquet(run_dir / io.ITEMS).sort("item_idx")["item_id"].to_list()
    examples = eval_examples(pl.read_parquet(run_dir / io.SEQUENCES), "test", cfg.data.max_history)
    return [[str(items[i - 1]) for i in h] for h in examples.histories if len(h)]


async def exchange(reader, writer, body: bytes) -> tuple[int, bytes]:
    """One POST /recommend on an open keep-alive connection: (status, body)."""
    head = f"POST /recommend HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
    writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
    header = await reader.readuntil(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


async def client(port: int, bodies: list[bytes], todo: list[int], deadline: float, lat: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while todo and time.perf_counter() < deadline:
            todo.pop()
            start = time.perf_counter()
            try:
                status, payload = await exchange(reader, writer, random.choice(bodies))
            except (asyncio.IncompleteReadError, ConnectionError, StopIteration) as err:
                errors.append(repr(err))
                return
            lat.append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"{status}: {payload[:200]!r}")
    finally:
        writer.close()


async def open_loop(port: int, bodies: list[bytes], rate: float, seconds: float, max_conns: int, seed: int) -> dict:
    """Requests at Poisson arrival times (`rate` per second, for `seconds`), each sent at its scheduled time on an
    idle keep-alive connection (a new one when all are busy, up to `max_conns`; past that it waits for one). Its
    latency runs from the scheduled time, so time spent waiting to be sent counts (no coordinated omission)."""
    rng = random.Random(seed)
    arrivals, t = [], rng.expovariate(rate)
    while t < seconds:
        arrivals.append(t)
        t += rng.expovariate(rate)
    idle: list = []
    slots = asyncio.Semaphore(max_conns)
    lat, late, statuses, errors = [], [], {}, []

    async def one(due: float) -> None:
        async with slots:
            late.append(time.perf_counter() - due)  # how late it was sent (client or connection limit)
            reused = bool(idle)
            reader, writer = idle.pop() if idle else await asyncio.open_connection(HOST, port)
            body = rng.choice(bodies)
            try:
                try:
                    status, payload = await exchange(reader, writer, body)
                except (asyncio.IncompleteReadError, ConnectionError) as err:
                    if not reused or getattr(err, "partial", None):
                        raise
                    # the server closed this idle keep-alive connection (its keep-alive timeout): send it again on a
                    # new one, as HTTP clients do; the latency still runs from the scheduled time
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
                    status, payload = await exchange(reader, writer, body)
            except (asyncio.IncompleteReadError, ConnectionError, StopIteration) as err:
                errors.append(repr(err))
                writer.close()
                return
            lat.append(time.perf_counter() - due)
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200 and len(errors) < 5:
                errors.append(f"{status}: {payload[:200]!r}")
            idle.append((reader, writer))

    start = time.perf_counter()
    tasks = []
    for at in arrivals:
        wait = start + at - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.ensure_future(one(start + at)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    for _, writer in idle:
        writer.close()
    ms, late_ms = np.asarray(lat) * 1000, np.asarray(late) * 1000
    ok = statuses.get(200, 0)
    pct = {f"p{q}": round(float(np.percentile(ms, q)), 2) for q in (50, 90, 99)} if len(ms) else {}
    return {
        "offered_per_second": rate,
        "requests": len(arrivals),
        "answered_200": ok,
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "errors": len(arrivals) - ok,
        "error_examples": errors[:5],
        "served_per_second": round(ok / wall, 1),
        "latency_ms": pct | ({"max": round(float(ms.max()), 2), "mean": round(float(ms.mean()), 2)} if len(ms) else {}),
        "send_lag_ms_p99": round(float(np.percentile(late_ms, 99)), 2) if len(late_ms) else None,
        "wall_seconds": round(wall, 2),
    }


def plot_open_loop(rows: list[dict], path: Path, title: str) -> None:
    """Latency (p50, p99, max) against offered load, log scale, with the share of requests not answered 200."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r["offered_per_second"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("p50", "p99", "max"):
        ax.plot(rates, [r["latency_ms"].get(key, np.nan) for r in rows], marker="o", label=f"{key} latency")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (requests/s, Poisson arrivals)")
    ax.set_ylabel("latency from the scheduled send (ms)")
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    shed = ax.twinx()
    shed.bar(rates, [r["errors"] / max(r["requests"], 1) for r in rows], width=min(rates) * 0.3, alpha=0.2,
             color="red", label="not answered 200 (share)")  # fmt: skip
    shed.set_ylim(0, 1)
    shed.set_ylabel("share not answered 200")
    ax.legend(loc="upper left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


async def load(port: int, bodies: list[bytes], clients: int, requests: int, max_seconds: float) -> dict:
    todo, lat, errors = list(range(requests)), [], []
    start = time.perf_counter()
    deadline = start + max_seconds
    await asyncio.gather(*(client(port, bodies, todo, deadline, lat, errors) for _ in range(clients)))
    wall = time.perf_counter() - start
    ms = np.asarray(lat) * 1000
    return {
        "requests": len(lat),
        "errors": len(errors),
        "error_examples": errors[:5],
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(len(lat) / wall, 1),
        "latency_ms": {f"p{q}": round(float(np.percentile(ms, q)), 2) if len(ms) else None for q in (50, 90, 99)}
        | {
            "max": round(float(ms.max()), 2) if len(ms) else None,
            "mean": round(float(ms.mean()), 2) if len(ms) else None,
        },
        "stopped_by_time_limit": bool(todo),
    }


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--max-seconds", type=float, default=900, help="stop sending after this long")
    ap.add_argument("--rate", type=float, nargs="+", default=[], help="open loop: Poisson arrivals at these rates")
    ap.add_argument("--seconds", type=float, default=20, help="open loop: seconds of arrivals per rate")
    ap.add_argument("--max-conns", type=int, default=512, help="open loop: most connections open at once")
    ap.add_argument("--plot", type=Path, help="open loop: write the latency-against-load plot (PNG) here")
    ap.add_argument("--warmup", type=int, default=400, help="requests before the timed run (not recorded)")
    ap.add_argument("--threads", type=int, default=1, help="server torch threads")
    ap.add_argument("--max-batch", type=int, default=128)
    ap.add_argument("--max-wait-ms", type=float, default=2.0)
    ap.add_argument("--max-queue", type=int, default=0, help="server: histories waiting before 503 (0: no limit)")
    ap.add_argument("--beam-width", type=int, default=0, help="server beams per request (0 = the run's beam width)")
    ap.add_argument("--record", type=Path, help="write the result (JSON) here")
    args = ap.parse_args()
    if not 1 <= args.clients <= 1000 or not 1 <= args.requests <= 200_000:
        sys.exit("--clients must be 1..1000 and --requests 1..200000 (this is a bounded load test)")
    if sum(args.rate) * args.seconds > 200_000 or any(r <= 0 for r in args.rate) or not 1 <= args.max_conns <= 1000:
        sys.exit("--rate x --seconds must stay within 200000 requests, rates > 0, --max-conns 1..1000 (bounded)")

    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "sidrec", "serve", "--out", str(args.run_dir), "--host", HOST, "--port", str(port)]
    cmd += ["--threads", str(args.threads), "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    cmd += ["--beam-width", str(args.beam_width), "--max-queue", str(args.max_queue)]
    bodies = [json.dumps({"history": h, "k": 10}).encode() for h in histories(args.run_dir)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows: list[dict] = []
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                health = get(f"http://{HOST}:{port}/health")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"server did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)
        print(f"server up on {HOST}:{port} ({health['model']}, {health['items']} items); warm-up {args.warmup}")
        asyncio.run(load(port, bodies, min(args.clients, args.warmup), args.warmup, 120))
        before = get(f"http://{HOST}:{port}/metrics")
        if args.rate:
            for i, rate in enumerate(args.rate):
                row = asyncio.run(open_loop(port, bodies, rate, args.seconds, args.max_conns, seed=i))
                lat = row["latency_ms"]
                print(f"{rate:7.0f}/s offered: served {row['served_per_second']:7.1f}/s, p50 {lat.get('p50')} p99 "
                      f"{lat.get('p99')} max {lat.get('max')} ms, not 200: {row['errors']}", flush=True)  # fmt: skip
                rows.append(row)
                time.sleep(1)  # the queue drains between rates
            result = {"open_loop": rows, "seconds_per_rate": args.seconds, "max_conns": args.max_conns}
        else:
            print(f"{args.clients} clients, {args.requests} requests (at most {args.max_seconds:.0f} s) ...")
            result = asyncio.run(load(port, bodies, args.clients, args.requests, args.max_seconds))
            result["recommendations_per_second"] = result["requests_per_second"]  # one user's top-10 per request
            result["clients"] = args.clients
        after = get(f"http://{HOST}:{port}/metrics")
    finally:
        server.terminate()  # SIGTERM: uvicorn's graceful shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    calls = after["model_calls"] - before["model_calls"]
    rows_done = after["model_rows"] - before["model_rows"]
    record = {
        "benchmark": "serve_load_open" if args.rate else "serve_load",
        "command": "python " + shlex.join(sys.argv),
        "commit": git_commit(),
        "machine": machine().rsplit(",", 1)[0] + f", server torch threads {args.threads}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_dir": str(args.run_dir),
        "model": health["model"],
        "dataset": health["dataset"],
        "items": health["items"],
        "k": 10,
        "server": {
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "max_queue": args.max_queue,
            "threads": args.threads,
            "beam_width": args.beam_width or io.load_run_config(args.run_dir).eval.beam_width,
        },
        **result,
        "server_model_calls": calls,
        "server_mean_batch": round(rows_done / calls, 2) if calls else None,
        "server_model_seconds": round(after["model_seconds"] - before["model_seconds"], 2),
        "server_refused_overloaded": after.get("refused_overloaded", 0) - before.get("refused_overloaded", 0),
        "server_exit_code": server.returncode,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(record, indent=2))
    if args.record:
        io.save_json(args.record, record)
    if args.rate and args.plot:
        plot_open_loop(rows, args.plot, f"{health['model']} on {health['dataset']}: {record['machine']}")


if __name__ == "__main__":
    main()
