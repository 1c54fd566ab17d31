"""`sidrec sweep` on the toy config: cells are ordinary runs, shared stages are linked, and variants that change
only evaluation settings reuse a trained model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidrec import io
from sidrec.cli import app
from sidrec.report import METRIC_KEYS
from sidrec.sweep import load_sweep, markdown, shipped_sweeps

SWEEP = """
name: tiny
title: "a tiny sweep"
base: toy
overrides: ["train.epochs=1"]
seeds: [42]
variants:
  base: {overrides: [], published: {recall@10: 0.5}}
  free: {overrides: ["eval.constrained=false"]}
  dropout: {overrides: ["model.dropout=0.3"]}
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "tiny.yaml").write_text(SWEEP)
    result = CliRunner().invoke(app, ["sweep", str(root / "tiny.yaml"), "--out", str(root / "runs"),
                                      "--record-dir", str(root / "records")])  # fmt: skip
    assert result.exit_code == 0, result.output
    return root, result.output


def inode(path: Path) -> int:
    return os.stat(path).st_ino


def test_writes_the_record_and_the_table(swept):
    root, output = swept
    rec = io.load_json(root / "records" / "tiny.json")
    assert [v["name"] for v in rec["variants"]] == ["base", "free", "dropout"]
    assert rec["chosen_on_validation"] in {"base", "free", "dropout"}
    for v in rec["variants"]:
        assert set(v["seeds"]) == {"42"} and v["test"]["ndcg@10"]["std"] is None  # one seed: no spread
        assert 0 <= v["valid"]["ndcg@10"]["mean"] <= 1
    table = (root / "records" / "tiny.md").read_text()
    assert "| base (``) |" in table and "recall@10 0.5000" in table and "a tiny sweep" in output
    json.dumps(rec)


def test_shared_stages_are_linked_and_eval_only_variants_reuse_the_model(swept):
    root, _ = swept
    cells = {name: root / "runs" / "tiny" / name / "seed42" for name in ("base", "free", "dropout")}
    assert inode(cells["free"] / io.MODEL) == inode(cells["base"] / io.MODEL)  # not retrained
    assert io.load_json(cells["free"] / io.METRICS)["constrained"] is False
    assert inode(cells["dropout"] / io.EMBEDDINGS) == inode(cells["base"] / io.EMBEDDINGS)  # embedded once
    assert inode(cells["dropout"] / io.MODEL) != inode(cells["base"] / io.MODEL)  # trained anew
    assert io.load_run_config(cells["dropout"]).model.dropout == 0.3


def test_a_second_run_skips_every_cell(swept):
    root, _ = swept
    metrics = sorted((root / "runs").rglob(io.METRICS))
    before = [p.stat().st_mtime_ns for p in metrics]
    result = CliRunner().invoke(app, ["sweep", str(root / "tiny.yaml"), "--out", str(root / "runs"),
                                      "--record-dir", str(root / "records")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [p.stat().st_mtime_ns for p in metrics] == before


def test_each_record_names_the_command_that_runs_it_again(swept):
    root, _ = swept
    sweep_file = str(root / "tiny.yaml")
    assert io.load_json(root / "records" / "tiny.json")["command"] == f"sidrec sweep {sweep_file}"
    for variant in ("base", "free", "dropout"):  # free only re-evaluates base's model: its command runs both
        command = io.load_json(root / "records" / "cells" / "tiny" / f"{variant}_seed42.json")["command"]
        assert command == f"sidrec sweep {sweep_file} --only {variant}/seed42"
        args = [*command.split()[1:], "--out", str(root / "runs"), "--record-dir", str(root / "records")]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0 and f"ran {1 + (variant == 'free')} cell(s) of tiny" in result.output
    shipped = load_sweep("grid_t5_architecture")  # by name, not by where this checkout keeps the file
    assert shipped.command("decoder_tied", 43) == "sidrec sweep grid_t5_architecture --only decoder_tied/seed43"


def test_a_second_sweep_reuses_the_first_ones_trained_cell(swept):
    root, _ = swept
    (root / "other.yaml").write_text(SWEEP.replace("name: tiny", "name: other").replace("dropout: {", "gone: {"))
    result = CliRunner().invoke(app, ["sweep", str(root / "other.yaml"), "--out", str(root / "runs"),
                                      "--record-dir", str(root / "records")])  # fmt: skip
    assert result.exit_code == 0, result.output
    mine, theirs = root / "runs" / "other" / "base" / "seed42", root / "runs" / "tiny" / "base" / "seed42"
    assert inode(mine / io.MODEL) == inode(theirs / io.MODEL)  # same settings as tiny's base row: not retrained
    rec = io.load_json(root / "records" / "other.json")
    row = rec["variants"][0]
    assert row["trained_in"] == ["tiny/base"] and rec["variants"][1]["trained_in"] == ["tiny/base"]
    cell = row["seeds"]["42"]
    assert cell["stage_seconds"]["train"] == io.load_json(theirs / io.TIMINGS)["train"]  # the cost, not 0
    assert cell["cell_seconds"] >= cell["stage_seconds"]["train"] > 0
    assert "(model of tiny/base)" in (root / "records" / "other.md").read_text()
    assert io.load_json(theirs / "record.json")["test"] == io.load_json(mine / "record.json")["test"]


def test_a_cell_recorded_with_settings_its_stage_no_longer_reads_still_lends_it(tmp_path):
    one = "name: one\nbase: toy\noverrides: [train.epochs=1]\nseeds: [42]\nvariants: {base: {overrides: []}}\n"
    (tmp_path / "one.yaml").write_text(one)
    (tmp_path / "two.yaml").write_text(one.replace("name: one", "name: two"))
    args = ["--out", str(tmp_path / "runs"), "--record-dir", str(tmp_path / "records")]
    assert CliRunner().invoke(app, ["sweep", str(tmp_path / "one.yaml"), *args]).exit_code == 0
    donor = tmp_path / "runs" / "one" / "base" / "seed42"
    fps = io.load_json(donor / "fingerprints.json")  # as an older sidrec recorded text-only SIDs: with the window
    fps["quantize"]["config"]["quantize.collab_window"] = 3
    io.save_json(donor / "fingerprints.json", fps)
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "two.yaml"), *args])
    assert result.exit_code == 0, result.output
    cell = tmp_path / "runs" / "two" / "base" / "seed42"
    assert inode(cell / io.SIDS) == inode(donor / io.SIDS) and inode(cell / io.MODEL) == inode(donor / io.MODEL)


def test_only_runs_the_named_cells_and_writes_no_record(swept, tmp_path):
    root, _ = swept
    (root / "third.yaml").write_text(
        SWEEP.replace("name: tiny", "name: third").replace("model.dropout=0.3", "model.dropout=0.2")
    )
    args = ["sweep", str(root / "third.yaml"), "--out", str(root / "runs"), "--record-dir", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--only", "dropout/seed42", "--only", "free"])
    assert result.exit_code == 0, result.output
    # free re-evaluates base's model, so base runs too (its stages linked from tiny's base row)
    assert "ran 3 cell(s) of third" in result.output and not (tmp_path / "third.json").exists()  # no table yet
    assert sorted(p.name for p in (tmp_path / "cells" / "third").iterdir()) == [
        "base_seed42.json", "dropout_seed42.json", "free_seed42.json"]  # fmt: skip
    cells = root / "runs" / "third"
    assert (cells / "dropout" / "seed42" / io.MODEL).exists() and (cells / "free" / "seed42" / io.METRICS).exists()
    assert inode(cells / "free" / "seed42" / io.MODEL) == inode(cells / "base" / "seed42" / io.MODEL)
    only_dropout = CliRunner().invoke(app, [*args, "--only", "dropout"])
    assert "ran 1 cell(s)" in only_dropout.output
    bad = CliRunner().invoke(app, [*args, "--only", "dropuot"])
    assert bad.exit_code == 1 and "--only dropuot: not a cell of third" in bad.output and "dropout" in bad.output
    assert "a seed from 42" in CliRunner().invoke(app, [*args, "--only", "free/seed7"]).output
    full = CliRunner().invoke(app, args)  # every cell: the selected ones are complete, base is linked from tiny
    assert full.exit_code == 0, full.output
    assert io.load_json(tmp_path / "third.json")["variants"][2]["name"] == "dropout"


def test_shipped_sweeps_load():
    names = {"grid_t1_tokenizers", "grid_t3_codebooks", "grid_t4_user_tokens", "grid_t5_architecture"}
    names |= {"grid_t6_augmentation", "grid_t7_dedup", "grid_t8_beam"}
    assert names <= set(shipped_sweeps())
    for name in shipped_sweeps():
        sweep = load_sweep(name)
        if name.startswith("grid_"):  # GRID's tables: >= 2 seeds (3 for the architectures); rpg_ablation: 1
            assert len(sweep.seeds) >= (3 if "architecture" in name else 2)
        assert len({v.name for v in sweep.variants}) == len(sweep.variants) >= 2


def test_a_bad_sweep_file_names_the_problem(tmp_path):
    (tmp_path / "bad.yaml").write_text("variants:\n  a: {overrides: ['train.epoch=1']}\n")
    with pytest.raises(ValueError, match="variant a: unknown config key 'train.epoch'"):
        load_sweep(str(tmp_path / "bad.yaml"))


def test_a_cell_record_completes_a_cell_whose_run_directory_is_gone(tmp_path):
    """Cells finished on another machine or checkout: their committed records complete the table, nothing reruns."""
    one = "name: one\nbase: toy\noverrides: [train.epochs=1]\nseeds: [42]\nvariants: {a: {overrides: []}}\n"
    (tmp_path / "one.yaml").write_text(one)
    args = ["sweep", str(tmp_path / "one.yaml"), "--record-dir", str(tmp_path / "records")]
    assert CliRunner().invoke(app, [*args, "--out", str(tmp_path / "runs"), "--only", "a"]).exit_code == 0
    cell = tmp_path / "records" / "cells" / "one" / "a_seed42.json"
    recorded = io.load_json(cell)
    assert recorded["config"]["seed"] == 42 and recorded["commit"] and recorded["cell_seconds"] > 0
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "elsewhere")])  # no run directories there
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "elsewhere").exists()  # not run again
    row = io.load_json(tmp_path / "records" / "one.json")["variants"][0]
    assert row["seeds"]["42"]["test"] == recorded["test"] and row["seeds"]["42"]["commit"] == recorded["commit"]
    table = (tmp_path / "records" / "one.md").read_text()
    where = f"{recorded['machine']}, {recorded['train']['precision']}"  # fp32 or bf16: it differs by CPU
    assert f"cells run at {recorded['commit']} on {where}" in table
    (tmp_path / "one.yaml").write_text(one.replace("epochs=1", "epochs=2"))  # other settings: the record is stale
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0, result.output
    assert io.load_json(cell)["config"] != recorded["config"] and (tmp_path / "elsewhere" / "one" / "a").is_dir()


def test_the_table_names_every_machine_a_resumed_cell_trained_on():
    def cell(*segments):
        train = {"precision": "fp32", "segments": [{"machine": m, "precision": "fp32"} for m in segments]}
        metrics = {k: 0.1 for k in METRIC_KEYS}
        return {"commit": "abc", "machine": segments[-1], "train": train, "test": metrics, "valid": metrics}

    stats = {"mean": 0.1, "std": None}
    seeds = {"42": cell("cpu A"), "43": cell("cpu A", "cpu B")}
    variant = {"name": "a", "overrides": [], "published": None, "seeds": seeds, "valid": {"ndcg@10": stats},
               "test": {k: stats for k in METRIC_KEYS}, "cell_seconds": {"mean": 60.0}}  # fmt: skip
    rec = {"title": "t", "note": "", "commit": "def", "machine": "cpu C", "variants": [variant], "base": "toy_tiger",
           "overrides": [], "seeds": [42, 43], "chosen_on_validation": "a"}  # fmt: skip
    table = markdown(rec)
    assert "cells run at abc on cpu A, fp32; cpu B, fp32; table written at def" in table
    assert "1 of 2 cells resumed from a checkpoint (a resume keeps the precision)" in table


def test_overrides_given_on_the_command_line_reach_every_cell():
    sweep = load_sweep("onerec_ml100k", ("data.path=/data/ml-100k", "train.epochs=1"))
    for variant in sweep.variants:
        cfg = sweep.config(variant, 43)
        assert cfg.data.path == "/data/ml-100k" and cfg.train.epochs == 1 and cfg.seed == 43
        assert cfg.data.name == "ml-100k"  # as the run names it: the cells' settings compare equal to their records
    assert sweep.config(sweep.variants[-1], 42).train.target_items == 1  # the variant's own override still wins
    assert (
        sweep.command("m1", 42) == "sidrec sweep onerec_ml100k data.path=/data/ml-100k train.epochs=1 --only m1/seed42"
    )
