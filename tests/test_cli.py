"""Small CLI comforts: --version, the list of shipped configs, a resolved config with its comments."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from sidrec.cli import app
from sidrec.config import config_from_dict, load_config, packaged_configs


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("sidrec ")


def test_configs_lists_every_shipped_config_in_one_line_each():
    result = invoke("configs")
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(packaged_configs())
    toy = next(line for line in lines if line.startswith("toy "))
    assert "300 users" in toy


def test_config_show_prints_the_resolved_config_with_comments():
    result = invoke("config", "show", "toy_tiger", "train.epochs=3")
    assert result.exit_code == 0, result.output
    assert "  epochs: 3  # Training length" in result.output  # a comment above the field counts too
    assert "  codebook_size: 32  # K codes per codebook" in result.output
    # --all: YAML that loads back to the same config; without it, only what the chosen components read.
    every = invoke("config", "show", "toy_tiger", "train.epochs=3", "--all")
    assert config_from_dict(yaml.safe_load(every.output)) == load_config("toy_tiger", ["train.epochs=3"])
    assert "  opq:" not in result.output and "pooling" not in result.output  # OPQ's and RPG's settings
    assert "  opq:\n    iters: 20" in every.output and "  rpg:\n    temperature: 0.03" in every.output
    sasrec = invoke("config", "show", "beauty_sasrec").output
    assert "embed:" not in sasrec and "quantize:" not in sasrec and "hstu_ffn" not in sasrec


def test_config_show_rejects_an_unknown_key():
    result = invoke("config", "show", "train.epoch=3")
    assert result.exit_code == 2 and "unknown config key 'train.epoch'" in result.output


def test_short_options_and_a_fast_version():
    """-h and -V work; `sidrec -V` answers without importing torch (the console script's `main`)."""
    import subprocess
    import sys

    assert invoke("-h").exit_code == 0 and "Usage" in invoke("-h").output
    assert invoke("-V").output.startswith("sidrec ")
    code = "import sys; sys.argv = ['sidrec', '-V']; from sidrec.__main__ import main; main()"
    code += "; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "sidrec" and out[-1] == "False"
