"""The model registry: shipped entries, the settings each model reads, a model added from outside `src/`,
and no branch on a component's name outside the registries."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch.nn.functional as F
from torch import Tensor, nn
from typer.testing import CliRunner

import sidrec
from sidrec import io
from sidrec.cli import app
from sidrec.config import Config, ModelConfig, config_from_dict, config_to_dict, load_config
from sidrec.embed import EMBEDDERS
from sidrec.models import REGISTRY, ModelEntry, build_model, entry, register, unregister
from sidrec.models.registry import KINDS
from sidrec.parts import DECODERS
from sidrec.quantize import QUANTIZERS
from sidrec.quantize.sids import DEDUP_METHODS

SRC = Path(sidrec.__file__).parent


def test_shipped_models_are_registered_with_a_kind_and_a_paper():
    assert {"rpg", "tiger", "decoder", "sasrec", "hstu"} <= set(REGISTRY)
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.kind in KINDS and spec.paper
        assert spec.label(Config()).startswith(name)


def test_a_model_reads_its_shape_fields_and_its_depth():
    m = ModelConfig()
    assert "hstu.hstu_ffn" not in entry("sasrec").settings(m) and "d_ff" in entry("sasrec").settings(m)
    assert "d_ff" not in entry("hstu").settings(m)  # no MLP unless hstu_ffn
    assert "d_ff" in entry("hstu").settings(m.replace(name="hstu", hstu_ffn=True))
    assert {"n_enc_layers", "n_dec_layers", "decoder.loss_on"} <= set(entry("decoder").settings(m))
    assert "n_dec_layers" not in entry("rpg").settings(m) and "rpg.pooling" in entry("rpg").settings(m)
    assert not [k for k in entry("tiger").settings(m) if "pooling" in k]
    assert "rpg.negatives" not in entry("rpg").settings(m.replace(item_loss=0.0))
    shape = build_model(dataclasses.replace(m, name="decoder", n_enc_layers=3, n_dec_layers=2), max_history=5,
                        level_sizes=(4, 4)).shape  # fmt: skip
    assert shape.n_layers == 5


def test_each_model_owns_its_settings():
    """`model.<name>.*` is the model's own config; the shared settings stay `model.*`; the chosen model's own
    settings are what a run's config.yaml holds, and a flat key names where it lives now."""
    cfg = load_config(None, ["model.name=sasrec", "model.sasrec.temperature=0.05", "model.rpg.pooling=mean"])
    assert cfg.model.sasrec.temperature == 0.05 and cfg.model.rpg.pooling == "mean"
    assert cfg.model.hstu.temperature == entry("hstu").config().temperature  # another model's own: untouched
    stored = config_to_dict(cfg)["model"]
    assert stored["sasrec"]["temperature"] == 0.05 and stored["rpg"] == {**stored["rpg"], "pooling": "mean"}
    assert "temperature" not in stored and config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="write model.rpg.pooling"):
        load_config(None, ["model.pooling=mean"])
    with pytest.raises(ValueError, match="Settings of model.rpg: temperature, pooling"):
        load_config(None, ["model.rpg.nope=1"])


def test_register_refuses_a_second_model_of_the_same_name():
    with pytest.raises(ValueError, match="already registered"):
        register(dataclasses.replace(entry("sasrec"), paper="another"))
    with pytest.raises(ValueError, match="unknown model.name 'nope'. Known: .*sasrec"):
        entry("nope")
    with pytest.raises(ValueError, match="kind must be one of"):
        ModelEntry("x", nn.Linear, IDBag, kind="bag", paper="-")


@dataclass(frozen=True)
class IDBag:
    """The shape of a model written outside `src/`: its fields come from the `model.*` settings of the same name."""

    n_items: int
    max_len: int = 20
    d_model: int = 16
    dropout: float = 0.0


class BagOfItems(nn.Module):
    """A user's items so far, averaged; next-item scores by dot product (an `id`-kind model in 30 lines)."""

    def __init__(self, shape: IDBag) -> None:
        super().__init__()
        self.shape = shape
        self.items = nn.Embedding(shape.n_items + 1, shape.d_model, padding_idx=0)

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.shape)

    def states(self, inputs: Tensor) -> Tensor:
        """(B, T) -> (B, T, d): the mean of the items at positions <= t."""
        x = self.items(inputs)
        count = (inputs != 0).float().cumsum(1).clamp(min=1)[..., None]
        return x.cumsum(1) / count

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        logits = self.states(batch["inputs"]) @ self.items.weight.T  # (B, T, N+1)
        return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=0)

    def score_all(self, inputs: Tensor) -> Tensor:
        scores = self.states(inputs)[:, -1] @ self.items.weight.T
        scores[:, 0] = float("-inf")
        return scores


def test_a_model_registered_outside_src_runs_end_to_end(tmp_path):
    """Adding a model is its module plus one `register` line: no file under src/ changes."""
    register(ModelEntry("bag", BagOfItems, IDBag, kind="id", paper="a test model", describe=lambda c: "mean"))
    try:
        out = tmp_path / "bag"
        result = CliRunner().invoke(app, ["run", "toy_tiger", "model.name=bag", "train.epochs=1", "--out", str(out)])
        assert result.exit_code == 0, result.output
        metrics = io.load_json(out / io.METRICS)
        assert 0 <= metrics["test"]["ndcg@10"] <= 1
        assert not (out / io.SIDS).exists()  # an id model: no embed or quantize stage
        fp = io.load_json(out / "fingerprints.json")["train"]["config"]
        assert {"model.d_model", "model.dropout", "model.name"} <= set(fp) and "model.pooling" not in fp
        assert "bag" in (out / "report.html").read_text() or "bag" in result.output
    finally:
        unregister("bag")


# A component's name in a comparison: `name == "tiger"`, `x.name in ("pq", "opq")`, `kind != "rpg"` ...
NAMES = sorted({*REGISTRY, *QUANTIZERS, *EMBEDDERS, *DECODERS, *DEDUP_METHODS} - {"bag", "none"})
BRANCH = re.compile(r"""(==|!=|\bin)\s*[\(\[\{{]?[^\n]*?["']({})["']""".format("|".join(map(re.escape, NAMES))))


def test_nothing_outside_the_registries_branches_on_a_component_name():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if code.lstrip().startswith("for "):  # iterating over names (a record's columns) is no branch
                continue
            if BRANCH.search(code) and not code.lstrip().startswith(("raise", 'f"', '"')):
                found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not found, (
        "branches on a component's name (give the component a setting or a registry field):\n" + "\n".join(found)
    )
