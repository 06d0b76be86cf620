"""Where training rows come from: a toy's recipe by name, a table from a file or one of scikit-learn's data sets
(``sklearn:NAME``); hold-out splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from difflab.data.files import KNOWN_EXTENSIONS, MIN_ROWS, frame_to_array, read_frame
from difflab.data.sklearn_sets import SKLEARN_SETS, is_sklearn_source, load_sklearn_frame
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


@dataclass
class TableSource:
    """A table before any type decision: its rows, a display name, and the kinds the source declares itself
    (a scikit-learn classification set declares its target categorical)."""

    frame: pd.DataFrame
    name: str
    hints: dict[str, str]


def _is_file_source(source: str) -> bool:
    path = Path(source)
    return path.suffix.lower() in KNOWN_EXTENSIONS or path.exists()


def _check_n(n: int | None) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < MIN_ROWS):
        raise ConfigError(f"number of samples must be an integer >= {MIN_ROWS}, got {n!r}")


def _subset(source: str, rows: int, n: int | None, seed: int) -> np.ndarray | None:
    """Indices of a random subset of ``n`` of ``rows`` rows chosen with ``seed`` (None: keep all)."""
    if n is None:
        return None
    if n > rows:
        raise DataError(f"{source}: asked for {n} rows, the file has {rows}")
    return np.sort(np.random.default_rng(seed).choice(rows, size=int(n), replace=False))


def load_data(
    source: str, *, columns: Sequence[str] | None = None, n: int | None = None, seed: int = 0
) -> Dataset:
    """Load a toy by name, or a table of numbers from a file or ``sklearn:NAME``.

    A registry name wins over a file of the same name. For a toy, ``n`` samples (default its
    ``default_n``) come from its training recipe with ``seed``. For a table, ``n`` (if given) keeps a random
    subset of ``n`` rows chosen with ``seed``; by default all rows are used. Tables of other column types:
    :func:`load_frame`.
    """
    _check_n(n)
    if source in DATASETS:
        toy = DATASETS[source]
        if columns is not None:
            raise ConfigError(f"--columns applies to data files, not to the toy dataset {source!r}")
        x = toy.recipe(toy.default_n if n is None else int(n), seed)
        return Dataset(x=np.asarray(x, dtype=np.float64), columns=list(TOY_COLUMNS), name=source, toy=toy)
    table = load_frame(source, columns=columns)
    x = frame_to_array(source, table.frame)
    keep = _subset(source, len(x), n, seed)
    return Dataset(x=x if keep is None else x[keep], columns=list(table.frame.columns), name=table.name, toy=None)


def load_frame(
    source: str, *, columns: Sequence[str] | None = None, n: int | None = None, seed: int = 0
) -> TableSource:
    """A file or ``sklearn:NAME`` as a DataFrame of any column types; ``columns`` and ``n`` as in :func:`load_data`."""
    _check_n(n)
    if is_sklearn_source(source):
        frame, hints = load_sklearn_frame(source)
        if columns is not None:
            frame = _pick(source, frame, columns)
            hints = {k: v for k, v in hints.items() if k in frame.columns}
        name = source
    elif source in DATASETS:
        raise ConfigError(f"{source!r} is a toy dataset, not a table")
    elif not _is_file_source(source):
        choices = ", ".join([*DATASETS, *(f"sklearn:{s}" for s in SKLEARN_SETS)])
        raise ConfigError(f"unknown dataset {source!r}; choose one of: {choices}, "
                          f"or give a file path ending in {', '.join(KNOWN_EXTENSIONS)}")
    else:
        frame, hints, name = read_frame(source, columns), {}, Path(source).name
    keep = _subset(source, len(frame), n, seed)
    if keep is not None:
        frame = frame.iloc[keep].reset_index(drop=True)
    return TableSource(frame, name, hints)


def _pick(source: str, frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` of a data set's frame by name, in that order."""
    names = list(frame.columns)
    for c in columns:
        if c not in names:
            raise DataError(f"{source}: no column {c!r}; available columns: {', '.join(names)}")
    if len(set(columns)) != len(columns):
        raise DataError(f"{source}: a column is selected twice in {', '.join(columns)}")
    return frame[list(columns)]


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
