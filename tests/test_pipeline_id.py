"""Item-ID baselines through the pipeline: training windows, the top-k recommender, the CLI end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from sidrec import io
from sidrec.cli import app
from sidrec.config import load_config, resolve_config_path
from sidrec.data.batches import IDExamples, item_inputs
from sidrec.models import build_model, model_kind
from sidrec.recommender import ItemRecommender, Recommendations
from sidrec.report import METRIC_KEYS

TINY = ["train.epochs=1", "model.d_model=16", "model.n_heads=1", "model.d_head=16", "model.d_ff=32"]


def test_item_inputs_left_pad_and_cut():
    out = item_inputs([np.array([1, 2, 3, 4]), np.array([5]), np.array([], dtype=np.int64)], max_history=3)
    assert out.dtype == torch.int64
    assert out.tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0]]
    assert item_inputs([np.array([], dtype=np.int64)], max_history=3).shape == (1, 1)


def test_id_examples_take_the_last_window_of_each_user():
    seqs = [np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8]), np.array([9])]  # the last is too short: skipped
    ex = IDExamples(seqs, max_history=3)
    assert len(ex) == 2 and ex.n_batches(1) == 2 and ex.lengths.tolist() == [3, 1]
    batch = ex.batch(np.array([0, 1]))
    assert batch["inputs"].tolist() == [[3, 4, 5], [0, 0, 7]]
    assert batch["targets"].tolist() == [[4, 5, 6], [0, 0, 8]]
    seen = [b["inputs"].shape[0] for b in ex.batches(1, np.random.default_rng(0))]
    assert sorted(seen) == [1, 1]


def test_all_windows_use_every_training_target_once():
    seqs = [np.arange(1, 9), np.array([7, 8]), np.array([9])]  # 7 targets: windows of 3, 3 and 1; then 1; none
    ex = IDExamples(seqs, max_history=3, all_windows=True)
    assert [t.tolist() for t in ex.targets] == [[6, 7, 8], [3, 4, 5], [2], [8]]
    assert [i.tolist() for i in ex.inputs] == [[5, 6, 7], [2, 3, 4], [1], [7]]  # each target after its inputs
    last = IDExamples(seqs, max_history=3)
    assert [t.tolist() for t in last.targets] == [[6, 7, 8], [8]] and ex.lengths.tolist() == [3, 3, 1, 1]
    exact = IDExamples([np.arange(1, 8)], max_history=3, all_windows=True)  # 6 targets: two full windows
    assert [t.tolist() for t in exact.targets] == [[5, 6, 7], [2, 3, 4]]


def test_item_recommender_top_k(make_id_model):
    model = make_id_model("sasrec", n_items=12)
    histories = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6, 7, 8, 9, 10, 11, 12, 1, 2])]
    out = ItemRecommender(model, max_history=8).recommend(histories, 5)
    assert out.items.shape == (3, 5) and out.invalid_beams == 0 and out.filled == 0
    assert (out.items >= 1).all() and (out.items <= 12).all()
    assert all(len(set(row)) == 5 for row in out.items.tolist())
    assert (np.diff(out.scores, axis=1) <= 0).all()  # best first
    with torch.no_grad():
        expected = model.score_all(item_inputs(histories, 8))[:, 1:].topk(5).indices + 1
    np.testing.assert_array_equal(out.items, expected.numpy())
    masked = ItemRecommender(model, max_history=8, mask_history=True).recommend(histories, 2)
    assert not any(set(row) & set(h[-8:].tolist()) for row, h in zip(masked.items.tolist(), histories, strict=True))
    with pytest.raises(ValueError, match="catalogue has only 12"):
        ItemRecommender(model, max_history=8).recommend(histories, 13)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def sasrec_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sasrec")
    result = invoke("run", "toy_tiger", "model.name=sasrec", *TINY, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_run_skips_embed_and_quantize(sasrec_run):
    for name in (io.CONFIG, io.ITEMS, io.SEQUENCES, io.MODEL, io.METRICS, io.PREDICTIONS, "record.json"):
        assert (sasrec_run / name).exists(), name
    for name in (io.EMBEDDINGS, io.QUANTIZER, io.SIDS, io.SID_STATS):
        assert not (sasrec_run / name).exists(), name
    assert set(io.load_json(sasrec_run / io.TIMINGS)) == {"prepare", "train", "evaluate"}


def test_metrics_and_record(sasrec_run):
    metrics = io.load_json(sasrec_run / io.METRICS)
    for split in ("valid", "test"):
        assert set(METRIC_KEYS) <= set(metrics[split])
        assert all(0.0 <= metrics[split][k] <= 1.0 for k in METRIC_KEYS)
        assert metrics[f"{split}_users"] == 300 and metrics[f"{split}_popularity_filled"] == 0
    assert "beam_width" not in metrics
    record = io.load_json(sasrec_run / "record.json")
    assert record["quantizer"] == "none" and record["embedder"] == "none"
    assert record["model"].startswith("sasrec 1L loss=ce")
    assert "sid_stats" not in record


def test_predictions(sasrec_run):
    preds = pl.read_csv(sasrec_run / io.PREDICTIONS, infer_schema=False)
    items = pl.read_parquet(sasrec_run / io.ITEMS)
    assert preds.columns == ["user_id", "rank", "item_id"] and preds.height == 10 * 300
    assert (preds.group_by("user_id").agg(pl.col("item_id").n_unique())["item_id"] == 10).all()
    assert set(preds["item_id"].to_list()) <= set(items["item_id"].to_list())


def test_second_run_skips_every_stage(sasrec_run):
    before = {n: (sasrec_run / n).stat().st_mtime_ns for n in (io.MODEL, io.METRICS, io.ITEMS)}
    result = invoke("run", "--out", str(sasrec_run))
    assert result.exit_code == 0, result.output
    assert {n: (sasrec_run / n).stat().st_mtime_ns for n in before} == before


@pytest.mark.parametrize("loss", ["sampled", "bce"])
def test_hstu_runs_end_to_end(tmp_path, loss):
    result = invoke("run", "toy_tiger", "model.name=hstu", f"model.hstu.loss={loss}", "model.hstu.negatives=32", *TINY,
                    "--out", str(tmp_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / io.METRICS).exists() and not (tmp_path / io.EMBEDDINGS).exists()
    assert io.load_json(tmp_path / "record.json")["model"].startswith(f"hstu 1L loss={loss}")


def test_unknown_loss_exits_with_the_choices(tmp_path):
    result = invoke("run", "toy_tiger", "model.name=sasrec", "model.sasrec.loss=softmax", *TINY, "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "unknown model.sasrec.loss 'softmax'" in result.output and "ce, sampled, bce" in result.output


def test_unknown_model_name_fails_before_any_stage(tmp_path):
    result = invoke("run", "toy_tiger", "model.name=caser", *TINY, "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "unknown model.name 'caser'" in result.output and "sasrec" in result.output


@pytest.mark.parametrize(
    "name", ["beauty_sasrec", "beauty_hstu", "beauty_hstu_ffn", "sports_sasrec", "sports_hstu", "sports_hstu_ffn"]
)
def test_shipped_baseline_configs_build(name):
    cfg = load_config(name)
    assert model_kind(cfg.model.name) == "id" and cfg.model.component().loss == "ce"
    assert cfg.train.max_minutes == 0 and cfg.train.epochs >= 40  # step-based: no clock in the recipe
    assert len(resolve_config_path(name).read_text().splitlines()) < 60
    model = build_model(cfg.model, max_history=cfg.data.max_history, n_items=100)
    assert model.shape.d_model == cfg.model.d_model and model.shape.n_layers == cfg.model.n_enc_layers == 2
    assert model.shape.temperature == 0.05  # cosine scores, as chosen on validation
    assert cfg.data.name == name.split("_")[0]


def test_evaluate_chooses_the_explore_temperature_on_validation(sasrec_run, tmp_path):
    """Several eval.explore_temperature values: re-evaluating a trained run picks one on validation, says so."""
    result = invoke("evaluate", "eval.explore_temperature=[1,2]", "--out", str(sasrec_run), "--force")
    assert result.exit_code == 0, result.output
    chosen = io.load_json(sasrec_run / io.METRICS)["explore_temperature"]
    assert chosen["chosen"] in (1.0, 2.0) and set(chosen["valid_ndcg@10"]) == {"1", "2"}
    best = max(chosen["valid_ndcg@10"].values())
    assert io.load_json(sasrec_run / io.METRICS)["valid"]["ndcg@10"] == pytest.approx(best, abs=1e-6)
    result = invoke("evaluate", "eval.explore_temperature=[1]", "--out", str(sasrec_run), "--force")
    assert result.exit_code == 0 and "explore_temperature" not in io.load_json(sasrec_run / io.METRICS)
    plain = invoke("run", "toy_tiger", "model.name=sasrec", "model.repeat=none", "eval.explore_temperature=[1,2]",
                   *TINY, "--out", str(tmp_path))  # fmt: skip
    assert plain.exit_code == 1 and "need model.repeat=mixture" in plain.output
    assert not (tmp_path / io.CONFIG).exists()  # refused before anything is written


def test_serving_and_a_single_value_use_the_explore_temperature(sasrec_run):
    """One eval.explore_temperature value is used as is; several: the loaded run uses the one evaluate chose."""
    from sidrec.pipeline import build_recommender

    cfg = load_config(str(sasrec_run / io.CONFIG), ["eval.explore_temperature=[2.5]"])
    rec, _ = build_recommender(cfg, sasrec_run)
    assert float(rec.model.repeat_head.temperature) == 2.5
    assert invoke("evaluate", "eval.explore_temperature=[0.5,3]", "--out", str(sasrec_run), "--force").exit_code == 0
    chosen = io.load_json(sasrec_run / io.METRICS)["explore_temperature"]["chosen"]
    rec, _ = build_recommender(io.load_run_config(sasrec_run), sasrec_run)
    assert float(rec.model.repeat_head.temperature) == chosen


def test_text_items_start_at_the_text_and_keep_cold_items_out_of_the_training_softmax():
    cfg = load_config(None, ["model.name=sasrec", "model.sasrec.text_items=true", *TINY]).model
    text = np.random.default_rng(0).normal(size=(12, 6)).astype(np.float32)
    trained = np.ones(13, dtype=bool)
    trained[[5, 9]] = False  # items 5 and 9 never occur in training
    model = build_model(cfg, max_history=8, n_items=12, text=text, trained=trained)
    with torch.no_grad():
        expected = model.text_proj(torch.from_numpy(text))
    torch.testing.assert_close(model.items()[1:], expected)  # the ID part starts at zero
    assert model.items()[0].abs().sum() == 0 and model.untrained.nonzero().flatten().tolist() == [5, 9]
    batch = {"inputs": torch.tensor([[1, 2, 3, 4]]), "targets": torch.tensor([[2, 3, 4, 6]])}
    model.loss(batch).backward()
    assert model.item.weight.grad[[5, 9]].abs().sum() == 0  # cold rows: no push from the softmax
    assert model.item.weight.grad[[7, 8]].abs().sum() > 0  # other items are negatives as usual
    with pytest.raises(ValueError, match="text_items needs the 12 items' text embeddings"):
        build_model(cfg, max_history=8, n_items=12)


def test_text_items_run_embeds_and_scores_the_text_rule(tmp_path):
    result = invoke("run", "toy_tiger", "model.name=sasrec", "model.sasrec.text_items=true", "data.cold_items=0.05",
                    *TINY, "--out", str(tmp_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert set(io.load_json(tmp_path / io.TIMINGS)) == {"prepare", "embed", "train", "evaluate"}
    metrics = io.load_json(tmp_path / io.METRICS)
    assert metrics["test_cold"]["cold_users"] > 0
    assert set(metrics["baselines"]) == {"popular", "recent", "text_knn"}
    assert set(metrics["baselines"]["text_knn"]["test"]["cold"]) == {"cold_share", "cold_users", "cold", "warm"}
    assert invoke("run", "--out", str(tmp_path)).exit_code == 0  # every stage current


def test_hstu_reads_times_and_actions_end_to_end(tmp_path, make_movielens):
    data = make_movielens(tmp_path)
    args = ["model.name=hstu", "model.hstu.time_bias=true", "model.hstu.actions=true", "data.format=movielens"]
    result = invoke("run", "toy_tiger", *args, f"data.path={data}", *TINY, "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    seqs = pl.read_parquet(tmp_path / "run" / io.SEQUENCES)
    assert {"times", "actions"} <= set(seqs.columns)
    assert io.load_json(tmp_path / "run" / "record.json")["model"].endswith("+time_bias +actions")
    bare = invoke("run", "toy_tiger", "model.name=hstu", "model.hstu.time_bias=true", *TINY, "--out", str(tmp_path))
    assert bare.exit_code != 0 and "reads the events' times, which this data does not keep" in bare.output


def test_evaluate_hands_the_events_to_a_model_that_reads_them():
    from sidrec.data.split import EvalExamples
    from sidrec.metrics import evaluate

    seen = []

    class Model:
        events = ("times",)

    class Rec:
        model = Model()

        def recommend(self, histories, k, users=None, events=None):
            seen.append(events)
            return Recommendations(np.array([[3], [1]]), np.zeros((2, 1)), 0, 0)

    events = {"times": [np.array([5, 6]), np.array([7])], "actions": [np.array([1, 1]), np.array([2])]}
    ex = EvalExamples(np.arange(2), [np.array([1, 2]), np.array([3])], np.array([3, 4]), events)
    assert evaluate(Rec(), ex, ks=(1,), top_n=1).metrics["recall@1"] == 0.5
    assert list(seen[0]) == ["times"] and [a.tolist() for a in seen[0]["times"]] == [[5, 6], [7]]  # only what it reads


def test_the_api_hands_times_and_actions_to_an_events_model(tmp_path, make_movielens):
    import sidrec

    data = make_movielens(tmp_path)
    args = ["model.name=hstu", "model.hstu.time_bias=true", "model.hstu.actions=true", "data.format=movielens"]
    assert invoke("run", "toy_tiger", *args, f"data.path={data}", *TINY, "--out", str(tmp_path / "r")).exit_code == 0
    rec = sidrec.load(tmp_path / "r")
    with torch.no_grad():
        rec.recommender.model.layers[0].rel_time_bias.normal_()  # zero-initialised after one epoch: give it weight
    history = ["1", "2", "3"]
    plain = rec.recommend(history, k=5)
    timed = rec.recommend(history, k=5, times=[0, 10, 10**6], actions=[5, 1, 3])
    assert [r.score for r in plain] != [r.score for r in timed]
    same = rec.recommend([*history, "nope"], k=5, times=[0, 10, 10**6, 7], actions=[5, 1, 3, 2], skip_unknown=True)
    assert [r.score for r in same] == [r.score for r in timed]  # the unknown id's events go with it
    with pytest.raises(ValueError, match="times: give one list per history"):
        rec.recommend(history, k=5, times=[0, 10])
