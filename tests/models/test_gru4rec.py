"""GRU4Rec: the item-ID contract (overfits a batch, causal, padding never wins or leaks, objectives), end to end."""

from __future__ import annotations

import pytest
from id_contract import check_causal, check_ignores_padding_targets, check_objective, check_overfits, check_padding
from typer.testing import CliRunner

from sidrec import io
from sidrec.cli import app


def test_overfits_one_batch(make_id_model, make_id_batch):
    model = make_id_model("gru4rec", repeat="none")
    batch = make_id_batch(16)
    assert model.loss(batch).item() > 3.0  # ~log(30) at init
    assert check_overfits(model, batch) < 0.1


@pytest.mark.parametrize("repeat", ["none", "mixture"])
def test_causal_and_padding(make_id_model, repeat):
    check_causal(make_id_model("gru4rec", repeat=repeat))
    check_padding(make_id_model("gru4rec", repeat=repeat))


def test_objective_and_padding_targets(make_id_model, make_id_batch):
    check_objective(make_id_model("gru4rec", repeat="none"), make_id_batch(8))
    check_ignores_padding_targets(make_id_model("gru4rec", repeat="none"), make_id_batch(8))


def test_runs_end_to_end_and_labels_its_record(tmp_path):
    args = ["run", "toy_tiger", "model.name=gru4rec", "model.d_model=16", "train.epochs=1", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert io.load_json(tmp_path / "record.json")["model"].startswith("gru4rec 1L gru loss=ce")
    assert not (tmp_path / io.SIDS).exists()
