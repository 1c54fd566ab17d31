"""The results table (published rows marked, a data difference said) and the training plot."""

from __future__ import annotations

from sidrec.config import load_config
from sidrec.report import data_difference, plot_training, quantizer_label, results_table

KEYS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")
METRICS = {"valid": dict.fromkeys(KEYS, 0.01), "test": dict.fromkeys(KEYS, 0.02)}


def test_published_rows_are_marked_and_a_subsample_is_said():
    cfg = load_config("toy_tiger")
    assert data_difference(cfg) == "data.max_users=300"
    assert data_difference(load_config()) == ""
    table = results_table(METRICS, "beauty", data_difference(cfg))
    assert "TIGER (NeurIPS 2023), test (published, full data)" in table
    assert table.splitlines()[-1].startswith("note: this run's data differ") and "data.max_users=300" in table
    assert "note:" not in results_table(METRICS, "beauty")
    assert "published" not in results_table(METRICS, "", "data.max_users=300")  # own data: no published rows


def test_training_plot_has_a_legend_and_the_best_epoch(tmp_path, monkeypatch):
    import matplotlib.axes

    seen = {}
    real = matplotlib.axes.Axes.legend

    def legend(self, *args, **kw):
        seen["labels"] = list(args[1])
        return real(self, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", legend)
    history = [{"epoch": e, "loss": 3.0 - e, "valid": {"ndcg@10": v}} for e, v in ((1, 0.01), (2, 0.03), (3, 0.03))]
    plot_training(history, tmp_path / "training.png")
    assert seen["labels"] == ["train loss", "valid NDCG@10", "best epoch 2"]
    assert (tmp_path / "training.png").read_bytes()[:4] == b"\x89PNG"


def test_commit_is_dirty_for_code_changes_but_not_for_records(tmp_path):
    import subprocess

    from sidrec.report import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "src").mkdir()
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results" / "run.json").write_text("{}\n")
    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init", "--allow-empty")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "files")
    clean = git_commit(tmp_path / "src")
    assert clean != "unknown" and not clean.endswith("-dirty")
    (tmp_path / "benchmarks" / "results" / "run.json").write_text('{"a": 1}\n')  # another run's record
    assert git_commit(tmp_path / "src") == clean
    (tmp_path / "src" / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path / "src") == clean + "-dirty"


def test_the_quantizer_label_names_the_collaborative_part():
    assert quantizer_label(load_config()) == "opq 16x256 dedup=random +collab 64/w3"
    assert quantizer_label(load_config(None, ["quantize.collab_weight=2"])).endswith("+collab 64/w3x2")
    assert quantizer_label(load_config("beauty_tiger")) == "rkmeans 3x256 dedup=tiger"
