"""The rank stage through the pipeline: ranking.json, the record, loading and serving the two stages."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

import numpy as np
from typer.testing import CliRunner

from sidrec import io, pipeline
from sidrec.cli import app
from sidrec.ranking import TwoStageRecommender


def test_the_rank_stage_writes_its_measures_and_the_record_holds_them(ranked_run):
    ranking = io.load_json(ranked_run / io.RANKING)
    for split in ("valid", "test"):
        ev = ranking["events"][split]
        assert 0 <= ev["auc"] <= 1 and ev["events"] > 0 and ev["rmse"] > 0
    lists = ranking["lists"]
    assert lists["weight"] in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0) and lists["select"] == "liked"
    assert set(lists["valid"]["weights"]) == {"0", "0.25", "0.5", "1", "2", "4"}
    assert {"retriever", "two_stage"} <= set(lists["test"]) and "weights" not in lists["test"]
    assert lists["valid"]["weights"]["0"] == lists["valid"]["retriever"]  # weight 0: the retriever's order
    record = io.load_json(ranked_run / "record.json")
    assert record["ranking"] == ranking and "rank" in record["stage_seconds"]
    assert (ranked_run / io.RANKER).exists() and (ranked_run / io.RANK_LOG).exists()
    assert "Generative ranker (two stages)" in (ranked_run / "report.html").read_text()


def test_evaluate_scores_the_retriever_alone(ranked_run):
    metrics = io.load_json(ranked_run / io.METRICS)
    retriever = io.load_json(ranked_run / io.RANKING)["lists"]["test"]["retriever"]["all"]
    assert metrics["test"]["ndcg@10"] == retriever["ndcg@10"]  # the same lists: evaluate ran before the ranker


def test_load_gives_the_two_stages(ranked_run):
    import sidrec

    model = sidrec.load(ranked_run)
    assert isinstance(model.recommender, TwoStageRecommender)
    history = model.item_ids[:4]
    ranked = model.recommend(history, k=5, times=[1, 2, 3, 4], actions=[5, 4, 1, 2])
    plain = model.recommend(history, k=5)  # no actions: the retriever's list
    retriever, _ = pipeline.build_recommender(model.config, ranked_run, ranked=False)
    alone = retriever.recommend([model.encode_history(history)], 5, np.zeros(1, dtype=np.int64))
    assert [r.item_id for r in plain] == [model.item_ids[i - 1] for i in alone.items[0]]
    assert len(ranked) == 5 and len({r.item_id for r in ranked}) == 5


def test_a_changed_rank_setting_redoes_only_the_rank_stage(ranked_run, tmp_path):
    from sidrec.config import load_config

    run = tmp_path / "run"
    shutil.copytree(ranked_run, run)
    cfg = load_config(str(run / io.CONFIG), ["rank.epochs=1"])
    status = pipeline.plan(cfg, run, force=True, stages=("prepare", "train", "evaluate", "rank"))
    assert status == {"prepare": "current", "train": "current", "evaluate": "current", "rank": "stale"}


def test_ranking_data_without_actions_stops_with_the_fix(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "toy_tiger", "rank.enabled=true", "train.epochs=1", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "the ranker reads the events' actions and times" in result.output
    assert "rank.enabled=false" in result.output and not (tmp_path / io.MODEL).exists()  # before training


def test_the_server_takes_times_and_actions(ranked_run):
    import sidrec
    from sidrec.serve import start_background

    model = sidrec.load(ranked_run)
    srv, thread, url = start_background(model, max_wait_ms=1.0)
    try:
        history = model.item_ids[:3]

        def post(body: dict) -> tuple[int, dict]:
            req = urllib.request.Request(
                url + "/recommend", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        status, body = post({"history": history, "k": 5, "times": [1, 2, 3], "actions": [5, 1, 4]})
        expected = model.recommend(history, k=5, times=[1, 2, 3], actions=[5, 1, 4])
        assert status == 200 and [r["item_id"] for r in body["items"]] == [r.item_id for r in expected]
        status, body = post({"history": history, "k": 5, "actions": [5, 1]})
        assert status == 422 and "actions: give one list per history, one value per history item" in body["error"]
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


def test_the_cli_recommends_with_events(ranked_run):
    import sidrec

    model = sidrec.load(ranked_run)
    history = model.item_ids[:3]
    args = ["recommend", "--out", str(ranked_run), "--history", ",".join(history), "--k", "5", "--json"]
    result = CliRunner().invoke(app, [*args, "--times", "1,2,3", "--actions", "5,1,4"])
    assert result.exit_code == 0, result.output
    expected = model.recommend(history, k=5, times=[1, 2, 3], actions=[5, 1, 4])
    assert [r["item_id"] for r in json.loads(result.output)] == [r.item_id for r in expected]
    bad = CliRunner().invoke(app, [*args, "--actions", "5,x"])
    assert bad.exit_code == 2 and "whole numbers" in bad.output
