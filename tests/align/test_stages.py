"""OneRec's stages through the pipeline: sessions, the reward model, alignment (resumable), list metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import movielens_folder
from sidrec import io, pipeline
from sidrec.cli import app
from sidrec.config import load_config

ONEREC = ["data.format=movielens", "data.list_items=3", "train.target_items=2", "train.session_gap=240",
          "train.epochs=1", "reward.epochs=2", "reward.d_model=16", "reward.d_head=8", "align.rounds=1",
          "align.share=0.5", "align.sessions=4", "align.epochs=1", "quantize.name=rkmeans_balanced",
          "model.repeat=none"]  # fmt: skip


@pytest.fixture(scope="module")
def onerec_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("onerec")
    data = movielens_folder(root, users=40, per_user=16)
    result = CliRunner().invoke(app, ["run", "toy_tiger", *ONEREC, f"data.path={data}", "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    assert "test lists of 3" in result.output and "reward model" in result.output  # the end-of-run summary
    return root / "run"


def test_the_run_writes_the_reward_model_alignment_and_list_metrics(onerec_run):
    record = io.load_json(onerec_run / "record.json")
    assert {"reward", "align"} <= set(record["stage_seconds"])
    reward = io.load_json(onerec_run / io.REWARD_JSON)
    assert 0 <= reward["valid"]["auc"] <= 1 and reward["test"]["items"] == 40 * 3  # every user's held-out list
    align = io.load_json(onerec_run / io.ALIGN_JSON)
    (row,) = align["rounds"]
    assert row["users"] == 20 and row["pairs"] > 0 and row["reward_chosen"] >= row["reward_rejected"]
    lists = io.load_json(onerec_run / io.METRICS)["lists"]
    assert lists["items"] == 3 and lists["users"] == 40 and 0 <= lists["hits"] <= 1 and 0 <= lists["reward"] <= 1
    assert record["reward"] == reward and record["align"] == align
    stats = io.load_json(onerec_run / io.DATA_STATS)
    assert stats["list_items"] == {"items": 3, "users": 40} and stats["interactions"] == 40 * 13
    report = (onerec_run / "report.html").read_text()
    assert "Lists, reward model and alignment (OneRec)" in report and "alignment round" in report


def test_evaluate_and_load_use_the_aligned_model(onerec_run):
    cfg = io.load_run_config(onerec_run)
    rec, meta = pipeline.build_recommender(cfg, onerec_run)
    aligned = torch.load(onerec_run / io.ALIGNED, weights_only=False)
    assert meta["aligned_rounds"] == 1 and rec.model.shape.target_items == 2
    for name, value in rec.model.state_dict().items():
        assert torch.equal(value, aligned["state_dict"][name])


def test_load_gives_whole_lists(onerec_run):
    import sidrec

    model = sidrec.load(onerec_run)
    history = model.item_ids[:5]
    session = model.recommend_list(history)  # the model's session length: 2
    assert len(session) == 2 and [r.rank for r in session] == [1, 2]
    longer = model.recommend_list(history, 5)
    assert [r.item_id for r in longer[:2]] == [r.item_id for r in session] and len({r.item_id for r in longer}) == 5


def test_alignment_resumes_after_its_last_round_and_a_changed_setting_redoes_only_it(onerec_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(onerec_run, run)
    cfg = load_config(str(run / io.CONFIG), ["align.lr=1e-3"])
    status = pipeline.plan(cfg, run, force=True, stages=("train", "reward", "align", "evaluate"))
    assert status == {"train": "current", "reward": "current", "align": "stale", "evaluate": "current"}
    before = io.load_json(run / io.ALIGN_JSON)
    (run / io.ALIGNED).unlink()  # killed after the round's checkpoint, before aligned.pt
    result = CliRunner().invoke(app, ["align", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert io.load_json(run / io.ALIGN_JSON)["rounds"] == before["rounds"]  # nothing redone
    assert "round 1:" in result.output


def test_sessions_and_alignment_need_a_token_by_token_generator(tmp_path):
    result = CliRunner().invoke(app, ["run", "toy", "train.target_items=3", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "model.name=tiger or decoder" in result.output


def test_the_reward_model_needs_actions(tmp_path):
    result = CliRunner().invoke(app, ["run", "toy_tiger", "align.rounds=1", "train.epochs=1", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "learns from the events' actions" in result.output
    assert not (tmp_path / io.MODEL).exists()  # stopped before training
