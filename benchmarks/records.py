"""What the results tables share: the records' defaults, which records form one end-to-end group, and the
formatting of their numbers."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from sidrec.config import Config
from sidrec.fingerprint import FIRST_VALUES
from sidrec.report import METRIC_KEYS

RESULTS = Path(__file__).parent / "results"

# A key a record lacks is a setting added after the record was made: the code then behaved as the setting's
# first value (`sidrec.fingerprint.FIRST_VALUES`, which run directories use the same way). That is today's
# default unless the default changed since (train.windows: all since da3500b; quantize.collab_dim: 64 since 1cfede2).


def record_defaults() -> dict:
    """Today's defaults (tuples as lists, as in the records), with FIRST_VALUES for keys whose default changed."""
    defaults = json.loads(json.dumps(dataclasses.asdict(Config())))
    for key, value in FIRST_VALUES.items():
        section, name = key.split(".")
        defaults[section][name] = value
    return defaults


def fmt(values) -> str:
    return " / ".join(f"{v:.4f}" for v in values)


def end_to_end(rec: dict) -> bool:
    """A whole run from an empty directory (records from before the flag existed count unless resumed)."""
    return rec.get("from_empty_dir", "resumed_from" not in rec) and not rec.get("time_capped", False)


# Settings that do not define the experiment: seeds, threads, devices, and the old time caps (14.5 vs 15 min).
IGNORED = {("seed",), ("train", "threads"), ("train", "device"), ("train", "max_minutes")}


def recipe(rec: dict) -> dict:
    """A record's settings without IGNORED ones; a key added after the record was made counts at its first value."""
    defaults = record_defaults()
    cfg = {k: {**v, **rec["config"].get(k, {})} if isinstance(v, dict) else rec["config"].get(k, v)
           for k, v in defaults.items()}  # fmt: skip
    for path in IGNORED:
        node = cfg
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return cfg


def group(prefixes: str | tuple[str, ...], paths: list[Path]) -> list[dict]:
    """End-to-end records named <prefix><seed> that share the newest one's settings (seed aside)."""
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    recs = [
        {**json.loads(p.read_text()), "_path": str(p)}
        for p in paths
        if any(p.stem.startswith(x) and p.stem[len(x) :].isdigit() for x in prefixes)
    ]
    recs = [r for r in recs if "test" in r and end_to_end(r)]
    if not recs:
        return []
    newest = recipe(max(recs, key=lambda r: r["date"]))
    return sorted((r for r in recs if recipe(r) == newest), key=lambda r: r["seed"])


def mean_std(recs: list[dict]) -> str:
    cells = []
    for k in METRIC_KEYS:
        values = [r["test"][k] for r in recs]
        std = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        cells.append(f"{statistics.mean(values):.4f}{std}")
    return " / ".join(cells)
