"""SIGTERM and SIGHUP end a command cleanly, and the partial files of a process that was killed outright are swept
by the next write (difflab.signals). Before issue 18 both signals left a hidden partial file nothing removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from hostile_helpers import SRC, cli, wait_for

from difflab import signals


def _sampling(run_dir, out):  # noqa: ANN001, ANN202
    """``difflab sample`` of many points into ``out``, as a child process (the installed command's code path)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-m", "difflab", "sample", str(run_dir), "--n", "5000000",
                             "--chunk-size", "20000", "--out", str(out)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigterm_and_sighup_remove_the_partial_file(run_dir, tmp_path):
    procs = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        folder = tmp_path / sig.name
        folder.mkdir()
        procs[sig] = (folder, _sampling(run_dir, folder / "big.csv"))
    for sig, (folder, proc) in procs.items():  # both started: they import torch side by side
        wait_for(lambda f=folder, p=proc: any(f.glob(".big.*.csv")) or p.poll() is not None, timeout=120)
        proc.send_signal(sig)
    for sig, (folder, proc) in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, (sig, proc.returncode, err)
        assert err.strip().splitlines() == [f"error: terminated by {sig.name}; partial files removed"], err
        assert list(folder.iterdir()) == [], list(folder.iterdir())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_partial_files_and_folders_are_swept(run_dir, tmp_path, monkeypatch):
    host = signals._host()
    stale = tmp_path / f".s.difflab-{_dead_pid()}-{host}.x1y2.csv"
    alive = tmp_path / f".s.difflab-{os.getpid()}-{host}.z3w4.csv"  # this process's: still being written
    other = tmp_path / f".s.difflab-{_dead_pid()}-zzzzzz.q9.csv"  # another host's: its pid means nothing here
    for p in (stale, alive, other):
        p.write_text("partial")
    result = cli("sample", run_dir, "--n", 5, "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and alive.exists() and other.exists()
    monkeypatch.setattr(signals.tempfile, "gettempdir", lambda: str(tmp_path))
    old = tmp_path / f"difflab-estimator-{_dead_pid()}-{host}-abc"
    old.mkdir()
    new = signals.temp_folder("estimator")
    assert not old.exists() and new.is_dir() and new.parent == tmp_path


@pytest.mark.parametrize("reused", [False, True])
def test_a_reused_pid_does_not_keep_a_stale_file(tmp_path, reused):
    """A file older than the process that now has its pid is stale (a pid reused after a reboot or wrap-around)."""
    path = tmp_path / f".s.difflab-{os.getpid()}-{signals._host()}.a.csv"
    path.write_text("x")
    if reused:
        os.utime(path, (1.0, 1.0))  # written in 1970, long before this process started
    assert signals.is_stale(path) == reused
