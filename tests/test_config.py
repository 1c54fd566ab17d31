"""Configuration: shipped configs load, unknown keys and wrong types fail loudly, round trips."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from sidrec import io
from sidrec.config import (
    Config,
    config_from_dict,
    config_to_dict,
    load_config,
    packaged_configs,
    resolve_config_path,
    valid_keys,
)
from sidrec.fingerprint import flatten


def write_yaml(tmp_path, obj) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def test_defaults():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.eval.ks == (5, 10)


def test_the_default_is_beauty_rpg_and_the_tiger_family_starts_from_beauty_tiger():
    assert load_config() == load_config("beauty_rpg")  # spelled out there: the default run, readable in one place
    tiger = load_config("beauty_tiger")
    assert (tiger.model.name, tiger.quantize.name, tiger.quantize.levels) == ("tiger", "rkmeans", 3)
    family = {"beauty_rvq": "quantize", "beauty_rqvae": "quantize", "tiger_grid": "model", "beauty_decoder": "model"}
    for name, differs in family.items():
        cfg = load_config(name)
        assert cfg.train.lr == tiger.train.lr and (cfg.train == tiger.train or name == "tiger_grid"), name
        assert cfg.model.name == ("decoder" if name == "beauty_decoder" else "tiger")
        same = [s for s in ("data", "embed", "quantize", "model", "eval") if s != differs]
        assert all(getattr(cfg, s) == getattr(tiger, s) for s in same), name
    decoder = load_config("beauty_decoder").model  # only the generator differs: same width, depth and dropout
    assert dataclasses.replace(decoder, name="tiger", own=tiger.model.own) == tiger.model
    assert decoder.decoder.tie_embeddings and not tiger.model.decoder.tie_embeddings
    toy = load_config("toy_tiger")
    assert (toy.model.name, toy.quantize.dedup, toy.train.lr) == ("tiger", "tiger", tiger.train.lr)


def test_base_chains_and_its_cycles_are_named(tmp_path):
    (tmp_path / "a.yaml").write_text("base: beauty_tiger\ntrain:\n  epochs: 3\n")
    (tmp_path / "b.yaml").write_text(f"base: {tmp_path / 'a.yaml'}\nmodel:\n  dropout: 0.3\n")
    cfg = load_config(tmp_path / "b.yaml", ["train.lr=1e-3"])
    assert (cfg.model.name, cfg.train.epochs, cfg.model.dropout, cfg.train.lr) == ("tiger", 3, 0.3, 1e-3)
    (tmp_path / "a.yaml").write_text(f"base: {tmp_path / 'b.yaml'}\n")
    with pytest.raises(ValueError, match="config bases form a cycle"):
        load_config(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("base: [beauty_tiger]\n")
    with pytest.raises(ValueError, match=r"c\.yaml: base must be a config name or path"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: no_such_config\n")
    with pytest.raises(ValueError, match=r"d\.yaml: base: config 'no_such_config' is neither a file nor a shipped"):
        load_config(tmp_path / "d.yaml")


def test_every_shipped_config_loads():
    shipped = packaged_configs()
    assert {"toy", "toy_tiger"} <= set(shipped)
    for name, path in shipped.items():
        assert path.suffix == ".yaml"
        cfg = load_config(name)
        assert cfg == load_config(path)
        assert resolve_config_path(name) == path


def test_toy_config_values():
    cfg = load_config("toy_tiger")
    assert cfg.data.max_users == 300
    assert cfg.embed.name == "hashing"
    assert cfg.model.d_model == 32 and cfg.train.epochs == 2


def test_unknown_config_name():
    with pytest.raises(ValueError, match="neither a file nor a shipped config. Shipped: .*toy"):
        load_config("no_such_config")


def test_unknown_key_in_yaml_names_the_file_and_the_closest_key(tmp_path):
    path = write_yaml(tmp_path, {"train": {"epoch": 3}})
    with pytest.raises(ValueError, match=r"exp\.yaml: unknown config key 'train\.epoch'") as err:
        load_config(path)
    assert "did you mean train.epochs?" in str(err.value)


def test_unknown_section_in_yaml(tmp_path):
    with pytest.raises(ValueError, match=r"unknown section 'trainer'.*Valid sections: seed, data, embed"):
        load_config(write_yaml(tmp_path, {"trainer": {"epochs": 3}}))
    with pytest.raises(ValueError, match="unknown section 'train'"):  # not a mapping
        load_config(write_yaml(tmp_path, {"train": 3}))


def test_yaml_must_be_a_mapping(tmp_path):
    with pytest.raises(ValueError, match="expected a mapping of sections, got list"):
        load_config(write_yaml(tmp_path, [1, 2]))


def test_empty_yaml_is_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == Config()


@pytest.mark.parametrize(
    ("key", "close"), [("train.epoch=3", "train.epochs"), ("trainer.epochs=3", "train.epochs"), ("seeds=1", "seed")]
)
def test_unknown_override_names_the_closest_key(key, close):
    with pytest.raises(ValueError, match=f"unknown config key .*: did you mean {close}\\?"):
        load_config(overrides=[key])


def test_unknown_override_far_from_any_key_lists_valid_keys():
    with pytest.raises(ValueError, match="unknown config key") as err:
        load_config(overrides=["epochs=3"])
    message = str(err.value)
    assert "Valid keys:" in message
    assert all(k in message for k in valid_keys())


def test_override_needs_an_equals_sign():
    with pytest.raises(ValueError, match="must look like key=value"):
        load_config(overrides=["train.epochs"])


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.epochs=abc", r"'train\.epochs' expects int, got 'abc'"),
        ("model.d_model=1.5", r"'model\.d_model' expects int, got 1\.5"),
        ("train.epochs=True", r"'train\.epochs' expects int"),
        ("train.lr=fast", r"'train\.lr' expects float"),
        ("eval.constrained=maybe", r"'eval\.constrained' expects bool"),
        ("eval.ks=abc", r"'eval\.ks' expects a list"),
        ("eval.ks=[5,'x']", r"'eval\.ks' expects int"),
        ("seed=1.5", r"'seed' expects int"),
    ],
)
def test_wrong_types_fail(override, match):
    with pytest.raises(ValueError, match=match):
        load_config(overrides=[override])


def test_one_bare_word_is_a_one_element_list():
    assert load_config(overrides=["eval.splits=valid"]).eval.splits == ("valid",)
    assert load_config(overrides=["eval.splits=[valid,test]"]).eval.splits == ("valid", "test")
    with pytest.raises(ValueError, match=r"write eval\.ks=\[a,b\]"):
        load_config(overrides=["eval.ks=abc"])


def test_wrong_type_in_yaml_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"exp\.yaml: config key 'model\.d_model' expects int"):
        load_config(write_yaml(tmp_path, {"model": {"d_model": "big"}}))


def test_values_are_parsed_and_coerced():
    cfg = load_config(
        overrides=[
            "eval.ks=[5,10,20]",
            "train.sliding_window=False",
            "eval.constrained=false",
            "train.lr=1",
            "quantize.name=rvq",
            "data.name=123",
            "seed=7",
            "quantize.rqvae.hidden=64",
        ]
    )
    assert cfg.eval.ks == (5, 10, 20)
    assert cfg.train.sliding_window is False
    assert cfg.eval.constrained is False
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.quantize.name == "rvq"
    assert cfg.data.name == "123"
    assert cfg.seed == 7
    assert cfg.quantize.rqvae.hidden == (64,)


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("train:\n  lr: 1e-3\n  min_lr_ratio: 5E-2\n")  # YAML 1.1 reads these as strings
    cfg = load_config(path)
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.train.min_lr_ratio == pytest.approx(0.05)
    with pytest.raises(ValueError, match="expects float"):
        load_config(write_yaml(tmp_path, {"train": {"lr": "inf"}}))


def test_string_overrides_keep_the_text_typed():
    assert load_config(overrides=["data.path=0.10"]).data.path == "0.10"  # not str(0.1)
    assert load_config(overrides=["data.path=2014"]).data.path == "2014"
    assert load_config(overrides=["data.name='beauty'"]).data.name == "beauty"  # quotes are stripped
    assert load_config(overrides=["data.text_template={title}"]).data.text_template == "{title}"


def test_overrides_apply_after_yaml(tmp_path):
    path = write_yaml(tmp_path, {"seed": 3, "train": {"epochs": 4, "lr": 0.01}, "eval": {"ks": [1, 2]}})
    cfg = load_config(path, ["train.epochs=9"])
    assert cfg.seed == 3 and cfg.train.epochs == 9 and cfg.train.lr == 0.01 and cfg.eval.ks == (1, 2)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().train.epochs = 3


def test_dict_round_trip():
    cfg = load_config("toy_tiger", ["eval.ks=[1,5,20]", "train.sliding_window=False", "seed=5", "train.lr=0.003"])
    raw = config_to_dict(cfg)
    assert raw["eval"]["ks"] == [1, 5, 20]  # tuples become lists (plain YAML)
    assert config_from_dict(raw) == cfg
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(raw))) == cfg


def test_run_directory_round_trip(tmp_path):
    cfg = load_config("toy_tiger", ["quantize.rqvae.hidden=[32,16]", "train.max_minutes=1.5"])
    io.save_config(tmp_path, cfg)
    assert io.load_run_config(tmp_path) == cfg
    assert load_config(tmp_path / io.CONFIG) == cfg
    with pytest.raises(ValueError, match="not a sidrec run directory"):
        io.load_run_config(tmp_path / "nothing")


def test_valid_keys_cover_every_field():
    keys = valid_keys()
    assert keys[0] == "seed"
    assert len(keys) == len(set(keys))
    assert {"train.epochs", "model.d_model", "eval.ks", "data.path", "embed.name", "quantize.dedup"} <= set(keys)
    assert {"model.rpg.pooling", "model.sasrec.loss", "quantize.opq.iters", "quantize.rqvae.hidden"} <= set(keys)
    assert set(flatten(config_to_dict(Config()))) <= set(keys)  # the default's stored settings
    for key, value in flatten(config_to_dict(Config())).items():  # each one settable by its dotted key
        assert load_config(overrides=[f"{key}={value}"]) == Config(), key


def test_default_beams_final_40_per_epoch_validation_20():
    """The final evaluation uses eval.beam_width; per-epoch validation the cheaper train.valid_beam_width."""
    for cfg in (load_config(), load_config("beauty_tiger")):
        assert cfg.eval.beam_width == 40 and cfg.train.valid_beam_width == 20
    assert load_config(None, ["train.valid_beam_width=0"]).train.valid_beam_width == 0


def test_a_config_stored_before_components_owned_their_settings_loads(tmp_path):
    """A run's config.yaml from before (one flat `model:` / `quantize:` mapping) reads in today's shape."""
    flat = config_to_dict(load_config("beauty_rpg", ["model.rpg.pooling=mean", "quantize.opq.iters=7"]))
    flat["model"].update(flat["model"].pop("rpg"), loss_on="target", hstu_ffn=False)  # every model's, flat
    flat["quantize"]["opq_iters"] = flat["quantize"].pop("opq")["iters"]
    flat["quantize"].update(epochs=200, hidden=[512, 256, 128])
    (tmp_path / io.CONFIG).write_text(yaml.safe_dump(flat))
    cfg = io.load_run_config(tmp_path)
    assert cfg.model.rpg.pooling == "mean" and cfg.quantize.opq.iters == 7
    assert cfg == load_config("beauty_rpg", ["model.rpg.pooling=mean", "quantize.opq.iters=7"])
