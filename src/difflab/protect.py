"""Outputs that would destroy inputs: ``sample RUN --out RUN/train.npy``, ``evaluate RUN --json RUN/config.json``,
``report RUN --out`` onto a sweep's results. A command writes over a run's own files, or a sweep directory's
tables, only when told to with ``--force``; anything else it writes where it is asked.
"""

from __future__ import annotations

import os
from pathlib import Path

from difflab.errors import DifflabError
from difflab.lock import LOCK_FILE
from difflab.rundir import FILES

# A run directory's own files (difflab.rundir.FILES, the lock, a distillation's and the estimator's), and a sweep
# directory's (difflab.sweep.runner and difflab.sweep.report write them; a cell is a run directory).
RUN_FILES = frozenset([*FILES.values(), LOCK_FILE, "distill-checkpoint.safetensors", "estimator.json",
                       "result.json", "failed.json"])
SWEEP_FILES = frozenset(["sweep.json", "results.csv", "results.md", "results.png", "results.html", LOCK_FILE])


def is_run_dir(folder: Path) -> bool:
    return (folder / FILES["config"]).is_file() and ((folder / FILES["model"]).exists()
                                                     or (folder / FILES["schedule"]).exists())


def is_sweep_dir(folder: Path) -> bool:
    return (folder / "sweep.json").is_file()


def check_not_protected(path: str | os.PathLike[str], *, force: bool = False, option: str = "--out") -> None:
    """Refuse ``path`` if it is one of a run directory's or a sweep directory's own files and ``force`` is False."""
    path = Path(path)
    if force or path.is_dir():
        return
    folder = path.resolve().parent
    if path.name in RUN_FILES and is_run_dir(folder):
        raise DifflabError(f"{option} {path}: is the run {folder}'s own {path.name}; write elsewhere (or add --force "
                           "to replace it, which breaks the run)")
    if path.name in SWEEP_FILES and is_sweep_dir(folder):
        raise DifflabError(f"{option} {path}: is the sweep {folder}'s own {path.name}; write elsewhere (or add "
                           "--force to replace it)")
