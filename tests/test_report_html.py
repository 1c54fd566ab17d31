"""report.html of the session's toy run: self-contained, every section, recall by history length."""

from __future__ import annotations

import re

import numpy as np

from sidrec import io
from sidrec.report_html import REPORT, recall_by_history, render, write_report


def test_run_writes_a_self_contained_report(toy_run):
    text = (toy_run / REPORT).read_text()  # `sidrec run` wrote it
    for section in ("Metrics", "Recall by history length", "Training", "Semantic IDs", "Data", "Speed", "Config"):
        assert f"<h2>{section}" in text
    assert "TIGER (NeurIPS 2023), test" in text and "max_users: 300" in text
    assert "Cold items (test)" in text and "text neighbours of the history (rule)" in text  # cold / warm split
    assert len(re.findall(r'src="data:image/png;base64,', text)) >= 3  # training, SID usage, recall
    assert not re.search(r'(src|href)="(https?:|/)', text)  # nothing fetched from elsewhere


def test_recall_by_history_matches_metrics(toy_run):
    _, rows = recall_by_history(toy_run)
    users = sum(r["users"] for r in rows)
    assert users == 300
    overall = sum(r["recall@10"] * r["users"] for r in rows) / users
    assert np.isclose(overall, io.load_json(toy_run / io.METRICS)["test"]["recall@10"], atol=1e-6)


def test_report_command_rewrites(toy_run):
    path = write_report(toy_run)
    assert path == toy_run / REPORT and render(toy_run).startswith("<!doctype html>")
