"""RPG through the pipeline: PQ / OPQ SIDs, exact and graph decoding, the record, the public API."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import sidrec
from bench_scripts import load_benchmark
from sidrec import io
from sidrec.cli import app
from sidrec.config import load_config, resolve_config_path

RPG = ["model.name=rpg", "model.rpg.temperature=0.1", "quantize.name=opq", "quantize.levels=8", "quantize.dedup=random",
       "quantize.opq.iters=2", "train.epochs=1"]  # fmt: skip


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def rpg_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rpg")
    result = invoke("run", "toy_tiger", *RPG, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_rpg_run_end_to_end(rpg_run):
    sids = np.load(rpg_run / io.SIDS)
    assert sids.shape[1] == 8 and sids.max() < 32  # M digits of the codebook, no de-dup digit
    assert len(np.unique(sids, axis=0)) == len(sids)  # dedup=random made every SID unique
    record = io.load_json(rpg_run / "record.json")
    assert record["model"].startswith("rpg 1L pool=concat") and "opq 8x32" in record["quantizer"]
    assert "item_loss=3/2048 " in record["model"]  # the default: item softmax beside the digit loss
    assert "repeat=mixture" in record["model"]  # ... and the repeat / explore mixture
    metrics = io.load_json(rpg_run / io.METRICS)
    assert 0.0 <= metrics["test"]["ndcg@10"] <= 1.0 and metrics["test_popularity_filled"] == 0


def test_graph_decoding_reuses_the_trained_model(rpg_run, tmp_path):
    cfg_path = rpg_run / "config.yaml"
    result = invoke("evaluate", "--out", str(rpg_run), "eval.decode=graph", "eval.graph_edges=20", "--force")
    assert result.exit_code == 0, result.output
    metrics = io.load_json(rpg_run / io.METRICS)
    assert 0.0 <= metrics["test"]["recall@10"] <= 1.0
    assert load_config(cfg_path).eval.decode == "graph"


def test_public_api_recommends_from_an_rpg_run(rpg_run):
    model = sidrec.load(rpg_run)
    first = model.item_ids[:3]
    recs = model.recommend(first, k=5)
    assert len(recs) == 5 and len({r.item_id for r in recs}) == 5
    assert all(len(r.sid) == 8 for r in recs)


def test_shipped_rpg_configs_resolve():
    for name in ("beauty_rpg", "sports_rpg"):
        cfg = load_config(resolve_config_path(name))
        assert cfg.model.name == "rpg" and cfg.quantize.name in ("pq", "opq") and cfg.quantize.dedup != "tiger"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("quantize.dedup=tiger", "set quantize.dedup=random"),
        ("eval.decode=beam", "unknown eval.decode 'beam'"),
        ("train.windows=every", "unknown train.windows 'every': last | all"),
    ],
)
def test_bad_rpg_settings_stop_before_any_file(tmp_path, extra, message):
    out = tmp_path / "run"
    result = invoke("run", "toy_tiger", *RPG, extra, "--out", str(out))
    assert result.exit_code != 0 and message in result.output
    assert not out.exists() or not any(out.iterdir())


UPSTREAM = (io.CONFIG, io.ITEMS, io.DATA_STATS, io.EMBEDDINGS)  # what quantize needs besides the sequences


def copy_files(src, dst, names) -> None:
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())


def test_collaborative_sids_read_the_training_sequences(rpg_run, tmp_path):
    copy_files(rpg_run, tmp_path, (*UPSTREAM, io.SEQUENCES, "fingerprints.json"))
    fingerprints = io.load_json(tmp_path / "fingerprints.json")
    io.save_json(tmp_path / "fingerprints.json", {k: fingerprints[k] for k in ("prepare", "embed")})
    result = invoke("quantize", "--out", str(tmp_path), "quantize.collab_dim=8", "quantize.collab_weight=2")
    assert result.exit_code == 0, result.output
    stored = io.load_json(tmp_path / "fingerprints.json")["quantize"]
    assert set(stored["inputs"]) == {io.EMBEDDINGS, io.SEQUENCES}
    assert stored["config"]["quantize.collab_dim"] == 8
    sids = np.load(tmp_path / io.SIDS)
    assert sids.shape == np.load(rpg_run / io.SIDS).shape
    assert not np.array_equal(sids, np.load(rpg_run / io.SIDS))  # the collaborative part moved some codes


def test_collaborative_sids_never_read_validation_or_test_targets(rpg_run, tmp_path):
    sids = {}
    for name, shift in (("original", 0), ("other_targets", 1)):
        out = tmp_path / name
        out.mkdir()
        copy_files(rpg_run, out, UPSTREAM)
        seqs = pl.read_parquet(rpg_run / io.SEQUENCES)
        n_items = int(seqs["items"].list.max().max())
        moved = [s[:-2] + [(x + shift - 1) % n_items + 1 for x in s[-2:]] for s in seqs["items"].to_list()]
        seqs.with_columns(pl.Series("items", moved)).write_parquet(out / io.SEQUENCES)
        result = invoke("quantize", "--out", str(out), "quantize.collab_dim=8")
        assert result.exit_code == 0, result.output
        sids[name] = np.load(out / io.SIDS)
    np.testing.assert_array_equal(sids["original"], sids["other_targets"])


def test_collab_dim_that_breaks_the_pq_split_names_the_fix(rpg_run, tmp_path):
    copy_files(rpg_run, tmp_path, (*UPSTREAM, io.SEQUENCES))
    result = invoke("quantize", "--out", str(tmp_path), "quantize.collab_dim=4")
    assert result.exit_code == 1 and "collab_dim" in result.output and "quantize.levels=8" in result.output


@pytest.mark.parametrize(
    ("script", "args", "keys"),
    [
        ("history_share", ["--splits", "valid"], {"splits"}),
        ("by_popularity", ["--splits", "valid"], {"splits"}),
        ("rpg_graph", ["--edges", "10"], {"exact", "graph_decoding", "top10_overlap"}),
    ],
)
def test_analysis_scripts_write_a_record_for_a_finished_run(rpg_run, tmp_path, monkeypatch, script, args, keys):
    record = tmp_path / f"{script}.json"
    monkeypatch.setattr("sys.argv", [f"benchmarks/{script}.py", str(rpg_run), *args, "--record", str(record)])
    load_benchmark(script).main()
    out = io.load_json(record)
    assert keys <= set(out) and out["run"] == str(rpg_run)
    if "splits" in keys:
        assert set(out["splits"]) == {"valid"}  # --splits valid: the test split is not scored
