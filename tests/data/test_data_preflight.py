"""Pre-flight: bad data or config stops before the first file is written; small catalogs get a codebook that fits."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from sidrec import io
from sidrec.cli import app
from sidrec.config import load_config
from sidrec.data.preflight import preflight, small_codebook
from sidrec.pipeline import check

N_ITEMS, N_USERS = 200, 120


def own_csv(folder: Path, n_items: int = N_ITEMS, items: bool = True) -> list[str]:
    """The README's own-CSV example: clicks (uid, sku, ts) + an items Parquet (sku, name, brand); its args."""
    rows = [
        (f"u{u}", f"SKU{(u * 7 + k * 13) % n_items:04d}", 1_700_000_000 + 60 * k)
        for u in range(N_USERS)
        for k in range(6)
    ]
    rows += [("u0", f"SKU{i:04d}", 1_600_000_000 + i) for i in range(n_items)]  # every item is clicked
    pl.DataFrame(rows, schema=["uid", "sku", "ts"], orient="row").write_csv(folder / "my_clicks.csv")
    args = [f"data.path={folder / 'my_clicks.csv'}", "data.user_col=uid", "data.item_col=sku", "data.time_col=ts"]
    if items:
        names = [f"Item {i} {'shampoo' if i % 2 else 'lipstick'}" for i in range(n_items)]
        pl.DataFrame(
            {
                "sku": [f"SKU{i:04d}" for i in range(n_items)],
                "name": names,
                "brand": [f"B{i % 9}" for i in range(n_items)],
            }
        ).write_parquet(folder / "my_items.parquet")
        args += [f"data.items_path={folder / 'my_items.parquet'}", "data.item_key=sku"]
    return args


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_small_codebook():
    assert small_codebook(200) == 32 and small_codebook(3) == 2 and small_codebook(4096) == 1024


def test_readme_own_csv_example_on_200_items_runs_end_to_end(tmp_path, caplog):
    out = tmp_path / "mine"
    fast = ["toy_tiger", "data.max_users=0", "quantize.codebook_size=256", "train.epochs=1"]
    with caplog.at_level(logging.INFO):
        result = invoke("run", *fast, *own_csv(tmp_path), "data.text_template={name}; {brand}", "--out", str(out))
    assert result.exit_code == 0, result.output
    cfg = io.load_run_config(out)
    assert cfg.quantize.codebook_size == 32  # chosen, said, and recorded in config.yaml
    assert "quantize.codebook_size=256 is more than this catalog of 200 items allows" in caplog.text
    assert cfg.data.name == "my_clicks.csv"  # not the default 'beauty'
    assert (out / io.METRICS).exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["data.text_template={nmae}; {brand}"], "'nmae' that the items of"),
        (["data.text_template={nmae}"], "my_items.parquet do not have"),
        (["data.min_interactions=2"], "data.min_interactions=2: leave-one-out needs >= 3"),
        (["data.max_history=0"], "data.max_history=0"),
        (["quantize.levels=0"], "quantize.levels=0"),
        (["quantize.name=lsh"], "quantize.name='lsh' is unknown"),
        (["embed.name=bert"], "embed.name='bert' is unknown"),
        (["eval.beam_width=5"], "eval.beam_width=5 is below max(eval.ks)=10"),
        (["model.name=gpt"], "model"),
        (["data.encoding_errors=ignore"], "data.encoding_errors='ignore' is unknown"),
    ],
)
def test_bad_config_or_data_stops_before_any_file(tmp_path, extra, message):
    out = tmp_path / "run"
    result = invoke("run", *own_csv(tmp_path), *extra, "--out", str(out))
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert_nothing_written(out)


def test_items_without_text_stop_unless_allowed(tmp_path):
    out = tmp_path / "run"
    args = own_csv(tmp_path, items=False)
    result = invoke("prepare", *args, "--out", str(out))
    assert result.exit_code == 1
    assert "200 of 200 items (100%) have no text" in result.output and "data.allow_missing_text=true" in result.output
    assert_nothing_written(out)
    result = invoke("prepare", *args, "data.allow_missing_text=true", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert io.load_json(out / io.DATA_STATS)["text"]["items_without_text"] == 200


def test_item_id_models_need_no_text_and_no_sid_stages(tmp_path):
    out = tmp_path / "run"
    args = own_csv(tmp_path, items=False)
    assert invoke("prepare", *args, "model.name=sasrec", "--out", str(out)).exit_code == 0
    result = invoke("embed", "--out", str(out))
    assert result.exit_code == 1 and "item-ID model" in result.output


def test_non_utf8_stops_before_any_file(tmp_path):
    args = own_csv(tmp_path)
    path = tmp_path / "my_clicks.csv"
    path.write_bytes(path.read_bytes().replace(b"\nu3,", b"\nu\xc93,", 1))  # a user id
    out = tmp_path / "run"
    result = invoke("prepare", *args, "--out", str(out))
    assert result.exit_code == 1 and "my_clicks.csv, line" in result.output and "0xc9" in result.output
    assert_nothing_written(out)
    assert invoke("prepare", *args, "data.encoding_errors=replace", "--out", str(out)).exit_code == 0
    stats = io.load_json(out / io.DATA_STATS)
    assert stats["replaced_non_utf8_bytes"] == {str(path): 1}


def test_check_reads_the_data_once_for_prepare(tmp_path, monkeypatch):
    cfg = load_config(None, own_csv(tmp_path))
    cfg = check(cfg, tmp_path / "run")
    import sidrec.data.preflight as pf

    monkeypatch.setattr(pf, "load_dataset", lambda *a: pytest.fail("the data is read a second time"))
    assert pf.take_prepared(cfg).items.height == N_ITEMS


def test_no_training_example_is_a_clear_error(tmp_path):
    pl.DataFrame({"user_id": ["a"] * 3, "item_id": ["x", "y", "z"], "position": [0, 1, 2]}).write_csv(
        tmp_path / "c.csv"
    )
    pl.DataFrame({"item_id": ["x", "y", "z"], "title": ["X", "Y", "Z"]}).write_csv(tmp_path / "i.csv")
    cfg = load_config(None, [f"data.path={tmp_path / 'c.csv'}", f"data.items_path={tmp_path / 'i.csv'}"])
    with pytest.raises(ValueError, match="no training example"):
        preflight(cfg, tmp_path / "run")
