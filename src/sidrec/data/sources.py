"""Dataset loaders by format, and format detection. Every loader returns a `RawDataset`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from sidrec.config import DataConfig
from sidrec.data.amazon import load_amazon2014
from sidrec.data.encoding import decoding
from sidrec.data.movielens import load_movielens
from sidrec.data.normalized import load_normalized
from sidrec.data.p5 import load_p5
from sidrec.data.schema import RawDataset
from sidrec.data.table import load_table

logger = logging.getLogger(__name__)
BUNDLED = ("beauty", "sports", "toys", "yelp")


def _normalized(cfg: DataConfig, path: Path) -> RawDataset:
    return load_normalized(path, cfg.user_col, cfg.item_col, cfg.time_col)


def _table(cfg: DataConfig, path: Path) -> RawDataset:
    return load_table(
        path,
        items_path=cfg.items_path or None,
        user_col=cfg.user_col,
        item_col=cfg.item_col,
        time_col=cfg.time_col,
        item_key=cfg.item_key,
    )


LOADERS: dict[str, Callable[[DataConfig, Path], RawDataset]] = {
    "normalized": _normalized,
    "table": _table,
    "p5": lambda cfg, path: load_p5(path),
    "amazon2014": lambda cfg, path: load_amazon2014(path, kcore=cfg.kcore or 5),
    "movielens": lambda cfg, path: load_movielens(path),
}


def bundled_path(name: str) -> Path:
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled dataset '{name}'. Bundled: {', '.join(BUNDLED)}; or set data.path=DIR")
    return Path(str(resources.files("sidrec") / "datasets" / name))


def detect_format(path: Path) -> str:
    """Guess the format of a dataset folder (or file) from the names it holds."""
    if path.is_file():
        if path.name.startswith("reviews_") and path.name.endswith((".json.gz", ".json")):
            return "amazon2014"  # one category of a folder holding several
        return "p5" if path.name == "sequential_data.txt" else "table"
    names = {p.name for p in path.iterdir()}
    if {"interactions.csv", "interactions.csv.gz"} & names:
        return "normalized"
    if "sequential_data.txt" in names:
        return "p5"
    if any(n.startswith("reviews_") and n.endswith((".json.gz", ".json")) for n in names):
        return "amazon2014"
    if {"u.data", "ratings.dat"} & names or {"u1.base", "u1.test"} <= names:
        return "movielens"
    raise ValueError(
        f"{path}: cannot tell the dataset format from its files ({', '.join(sorted(names)[:8])}). "
        "Expected interactions.csv + items.jsonl (normalized), sequential_data.txt + datamaps.json (p5), "
        "reviews_<Cat>_5.json.gz + meta_<Cat>.json.gz (amazon2014), u.data/ratings.dat (movielens); "
        "or set data.format"
    )


def source_files(cfg: DataConfig) -> list[str]:
    """The files the dataset is read from (their content keys the prepare stage): `data.path` itself when it is
    a file, else every file directly in its folder, plus `data.items_path`, as absolute paths; a bundled dataset's
    as `bundled/<name>/<file>`, the same wherever sidrec is installed."""
    if not cfg.path:
        return [f"bundled/{cfg.name}/{p.name}" for p in sorted(bundled_path(cfg.name).iterdir()) if p.is_file()]
    path = Path(cfg.path).expanduser()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []
    if cfg.items_path:
        files.append(Path(cfg.items_path).expanduser())
    return [str(f.resolve()) for f in files]


def load_dataset(cfg: DataConfig) -> RawDataset:
    """Load the dataset a config names: the bundled one, or `cfg.path` in `cfg.format`."""
    with decoding(cfg.encoding_errors) as replaced:
        if not cfg.path:
            if cfg.format not in ("auto", "normalized"):
                raise ValueError(
                    f"data.format={cfg.format} reads data.path, which is empty (the bundled sets are in the normalized"
                    f" format): give the dataset's folder or file, e.g. data.path=PATH/ml-100k"
                )
            raw = _normalized(cfg, bundled_path(cfg.name))
        else:
            path = Path(cfg.path).expanduser()
            if not path.exists():
                raise ValueError(f"data.path={cfg.path}: no such file or folder")
            fmt = detect_format(path) if cfg.format == "auto" else cfg.format
            if fmt not in LOADERS:
                raise ValueError(f"unknown data.format '{fmt}'. Known: auto, {', '.join(LOADERS)}")
            how = "detected from its files; data.format= forces one" if cfg.format == "auto" else "data.format"
            logger.info("data.path=%s: format %s (%s)", cfg.path, fmt, how)
            raw = LOADERS[fmt](cfg, path)
    return dataclasses.replace(raw, replaced_bytes=dict(replaced))
