"""Components from outside sidrec: the two examples of docs/add-a-component.md, as written there, run end to end
on the toy data through SIDREC_PLUGINS; a module that cannot be imported is named in the error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sidrec import io
from sidrec.cli import app
from sidrec.models import REGISTRY, unregister
from sidrec.quantize import QUANTIZERS

DOC = Path(__file__).parents[1] / "docs" / "add-a-component.md"


def example(first_line: str) -> str:
    """The docs page's python block that starts with `first_line`."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return block


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    unregister("bag")
    QUANTIZERS.pop("hyperplanes", None)
    for name in ("my_model", "my_tokenizer"):
        __import__("sys").modules.pop(name, None)


@pytest.mark.parametrize(
    ("module", "args"),
    [("my_model", ["model.name=bag", "model.bag.temperature=0.5"]), ("my_tokenizer", ["quantize.name=hyperplanes"])],
)
def test_the_documented_examples_run_end_to_end_as_plugins(plugin_dir, monkeypatch, module, args):
    (plugin_dir / f"{module}.py").write_text(example(f"# {module}.py"))
    monkeypatch.setenv("SIDREC_PLUGINS", module)
    out = plugin_dir / "run"
    result = CliRunner().invoke(app, ["run", "toy", *args, "train.epochs=1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert 0 <= io.load_json(out / io.METRICS)["test"]["ndcg@10"] <= 1
    assert "bag" in REGISTRY or "hyperplanes" in QUANTIZERS
    if module == "my_model":  # the plugin's own setting reached its shape, and its config.yaml
        assert torch.load(out / "model.pt", weights_only=False)["shape"]["temperature"] == 0.5
        assert io.load_run_config(out).model.bag.temperature == 0.5


def test_a_plugin_that_cannot_be_imported_is_named(plugin_dir, monkeypatch):
    monkeypatch.setenv("SIDREC_PLUGINS", "no_such_module")
    result = CliRunner().invoke(app, ["configs"])
    assert result.exit_code == 2
    assert "SIDREC_PLUGINS='no_such_module': cannot import 'no_such_module'" in result.output
