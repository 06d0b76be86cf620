"""Fixtures of the hostile- and careless-input tests (tests/hostile): tiny trained runs.

Every test here was written to fail on difflab before issue 18 (a lock, escaping, size limits, protected files,
column types, run integrity, signals): each either refuses in one line where difflab used to go on (or crash), or
checks what is now left behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hostile_helpers import train_tiny


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished tiny run, never changed by the tests (copy it to change it)."""
    return train_tiny(tmp_path_factory.mktemp("hostile") / "run")


@pytest.fixture
def run_copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of :func:`run_dir` that a test may damage."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))
