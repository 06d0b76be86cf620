"""One writer per run or sweep directory, no reader while it writes, and a dead writer's lock taken over safely
(difflab.lock). Before issue 18 two `difflab train` into one --out both exited 0 and left a mixed run."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from hostile_helpers import cli, listing, one_line_error, python_child, stop

HOLD = """
import sys, time
from difflab.lock import writing
with writing(sys.argv[1] if len(sys.argv) > 1 else {folder!r}, {what!r}):
    print("held", flush=True)
    time.sleep(120)
"""

RACE = """
import os, sys, time
from pathlib import Path
from difflab.lock import LockedError, writing
go = Path({go!r})
while not go.exists():
    time.sleep(0.005)
try:
    with writing({folder!r}):
        print("got", flush=True)
        time.sleep(1.0)
except LockedError:
    print("locked", flush=True)
"""


def _holder(folder: Path, what: str = "run"):  # noqa: ANN202
    child = python_child(HOLD.format(folder=str(folder), what=what))
    assert child.stdout.readline().strip() == "held", child.stderr.read()
    return child


def test_second_writer_and_readers_get_one_line_naming_the_holder(run_copy, tmp_path):
    child = _holder(run_copy)
    try:
        who = [f"pid {child.pid}", socket.gethostname(), "since"]
        before = listing(run_copy)
        one_line_error(cli("train", "--out", run_copy, "--resume", "--steps", 6, "-q"), str(run_copy), *who)
        one_line_error(cli("sample", run_copy, "--n", 5, "--out", tmp_path / "s.csv"), "being written", *who)
        one_line_error(cli("evaluate", run_copy, "--n", 10, "--repeats", 1), "being written", *who)
        one_line_error(cli("plot", run_copy, "--kind", "loss", "--out", tmp_path / "figs"), "being written", *who)
        assert listing(run_copy) == before and not (tmp_path / "s.csv").exists()
        fresh = tmp_path / "fresh"
        other = _holder(fresh)
        try:
            one_line_error(cli("train", "--preset", "seed", "--n", 200, "--steps", 3, "--out", fresh, "-q"),
                           f"pid {other.pid}")
            assert not (fresh / "config.json").exists()
        finally:
            stop(other)
    finally:
        stop(child)  # SIGKILL: the lock file stays, naming a dead process
    assert (run_copy / ".difflab.lock").exists()
    result = cli("train", "--out", run_copy, "--resume", "--steps", 6, "-q")  # the stale lock is taken over
    assert result.exit_code == 0, result.output
    assert cli("sample", run_copy, "--n", 5, "--out", tmp_path / "s.csv").exit_code == 0


def test_two_processes_taking_over_one_stale_lock(tmp_path):
    """Four processes find the same stale lock at once: exactly one takes it, the others are told who holds it."""
    folder = tmp_path / "run"
    stop(_holder(folder))  # killed while holding: a stale lock file
    go = tmp_path / "go"
    children = [python_child(RACE.format(go=str(go), folder=str(folder))) for _ in range(4)]
    time.sleep(0.5)
    go.touch()
    answers = sorted(c.communicate(timeout=120)[0].strip() for c in children)
    assert answers == ["got", "locked", "locked", "locked"], answers


def test_two_sweeps_into_one_folder(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('preset = "seed"\n[data]\nn = 100\n[train]\nsteps = 2\n[grid]\n"diffusion.T" = [3]\n'
                    "[evaluate]\nn = 10\nrepeats = 1\n", encoding="utf-8")
    out = tmp_path / "sweep"
    child = _holder(out, "sweep")
    try:
        one_line_error(cli("sweep", grid, "--out", out, "--workers", 1), "sweep", f"pid {child.pid}")
        assert sorted(os.listdir(out)) == [".difflab.lock"]
    finally:
        stop(child)
