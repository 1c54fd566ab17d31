"""k-core filtering, `prepare`, the leave-one-out split and `render_text`, on hand examples."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sidrec.config import DataConfig
from sidrec.data.schema import RawDataset, render_text
from sidrec.data.split import (
    eval_examples,
    kcore_filter,
    list_examples,
    prepare,
    session_examples,
    train_sequences,
    training_examples,
)


def frame(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"user_id": pl.Utf8, "item_id": pl.Utf8, "time": pl.Int64}, orient="row")


def test_kcore_filter_repeats_until_stable():
    df = frame([("A", "i1", 0), ("A", "i2", 1), ("A", "i3", 2), ("B", "i1", 0), ("B", "i2", 1)])
    df = pl.concat([df, frame([("C", "i1", 0), ("C", "i4", 1)])])
    # round 1 drops i4 (1 interaction); then C has 1 left and goes; then i1 is back to 2, i3 has 1 and goes
    out = kcore_filter(df, 2)
    assert out.rows() == [("A", "i1", 0), ("A", "i2", 1), ("B", "i1", 0), ("B", "i2", 1)]
    assert kcore_filter(df, 3).height == 0
    assert kcore_filter(df, 0).height == df.height and kcore_filter(df, 1).height == df.height


# user a: file order p q r s t u with times 10 20 20 30 5 40 -> t p q r s u (q before r: tie, file order)
ROWS = [
    ("a", "p", 10),
    ("b", "q", 1),
    ("a", "q", 20),
    ("a", "r", 20),
    ("c", "v", 1),
    ("b", "p", 2),
    ("a", "s", 30),
    ("a", "t", 5),
    ("c", "p", 2),
    ("b", "s", 3),
    ("a", "u", 40),
]
ITEMS = pl.DataFrame(
    {
        "item_id": ["u", "t", "s", "r", "q", "p", "v"],
        "title": ["U", "T", None, "R", "Q", "P", "V"],
        "categories": [["x", "y"], [], ["z"], None, ["x"], ["x"], ["x"]],
    }
)


@pytest.fixture
def prepared():
    return prepare(RawDataset(frame(ROWS), ITEMS, "hand"), DataConfig())


def test_prepare(prepared):
    assert prepared.items.columns == ["item_idx", "item_id", "text"]
    assert prepared.items.rows() == [
        (1, "p", "P; x"),
        (2, "q", "Q; x"),
        (3, "r", "R"),
        (4, "s", "z"),
        (5, "t", "T"),
        (6, "u", "U; x > y"),
    ]  # v only belongs to user c, who has < 3 interactions and is dropped
    assert prepared.sequences.rows() == [(0, "a", [5, 1, 2, 3, 4, 6]), (1, "b", [2, 1, 4])]
    stats = prepared.stats
    assert (stats["users"], stats["items"], stats["interactions"], stats["dropped_users"]) == (2, 6, 9, 1)


def test_eval_examples(prepared):
    test = eval_examples(prepared.sequences, "test", max_history=3)
    assert test.user_idx.tolist() == [0, 1]
    assert [h.tolist() for h in test.histories] == [[2, 3, 4], [2, 1]]
    assert test.targets.tolist() == [6, 4]
    valid = eval_examples(prepared.sequences, "valid", max_history=3)
    assert [h.tolist() for h in valid.histories] == [[1, 2, 3], [2]]
    assert valid.targets.tolist() == [4, 1]
    full = eval_examples(prepared.sequences, "test", max_history=20)
    assert full.histories[0].tolist() == [5, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="split must be"):
        eval_examples(prepared.sequences, "train", 3)


def test_train_sequences_and_examples(prepared):
    train = train_sequences(prepared.sequences)
    assert [s.tolist() for s in train] == [[5, 1, 2, 3], [2]]
    users, pos = training_examples(train, max_history=2, sliding_window=True)
    assert users.tolist() == [0, 0, 0] and pos.tolist() == [1, 2, 3]  # user b (1 item) has no example
    users, pos = training_examples(train, max_history=2, sliding_window=False)
    assert users.tolist() == [0] and pos.tolist() == [3]
    assert users.dtype == np.int64 and pos.dtype == np.int64


def test_training_examples_can_be_empty():
    users, pos = training_examples([np.array([1]), np.array([2])], max_history=5, sliding_window=True)
    assert users.shape == (0,) and pos.shape == (0,)


def test_prepare_kcore_min_interactions_and_sampling():
    raw = RawDataset(frame(ROWS), ITEMS, "hand")
    assert prepare(raw, DataConfig(min_interactions=2)).stats["users"] == 3
    # 2-core: r, t, u, v have one interaction each and go; then c (only p left) goes too
    core = prepare(raw, DataConfig(kcore=2, min_interactions=2))
    assert core.sequences.rows() == [(0, "a", [1, 2, 3]), (1, "b", [2, 1, 3])]
    assert core.items["item_id"].to_list() == ["p", "q", "s"]
    one = prepare(raw, DataConfig(max_users=1, min_interactions=1), seed=3)
    assert one.stats["users"] == 1
    assert one.sequences.rows() == prepare(raw, DataConfig(max_users=1, min_interactions=1), seed=3).sequences.rows()
    with pytest.raises(ValueError, match="no user has >= 7 interactions"):
        prepare(raw, DataConfig(min_interactions=7))


def test_prepare_rejects_empty_items():
    with pytest.raises(ValueError, match="the items table is empty"):
        prepare(RawDataset(frame(ROWS), ITEMS.clear(), "hand"), DataConfig())


def test_render_text():
    template = "{title}; {categories}"
    assert render_text({"title": "Gel", "categories": ["Beauty", "Hair"]}, template) == "Gel; Beauty > Hair"
    assert render_text({"title": "Gel"}, template) == "Gel"
    assert render_text({"title": None, "categories": ("A", None, "B")}, template) == "A > B"
    assert render_text({"item_id": "B01", "title": None, "categories": []}, template) == "B01"
    assert render_text({"item_id": "B01"}, template) == "B01"
    assert render_text({"title": "Gel", "price": 9.5}, "{title} ({price} USD)") == "Gel (9.5 USD)"
    assert render_text({"title": "Gel"}, "{title} by {brand}") == "Gel by"


def test_duplicated_rows_are_dropped_and_counted():
    """Every row twice (a doubled CSV) gives the same split as once, not targets equal to validation targets."""
    once = prepare(RawDataset(frame(ROWS), ITEMS, "hand"), DataConfig())
    twice = prepare(RawDataset(frame(ROWS + ROWS), ITEMS, "hand"), DataConfig())
    assert twice.sequences.rows() == once.sequences.rows()
    assert twice.stats["dropped"]["exact_duplicate_rows"] == len(ROWS)
    assert once.stats["dropped"]["exact_duplicate_rows"] == 0 and once.stats["consecutive_repeats"] == 0


def test_a_repeated_previous_item_is_kept_unless_asked():
    """Without distinct times a repeat of the previous item may be a revisit: kept and counted, or dropped."""
    rows = [*ROWS, ("a", "u", 41), ("a", "u", 42), ("b", "s", 4)]  # a: ... u u u, b: ... s s
    kept = prepare(RawDataset(frame(rows), ITEMS, "hand"), DataConfig())
    assert kept.stats["consecutive_repeats"] == 3 and kept.stats["dropped"]["consecutive_repeat_rows"] == 0
    assert kept.sequences["items"].to_list()[0][-3:] == [6, 6, 6]  # u = item 6, three visits
    dropped = prepare(RawDataset(frame(rows), ITEMS, "hand"), DataConfig(drop_consecutive_repeats=True))
    assert dropped.sequences.rows() == prepare(RawDataset(frame(ROWS), ITEMS, "hand"), DataConfig()).sequences.rows()
    assert dropped.stats["dropped"]["consecutive_repeat_rows"] == 3


def test_cold_items_occur_only_as_test_targets():
    """data.cold_items holds out a share of the items that end some user's sequence: their earlier rows go."""
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{int(i)}", t) for u in range(60) for t, i in enumerate(rng.integers(0, 30, 8))]
    raw = RawDataset(frame(rows), pl.DataFrame({"item_id": [f"i{i}" for i in range(30)]}), "hand")
    plain = prepare(raw, DataConfig(allow_missing_text=True))
    cold = prepare(raw, DataConfig(allow_missing_text=True, cold_items=0.2), seed=3)
    held = cold.stats["cold_items"]
    assert held["items"] == 6 and held["rows"] > 0 and cold.stats["dropped"]["cold_item_rows"] == held["rows"]
    train = np.concatenate([s[:-1] for s in cold.sequences["items"].to_list()])  # training and validation items
    tests = np.array([s[-1] for s in cold.sequences["items"].to_list()])
    never = set(tests.tolist()) - set(train.tolist())
    assert len(never) >= held["items"]  # every held-out item is some test target and nothing else
    assert cold.stats["interactions"] == plain.stats["interactions"] - held["rows"]
    assert prepare(raw, DataConfig(allow_missing_text=True, cold_items=0.2), seed=3).sequences.equals(cold.sequences)
    with pytest.raises(ValueError, match="data.cold_items=1.5"):
        prepare(raw, DataConfig(allow_missing_text=True, cold_items=1.5))


def test_events_are_kept_in_step_and_bad_actions_are_named():
    rows = frame([("a", "p", 30), ("a", "q", 10), ("a", "r", 20), ("b", "p", 5), ("b", "q", 6), ("b", "r", 7)])
    raw = RawDataset(rows.with_columns(pl.Series("action", [5, 1, 3, 2, 2, 4])), ITEMS, "hand", timestamps=True)
    seqs = prepare(raw, DataConfig()).sequences
    assert seqs["items"].to_list() == [[2, 3, 1], [1, 2, 3]]  # a: q r p by time
    assert seqs["times"].to_list() == [[10, 20, 30], [5, 6, 7]] and seqs["actions"].to_list() == [[1, 3, 5], [2, 2, 4]]
    untimed = prepare(RawDataset(rows, ITEMS, "hand"), DataConfig()).sequences  # positions, no actions: items only
    assert untimed.columns == ["user_idx", "user_id", "items"]
    bad = RawDataset(rows.with_columns(pl.Series("action", [5, 1, 0, 2, 2, 4])), ITEMS, "hand")
    with pytest.raises(ValueError, match=r"hand: interaction 3 \(user 'a', item 'r'\) has action 0"):
        prepare(bad, DataConfig())


def test_lists_are_held_out_before_the_leave_one_out_split():
    """data.list_items moves each long enough user's last N events to list_ columns; the rest splits as usual."""
    rows = [(u, f"i{i}", t) for u, n in (("a", 7), ("b", 4)) for t, i in enumerate(range(n))]
    raw = RawDataset(frame(rows).with_columns(pl.Series("action", [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1])),
                     pl.DataFrame({"item_id": [f"i{i}" for i in range(7)]}), "hand", timestamps=True)  # fmt: skip
    prepared = prepare(raw, DataConfig(allow_missing_text=True, list_items=3))
    seqs = prepared.sequences
    assert seqs["items"].to_list() == [[1, 2, 3, 4], [1, 2, 3, 4]]  # b has fewer than 3 + 3 events: kept whole
    assert seqs["list_items"].to_list() == [[5, 6, 7], []] and seqs["list_actions"].to_list() == [[5, 1, 2], []]
    assert seqs["list_times"].to_list() == [[4, 5, 6], []]
    assert prepared.stats["list_items"] == {"items": 3, "users": 1} and prepared.stats["interactions"] == 8
    assert eval_examples(seqs, "test", 20).targets.tolist() == [4, 4]  # leave-one-out on what is left
    held = list_examples(seqs, max_history=2)
    assert held.user_idx.tolist() == [0] and held.targets.tolist() == [[5, 6, 7]]
    assert [h.tolist() for h in held.histories] == [[3, 4]] and held.target_events["actions"].tolist() == [[5, 1, 2]]
    assert [a.tolist() for a in held.events["actions"]] == [[3, 4]]
    with pytest.raises(ValueError, match="holds out no lists: set data.list_items"):
        list_examples(prepare(raw, DataConfig(allow_missing_text=True)).sequences, 20)
    with pytest.raises(ValueError, match="data.list_items=-1"):
        prepare(raw, DataConfig(allow_missing_text=True, list_items=-1))


def test_session_examples_cut_each_session_into_chunks():
    ends = [np.array([3, 3, 3, 7, 7, 7, 7, 8])]  # sessions [0, 3), [3, 7), [7, 8)
    users, positions = session_examples([np.arange(8)], ends, 2)
    assert users.tolist() == [0] * 4 and positions.tolist() == [1, 3, 5, 7]  # item 0 has no history
    assert session_examples([np.arange(8)], None, 3)[1].tolist() == [1, 4, 7]
    every = training_examples([np.arange(8)], 4, True)[1]
    np.testing.assert_array_equal(session_examples([np.arange(8)], None, 1)[1], every)  # m = 1: the sliding window
