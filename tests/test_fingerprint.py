"""Run integrity: which settings and files key a stage's outputs, and how a difference is reported."""

from __future__ import annotations

import pytest

from sidrec import fingerprint, io, pipeline
from sidrec.config import load_config, valid_keys
from sidrec.fingerprint import first_values


def test_select_takes_sections_and_keys_but_not_runtime_settings():
    cfg = load_config(None, ["train.threads=2", "train.lr=0.01"])
    picked = fingerprint.select(cfg, ["train", "seed", "data.max_history"])
    assert picked["train.lr"] == 0.01 and picked["seed"] == 42 and picked["data.max_history"] == 20
    assert "train.threads" not in picked and "train.max_minutes" not in picked and "train.device" not in picked
    assert not any(k.startswith("model.") for k in picked)
    with pytest.raises(KeyError, match="no config key or section 'trian'"):
        fingerprint.select(cfg, ["trian"])


def test_changes_name_settings_and_files(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"one")
    old = fingerprint.compute(load_config(), tmp_path, ["train"], ["a.npy"])
    (tmp_path / "a.npy").write_bytes(b"two")
    new = fingerprint.compute(load_config(None, ["train.lr=0.001"]), tmp_path, ["train"], ["a.npy"])
    assert fingerprint.changes(old.as_dict(), new) == [
        "train.lr: 0.005 -> 0.001",
        "input a.npy changed (an earlier stage was redone or the file was replaced)",
    ]
    assert fingerprint.changes(new.as_dict(), new) == []
    assert "no fingerprint" in fingerprint.changes(None, new)[0]


def test_runtime_settings_never_make_a_stage_stale(tmp_path):
    cfg = load_config("toy_tiger")
    spec = pipeline.SPECS["train"]
    fingerprint.save(tmp_path, "train", fingerprint.compute(cfg, tmp_path, spec.keys(cfg), spec.inputs(cfg)))
    for name in spec.outputs(cfg):
        (tmp_path / name).write_text("{}")
    faster = load_config("toy_tiger", ["train.threads=1", "train.max_minutes=5", "eval.batch_size=64"])
    assert pipeline.stage_status(spec, faster, tmp_path)[0] == "current"
    status, settings, files = pipeline.stage_status(spec, load_config("toy_tiger", ["model.dropout=0.3"]), tmp_path)
    assert status == "stale" and settings == ["model.dropout: 0.1 -> 0.3"] and files == []


def test_text_only_sids_ignore_the_collaborative_settings(tmp_path):
    spec = pipeline.SPECS["quantize"]
    tiger = load_config("beauty_tiger")
    picked = fingerprint.select(tiger, spec.keys(tiger))
    assert "quantize.collab_window" not in picked and "quantize.collab_weight" not in picked
    assert picked["quantize.collab_dim"] == 0 and picked["quantize.levels"] == tiger.quantize.levels
    assert "quantize.collab_window" in fingerprint.select(load_config(), spec.keys(load_config()))
    # a run made when the stage still named them (an older sidrec) stays current when their default moves
    old = fingerprint.compute(tiger, tmp_path, ("quantize", "seed"), spec.inputs(tiger)).as_dict()
    old["config"]["quantize.collab_window"] = 3
    moved = load_config("beauty_tiger", ["quantize.collab_window=9", "quantize.collab_weight=2"])
    assert fingerprint.changes(old, fingerprint.compute(moved, tmp_path, spec.keys(moved), spec.inputs(moved))) == []
    used = load_config("beauty_tiger", ["quantize.collab_dim=8"])  # ...but not once the collaborative part is on
    assert "quantize.collab_dim: 0 -> 8" in fingerprint.changes(
        old, fingerprint.compute(used, tmp_path, spec.keys(used), spec.inputs(used))
    )


def test_a_setting_added_later_keeps_earlier_runs_current_at_its_first_value(tmp_path):
    cfg = load_config("beauty_rpg")
    spec = pipeline.SPECS["train"]
    old = fingerprint.compute(cfg, tmp_path, spec.keys(cfg), spec.inputs(cfg)).as_dict()
    del old["config"]["model.rpg.digit_dropout"]  # as recorded before the setting existed
    assert fingerprint.changes(old, fingerprint.compute(cfg, tmp_path, spec.keys(cfg), spec.inputs(cfg))) == []
    on = load_config("beauty_rpg", ["model.rpg.digit_dropout=0.2"])
    assert fingerprint.changes(old, fingerprint.compute(on, tmp_path, spec.keys(on), spec.inputs(on))) == [
        "model.rpg.digit_dropout: 0.0 -> 0.2"
    ]
    del old["config"]["model.dropout"]  # a key without a first value: a change, as before
    assert fingerprint.changes(old, fingerprint.compute(cfg, tmp_path, spec.keys(cfg), spec.inputs(cfg))) == [
        "model.dropout: '<unset>' -> 0.1"
    ]
    assert set(first_values()) <= set(valid_keys())  # every entry names a real setting


def test_a_fingerprint_from_before_models_owned_their_settings_is_still_current(tmp_path):
    """Stored flat (`model.pooling`, `quantize.opq_iters`): read as the chosen component's own settings."""
    cfg = load_config("beauty_rpg")
    for stage in ("quantize", "train"):
        spec = pipeline.SPECS[stage]
        now = fingerprint.compute(cfg, tmp_path, spec.keys(cfg), spec.inputs(cfg))
        flat = {k.replace("model.rpg.", "model.").replace("quantize.opq.iters", "quantize.opq_iters"): v
                for k, v in now.config.items()}  # fmt: skip
        flat.update({"model.loss_on": "target", "model.hstu_ffn": False})  # other models' settings, stored flat too
        old = {"config": flat, "inputs": now.inputs}
        assert "model.pooling" in flat or "quantize.opq_iters" in flat
        assert fingerprint.changes(old, now) == []
        other = load_config("beauty_rpg", ["model.rpg.pooling=mean", "quantize.opq.iters=3"])
        moved = fingerprint.compute(other, tmp_path, spec.keys(other), spec.inputs(other))
        assert fingerprint.changes(old, moved) == (
            ["quantize.opq.iters: 20 -> 3"] if stage == "quantize" else ["model.rpg.pooling: 'concat' -> 'mean'"]
        )


RPG_ONLY = ("pooling", "item_loss", "id_embedding", "item_dropout", "digit_dropout", "history_negatives", "repeat_bias")


def test_settings_only_rpg_reads_never_make_another_models_training_stale(tmp_path):
    spec = pipeline.SPECS["train"]
    for name in ("beauty_tiger", "beauty_sasrec"):
        cfg = load_config(name)
        old = fingerprint.compute(cfg, tmp_path, spec.keys(cfg), spec.inputs(cfg)).as_dict()
        for key in RPG_ONLY:
            assert f"model.rpg.{key}" not in old["config"] and f"model.{key}" not in old["config"]
        old["config"]["model.item_loss"] = 3.0  # as recorded when the stage still named every model setting
        moved = load_config(
            name, ["model.rpg.history_negatives=true", "model.rpg.repeat_bias=true", "model.rpg.item_loss=1"]
        )
        assert (
            fingerprint.changes(old, fingerprint.compute(moved, tmp_path, spec.keys(moved), spec.inputs(moved))) == []
        )
    rpg = load_config("beauty_rpg")
    assert {f"model.rpg.{k}" for k in RPG_ONLY} <= set(fingerprint.select(rpg, spec.keys(rpg)))
    paper = load_config("beauty_rpg", ["model.rpg.item_loss=0"])  # no item softmax: its history options are unread
    assert "model.rpg.repeat_bias" not in fingerprint.select(paper, spec.keys(paper))


def test_every_stage_reads_what_its_fingerprint_names():
    cfg = load_config()
    assert pipeline.SPECS["embed"].inputs(cfg) == (io.ITEMS,)
    # the default's collaborative SID dimensions read the training histories; text-only SIDs do not
    assert pipeline.SPECS["quantize"].inputs(cfg) == (io.EMBEDDINGS, io.SEQUENCES)
    assert pipeline.SPECS["quantize"].inputs(load_config("beauty_tiger")) == (io.EMBEDDINGS,)
    assert set(pipeline.SPECS["train"].inputs(cfg)) == {io.SEQUENCES, io.SIDS}
    assert set(pipeline.SPECS["train"].inputs(load_config("beauty_sasrec"))) == {io.SEQUENCES, io.ITEMS}
    # per-epoch validation uses eval's beam width only when train.valid_beam_width is 0
    assert "eval.beam_width" not in fingerprint.select(cfg, pipeline.SPECS["train"].keys(cfg))
    toy = load_config("toy_tiger")
    assert "eval.beam_width" in fingerprint.select(toy, pipeline.SPECS["train"].keys(toy))
    assert pipeline.SPECS["evaluate"].outputs(load_config(None, ["eval.splits=[valid]"])) == (io.METRICS,)


def test_large_catalog_settings_are_classified():
    """The quantizer's fit sample changes SIDs (fingerprinted); the embedding chunk size only memory (runtime)."""
    cfg = load_config("toy_tiger")
    assert "quantize.fit_sample" in fingerprint.select(cfg, pipeline.SPECS["quantize"].keys(cfg))
    assert "embed.chunk_size" in fingerprint.RUNTIME_KEYS
    assert "embed.chunk_size" not in fingerprint.select(cfg, pipeline.SPECS["embed"].keys(cfg))


def test_stages_name_only_the_eval_settings_their_recommender_reads():
    """RPG validates and ranks by scoring every item: beam settings never make it stale; beam search reads them."""
    train, evaluate = pipeline.SPECS["train"], pipeline.SPECS["evaluate"]
    rpg, tiger, sasrec = load_config("beauty_rpg"), load_config("beauty_tiger"), load_config("beauty_sasrec")
    for cfg in (rpg, sasrec):
        keys = set(fingerprint.select(cfg, train.keys(cfg))) | set(fingerprint.select(cfg, evaluate.keys(cfg)))
        assert not {"eval.beam_width", "eval.constrained", "eval.batch_size"} & keys
    assert "eval.constrained" in fingerprint.select(tiger, train.keys(tiger))
    assert {"eval.beam_width", "eval.constrained"} <= set(fingerprint.select(tiger, evaluate.keys(tiger)))
    graph = load_config("beauty_rpg", ["eval.decode=graph"])
    assert {"eval.graph_beams", "eval.graph_steps"} <= set(fingerprint.select(graph, evaluate.keys(graph)))
    assert "eval.graph_beams" not in fingerprint.select(rpg, evaluate.keys(rpg))


def test_a_bundled_dataset_is_named_the_same_wherever_sidrec_is_installed(tmp_path):
    """A run made with one install (a clean clone) stays current under another: bundled files are keyed by name."""
    cfg = load_config("toy_tiger")
    spec = pipeline.SPECS["prepare"]
    fp = fingerprint.compute(cfg, tmp_path, spec.keys(cfg), spec.inputs(cfg))
    names = sorted(fp.inputs)
    assert names and all(n.startswith("data:bundled/beauty/") for n in names)
    assert "data:bundled/beauty/interactions.csv.gz" in names and "missing" not in fp.inputs.values()
