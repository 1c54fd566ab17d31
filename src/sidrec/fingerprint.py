"""Run integrity: a stage's files count only while they match the config fields and input files they came from.

Make's and DVC's rule (outputs are keyed by their inputs, not by their existence). When a stage runs, it
records in `fingerprints.json` the config fields it reads and the SHA-256 of every input file it reads
(the previous stages' artifacts). A later command on the same run directory compares:

- same fingerprint: the stage is up to date and skipped;
- a different one: the command stops before doing anything, naming each changed field or file and the
  two ways out (`--force`, which recomputes the stages that changed and those after them, or a new `--out`);
- no fingerprint beside existing files (made by an older sidrec, or by hand): treated as a change.

Settings that only say where or how fast a stage runs (`RUNTIME_KEYS`) are not part of a fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sidrec import io
from sidrec.config import Config, config_to_dict, sections, settings_of, upgrade

FINGERPRINTS = "fingerprints.json"
# An input named `data:<absolute path>` is a file outside the run directory (the dataset's);
# `data:bundled/<name>/<file>` one of a bundled dataset's, found in the installed package.
SOURCE = "data:"
FILE_STATS = "file_stats.json"  # path -> [size, mtime_ns, sha256] of those files: a file left alone is not re-read
# Where and how fast, not what: changing them never changes a stage's result (beyond float rounding).
RUNTIME_KEYS = frozenset(
    {
        "train.threads",
        "train.device",
        "train.max_minutes",
        "embed.device",
        "embed.batch_size",
        "embed.chunk_size",
        "eval.batch_size",
    }
)


class StaleRunError(ValueError):
    """A run directory holds files made from other settings or inputs than the command asks for."""


@dataclass(frozen=True)
class Fingerprint:
    config: dict  # dotted key -> value (lists for tuples, as in config.yaml)
    inputs: dict  # file name -> SHA-256 of its bytes

    def as_dict(self) -> dict:
        return {"config": self.config, "inputs": self.inputs}


def flatten(config: dict, prefix: str = "") -> dict:
    """A nested config dict (config.yaml, a record's `config`) as dotted keys: {'seed': 42, 'model.rpg.pooling': ...}.
    A config stored before components owned their settings is read in today's shape (`config.upgrade`)."""
    out = {}
    for key, value in (upgrade(config) if not prefix else config).items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def unflatten(flat: dict) -> dict:
    """Dotted keys -> the nested dict `flatten` reads."""
    out: dict = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def first_values() -> dict[str, object]:
    """Dotted key -> the value of each setting declared with `config.added`: what runs made before it existed used.
    A stored config or fingerprint without such a key counts at this value (adding a setting never makes an earlier
    run stale); any other missing key counts as a change."""
    return {
        f"{prefix}.{f.name}": f.metadata["before"]
        for prefix, cls in sections()
        for f in settings_of(cls).values()
        if "before" in f.metadata
    }


def flat_config(cfg: Config) -> dict:
    """Every setting as a dotted key: {'seed': 42, 'data.name': 'beauty', ...}."""
    return flatten(config_to_dict(cfg))


def differences(recorded: dict, cfg: Config, read: set[str]) -> list[str]:
    """The settings in `read` whose value in `cfg` differs from a recorded nested config ("key: old -> new").

    A key the record lacks counts with the value of the code before the key existed (`first_values`)."""
    before, now = {**first_values(), **flatten(recorded)}, flat_config(cfg)
    out = []
    for key in sorted(read):
        a = before.get(key, "<unset>")
        if a != now.get(key, "<unset>"):
            out.append(f"{key}: {a!r} -> {now.get(key)!r}")
    return out


def select(cfg: Config, keys: Iterable[str]) -> dict:
    """The named settings; a bare section name ('train') selects all of its keys. Runtime keys are left out."""
    flat, out = flat_config(cfg), {}
    for key in keys:
        picked = {k: v for k, v in flat.items() if k == key or k.startswith(key + ".")}
        if not picked:
            raise KeyError(f"no config key or section '{key}'")
        out.update(picked)
    return {k: out[k] for k in sorted(out) if k not in RUNTIME_KEYS}


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_path(name: str) -> Path:
    """Where a `data:` input is: its absolute path, or a bundled dataset's file in the installed package."""
    rest = name.removeprefix(SOURCE)
    return (
        Path(str(resources.files("sidrec") / "datasets" / rest.removeprefix("bundled/")))
        if rest.startswith("bundled/")
        else Path(rest)
    )


def source_digest(path: Path, stats: dict) -> str:
    """SHA-256 of a data file outside the run directory; the one in `stats` (the run's FILE_STATS: path -> [size,
    mtime_ns, sha256]) while the file's size and modification time are those it was hashed at (make's fast path),
    else hashed again and noted in `stats`."""
    if not path.exists():
        return "missing"
    stat = path.stat()
    size, mtime, digest = stats.get(str(path), (None, None, None))
    if (size, mtime) != (stat.st_size, stat.st_mtime_ns):
        digest = file_digest(path)
        stats[str(path)] = [stat.st_size, stat.st_mtime_ns, digest]
    return digest


def compute(cfg: Config, run_dir: Path, keys: Iterable[str], inputs: Iterable[str]) -> Fingerprint:
    """The fingerprint a stage would have now: its settings, and the digests of its input files (if present):
    run-directory files by name, data files outside it as `data:<path>`."""
    run_dir = Path(run_dir)
    stats_path = run_dir / FILE_STATS
    stats = io.load_json(stats_path) if stats_path.exists() else {}
    known = dict(stats)
    digests = {}
    for name in inputs:
        if name.startswith(SOURCE):
            digests[name] = source_digest(source_path(name), stats)
        else:
            digests[name] = file_digest(run_dir / name) if (run_dir / name).exists() else "missing"
    if stats != known and run_dir.exists():
        io.save_json(stats_path, stats)
    return Fingerprint(select(cfg, keys), digests)


def load_all(run_dir: Path) -> dict:
    path = Path(run_dir) / FINGERPRINTS
    return io.load_json(path) if path.exists() else {}


def stored(run_dir: Path, stage: str) -> dict | None:
    return load_all(run_dir).get(stage)


def save(run_dir: Path, stage: str, fp: Fingerprint) -> None:
    records = load_all(run_dir)
    records[stage] = fp.as_dict()
    io.save_json(Path(run_dir) / FINGERPRINTS, records)


def note_new_inputs(run_dir: Path, stage: str, now: Fingerprint) -> None:
    """A current stage whose stored fingerprint predates the hashing of some of its inputs (the dataset's files, in
    runs made by an older sidrec) stores them now, so that a later change of those files is seen."""
    old = stored(run_dir, stage)
    if old is not None and set(now.inputs) - set(old.get("inputs", {})):
        save(run_dir, stage, now)


def changes(old: dict | None, new: Fingerprint) -> list[str]:
    """Human-readable differences, e.g. "train.lr: 0.002 -> 0.001", "input sids.npy changed"."""
    if old is None:
        return ["no fingerprint recorded (files made by an older sidrec or by hand)"]
    lines = []
    before, now = {**first_values(), **flatten(unflatten(old.get("config", {})))}, new.config
    for key in sorted(set(before) | set(now)):
        if key in RUNTIME_KEYS or key not in now:  # a setting the stage no longer reads cannot make it stale
            continue
        a, b = before.get(key, "<unset>"), now[key]
        if a != b:
            lines.append(f"{key}: {a!r} -> {b!r}")
    old_inputs = old.get("inputs", {})
    unhashed = not any(name.startswith(SOURCE) for name in old_inputs)  # stored before data files were hashed
    for name in sorted(set(old_inputs) | set(new.inputs)):
        if old_inputs.get(name) == new.inputs.get(name) or (unhashed and name.startswith(SOURCE)):
            continue
        if name not in old_inputs and new.inputs.get(name) == "missing":  # not there then, not there now
            continue
        if name.startswith(SOURCE):
            what = "added" if name not in old_inputs else "removed" if name not in new.inputs else "changed"
            lines.append(f"input {name.removeprefix(SOURCE)} {what} since this run read the dataset")
        else:
            lines.append(f"input {name} changed (an earlier stage was redone or the file was replaced)")
    return lines


def stale_message(run_dir: Path, problems: dict[str, list[str]]) -> str:
    """The error for stale stages: what changed per stage, and the two ways out."""
    lines = [f"{run_dir} holds results made from other settings than this command's:"]
    for stage, found in problems.items():
        lines += [f"  {stage}: {item}" for item in found]
    first = next(iter(problems))
    lines.append(
        f"Either pass --force to recompute {first} and the stages after it that depend on the change "
        "(up-to-date stages are kept), or choose a new --out directory."
    )
    return "\n".join(lines)


__all__ = [
    "FINGERPRINTS",
    "RUNTIME_KEYS",
    "SOURCE",
    "Fingerprint",
    "StaleRunError",
    "changes",
    "compute",
    "differences",
    "flat_config",
    "first_values",
    "flatten",
    "note_new_inputs",
    "unflatten",
    "save",
    "select",
    "stale_message",
    "stored",
]
