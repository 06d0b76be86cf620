"""Atomic writes: all or nothing, and the usual file mode."""

from __future__ import annotations

import os
import stat

import pytest

from difflab.errors import DifflabError
from difflab.io import atomic_open, read_json, write_json


def test_atomic_write_replaces_and_keeps_umask_mode(tmp_path) -> None:
    target = tmp_path / "a.json"
    old = os.umask(0o022)
    try:
        write_json(target, {"x": 1})
    finally:
        os.umask(old)
    assert read_json(target) == {"x": 1}
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_unwritable_parent_is_a_one_line_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DifflabError, match="cannot create folder|not writable"):
        write_json(blocker / "sub" / "a.json", {})


def test_read_json_errors(tmp_path) -> None:
    with pytest.raises(DifflabError, match="file not found"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DifflabError, match="not valid JSON"):
        read_json(tmp_path / "bad.json")
