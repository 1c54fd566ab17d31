"""benchmarks/results_table.py: how variant records are paired and described (no records needed)."""

from __future__ import annotations

import json
from pathlib import Path

from bench_scripts import load_benchmark
from sidrec.config import Config, config_to_dict


def _record(path: Path, config: dict, valid: float, test: float) -> Path:
    keys = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")
    rec = {"config": config, "valid": dict.fromkeys(keys, valid), "test": dict.fromkeys(keys, test), "commit": "abc"}
    path.write_text(json.dumps(rec))
    return path


def _run_record(path: Path, config: dict, test: float, *, seed: int, date: str, **extra) -> Path:
    """An end-to-end run's record as `summary_table` reads it (valid 0.05, one test value for every metric)."""
    _record(path, config, 0.05, test)
    rec = json.loads(path.read_text())
    rec.update(seed=seed, date=date, wall_seconds=60.0, dataset="beauty", **extra)
    path.write_text(json.dumps(rec))
    return path


def test_config_diff_counts_missing_keys_at_their_default():
    table = load_benchmark("results_table")
    defaults = json.loads(json.dumps(config_to_dict(Config())))
    old = json.loads(json.dumps(defaults))
    del old["train"]["ema"]  # a record made before the setting existed
    new = json.loads(json.dumps(defaults))
    new["model"]["dropout"] = 0.2
    assert table.config_diff(new, old) == {"model.dropout": 0.2}
    new["train"]["ema"] = 0.999
    assert table.config_diff(new, old) == {"model.dropout": 0.2, "train.ema": 0.999}


def test_a_missing_key_whose_default_changed_counts_at_its_first_value():
    """train.windows came in as `last`; records made before it trained that way, not at today's `all`."""
    table = load_benchmark("results_table")
    assert Config().train.windows == "all" and table.record_defaults()["train.windows"] == "last"
    old = json.loads(json.dumps(config_to_dict(Config())))
    del old["train"]["windows"]
    assert table.recipe({"config": old})["train.windows"] == "last"
    new = json.loads(json.dumps(config_to_dict(Config())))
    assert table.config_diff(new, old) == {"train.windows": "all"}


def test_variants_table_pairs_each_variant_with_the_same_seed(tmp_path, capsys):
    table = load_benchmark("results_table")
    defaults = json.loads(json.dumps(config_to_dict(Config())))
    variant = json.loads(json.dumps(defaults))
    variant["model"]["dropout"] = 0.2
    runs = [
        _record(tmp_path / "beauty_tiger_rkmeans_seed42.json", defaults, 0.05, 0.04),
        _record(tmp_path / "beauty_tiger_rkmeans_do2_seed42.json", variant, 0.04, 0.03),
        _record(tmp_path / "beauty_tiger_rkmeans_do2_seed7.json", variant, 0.04, 0.03),  # no seed-7 default: skipped
    ]
    table.variants_table(runs)
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("| do2")]
    assert len(rows) == 1
    assert "`model.dropout=0.2`" in rows[0] and "| 42 |" in rows[0]
    assert "-0.0100 / -0.0100 / -0.0100 / -0.0100" in rows[0]


def test_probes_table_compares_each_probe_with_the_run_it_resumed(tmp_path, capsys):
    table = load_benchmark("results_table")
    table.RESULTS = tmp_path
    defaults = json.loads(json.dumps(config_to_dict(Config())))
    _record(tmp_path / "beauty_tiger_rkmeans_m54_seed44.json", defaults, 0.04, 0.03)
    probe = _record(tmp_path / "probe_p20_seed44.json", defaults, 0.05, 0.04)
    rec = json.loads(probe.read_text())
    rec.update(resumed_from="beauty_tiger_rkmeans_m54_seed44.json", note="resumed", best_epoch=35)
    probe.write_text(json.dumps(rec))
    table.probes_table([probe])
    row = capsys.readouterr().out.splitlines()[-1]
    assert "`probe_p20_seed44.json`: resumed" in row
    assert "+0.0100 / +0.0100 / +0.0100 / +0.0100" in row and row.endswith("| 35 |")


def test_headline_groups_take_end_to_end_records_of_one_recipe(tmp_path, capsys):
    table = load_benchmark("results_table")
    defaults = json.loads(json.dumps(config_to_dict(Config())))
    paths = []
    for seed, test, extra in ((42, 0.04, {}), (43, 0.06, {}), (44, 0.9, {"from_empty_dir": False})):
        path = tmp_path / f"beauty_default_seed{seed}.json"
        paths.append(
            _run_record(path, {**defaults, "seed": seed}, test, seed=seed, date=f"2026-11-30T00:00:{seed}Z", **extra)
        )
    odd = json.loads(json.dumps(defaults))
    odd["model"]["dropout"] = 0.3  # another recipe under the same name: left out of the group
    paths.append(_run_record(tmp_path / "beauty_default_seed45.json", odd, 0.5, seed=45, date="2026-11-29T00:00:00Z"))
    assert [r["seed"] for r in table.group("beauty_default_seed", paths)] == [42, 43]
    table.summary_table({"default": ("beauty_default_seed", ("GRID RK-Means",))}, paths)
    out = capsys.readouterr().out
    assert "| default | 42, 43 | 0.0500 ± 0.0141 / 0.0500 ± 0.0141 / 0.0500 ± 0.0141 / 0.0500 ± 0.0141 |" in out
    assert "published: GRID RK-Means (CIKM 2025) (beauty)" in out


def test_grid_tables_come_in_grids_order_with_a_count(tmp_path, capsys):
    table = load_benchmark("results_table")
    table.grid_tables(tmp_path)  # none run: nothing printed
    assert capsys.readouterr().out == ""
    for name in ("grid_t8_beam", "grid_t1_tokenizers", "rpg_ablation"):
        (tmp_path / f"{name}.md").write_text(f"### {name}\n\n| variant |\n")
    table.grid_tables(tmp_path)
    out = capsys.readouterr().out
    assert "(2 of 7;" in out and "rpg_ablation" not in out
    assert out.index("#### grid_t1_tokenizers") < out.index("#### grid_t8_beam")


def test_a_group_takes_only_records_named_by_its_prefix_and_a_seed(tmp_path):
    table = load_benchmark("results_table")
    defaults = json.loads(json.dumps(config_to_dict(Config())))
    paths = []
    for name in ("beauty_tiger_seed42", "beauty_tiger_rkmeans_seed42", "beauty_tiger_seed42_zen3"):
        paths.append(
            _run_record(tmp_path / f"{name}.json", {**defaults, "seed": 42}, 0.04, seed=42, date="2026-12-02T00:00:00Z")
        )
    assert len(table.group("beauty_tiger_seed", paths)) == 1


def test_wall_of_a_resumed_record_names_its_invocations_and_training_time():
    table = load_benchmark("results_table")
    segment = {"seconds": 1800.0, "precision": "fp32"}
    resumed = {"wall_seconds": 600.0, "train": {"segments": [segment, segment, segment], "train_seconds": 5400.0}}
    assert table.wall(resumed) == "10.0 min (the last of 3 invocations; training 90.0 min in all)"
    assert table.wall({"wall_seconds": 600.0, "train": {"segments": [segment]}}) == "10.0 min"
    assert table.wall({"wall_seconds": 90.0}) == "1.5 min"  # a record from before segments were kept


def test_a_group_splits_by_training_precision_and_names_the_machines_its_records_name(tmp_path, capsys):
    table = load_benchmark("results_table")
    defaults = json.loads(json.dumps(config_to_dict(Config())))
    runs = (
        (42, 0.04, "AMD EPYC (AVX512-BF16), 2 cores, torch 2.13.0+cpu, 1 threads", "bf16"),
        (43, 0.06, "AMD EPYC (no native bf16), 2 cores, torch 2.13.0+cpu, 2 threads", "fp32"),
        (44, 0.08, "AMD EPYC (no native bf16), 2 cores, torch 2.13.0+cpu, 2 threads", "fp32"),
    )
    paths = [
        _run_record(
            tmp_path / f"beauty_decoder_seed{seed}.json",
            {**defaults, "seed": seed},
            test,
            seed=seed,
            date=f"2026-12-05T00:00:{seed}Z",
            machine=name,
            train={"precision": precision},
        )
        for seed, test, name, precision in runs
    ]
    table.summary_table({"decoder-only, {machine}": ("beauty_decoder_seed", ())}, paths)
    rows = capsys.readouterr().out.splitlines()[2:]
    assert rows[0].startswith("| decoder-only, AMD EPYC (AVX512-BF16), 1 thread, bf16 | 42 | 0.0400 / ")
    assert rows[1].startswith("| decoder-only, AMD EPYC (no native bf16), 2 threads, fp32 | 43, 44 | 0.0700 ± 0.0141")
    assert len(rows) == 2
    table.summary_table({"decoder-only, {machine}": ("beauty_moe_seed", ())}, paths)
    assert "| decoder-only | - | no end-to-end record yet |" in capsys.readouterr().out


def test_the_seed_table_gives_no_mean_across_training_precisions(tmp_path, capsys):
    table = load_benchmark("results_table")
    paths = []
    for seed, precision in ((42, "bf16"), (43, "fp32"), (44, "fp32")):
        path = _run_record(
            tmp_path / f"beauty_decoder_seed{seed}.json",
            {},
            0.04,
            seed=seed,
            date="2026-12-05T00:00:00Z",
            machine="AMD EPYC, 2 cores, torch 2.13.0+cpu, 2 threads",
            train={"precision": precision},
            best_epoch=30,
        )
        paths.append(path)
    table.seeds_table(paths)
    out = capsys.readouterr().out
    assert "| 43 | 0.0400 / 0.0400 / 0.0400 / 0.0400 | 0.0500 | 30 | 1.0 min | abc | AMD EPYC, 2 threads, fp32 |" in out
    assert "mean of" not in out
    table.seeds_table(paths[1:])
    assert "| mean of 2 (sample std) |" in capsys.readouterr().out
