"""How long adding items to a trained run takes (`sidrec add-items`), and what a live server's latency does meanwhile.

    python benchmarks/add_items.py runs/beauty --n 1000 --record benchmarks/results/add_items_beauty.json
    python benchmarks/add_items.py runs/beauty --n 1000 --serve-clients 4 --record ...   # with a server under load

Copies the run's files to `--work` (the run itself is not touched), takes `--n` items of another bundled
dataset (`--source`, Sports by default: items Beauty's model never saw) under new ids, and times
`sidrec.catalog.add_items` on them: the run's text encoder, the collaborative part from text neighbours,
the fitted quantizer, de-duplication and the write. Then it loads the run and counts how many added items
reach the top 10 of some test user's list (they compete with the trained catalog).

With `--serve-clients C`, `python -m sidrec serve` runs on the copy (a child process on 127.0.0.1) under C
closed-loop clients that POST /recommend with the run's test histories: latency is recorded for `--before`
seconds, then while the items are added and until the server has reloaded them (its /health counts them)
and `--after` seconds more; the record compares p50 / p99 in the two windows.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from importlib import resources
from pathlib import Path

import polars as pl

import sidrec
from sidrec import catalog, io
from sidrec.data.split import eval_examples
from sidrec.report import git_commit, machine

HOST = "127.0.0.1"  # the load goes to this machine only


def new_items(source: str, n: int, path: Path) -> None:
    """`n` items of a bundled dataset, with ids no run has ("new-<id>"), as a JSONL file."""
    folder = Path(str(resources.files("sidrec") / "datasets" / source))
    with gzip.open(folder / "items.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for _, line in zip(range(n), f, strict=False)]
    path.write_text("".join(json.dumps({**r, "item_id": f"new-{r['item_id']}"}) + "\n" for r in rows))


async def _client(port: int, bodies: list[bytes], stop: threading.Event, out: list, errors: list) -> None:
    """Closed loop over one keep-alive connection: (send time, latency s) per answered request."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        i = 0
        while not stop.is_set():
            body = bodies[i % len(bodies)]
            i += 1
            head = f"POST /recommend HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
            sent = time.perf_counter()
            writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
            header = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(x.split(b":", 1)[1]) for x in header.split(b"\r\n") if x.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            out.append((sent, time.perf_counter() - sent))
            if b" 200 " not in header.split(b"\r\n", 1)[0] + b" ":
                errors.append(header.split(b"\r\n", 1)[0].decode())
    finally:
        writer.close()


def _percentiles(lat: list[float]) -> dict:
    ms = sorted(x * 1000 for x in lat)
    if not ms:
        return {"requests": 0}
    pick = lambda q: round(ms[min(len(ms) - 1, int(q / 100 * len(ms)))], 2)  # noqa: E731
    return {"requests": len(ms), "p50_ms": pick(50), "p90_ms": pick(90), "p99_ms": pick(99), "max_ms": round(ms[-1], 2)}


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=10) as r:
        return json.loads(r.read())


def under_load(args, items_file: Path, bodies: list[bytes]) -> tuple[dict, dict]:
    """Add the items while a server on the copy answers C clients; (what add_items returned, the latency record)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "sidrec", "serve", "--out", str(args.work), "--host", HOST, "--port", str(port),
           "--threads", "1"]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                trained = _health(port)["items"]
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("the server did not start")
                time.sleep(0.5)
        stop, lat, errors = threading.Event(), [], []

        async def clients() -> None:
            await asyncio.gather(*(_client(port, bodies, stop, lat, errors) for _ in range(args.serve_clients)))

        runner = threading.Thread(target=lambda: asyncio.run(clients()))
        runner.start()
        time.sleep(2)  # warm-up, not recorded
        t0 = time.perf_counter()
        time.sleep(args.before)
        t1 = time.perf_counter()
        os.nice(args.nice)  # this thread only (Linux): the load clients keep their priority
        added = catalog.add_items(args.work, items_file)
        while _health(port)["items"] < trained + added["items"]:
            time.sleep(0.05)
        reloaded = time.perf_counter()
        time.sleep(args.after)
        t2 = time.perf_counter()
        stop.set()
        runner.join(timeout=60)
        before = _percentiles([x for s, x in lat if t0 <= s < t1])
        during = _percentiles([x for s, x in lat if t1 <= s < t2])
        ratio = round(during["p99_ms"] / before["p99_ms"], 2) if before.get("p99_ms") and during.get("p99_ms") else None
        return added, {
            "clients": args.serve_clients,
            "server_threads": 1,
            "before": before,
            "during_update_and_after": during,
            "update_to_reloaded_seconds": round(reloaded - t1, 2),
            "p99_ratio": ratio,
            "errors": len(errors),
            "error_examples": errors[:3],
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a trained SID run directory")
    ap.add_argument("--n", type=int, default=1000, help="items to add")
    ap.add_argument("--source", default="sports", help="the bundled dataset the new items' text comes from")
    ap.add_argument("--work", type=Path, default=Path("runs/add_items_work"), help="where the run is copied")
    ap.add_argument("--users", type=int, default=2000, help="test users whose top 10 is checked for added items")
    ap.add_argument("--serve-clients", type=int, default=0, help="add under load: clients of a live server (0 = no)")
    ap.add_argument("--before", type=float, default=10.0, help="seconds of load measured before the addition")
    ap.add_argument("--after", type=float, default=3.0, help="seconds measured after the server reloaded")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the addition (0 = torch's default)")
    ap.add_argument("--nice", type=int, default=10, help="the addition's CPU priority, as `sidrec add-items --nice`")
    ap.add_argument("--record", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not 0 <= args.serve_clients <= 64 or args.before > 120 or args.after > 60:
        sys.exit("--serve-clients 0..64, --before <= 120 s, --after <= 60 s (a bounded load on 127.0.0.1)")
    if args.work.exists():
        shutil.rmtree(args.work)
    skip = shutil.ignore_patterns("checkpoint.pt", catalog.ADDED_ITEMS, catalog.ADDED_SIDS, catalog.CATALOG)
    shutil.copytree(args.run, args.work, ignore=skip)  # the trained run as it was, without earlier additions
    items_file = args.work / "new_items.jsonl"
    new_items(args.source, args.n, items_file)
    cfg = io.load_run_config(args.work)
    ids = pl.read_parquet(args.work / io.ITEMS).sort("item_idx")["item_id"].to_list()
    examples = eval_examples(pl.read_parquet(args.work / io.SEQUENCES), "test", cfg.data.max_history)
    histories = [[ids[i - 1] for i in h] for h in examples.histories[: args.users] if len(h)]
    serving = None
    if args.serve_clients:
        bodies = [json.dumps({"history": h, "k": 10}).encode() for h in histories]
        added, serving = under_load(args, items_file, bodies)
    else:
        added = catalog.add_items(args.work, items_file)
    seconds = added["seconds"]
    model = sidrec.load(args.work)
    tops = model.recommend_batch(histories, 10)
    with_new = sum(any(r.item_id.startswith("new-") for r in top) for top in tops)
    record = dict(
        benchmark="add items to a trained run (sidrec add-items)",
        command="python " + shlex.join(sys.argv),
        commit=git_commit(),
        machine=machine(),
        run=str(args.run),
        model=cfg.model.name,
        trained_items=added["first_item_idx"] - 1,
        added_items=added["items"],
        source=args.source,
        seconds=round(seconds, 2),
        items_per_second=round(added["items"] / seconds, 1),
        test_users_checked=len(tops),
        users_with_an_added_item_in_top10=with_new,
        threads=args.threads or "torch default",
        nice=args.nice if args.serve_clients else 0,
        serving=serving,
    )
    print(json.dumps(record, indent=2))
    if args.record:
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
