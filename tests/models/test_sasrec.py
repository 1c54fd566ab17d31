"""SASRec: overfits a batch, causal, padding never wins, the three objectives, config checks, save / load."""

from __future__ import annotations

import pytest
import torch
from id_contract import check_causal, check_ignores_padding_targets, check_objective, check_overfits, check_padding

from sidrec.config import ModelConfig
from sidrec.models import SASRec, build_model, load_model, model_kind


def test_overfits_one_batch(make_id_model, make_id_batch):
    model = make_id_model("sasrec")
    batch = make_id_batch(16)
    before = model.loss(batch).item()
    assert before > 3.0  # ~log(30) at init
    assert check_overfits(model, batch) < 0.1


def test_causal(make_id_model):
    check_causal(make_id_model("sasrec"))


def test_padding_never_wins_and_does_not_leak(make_id_model):
    check_padding(make_id_model("sasrec"))


@pytest.mark.parametrize("loss", ["ce", "sampled", "bce"])
def test_objectives(make_id_model, make_id_batch, loss):
    model = make_id_model("sasrec", loss=loss, negatives=8)
    check_objective(model, make_id_batch(8))
    threshold = 0.7 if loss == "bce" else 0.2  # bce starts at 2 log 2 = 1.39 and stays noisy (random negatives)
    assert check_overfits(model, make_id_batch(8), steps=100) < threshold


def test_padding_targets_are_ignored(make_id_model, make_id_batch):
    check_ignores_padding_targets(make_id_model("sasrec"), make_id_batch(8))


def test_sdpa_matches_math(make_id_model, make_id_batch):
    inputs = make_id_batch(8)["inputs"]
    math_model = make_id_model("sasrec", attention="math")
    sdpa_model = make_id_model("sasrec", attention="sdpa")
    sdpa_model.load_state_dict(math_model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(sdpa_model.score_all(inputs)[:, 1:], math_model.score_all(inputs)[:, 1:])


def test_build_from_config_and_reload(tmp_path):
    cfg = ModelConfig().replace(
        name="sasrec", d_model=32, n_heads=2, d_head=16, d_ff=64, n_enc_layers=3, loss="sampled"
    )
    model = build_model(cfg, max_history=12, n_items=50)
    assert isinstance(model, SASRec) and model_kind("sasrec") == "id"
    assert model.shape.n_layers == 3 and model.shape.max_len == 12 and model.shape.n_items == 50
    assert len(model.blocks) == 3 and model.item.weight.shape == (51, 32)
    torch.save({"model": "sasrec", "shape": model.config_dict(), "state_dict": model.state_dict()}, tmp_path / "m.pt")
    loaded, meta = load_model(str(tmp_path / "m.pt"))
    assert isinstance(loaded, SASRec) and meta["shape"]["loss"] == "sampled"
    inputs = torch.tensor([[0, 3, 4, 5]])
    torch.testing.assert_close(loaded.score_all(inputs), model.eval().score_all(inputs))


def test_bad_config_values_fail_with_the_choices():
    with pytest.raises(ValueError, match="unknown model.sasrec.loss 'softmax'.*ce, sampled, bce"):
        build_model(ModelConfig().replace(name="sasrec", loss="softmax"), max_history=8, n_items=10)
    with pytest.raises(ValueError, match="model.sasrec.negatives must be >= 1"):
        build_model(ModelConfig().replace(name="sasrec", loss="sampled", negatives=0), max_history=8, n_items=10)
    with pytest.raises(ValueError, match="needs n_items"):
        build_model(ModelConfig(name="sasrec"), max_history=8)
    with pytest.raises(ValueError, match="exceeds the model's max_len"):
        build_model(ModelConfig(name="sasrec"), max_history=4, n_items=10).hidden(torch.ones(1, 5, dtype=torch.long))
