"""The Python API on the session's toy run: original ids in, the same top-10 as predictions.csv out."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

import sidrec
from sidrec import io
from sidrec.api import Recommendation, UnknownItemsError
from sidrec.data.split import eval_examples


def test_public_surface():
    assert set(sidrec.__all__) == {
        "Model", "Recommendation", "UnknownItemsError", "load", "run", "__version__", "version_text"
    }  # fmt: skip
    assert sidrec.load is sidrec.api.load
    assert sidrec.__version__ and sidrec.version_text() == f"sidrec {sidrec.__version__}"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sidrec.nope  # noqa: B018


def test_import_is_cheap():
    """`import sidrec` loads neither torch nor the API (they load on first use)."""
    code = "import sys, sidrec; print('torch' in sys.modules, 'sidrec.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "sidrec", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "recommend" in out.stdout and "serve" in out.stdout


def test_same_top10_as_predictions_csv(toy_run, toy_model):
    """Every test user's history (all but the last item) gives predictions.csv's ranking."""
    sequences = pl.read_parquet(toy_run / io.SEQUENCES)
    preds = pl.read_csv(toy_run / io.PREDICTIONS, infer_schema=False)
    expected = preds.group_by("user_id", maintain_order=True).agg(pl.col("item_id"))
    expected = dict(zip(expected["user_id"].to_list(), expected["item_id"].to_list(), strict=True))
    examples = eval_examples(sequences, "test", toy_model.config.data.max_history)
    users = [str(u) for u in sequences["user_id"].to_list()]
    histories = [[toy_model.item_ids[i - 1] for i in h] for h in examples.histories]
    got = toy_model.recommend_batch(histories, 10, users=users)
    assert len(got) == 300
    for user, recs in zip(users, got, strict=True):
        assert [r.item_id for r in recs] == expected[user], user


def test_recommend_fields(toy_model):
    history = toy_model.item_ids[:3]
    recs = toy_model.recommend(history, k=5)
    assert [r.rank for r in recs] == [1, 2, 3, 4, 5]
    assert all(isinstance(r, Recommendation) and r.item_id in toy_model.index for r in recs)
    assert all(r.title == toy_model.item(r.item_id)["title"] and r.title for r in recs)
    assert all(r.sid is not None and len(r.sid) == toy_model.sids.shape[1] for r in recs)
    scores = [r.score for r in recs if r.score is not None]
    assert scores == sorted(scores, reverse=True)
    assert recs[0].to_dict()["sid"] == list(recs[0].sid)


def test_exclude_history(toy_model):
    history = [r.item_id for r in toy_model.recommend(toy_model.item_ids[:2], k=4)]
    recs = toy_model.recommend(history, k=10, exclude_history=True)
    assert len(recs) == 10 and not {r.item_id for r in recs} & set(history)


def test_unknown_items_named(toy_model):
    with pytest.raises(UnknownItemsError, match="'nope-1'.*skip_unknown") as err:
        toy_model.recommend([toy_model.item_ids[0], "nope-1"])
    assert err.value.items == ["nope-1"]
    assert "Model.search" in str(err.value) and "GET /items" not in str(err.value)  # said for Python
    assert "--skip-unknown" in err.value.explain("cli") and '"skip_unknown": true' in err.value.explain("http")
    assert len(toy_model.recommend([toy_model.item_ids[0], "nope-1"], k=3, skip_unknown=True)) == 3
    with pytest.raises(ValueError, match=r"a list of item ids, oldest first, not one string: write \['B000052XZP'\]"):
        toy_model.recommend("B000052XZP")


@pytest.mark.parametrize("k", [0, -1, 10**6])
def test_bad_k(toy_model, k):
    with pytest.raises(ValueError, match="k must be between 1 and"):
        toy_model.recommend(toy_model.item_ids[:1], k=k)


def test_empty_history(toy_model):
    with pytest.raises(ValueError, match="history 0 is empty"):
        toy_model.recommend(["nope"], skip_unknown=True)


def test_search_and_item(toy_model):
    first = toy_model.titles[0]
    word = max(first.split(), key=len)
    hits = toy_model.search(word.upper(), limit=5)
    assert hits and all(word.lower() in h["title"].lower() for h in hits)
    assert toy_model.search(toy_model.item_ids[7])[0]["item_id"] == toy_model.item_ids[7]
    assert toy_model.search("   ") == []
    with pytest.raises(KeyError, match=r"unknown item id 'nope'; Model.search\(text\) finds ids by title"):
        toy_model.item("nope")
    with pytest.raises(UnknownItemsError):  # a ValueError too: one except clause catches every unknown id
        toy_model.item("nope")


def test_load_rejects_a_non_run(tmp_path):
    with pytest.raises(ValueError, match="no trained model"):
        sidrec.load(tmp_path)


def test_run_maps_keyword_overrides(monkeypatch, tmp_path):
    """`section__key=value` becomes `section.key=value` (pipeline.run is stubbed: only the mapping is tested)."""
    from sidrec import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "run", lambda cfg, out, force, command: seen.update(cfg=cfg, out=out) or {"ok": 1})
    assert sidrec.run("toy_tiger", out=tmp_path, train__epochs=3, seed=7) == {"ok": 1}
    assert seen["cfg"].train.epochs == 3 and seen["cfg"].seed == 7 and seen["cfg"].data.max_users == 300
    with pytest.raises(ValueError, match="unknown config key 'train.nope'"):
        sidrec.run("toy_tiger", out=tmp_path, train__nope=1)


def test_titles_come_from_the_template_prepare_built(toy_model):
    """The toy config sets no template: prepare built `{title}; {categories}`, so titles stop at the '; '."""
    assert toy_model.config.data.text_template == ""
    assert all("; Beauty >" not in t for t in toy_model.titles) and all(toy_model.titles)


def test_beam_width_can_be_lowered_for_serving(toy_run):
    import sidrec

    fast = sidrec.load(toy_run, beam_width=5)
    assert fast.recommender.beam_width == 5 and fast.config.eval.beam_width == 5
    recs = fast.recommend(fast.item_ids[:2], k=8)  # k above the beams: the rest from popularity
    assert len(recs) == 8 and len({r.item_id for r in recs}) == 8
    assert sidrec.load(toy_run).recommender.beam_width == 10  # the toy run's eval.beam_width
