"""benchmarks/results_table.py: how variant records are paired and described (no records needed)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

from sidrec.config import Config

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "results_table.py"


def _module():
    spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(path: Path, config: dict, valid: float, test: float) -> Path:
    keys = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")
    rec = {"config": config, "valid": dict.fromkeys(keys, valid), "test": dict.fromkeys(keys, test), "commit": "abc"}
    path.write_text(json.dumps(rec))
    return path


def test_config_diff_counts_missing_keys_at_their_default():
    table = _module()
    defaults = json.loads(json.dumps(dataclasses.asdict(Config())))
    old = json.loads(json.dumps(defaults))
    del old["train"]["ema"]  # a record made before the setting existed
    new = json.loads(json.dumps(defaults))
    new["model"]["dropout"] = 0.2
    assert table.config_diff(new, old, defaults) == {"model.dropout": 0.2}
    new["train"]["ema"] = 0.999
    assert table.config_diff(new, old, defaults) == {"model.dropout": 0.2, "train.ema": 0.999}


def test_variants_table_pairs_each_variant_with_the_same_seed(tmp_path, capsys):
    table = _module()
    defaults = json.loads(json.dumps(dataclasses.asdict(Config())))
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
    table = _module()
    table.RESULTS = tmp_path
    defaults = json.loads(json.dumps(dataclasses.asdict(Config())))
    _record(tmp_path / "beauty_tiger_rkmeans_m54_seed44.json", defaults, 0.04, 0.03)
    probe = _record(tmp_path / "probe_p20_seed44.json", defaults, 0.05, 0.04)
    rec = json.loads(probe.read_text())
    rec.update(resumed_from="beauty_tiger_rkmeans_m54_seed44.json", note="resumed", best_epoch=35)
    probe.write_text(json.dumps(rec))
    table.probes_table([probe])
    row = capsys.readouterr().out.splitlines()[-1]
    assert "`probe_p20_seed44.json`: resumed" in row
    assert "+0.0100 / +0.0100 / +0.0100 / +0.0100" in row and row.endswith("| 35 |")
