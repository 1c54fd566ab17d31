"""Items added to a trained run without retraining (sidrec.catalog, `sidrec add-items`).

The data: item families whose titles share their family's words, and users who stay in one family.
An item of family 3 that no training interaction (and no item file) named is added after training;
its SID comes from its text, so the default model (RPG) recommends it after a family-3 history, and a
running server answers with it without a restart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import sidrec
from sidrec import catalog, io
from sidrec.cli import app

WORDS = ["amber", "basil", "cedar", "dune", "ember", "fjord", "grove", "heath"]  # one per family
NEW = "F3-new"


def title(family: int, j: int) -> str:
    word = WORDS[family]
    return f"{word} {word} {word} collection {word} piece number {j}"


@pytest.fixture(scope="module")
def family_run(tmp_path_factory) -> Path:
    """A small RPG run on family data, trained without item NEW."""
    root = tmp_path_factory.mktemp("families")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for u in range(400):
        family = u % len(WORDS)
        for p, j in enumerate(rng.choice(12, size=7, replace=False)):
            rows.append(f"U{u},F{family}-{j},{p}")
    (data / "interactions.csv").write_text("user_id,item_id,position\n" + "\n".join(rows) + "\n")
    items = [{"item_id": f"F{f}-{j}", "title": title(f, j)} for f in range(len(WORDS)) for j in range(12)]
    (data / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    out = root / "run"
    args = ["run", "toy", f"data.path={data}", "data.max_users=0", "quantize.levels=4", "quantize.codebook_size=16",
            "quantize.collab_dim=8", "train.epochs=15", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def new_item(tmp_path: Path) -> Path:
    path = tmp_path / "new.jsonl"
    path.write_text(json.dumps({"item_id": NEW, "title": title(3, 99)}) + "\n")
    return path


def test_an_added_item_is_recommended_and_served_without_a_restart(family_run, tmp_path):
    from sidrec.serve import start_background

    run = tmp_path / "run"
    run.mkdir()
    for f in family_run.iterdir():  # a copy: the module's run stays as trained
        (run / f.name).write_bytes(f.read_bytes())
    model = sidrec.load(run)
    history = [f"F3-{j}" for j in range(5)]
    srv, thread, url = start_background(model)
    try:
        before = httpx.post(f"{url}/recommend", json={"history": history, "k": 10, "exclude_history": True})
        assert NEW not in [r["item_id"] for r in before.json()["items"]]
        result = CliRunner().invoke(app, ["add-items", str(new_item(tmp_path)), "--out", str(run)])
        assert result.exit_code == 0 and "added 1 items" in result.output, result.output
        deadline, shown = time.monotonic() + 20, []
        while NEW not in shown and time.monotonic() < deadline:  # the server reloads within about a second
            time.sleep(0.2)
            r = httpx.post(f"{url}/recommend", json={"history": history, "k": 10, "exclude_history": True})
            shown = [x["item_id"] for x in r.json()["items"]]
        assert NEW in shown, shown  # recommended after its family's items, never trained on
        assert httpx.get(f"{url}/items", params={"q": "heath piece 99"}).json()["items"] == []
        assert [i["item_id"] for i in httpx.get(f"{url}/items", params={"q": "dune 99"}).json()["items"]] == [NEW]
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
    log = io.load_json(run / catalog.CATALOG)
    assert log["trained_items"] == 96 and log["added"][0]["items"] == 1 and len(log["added"][0]["sha256"]) == 64
    sids = catalog.sids(run)
    assert len(sids) == 97 and len({tuple(s) for s in sids.tolist()}) == 97  # unique, the run's dedup
    fresh = sidrec.load(run)  # a new process sees it too
    assert NEW in [r.item_id for r in fresh.recommend(history, k=10, exclude_history=True)]
    other = [f"F5-{j}" for j in range(5)]  # another family's history: not its text's neighbours
    assert NEW not in [r.item_id for r in fresh.recommend(other, k=10, exclude_history=True)]


def test_add_items_refuses_what_it_cannot_do(family_run, tmp_path):
    known = tmp_path / "known.jsonl"
    known.write_text(json.dumps({"item_id": "F0-1", "title": "again"}) + "\n")
    with pytest.raises(ValueError, match="1 item id\\(s\\) the run already has, first 'F0-1'"):
        catalog.add_items(family_run, known)
    assert not (family_run / catalog.ADDED_ITEMS).exists()
    sasrec = tmp_path / "sasrec"
    result = CliRunner().invoke(app, ["run", "toy", "model.name=sasrec", "train.epochs=1", "--out", str(sasrec)])
    assert result.exit_code == 0, result.output
    refused = CliRunner().invoke(app, ["add-items", str(new_item(tmp_path)), "--out", str(sasrec)])
    assert refused.exit_code == 2 and "cannot score a new item" in refused.output


def test_evaluate_knows_the_catalog_changed(family_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for f in family_run.iterdir():
        (run / f.name).write_bytes(f.read_bytes())
    assert "up to date" in CliRunner().invoke(app, ["evaluate", "--out", str(run)]).output
    catalog.add_items(run, new_item(tmp_path))
    stale = CliRunner().invoke(app, ["evaluate", "--out", str(run)])
    assert stale.exit_code == 1 and f"input {catalog.ADDED_SIDS} changed" in stale.output


def test_a_beam_search_run_gets_added_items_in_its_trie(toy_run, tmp_path):
    """TIGER-style runs (the session's toy run): an added item gets a SID with the run's collision digit, and the
    trie the beam search is constrained to holds it."""
    run = tmp_path / "run"
    run.mkdir()
    for f in toy_run.iterdir():
        if f.is_file():
            (run / f.name).write_bytes(f.read_bytes())
    model = sidrec.load(run)
    title = model.titles[0]
    path = tmp_path / "twin.jsonl"
    path.write_text(json.dumps({"item_id": "twin", "title": title}) + "\n")
    model.add_items(path)
    sid = model.item("twin")["sid"]
    assert len(sid) == model.sids.shape[1] and len({tuple(s) for s in model.sids.tolist()}) == len(model.sids)
    assert tuple(sid) in {tuple(p) for p in model.recommender.trie.paths().tolist()}  # beam search can reach it
    assert "twin" in [r.item_id for r in model.recommend(model.item_ids[:3], k=model.n_items)]
