"""The CLI end to end on the shipped `toy` config (300 real Beauty users, hashing embedder), and bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

import sidrec
from sidrec import io
from sidrec.cli import app
from sidrec.distributed import bf16_units
from sidrec.report import METRIC_KEYS
from sidrec.train import use_bf16

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
    bf16 = use_bf16(record["config"]["train"]["precision"], torch.device("cpu"))
    assert record["train"]["precision"] == ("bf16" if bf16 else "fp32")  # what `auto` resolved to on this machine
    assert f"({bf16_units()})" in record["machine"]  # two CPUs named alike can differ in bf16 units


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


@pytest.fixture
def copy_of_run(toy_run, tmp_path) -> Path:
    """A private copy of the toy run, for tests that change it."""
    out = tmp_path / "run"
    shutil.copytree(toy_run, out)
    return out


def mtimes(run: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(run.iterdir())}


def test_evaluate_force_recomputes_a_changed_setting(copy_of_run):
    before = mtimes(copy_of_run)
    result = invoke("evaluate", "--out", str(copy_of_run), "--force")  # nothing changed: nothing to do
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output and mtimes(copy_of_run) == before
    result = invoke("evaluate", "eval.beam_width=12", "--out", str(copy_of_run), "--force")
    assert result.exit_code == 0, result.output
    assert "evaluate_model: done" in result.output
    assert (copy_of_run / io.METRICS).stat().st_mtime_ns != before[io.METRICS]
    assert io.load_json(copy_of_run / io.METRICS)["beam_width"] == 12
    assert io.load_run_config(copy_of_run).eval.beam_width == 12


def test_changed_setting_stops_before_writing_and_names_the_field(copy_of_run):
    before = mtimes(copy_of_run)
    result = invoke("run", "train.lr=0.001", "--out", str(copy_of_run))
    assert result.exit_code == 1
    assert "train: train.lr: 0.002 -> 0.001" in result.output
    assert "--force" in result.output and "new --out" in result.output
    assert mtimes(copy_of_run) == before  # config.yaml included
    result = invoke("quantize", "quantize.codebook_size=8", "--out", str(copy_of_run))
    assert result.exit_code == 1 and "quantize.codebook_size: 32 -> 8" in result.output
    assert mtimes(copy_of_run) == before


def test_resume_with_a_changed_lr_stops(copy_of_run):
    (copy_of_run / io.TRAIN_SUMMARY).unlink()  # as if killed mid-training: checkpoint.pt remains
    result = invoke("train", "train.lr=0.001", "--out", str(copy_of_run))
    assert result.exit_code == 1 and "train.lr: 0.002 -> 0.001" in result.output
    assert not (copy_of_run / io.TRAIN_SUMMARY).exists()
    result = invoke("train", "--out", str(copy_of_run))  # the same settings resume (every epoch is done)
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output or (copy_of_run / io.TRAIN_SUMMARY).exists()
    summary = io.load_json(copy_of_run / io.TRAIN_SUMMARY)
    assert len(summary["segments"]) == 1  # nothing trained now
    trained = summary["segments"][0]["seconds"]
    assert summary["earlier_seconds"] == trained and io.load_json(copy_of_run / io.TIMINGS)["train"] >= trained


def test_force_recomputes_only_what_depends_on_the_change(copy_of_run):
    before = mtimes(copy_of_run)
    result = invoke("run", "train.lr=0.001", "--out", str(copy_of_run), "--force")
    assert result.exit_code == 0, result.output
    after = mtimes(copy_of_run)
    for name in (io.ITEMS, io.SEQUENCES, io.EMBEDDINGS, io.SIDS, io.QUANTIZER):
        assert after[name] == before[name], name  # prepare, embed, quantize kept
    for name in (io.MODEL, io.METRICS, io.PREDICTIONS):
        assert after[name] != before[name], name  # train and evaluate redone
    record = io.load_json(copy_of_run / "record.json")
    assert record["stages_run"] == ["train", "evaluate"] and record["from_empty_dir"] is False


def test_a_replaced_input_file_is_noticed(copy_of_run):
    sids = np.load(copy_of_run / io.SIDS)
    np.save(copy_of_run / io.SIDS, sids[::-1].copy())
    result = invoke("run", "--out", str(copy_of_run))
    assert result.exit_code == 1 and "input sids.npy changed" in result.output


def test_validation_only_evaluation_never_scores_test(copy_of_run):
    result = invoke("evaluate", "eval.splits=[valid]", "--out", str(copy_of_run), "--force")
    assert result.exit_code == 0, result.output
    metrics = io.load_json(copy_of_run / io.METRICS)
    assert "test" not in metrics and set(METRIC_KEYS) <= set(metrics["valid"])
    assert "test: not scored" in result.output and "TIGER (NeurIPS 2023)" not in result.output
    result = invoke("evaluate", "eval.splits=[test,vallid]", "--out", str(copy_of_run), "--force")
    assert result.exit_code == 1 and "eval.splits" in result.output


def test_the_same_command_gives_the_same_numbers(toy_run, tmp_path):
    """Step-based training: same seed, same command, same machine class -> bitwise the same run (CPU)."""
    out = tmp_path / "again"
    result = invoke("run", "toy_tiger", *FAST, "--out", str(out))
    assert result.exit_code == 0, result.output
    first, second = io.load_json(toy_run / "record.json"), io.load_json(out / "record.json")
    assert first["test"] == second["test"] and first["valid"] == second["valid"]
    assert (toy_run / io.PREDICTIONS).read_bytes() == (out / io.PREDICTIONS).read_bytes()
    assert second["from_empty_dir"] is True and second["time_capped"] is False


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
    result = invoke("run", "toy_tiger", "train.epoch=1", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "unknown config key 'train.epoch'" in result.output
    assert "train.epochs" in result.output  # the valid keys are listed
    assert not (tmp_path / "run" / io.ITEMS).exists()


def test_unknown_config_name_exits_2(tmp_path):
    result = invoke("run", "no_such_config", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "neither a file nor a shipped config" in result.output


def _small_dataset(folder: Path, users: int = 6) -> Path:
    folder.mkdir()
    rows = "".join(f"U{u},I{i},{p}\n" for u in range(users) for p, i in enumerate(range(u, u + 5)))
    (folder / "interactions.csv").write_text("user_id,item_id,position\n" + rows)
    (folder / "items.jsonl").write_text(
        "".join(json.dumps({"item_id": f"I{i}", "title": f"t{i}"}) + "\n" for i in range(10))
    )
    return folder


def test_a_changed_data_file_makes_prepare_stale(tmp_path):
    """prepare keys its outputs by the dataset's files: an edit is noticed, a touch without an edit is not."""
    data, out = _small_dataset(tmp_path / "data"), tmp_path / "run"
    assert invoke("prepare", f"data.path={data}", "--out", str(out)).exit_code == 0
    assert "up to date" in invoke("prepare", f"data.path={data}", "--out", str(out)).output
    csv = data / "interactions.csv"
    os.utime(csv, ns=(csv.stat().st_atime_ns, csv.stat().st_mtime_ns + 10**9))  # same bytes, newer mtime
    assert "up to date" in invoke("prepare", f"data.path={data}", "--out", str(out)).output
    before = (out / io.SEQUENCES).read_bytes()
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:1] + [r for r in lines[1:] if not r.endswith(",4")]) + "\n")  # each last row
    stale = invoke("prepare", f"data.path={data}", "--out", str(out))
    assert stale.exit_code != 0 and "interactions.csv changed since this run read the dataset" in stale.output
    assert (out / io.SEQUENCES).read_bytes() == before  # nothing rewritten
    assert invoke("prepare", f"data.path={data}", "--out", str(out), "--force").exit_code == 0
    assert (out / io.SEQUENCES).read_bytes() != before


def test_a_stage_without_its_inputs_or_with_a_file_as_out_stops_before_writing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("train", "toy_tiger", "--out", str(empty))
    assert result.exit_code == 1 and "has no sequences.parquet, which `sidrec train` reads" in result.output
    assert "Traceback" not in result.output and list(empty.iterdir()) == []  # no config.yaml, no fingerprints
    afile = tmp_path / "afile"
    afile.write_text("")
    result = invoke("prepare", "toy_tiger", "--out", str(afile))
    assert result.exit_code == 1 and "is a file, not a run directory" in result.output


def test_an_unfinished_training_is_refused_unless_allowed(copy_of_run):
    (copy_of_run / io.TRAIN_SUMMARY).unlink()  # as if killed mid-training: model.pt holds the best epoch so far
    result = invoke("evaluate", "eval.beam_width=12", "--out", str(copy_of_run), "--force")
    assert result.exit_code == 1 and "did not finish" in result.output and "--allow-unfinished" in result.output
    with pytest.raises(ValueError, match="did not finish"):
        sidrec.load(copy_of_run)
    recommend = invoke("recommend", "--out", str(copy_of_run), "--history", "x", "--skip-unknown")
    assert recommend.exit_code == 2 and "did not finish" in recommend.output
    assert sidrec.load(copy_of_run, allow_unfinished=True).n_items > 0
    args = ("evaluate", "eval.beam_width=12", "--out", str(copy_of_run), "--force", "--allow-unfinished")
    assert invoke(*args).exit_code == 0


def test_a_rerun_says_which_stages_were_up_to_date(copy_of_run):
    result = invoke("run", "--out", str(copy_of_run))
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("wall "))
    assert "prepare up to date" in line and "train up to date" in line and "evaluate up to date" in line


def test_cold_start_protocol_with_cold_candidates(tmp_path):
    """data.cold_items holds items out of training; eval.cold_candidates lets the beam's ranking reach them."""
    args = ["run", "toy_tiger", "train.epochs=1", "data.cold_items=0.1", "eval.cold_candidates=5", "--out"]
    result = CliRunner().invoke(app, [*args, str(tmp_path)])
    assert result.exit_code == 0, result.output
    metrics = io.load_json(tmp_path / io.METRICS)
    stats = io.load_json(tmp_path / io.DATA_STATS)
    assert stats["cold_items"]["items"] > 0 and metrics["test_cold"]["cold_users"] > 0
    assert metrics["test_cold"]["cold_users"] > metrics["valid_cold"]["cold_users"]  # held out: test targets only
    assert "text_knn" in metrics["baselines"]
