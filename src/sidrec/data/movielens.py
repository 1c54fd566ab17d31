"""MovieLens 100K and 1M (GroupLens). Every rating is an interaction; time is the rating timestamp, and the
rating (1-5) is the event's action.

ML-100K: `u.data` (or `u1.base` + `u1.test`, preferred when both exist) with tab-separated
`user item rating timestamp` lines, e.g. `196\t242\t3\t881250949`; `u.item` (latin-1)
`id|title|release date|video release date|url|19 genre flags`; genre names from `u.genre`.
Some copies of `u.data` carry a fake user 0 (ML-100K users are 1..943): its lines are dropped.
ML-1M: `ratings.dat` lines `user::item::rating::timestamp`, e.g. `1::1193::5::978300760`;
`movies.dat` (latin-1) lines `id::title::genre|genre`. Items get `title` and `genres` (a list).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from sidrec.data.schema import ACTION, ITEM, TIME, USER, RawDataset, short

GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def _read_ratings(paths: list[Path], sep: str | None, drop_user0: bool = False) -> pl.DataFrame:
    """`user sep item sep rating sep timestamp` lines (sep None = any whitespace)."""
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    ratings: list[int] = []
    example = "196\t242\t3\t881250949" if sep is None else "1::1193::5::978300760"
    for path in paths:
        with open(path, encoding="latin-1") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.split(sep) if sep else line.split()
                try:
                    if len(parts) < 4 or not parts[0].strip() or not parts[1].strip():
                        raise ValueError
                    t, rating = int(parts[3]), int(float(parts[2]))
                except ValueError:
                    raise ValueError(
                        f"{path}, line {lineno}: expected 'user item rating timestamp' with a numeric rating and "
                        f"an integer timestamp, like '{example}'; got {short(line.rstrip(), 120)}"
                    ) from None
                user = parts[0].strip()
                if drop_user0 and user == "0":
                    continue
                users.append(user)
                items.append(parts[1].strip())
                times.append(t)
                ratings.append(rating)
    if not users:
        raise ValueError(f"{', '.join(map(str, paths))}: no ratings. The file is empty")
    schema = {USER: pl.Utf8, ITEM: pl.Utf8, TIME: pl.Int64, ACTION: pl.Int64}
    return pl.DataFrame({USER: users, ITEM: items, TIME: times, ACTION: ratings}, schema=schema)


def _genre_names(folder: Path) -> list[str]:
    path = folder / "u.genre"
    if not path.is_file():
        return list(GENRES_100K)
    names: dict[int, str] = {}
    with open(path, encoding="latin-1") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            name, _, idx = line.strip().rpartition("|")
            if not name or not idx.isdigit():
                raise ValueError(f"{path}, line {lineno}: expected 'name|index', like 'Action|1'")
            names[int(idx)] = name
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{path}: genre indices must be 0..{len(names) - 1}, found {sorted(names)}")
    return [names[i] for i in range(len(names))]


def _read_items_100k(path: Path, genres: list[str]) -> pl.DataFrame:
    rows = []
    with open(path, encoding="latin-1") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("|")
            flags = parts[-len(genres) :]
            if len(parts) < 2 + len(genres) or not parts[0] or any(x not in ("0", "1") for x in flags):
                raise ValueError(
                    f"{path}, line {lineno}: expected 'id|title|release date|video release date|url|' "
                    f"followed by {len(genres)} 0/1 genre flags"
                )
            names = [g for g, flag in zip(genres, flags, strict=True) if flag == "1"]
            rows.append({ITEM: parts[0], "title": parts[1] or None, "genres": names})
    return _items_frame(rows, path)


def _read_movies_1m(path: Path) -> pl.DataFrame:
    rows = []
    with open(path, encoding="latin-1") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("::")
            if len(parts) < 3 or not parts[0]:
                raise ValueError(
                    f"{path}, line {lineno}: expected 'id::title::genre|genre', "
                    "like '1::Toy Story (1995)::Animation|Comedy'"
                )
            genres = [g for g in parts[-1].split("|") if g]
            rows.append({ITEM: parts[0], "title": "::".join(parts[1:-1]) or None, "genres": genres})
    return _items_frame(rows, path)


def _items_frame(rows: list[dict], path: Path) -> pl.DataFrame:
    if not rows:
        raise ValueError(f"{path}: no movies. The file is empty")
    return pl.DataFrame(rows, schema={ITEM: pl.Utf8, "title": pl.Utf8, "genres": pl.List(pl.Utf8)})


def load_movielens(folder: str | Path) -> RawDataset:
    """Load an ML-100K or ML-1M folder.

    Args:
        folder: the unpacked `ml-100k` or `ml-1m` folder.

    Returns:
        Interactions (all ratings, time = timestamp, file order) and items (title, genres); without
        `u.item` / `movies.dat` the items are the rated ids with no text.

    Raises:
        ValueError: no ratings file, or a malformed line (with file and line number).
    """
    folder = Path(folder).expanduser()
    if folder.is_file():
        folder = folder.parent
    if (folder / "ratings.dat").is_file():
        interactions = _read_ratings([folder / "ratings.dat"], "::")
        items_path = folder / "movies.dat"
        items = _read_movies_1m(items_path) if items_path.is_file() else None
    else:
        if (folder / "u1.base").is_file() and (folder / "u1.test").is_file():
            interactions = _read_ratings([folder / "u1.base", folder / "u1.test"], None)
        elif (folder / "u.data").is_file():
            interactions = _read_ratings([folder / "u.data"], None, drop_user0=True)
        else:
            raise ValueError(
                f"{folder}: no MovieLens ratings. Expected u.data (or u1.base + u1.test) for ML-100K, "
                "or ratings.dat for ML-1M"
            )
        items_path = folder / "u.item"
        items = _read_items_100k(items_path, _genre_names(folder)) if items_path.is_file() else None
    if items is None:
        items = pl.DataFrame({ITEM: interactions[ITEM].unique(maintain_order=True)})
    return RawDataset(interactions=interactions, items=items, source=str(folder), timestamps=True)
