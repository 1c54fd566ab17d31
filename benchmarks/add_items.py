"""How long adding items to a trained run takes (`sidrec add-items`), and that the added items are ranked.

    python benchmarks/add_items.py runs/beauty --n 1000 --record benchmarks/results/add_items_beauty.json

Copies the run's files to `--work` (the run itself is not touched), takes `--n` items of another bundled
dataset (`--source`, Sports by default: items Beauty's model never saw) under new ids, and times
`sidrec.catalog.add_items` on them: the run's text encoder, the collaborative part from text neighbours,
the fitted quantizer, de-duplication and the write. Then it loads the run and counts how many added items
reach the top 10 of some test user's list (they compete with the trained catalog).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shlex
import shutil
import sys
import time
from importlib import resources
from pathlib import Path

import polars as pl

import sidrec
from sidrec import catalog, io
from sidrec.data.split import eval_examples
from sidrec.report import git_commit, machine


def new_items(source: str, n: int, path: Path) -> None:
    """`n` items of a bundled dataset, with ids no run has ("new-<id>"), as a JSONL file."""
    folder = Path(str(resources.files("sidrec") / "datasets" / source))
    with gzip.open(folder / "items.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for _, line in zip(range(n), f, strict=False)]
    path.write_text("".join(json.dumps({**r, "item_id": f"new-{r['item_id']}"}) + "\n" for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a trained SID run directory")
    ap.add_argument("--n", type=int, default=1000, help="items to add")
    ap.add_argument("--source", default="sports", help="the bundled dataset the new items' text comes from")
    ap.add_argument("--work", type=Path, default=Path("runs/add_items_work"), help="where the run is copied")
    ap.add_argument("--users", type=int, default=2000, help="test users whose top 10 is checked for added items")
    ap.add_argument("--record", type=Path, default=None)
    args = ap.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    skip = shutil.ignore_patterns("checkpoint.pt", catalog.ADDED_ITEMS, catalog.ADDED_SIDS, catalog.CATALOG)
    shutil.copytree(args.run, args.work, ignore=skip)  # the trained run as it was, without earlier additions
    items_file = args.work / "new_items.jsonl"
    new_items(args.source, args.n, items_file)
    start = time.perf_counter()
    added = catalog.add_items(args.work, items_file)
    seconds = time.perf_counter() - start
    model = sidrec.load(args.work)
    cfg = model.config
    examples = eval_examples(pl.read_parquet(args.work / io.SEQUENCES), "test", cfg.data.max_history)
    histories = [[model.item_ids[i - 1] for i in h] for h in examples.histories[: args.users] if len(h)]
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
    )
    print(json.dumps(record, indent=2))
    if args.record:
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
