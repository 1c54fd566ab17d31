"""Raw Amazon 2014 review data (McAuley et al.): `reviews_<Cat>_5.json.gz` + `meta_<Cat>.json.gz`.

Reviews are one JSON object per line, e.g. `{"reviewerID": "A1YJEY40YUW4SE", "asin": "7806397051",
"overall": 1.0, "unixReviewTime": 1391040000, ...}`. Metadata is one object per line, in the
original files a Python dict literal such as `{'asin': '7806397051', 'title': 'WAWO ...',
'categories': [['Beauty', 'Makeup', 'Face']], 'brand': 'WAWO'}` (strict JSON is accepted too).
Time is `unixReviewTime` (ties keep file order); users and items are k-core filtered. Items get
`title`, `categories` (the first category path) and `brand` (HTML entities unescaped).
"""

from __future__ import annotations

import ast
import html
import json
import re
from pathlib import Path

import polars as pl

from sidrec.data.encoding import open_text
from sidrec.data.schema import ACTION, ITEM, TIME, USER, RawDataset, short
from sidrec.data.split import kcore_filter

_REVIEWS = re.compile(r"^reviews_(?P<cat>.+?)(?P<five>_5)?\.json(\.gz)?$")
_ASIN = re.compile(r"""["']asin["']\s*:\s*["']([^"']+)["']""")
_FIELDS = ("reviewerID", "asin", "unixReviewTime")


def _open(path: Path):
    return open_text(path)


def _parse(line: str, where: str) -> dict:
    """One JSON object, or a Python dict literal (the original metadata files)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        try:
            obj = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(
                f"{where}: malformed line (neither JSON nor a Python dict literal). "
                'Each line must be one object, e.g. {"asin": "7806397051", ...}'
            ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected one object per line, got {type(obj).__name__}")
    return obj


def find_files(path: Path) -> tuple[Path, Path]:
    """The (reviews, meta) file pair in `path`, a folder with one category or a reviews file."""
    if path.is_file():
        reviews = path
        match = _REVIEWS.match(path.name)
        if match is None:
            raise ValueError(f"{path}: not an Amazon 2014 reviews file (expected reviews_<Cat>_5.json.gz)")
    else:
        found = sorted(p for p in path.iterdir() if _REVIEWS.match(p.name))
        cats = sorted({_REVIEWS.match(p.name)["cat"] for p in found})
        if not found:
            raise ValueError(f"{path}: no reviews_<Cat>_5.json.gz. The amazon2014 format is that + meta_<Cat>.json.gz")
        if len(found) > 1:
            raise ValueError(
                f"{path}: several review files ({', '.join(p.name for p in found)}; categories {cats}). "
                f"Set data.path to one of them, e.g. data.path={found[0]}"
            )
        reviews = found[0]
        match = _REVIEWS.match(reviews.name)
    cat = match["cat"]
    for name in (f"meta_{cat}.json.gz", f"meta_{cat}.json"):
        if (reviews.parent / name).is_file():
            return reviews, reviews.parent / name
    raise ValueError(
        f"{reviews.parent}: no meta_{cat}.json.gz next to {reviews.name}; item text comes from it. "
        "Put the category's metadata file in the same folder"
    )


def _read_reviews(path: Path) -> pl.DataFrame:
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    ratings: list[int | None] = []
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            obj = _parse(line, where)
            missing = [k for k in _FIELDS if obj.get(k) in (None, "")]
            if missing:
                raise ValueError(f"{where}: missing field(s) {missing}; every review needs {list(_FIELDS)}")
            try:
                t = int(obj["unixReviewTime"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{where}: unixReviewTime {short(obj['unixReviewTime'])} is not an integer timestamp"
                ) from None
            users.append(str(obj["reviewerID"]))
            items.append(str(obj["asin"]))
            times.append(t)
            overall = obj.get("overall")
            ratings.append(int(float(overall)) if isinstance(overall, int | float) and overall >= 1 else None)
    if not users:
        raise ValueError(f"{path}: no reviews. The file is empty")
    frame = {USER: users, ITEM: items, TIME: times}
    schema = {USER: pl.Utf8, ITEM: pl.Utf8, TIME: pl.Int64}
    if all(r is not None for r in ratings):  # every review rated (1-5 stars): the event's action
        frame[ACTION], schema[ACTION] = ratings, pl.Int64
    return pl.DataFrame(frame, schema=schema)


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = html.unescape(str(value)).strip()
    return text or None


def _read_meta(path: Path, wanted: set[str]) -> dict[str, dict]:
    """title / categories / brand of the items in `wanted` (other lines are skipped unparsed)."""
    meta: dict[str, dict] = {}
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            quick = _ASIN.search(line)
            if quick is not None and quick[1] not in wanted:
                continue  # the metadata covers the whole category; parse only the items we need
            where = f"{path}, line {lineno}"
            obj = _parse(line, where)
            asin = obj.get("asin")
            if asin in (None, ""):
                raise ValueError(f"{where}: no 'asin' field. Each metadata object needs its item id")
            asin = str(asin)
            if asin not in wanted or asin in meta:
                continue
            cats = obj.get("categories")
            path0 = cats[0] if isinstance(cats, list) and cats and isinstance(cats[0], list) else None
            meta[asin] = {
                "title": _text(obj.get("title")),
                "categories": [str(c) for c in path0] if path0 else None,
                "brand": _text(obj.get("brand")),
            }
    return meta


def load_amazon2014(folder: str | Path, *, kcore: int = 5) -> RawDataset:
    """Load one Amazon 2014 category.

    Args:
        folder: a folder with one `reviews_<Cat>_5.json.gz` + `meta_<Cat>.json.gz` pair, or the
            reviews file itself (its meta file must sit next to it).
        kcore: drop users and items with fewer interactions, repeatedly (<= 1: off).

    Returns:
        Interactions (time = unixReviewTime, in file order) and items (title, categories, brand;
        null where the metadata lacks them).

    Raises:
        ValueError: no or several categories, a missing meta file, a malformed line (file and line).
    """
    reviews, meta_path = find_files(Path(folder).expanduser())
    interactions = kcore_filter(_read_reviews(reviews), kcore)
    if interactions.height == 0:
        raise ValueError(f"{reviews}: no interactions left after the {kcore}-core filter. Lower data.kcore")
    ids = interactions[ITEM].unique(maintain_order=True).to_list()
    meta = _read_meta(meta_path, set(ids))
    empty = {"title": None, "categories": None, "brand": None}
    rows = [{ITEM: asin, **meta.get(asin, empty)} for asin in ids]
    schema = {ITEM: pl.Utf8, "title": pl.Utf8, "categories": pl.List(pl.Utf8), "brand": pl.Utf8}
    items = pl.DataFrame(rows, schema=schema)
    return RawDataset(interactions=interactions, items=items, source=str(reviews), timestamps=True)
