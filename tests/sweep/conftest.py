"""The tiny grid run once per test session, shared by the local-backend and the Ray-backend tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_grids import TINY, quiet, write

from difflab.sweep import load_grid, run_sweep
from difflab.sweep.runner import SweepSummary


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, SweepSummary]:
    """The 2 × 2 grid × 2 seeds, run once in two local worker processes (the pool path), each cell trained alone."""
    tmp = tmp_path_factory.mktemp("tiny")
    grid = write(tmp, TINY)
    summary = run_sweep(load_grid(grid), tmp / "out", workers=2, batch=False, echo=quiet, echo_err=quiet)
    return grid, tmp / "out", summary
