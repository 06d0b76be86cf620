"""Read a table from .csv, .parquet or .npy: as a DataFrame (:func:`read_frame`, any column types) or as a float64
(N, D) array of numbers with column names (:func:`read_table`).

Every problem with the file is a one-line :class:`DataError` that starts with the file's path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow

from difflab.arrays import load_npy
from difflab.data.coltypes import parse_iso_dates
from difflab.data.csv_dialect import csv_options
from difflab.errors import DataError, DifflabError

MIN_ROWS = 2


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV file with its separator and decimal mark detected (:mod:`difflab.data.csv_dialect`) and its columns of
    ISO dates as datetimes (:mod:`difflab.data.coltypes`)."""
    try:
        return parse_iso_dates(pd.read_csv(path, **csv_options(path)))
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def _read_npy(path: Path) -> pd.DataFrame:
    try:
        arr = load_npy(path)  # the header first: a claimed shape above the file's size is refused unallocated
    except DifflabError as e:
        raise DataError(str(e)) from None
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: array is not numeric (dtype {arr.dtype})")
    if arr.ndim == 0 or arr.ndim > 2:
        raise DataError(f"{path}: expected a 1-D or 2-D array, got {arr.ndim}-D with shape {arr.shape}")
    if arr.ndim == 1:
        arr = arr[:, None]
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": _read_csv,
    ".parquet": _read_parquet,
    ".npy": _read_npy,
}
KNOWN_EXTENSIONS = tuple(READERS)

# What a corrupt or unreadable file raises inside pandas / pyarrow / numpy.
_READ_ERRORS = (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pyarrow.ArrowException)


def _select(path: Path, frame: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    names = [str(c) for c in frame.columns]
    frame = frame.set_axis(names, axis=1)
    if columns is None:
        return frame
    picked: list[str] = []
    for c in columns:
        c = str(c)
        if c in names:
            picked.append(c)
        elif c.isdigit() and int(c) < len(names):
            picked.append(names[int(c)])
        else:
            raise DataError(f"{path}: no column {c!r}; available columns: {', '.join(names)}")
    if len(set(picked)) != len(picked):
        raise DataError(f"{path}: a column is selected twice in {', '.join(picked)}")
    if not picked:
        raise DataError(f"{path}: no columns selected")
    return frame[picked]


def frame_to_array(path: Path | str, frame: pd.DataFrame) -> np.ndarray:
    """The frame as float64 (N, D); a column of text, NaN or inf is a DataError naming ``path`` and the column."""
    for name in frame.columns:
        col = frame[name]
        numeric = pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        if not numeric or pd.api.types.is_complex_dtype(col):
            raise DataError(
                f"{path}: column {name!r} is not numeric (dtype {col.dtype}); "
                "select numeric columns with --columns"
            )
    x = frame.to_numpy(dtype=np.float64)
    for j, name in enumerate(frame.columns):
        n_nan = int(np.isnan(x[:, j]).sum())
        if n_nan:
            raise DataError(f"{path}: column {name!r} has {n_nan} missing (NaN) values")
        n_inf = int(np.isinf(x[:, j]).sum())
        if n_inf:
            raise DataError(f"{path}: column {name!r} has {n_inf} infinite values")
    return x


def read_frame(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read ``path`` into a DataFrame with string column names, the ``columns`` selected, at least 2 rows.

    ``columns`` selects and orders columns by name or by 0-based index given as a string ("0", "2").
    A .npy file's columns are named ``x0, x1, ...``; a 1-D .npy array is one column.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(KNOWN_EXTENSIONS)
        raise DataError(f"{path}: unknown file type {path.suffix!r}; expected one of {known}")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    try:
        frame = reader(path)
    except DataError:
        raise
    except _READ_ERRORS as e:
        text = str(e).strip()
        reason = text.splitlines()[0][:200] if text else type(e).__name__
        raise DataError(f"{path}: cannot read {path.suffix.lower()[1:]} file ({reason})") from None
    if frame.shape[1] == 0:
        raise DataError(f"{path}: file has no columns")
    frame = _select(path, frame, columns)
    if len(frame) == 0:
        raise DataError(f"{path}: file has no data rows")
    if len(frame) < MIN_ROWS:
        raise DataError(f"{path}: needs at least {MIN_ROWS} rows, has {len(frame)}")
    return frame.reset_index(drop=True)


def read_table(
    path: str | os.PathLike[str], columns: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Read ``path`` into a float64 (N, D) array and its column names; every column must hold finite numbers.

    ``columns`` selects and orders columns as in :func:`read_frame`.
    """
    frame = read_frame(path, columns)
    return frame_to_array(Path(path), frame), list(frame.columns)
