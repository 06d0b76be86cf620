"""Helpers of the hostile- and careless-input tests: the command line in-process, child processes, listings.

Every test here was written to fail on difflab before issue 18 (a lock, escaping, size limits, protected files,
column types, run integrity, signals): each either refuses in one line where difflab used to go on (or crash), or
checks what is now left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner, Result

import difflab
from difflab.cli import app
from helpers import listing  # noqa: F401  (the hostile tests import it from here)

RUNNER = CliRunner()
SRC = Path(difflab.__file__).resolve().parents[1]  # child processes run the difflab these tests import


def cli(*args: object, env: dict[str, str] | None = None) -> Result:
    return RUNNER.invoke(app, [str(a) for a in args], env=env)


def one_line_error(result: Result, *words: str) -> str:
    """Exit status 2, no traceback, one line on stderr (warnings aside) that starts with ``error:`` and holds every
    word; returns that line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def write_csv(path: Path, header: list[str], rows: np.ndarray) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(f"{v:.6g}" for v in r) + "\n")
    return path


def train_tiny(out: Path, *extra: object, data: str | Path | None = None) -> Path:
    """The tutorial's recipe for 3 steps on 200 points (or on ``data``)."""
    args = ["train", "--preset", "seed", "--steps", 3, "--out", out, "-q"]
    args += ["--data", data] if data is not None else ["--n", 200]
    result = cli(*args, *extra)
    assert result.exit_code == 0, result.output
    return out


def python_child(code: str, *, cwd: Path | None = None) -> subprocess.Popen:
    """A child Python process running ``code`` with this checkout's ``src`` on its path, its own process group."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def wait_for(predicate, timeout: float = 60.0, step: float = 0.02) -> None:  # noqa: ANN001
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(step)


def stop(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    proc.communicate(timeout=60)
