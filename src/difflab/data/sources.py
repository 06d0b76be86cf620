"""Where training rows come from: a toy's recipe by name, or a numeric table from a file; hold-out splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from difflab.data.files import KNOWN_EXTENSIONS, MIN_ROWS, read_table
from difflab.data.toy import DATASETS, ToyDataset
from difflab.errors import ConfigError, DataError

TOY_COLUMNS = ["x", "y"]


@dataclass
class Dataset:
    """Training data in its own units: ``x`` float64 (N, D), its column names, a display name, and the
    toy it was drawn from (None for files)."""

    x: np.ndarray
    columns: list[str]
    name: str
    toy: ToyDataset | None


def _is_file_source(source: str) -> bool:
    path = Path(source)
    return path.suffix.lower() in KNOWN_EXTENSIONS or path.exists()


def load_data(
    source: str, *, columns: Sequence[str] | None = None, n: int | None = None, seed: int = 0
) -> Dataset:
    """Load a toy by name or a table from a file.

    A registry name wins over a file of the same name. For a toy, ``n`` samples (default its
    ``default_n``) come from its training recipe with ``seed``. For a file, ``n`` (if given) keeps a random
    subset of ``n`` rows chosen with ``seed``; by default all rows are used.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < MIN_ROWS):
        raise ConfigError(f"number of samples must be an integer >= {MIN_ROWS}, got {n!r}")
    if source in DATASETS:
        toy = DATASETS[source]
        if columns is not None:
            raise ConfigError(f"--columns applies to data files, not to the toy dataset {source!r}")
        x = toy.recipe(toy.default_n if n is None else int(n), seed)
        return Dataset(x=np.asarray(x, dtype=np.float64), columns=list(TOY_COLUMNS), name=source, toy=toy)
    if not _is_file_source(source):
        raise ConfigError(
            f"unknown dataset {source!r}; choose one of: {', '.join(DATASETS)}, "
            f"or give a file path ending in {', '.join(KNOWN_EXTENSIONS)}"
        )
    x, names = read_table(source, columns)
    if n is not None:
        if n > len(x):
            raise DataError(f"{source}: asked for {n} rows, the file has {len(x)}")
        keep = np.sort(np.random.default_rng(seed).choice(len(x), size=int(n), replace=False))
        x = x[keep]
    return Dataset(x=x, columns=names, name=Path(source).name, toy=None)


def holdout_split(n_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle row indices with ``seed`` and hold out round(fraction * n_rows) of them, at least 1 and
    at most n_rows - 1. Returns (train indices, test indices), each sorted."""
    if n_rows < 2:
        raise DataError(f"a hold-out split needs at least 2 rows, got {n_rows}")
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"hold-out fraction must be between 0 and 1 (exclusive), got {fraction}")
    n_test = min(max(int(round(fraction * n_rows)), 1), n_rows - 1)
    perm = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
