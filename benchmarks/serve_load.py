"""Load test of `sidrec serve` on 127.0.0.1: N concurrent keep-alive clients, bounded in requests and time.

    python benchmarks/serve_load.py runs/beauty --record benchmarks/results/serve_load_cpu.json

It starts `python -m sidrec serve` on a free 127.0.0.1 port in a child process (so the client and
the server do not share a GIL), waits for /health, then runs `--clients` closed-loop clients that
each POST /recommend (k=10) with real test histories of the run (the last <= max_history items
before each user's test item) until `--requests` are done or `--max-seconds` have passed. It records
requests/s, latency percentiles (send to last byte), errors, and the server's /metrics (batch sizes).

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


async def client(port: int, bodies: list[bytes], todo: list[int], deadline: float, lat: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while todo and time.perf_counter() < deadline:
            todo.pop()
            body = random.choice(bodies)
            head = f"POST /recommend HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
            start = time.perf_counter()
            writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
            try:
                header = await reader.readuntil(b"\r\n\r\n")
                status = int(header.split(b" ", 2)[1])
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in header.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                payload = await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError, StopIteration) as err:
                errors.append(repr(err))
                return
            lat.append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"{status}: {payload[:200]!r}")
    finally:
        writer.close()


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
    ap.add_argument("--warmup", type=int, default=400, help="requests before the timed run (not recorded)")
    ap.add_argument("--threads", type=int, default=1, help="server torch threads")
    ap.add_argument("--max-batch", type=int, default=128)
    ap.add_argument("--max-wait-ms", type=float, default=2.0)
    ap.add_argument("--beam-width", type=int, default=0, help="server beams per request (0 = the run's beam width)")
    ap.add_argument("--record", type=Path, help="write the result (JSON) here")
    args = ap.parse_args()
    if not 1 <= args.clients <= 1000 or not 1 <= args.requests <= 200_000:
        sys.exit("--clients must be 1..1000 and --requests 1..200000 (this is a bounded load test)")

    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "sidrec",
        "serve",
        "--out",
        str(args.run_dir),
        "--host",
        HOST,
        "--port",
        str(port),
        "--threads",
        str(args.threads),
        "--max-batch",
        str(args.max_batch),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--beam-width",
        str(args.beam_width),
    ]
    bodies = [json.dumps({"history": h, "k": 10}).encode() for h in histories(args.run_dir)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
        print(f"{args.clients} clients, {args.requests} requests (at most {args.max_seconds:.0f} s) ...")
        result = asyncio.run(load(port, bodies, args.clients, args.requests, args.max_seconds))
        after = get(f"http://{HOST}:{port}/metrics")
    finally:
        server.terminate()  # SIGTERM: uvicorn's graceful shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    calls = after["model_calls"] - before["model_calls"]
    rows = after["model_rows"] - before["model_rows"]
    record = {
        "benchmark": "serve_load",
        "command": "python " + shlex.join(sys.argv),
        "commit": git_commit(),
        "machine": machine().rsplit(",", 1)[0] + f", server torch threads {args.threads}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_dir": str(args.run_dir),
        "model": health["model"],
        "dataset": health["dataset"],
        "items": health["items"],
        "clients": args.clients,
        "k": 10,
        "server": {
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "threads": args.threads,
            "beam_width": args.beam_width or io.load_run_config(args.run_dir).eval.beam_width,
        },
        **result,
        "recommendations_per_second": result["requests_per_second"],  # one user's top-10 per request
        "server_model_calls": calls,
        "server_mean_batch": round(rows / calls, 2) if calls else None,
        "server_model_seconds": round(after["model_seconds"] - before["model_seconds"], 2),
        "server_exit_code": server.returncode,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(record, indent=2))
    if args.record:
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
