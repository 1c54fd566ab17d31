"""The CLI end to end on the shipped `toy` config (300 real Beauty users, hashing embedder), and bad input."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from sidrec import io
from sidrec.cli import app
from sidrec.report import METRIC_KEYS

FAST = ["train.epochs=1"]
ARTIFACTS = (
    io.CONFIG,
    io.ITEMS,
    io.SEQUENCES,
    io.EMBEDDINGS,
    io.SIDS,
    io.SID_STATS,
    io.MODEL,
    io.METRICS,
    io.PREDICTIONS,
    "record.json",
)
STAGE_OUTPUTS = (io.ITEMS, io.SEQUENCES, io.EMBEDDINGS, io.SIDS, io.QUANTIZER, io.SID_STATS, io.MODEL)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_run_writes_every_artifact(toy_run):
    for name in ARTIFACTS:
        assert (toy_run / name).exists(), name
    assert io.load_run_config(toy_run).train.epochs == 1
    assert io.load_run_config(toy_run).data.max_users == 300


def test_metrics(toy_run):
    metrics = io.load_json(toy_run / io.METRICS)
    for split in ("valid", "test"):
        assert set(METRIC_KEYS) <= set(metrics[split])
        assert all(0.0 <= metrics[split][k] <= 1.0 for k in METRIC_KEYS)
        assert metrics[split]["recall@5"] <= metrics[split]["recall@10"]
        assert metrics[f"{split}_users"] == 300
    record = io.load_json(toy_run / "record.json")
    json.dumps(record)


def test_predictions_use_original_ids(toy_run):
    preds = pl.read_csv(toy_run / io.PREDICTIONS, infer_schema=False)  # all strings
    assert preds.columns == ["user_id", "rank", "item_id"]
    sequences = pl.read_parquet(toy_run / io.SEQUENCES)
    items = pl.read_parquet(toy_run / io.ITEMS)
    assert preds.height == 10 * sequences.height
    per_user = preds.group_by("user_id").agg(pl.col("rank"), pl.col("item_id").n_unique().alias("distinct"))
    assert per_user.height == sequences.height
    assert all(ranks == [str(r) for r in range(1, 11)] for ranks in per_user["rank"].to_list())
    assert (per_user["distinct"] == 10).all()
    assert set(preds["user_id"].to_list()) == set(sequences["user_id"].to_list())
    assert set(preds["item_id"].to_list()) <= set(items["item_id"].to_list())
    idx = {str(i) for i in items["item_idx"].to_list()}
    assert not set(preds["item_id"].to_list()) <= idx  # Amazon ASINs, not item_idx


def test_second_run_skips_every_stage(toy_run):
    before = {name: (toy_run / name).stat().st_mtime_ns for name in STAGE_OUTPUTS + (io.METRICS,)}
    result = invoke("run", "--out", str(toy_run))  # config from the run directory
    assert result.exit_code == 0, result.output
    assert {name: (toy_run / name).stat().st_mtime_ns for name in before} == before


def test_evaluate_force(toy_run):
    before = (toy_run / io.METRICS).stat().st_mtime_ns
    result = invoke("evaluate", "--out", str(toy_run), "--force")
    assert result.exit_code == 0, result.output
    assert "evaluate_model: done" in result.output
    assert (toy_run / io.METRICS).stat().st_mtime_ns != before
    assert set(METRIC_KEYS) <= set(io.load_json(toy_run / io.METRICS)["test"])


def test_malformed_items_line_stops_before_writing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(f"U{u},I{i},{p}\n" for u in range(4) for p, i in enumerate((u, u + 1, u + 2)))
    (data / "interactions.csv").write_text("user_id,item_id,position\n" + rows)
    items = [json.dumps({"item_id": f"I{i}", "title": f"item {i}"}) for i in range(6)]
    items[3] = '{"item_id": "I3", "title": '
    (data / "items.jsonl").write_text("\n".join(items) + "\n")
    out = tmp_path / "run"
    result = invoke("run", f"data.path={data}", "embed.name=hashing", *FAST, "--out", str(out))
    assert result.exit_code != 0
    assert "items.jsonl, line 4: malformed JSON" in result.output
    assert not (out / io.ITEMS).exists() and not (out / io.SEQUENCES).exists()
    assert not list(out.glob(".*.tmp"))  # no temporary file left behind either


def test_unknown_override_exits_2(tmp_path):
    result = invoke("run", "toy", "train.epoch=1", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "unknown config key 'train.epoch'" in result.output
    assert "train.epochs" in result.output  # the valid keys are listed
    assert not (tmp_path / "run" / io.ITEMS).exists()


def test_unknown_config_name_exits_2(tmp_path):
    result = invoke("run", "no_such_config", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "neither a file nor a shipped config" in result.output
