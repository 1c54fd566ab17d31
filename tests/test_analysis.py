"""benchmarks/analysis.py: the command line and run loading shared by the benchmarks/ scripts that analyse a run."""

from __future__ import annotations

import pytest

from bench_scripts import load_benchmark

analysis = load_benchmark("analysis")
load_finished_run, run_parser = analysis.load_finished_run, analysis.run_parser


def test_parser_has_the_common_arguments_and_splits_only_when_asked():
    args = run_parser("Title.\n\nmore", splits=("valid",)).parse_args(["runs/x"])
    assert str(args.run_dir) == "runs/x" and args.batch_size == 512 and args.record is None
    assert args.splits == ["valid"]
    assert not hasattr(run_parser("Title.").parse_args(["runs/x"]), "splits")
    with pytest.raises(SystemExit):
        run_parser("Title.", splits=("valid",)).parse_args(["runs/x", "--splits", "train"])


def test_a_run_of_another_model_kind_is_refused_by_name(toy_run):
    with pytest.raises(SystemExit, match=r"model.name=tiger; this script needs an item ranker \(.*rpg.*sasrec"):
        load_finished_run(toy_run, ("parallel", "id"), "an item ranker")
    run = load_finished_run(toy_run, ("sid",), "a SID generator")
    assert run.cfg.model.name == "tiger" and run.sequences.height > 0 and run.model is not None


def test_a_directory_without_a_model_says_how_to_make_one(tmp_path):
    with pytest.raises(SystemExit, match="no model.pt; train it first"):
        load_finished_run(tmp_path, ("id",), "an item ranker")
