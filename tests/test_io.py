"""Run-directory files: written atomically, with the mode the user's umask gives."""

from __future__ import annotations

import os

from sidrec import io


def test_artifacts_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        io.save_json(tmp_path / "a.json", {"x": 1})
        io.save_npy(tmp_path / "b.npy", __import__("numpy").zeros(2))
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.npy").stat().st_mode & 0o777 == 0o640
    assert io.load_json(tmp_path / "a.json") == {"x": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
