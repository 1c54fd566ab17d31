"""benchmarks/resume_exact.py: a toy run killed (SIGKILL) inside an epoch and resumed ends bit-identical."""

from __future__ import annotations

import json

import pytest
import torch

from bench_scripts import load_benchmark


def test_a_killed_and_resumed_toy_run_ends_with_the_weights_of_one_never_stopped(tmp_path, monkeypatch, capsys):
    script = load_benchmark("resume_exact")
    work, record = tmp_path / "work", tmp_path / "record.json"
    argv = ["resume_exact.py", "toy_tiger", "train.epochs=3", "--work", str(work), "--kill-after", "0"]
    monkeypatch.setattr("sys.argv", [*argv, "--record", str(record)])
    with pytest.raises(SystemExit) as done:
        script.main()
    assert done.value.code == 0, capsys.readouterr().out
    rec = json.loads(record.read_text())
    assert rec["bit_identical"] and 1 <= rec["kill"]["checkpoint_epoch_at_kill"] < 3
    assert rec["checkpoint"]["tensors"] > 50 and rec["checkpoint"]["n_differing"] == 0
    assert [e["epoch"] for e in rec["epochs"]] == [1, 2, 3] and rec["log_rows"] == {"straight": 3, "resumed": 3}
    assert len(rec["segments"]["resumed"]) == 2  # the killed part and the resume
    assert "bit-identical" in capsys.readouterr().out


def test_compare_finds_a_changed_tensor_and_a_changed_value():
    script = load_benchmark("resume_exact")
    a = {"model": {"w": torch.ones(3)}, "optimizer": {"param_groups": [{"lr": 0.1}]}}
    b = {"model": {"w": torch.tensor([1.0, 1.5, 1.0])}, "optimizer": {"param_groups": [{"lr": 0.2}]}}
    out = script.compare(a, b)
    assert out["differing"] == ["model.w", "optimizer.param_groups.0.lr"] and out["max_abs_difference"] == 0.5
    assert script.compare(a, a)["n_differing"] == 0


def test_a_non_empty_work_folder_is_refused(tmp_path, monkeypatch):
    (tmp_path / "old").write_text("x")
    monkeypatch.setattr("sys.argv", ["resume_exact.py", "toy_tiger", "--work", str(tmp_path)])
    with pytest.raises(SystemExit, match="not empty"):
        load_benchmark("resume_exact").main()
