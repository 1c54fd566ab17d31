"""What the results tables share: the records' defaults, which records form one end-to-end group, and the
formatting of their numbers."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from sidrec.config import Config, load_config
from sidrec.fingerprint import first_values, flat_config, flatten
from sidrec.report import METRIC_KEYS

RESULTS = Path(__file__).parent / "results"

# A key a record lacks is a setting added after the record was made: the code then behaved as the setting's
# first value (`sidrec.fingerprint.first_values`, which run directories use the same way). That is today's default
# unless the default changed since (train.windows: all since da3500b; quantize.collab_dim: 64 since 1cfede2).


def record_defaults() -> dict:
    """Today's defaults as dotted keys (tuples as lists, as in the records), settings added since at first values."""
    return json.loads(json.dumps({**flat_config(Config()), **first_values()}))


def settings(rec_config: dict) -> dict:
    """A record's settings as dotted keys, in today's shape (`config.upgrade`); a key it lacks at its first value,
    or at today's default (the defaults of the record's own model and quantizer)."""
    chosen = [f"{s}.name={rec_config[s]['name']}" for s in ("model", "quantize") if "name" in rec_config.get(s, {})]
    defaults = json.loads(json.dumps(flat_config(load_config(None, chosen))))
    return {**defaults, **first_values(), **flatten(rec_config)}


def fmt(values) -> str:
    return " / ".join(f"{v:.4f}" for v in values)


def end_to_end(rec: dict) -> bool:
    """A whole run from an empty directory (records from before the flag existed count unless resumed)."""
    return rec.get("from_empty_dir", "resumed_from" not in rec) and not rec.get("time_capped", False)


# Settings that do not define the experiment: seeds, threads, devices, and the old time caps (14.5 vs 15 min).
IGNORED = {"seed", "train.threads", "train.device", "train.max_minutes"}


def recipe(rec: dict) -> dict:
    """A record's dotted settings but the IGNORED ones; a key added since the record counts at its first value."""
    return {k: v for k, v in settings(rec["config"]).items() if k not in IGNORED}


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
