"""MovieLens 100K (u.data / u1.base + u1.test, u.item, u.genre) and 1M (ratings.dat, movies.dat)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidrec.config import DataConfig
from sidrec.data.movielens import GENRES_100K, load_movielens
from sidrec.data.split import prepare

RATINGS = [("196", "242", 3, 881250949), ("196", "302", 4, 891717742), ("22", "242", 1, 878887116)]


def flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES_100K)


U_ITEM = (
    f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{flags('Comedy')}\n"
    f"302|L.A. Confidential (1997)|01-Jan-1997||http://x|{flags('Crime', 'Film-Noir', 'Thriller')}\n"
    f"267|unknown||||{flags('unknown')}\n"
)


def lines(rows, sep="\t") -> str:
    return "".join(sep.join(map(str, r)) + "\n" for r in rows)


def ml100k(tmp_path: Path, genre_file: bool = True) -> Path:
    # the fake user 0 of some copies, one line with a trailing tab as in that copy
    (tmp_path / "u.data").write_text("0\t50\t5\t883603013\n0\t133\t1\t883603013\t\n" + lines(RATINGS))
    (tmp_path / "u.item").write_bytes(U_ITEM.replace("Kolya", "Kolj\u00e1").encode("latin-1"))
    if genre_file:
        (tmp_path / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n")
    return tmp_path


@pytest.mark.parametrize("genre_file", [True, False])
def test_ml100k_u_data(tmp_path, genre_file):
    raw = load_movielens(ml100k(tmp_path, genre_file))
    assert raw.interactions.rows() == [(u, i, t, r) for u, i, r, t in RATINGS]  # user 0 dropped; rating = action
    assert raw.timestamps
    items = {r["item_id"]: r for r in raw.items.to_dicts()}
    assert items["242"] == {"item_id": "242", "title": "Kolj\u00e1 (1996)", "genres": ["Comedy"]}
    assert items["302"]["genres"] == ["Crime", "Film-Noir", "Thriller"]
    assert items["267"]["genres"] == ["unknown"]
    cfg = DataConfig(text_template="{title}; {genres}", min_interactions=1)
    texts = prepare(raw, cfg).items["text"].to_list()
    assert texts == ["Kolj\u00e1 (1996); Comedy", "L.A. Confidential (1997); Crime > Film-Noir > Thriller"]


def test_ml100k_prefers_u1_base_and_test(tmp_path):
    ml100k(tmp_path)
    (tmp_path / "u1.base").write_text(lines([("1", "242", 5, 20), ("1", "302", 3, 10)]))
    (tmp_path / "u1.test").write_text(lines([("1", "267", 2, 10)]))
    raw = load_movielens(tmp_path)
    assert raw.interactions.rows() == [("1", "242", 20, 5), ("1", "302", 10, 3), ("1", "267", 10, 2)]
    prepared = prepare(raw, DataConfig())
    assert prepared.sequences["items"].to_list() == [[3, 2, 1]]  # 242 -> 1, 267 -> 2, 302 -> 3; tie keeps file order
    assert prepared.sequences["times"].to_list() == [[10, 10, 20]]  # each event's timestamp and action, in step
    assert prepared.sequences["actions"].to_list() == [[3, 2, 5]]
    assert prepared.stats["events"] == ["actions", "times"]


def test_ml1m(tmp_path):
    ratings = [("1", "1193", 5, 978300760), ("1", "661", 3, 978302109), ("2", "1193", 4, 978298413)]
    (tmp_path / "ratings.dat").write_text(lines(ratings, "::"))
    movies = (
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
    )
    (tmp_path / "movies.dat").write_bytes(movies.encode("latin-1"))
    raw = load_movielens(tmp_path)
    assert raw.interactions.rows() == [(u, i, t, r) for u, i, r, t in ratings]
    items = {r["item_id"]: r for r in raw.items.to_dicts()}
    assert items["661"]["genres"] == ["Animation", "Children's", "Musical"]
    assert items["1193"]["title"] == "One Flew Over the Cuckoo's Nest (1975)"


def test_without_item_file_ids_only(tmp_path):
    (tmp_path / "ratings.dat").write_text(lines([("1", "10", 5, 1)], "::"))
    assert load_movielens(tmp_path).items.rows() == [("10",)]


def test_malformed_lines(tmp_path):
    (tmp_path / "u.data").write_text(lines(RATINGS) + "196\t242\t3\tlater\n")
    with pytest.raises(ValueError, match=r"u\.data, line 4: expected 'user item rating timestamp'"):
        load_movielens(tmp_path)
    (tmp_path / "u.data").write_text(lines(RATINGS))
    (tmp_path / "u.item").write_text("242|Kolya (1996)|0|1\n")
    with pytest.raises(ValueError, match=r"u\.item, line 1: expected 'id\|title"):
        load_movielens(tmp_path)


def test_no_ratings_file(tmp_path):
    (tmp_path / "u.item").write_text(U_ITEM)
    with pytest.raises(ValueError, match="no MovieLens ratings"):
        load_movielens(tmp_path)
