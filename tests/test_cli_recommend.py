"""`sidrec recommend` and `sidrec report` on the session's toy run (the CLI runner, in process)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sidrec.cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_recommend_table(toy_run, toy_model):
    history = ",".join(toy_model.item_ids[:2])
    result = invoke("recommend", "--out", str(toy_run), "--history", history, "--k", "4")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:4] == ["rank", "item_id", "score", "sid"] and len(lines) == 5
    first = toy_model.recommend(toy_model.item_ids[:2], k=4)[0]
    assert first.item_id in lines[1] and first.title[:40] in lines[1]


def test_recommend_json(toy_run, toy_model):
    result = invoke("recommend", "--out", str(toy_run), "--history", toy_model.item_ids[3], "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["rank"] for r in rows] == list(range(1, 11))
    assert rows == [r.to_dict() for r in toy_model.recommend([toy_model.item_ids[3]])]


def test_recommend_unknown_item_exits_2(toy_run):
    result = invoke("recommend", "--out", str(toy_run), "--history", "nope-1,nope-2")
    assert result.exit_code == 2
    assert "unknown item ids in history: 'nope-1', 'nope-2'" in result.output


def test_recommend_not_a_run(tmp_path):
    result = invoke("recommend", "--out", str(tmp_path), "--history", "a")
    assert result.exit_code == 2 and "no trained model" in result.output


def test_report_command(toy_run, tmp_path):
    result = invoke("report", "--out", str(toy_run))
    assert result.exit_code == 0 and "report.html" in result.output
    bad = invoke("report", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "not a sidrec run directory" in bad.output
