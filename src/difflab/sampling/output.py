"""Write samples to .csv or .npy, atomically, streaming chunk by chunk so 10⁷ points need no more memory than a chunk.

:func:`check_output_path` is meant to run before any sampling, so a path that cannot be written fails at once, with
one line, and nothing is created.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from difflab.errors import DifflabError
from difflab.io import atomic_path

FORMATS = (".csv", ".npy")


def check_writable(path: str | Path) -> Path:
    """Fail with a one-line error if ``path`` (a file or a folder to create) could not be written.

    The nearest existing ancestor must be a folder in which a file can be created. It is probed by creating and
    removing a hidden temporary file, because ``os.access`` says yes to root and on pseudo file systems (/proc).
    Nothing is created on the way: missing folders are made only when the output is actually written.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise DifflabError(f"{path}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".difflab-probe-", dir=folder)
    except OSError as e:
        raise DifflabError(f"{path}: cannot create files in {folder} ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_output_path(path: str | Path, formats: tuple[str, ...] = FORMATS) -> Path:
    """A sample file's path: a known extension, not a folder, in a place that can be written."""
    path = Path(path)
    if path.suffix.lower() not in formats:
        shown = f"'{path.suffix}'" if path.suffix else "(none)"
        raise DifflabError(f"{path}: unknown output format {shown}; use one of: {', '.join(formats)}")
    if path.is_dir():
        raise DifflabError(f"{path}: is a folder; give a file name ending in {' or '.join(formats)}")
    return check_writable(path)


def write_chunks(
    path: str | Path,
    chunks: Iterable[np.ndarray],
    *,
    n: int,
    columns: list[str],
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Path:
    """Write ``n`` rows arriving as ``chunks`` (each (b, D)); ``transform`` maps each chunk (e.g. to data units)."""
    path = check_output_path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".npy":
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(n, len(columns)))
            row = 0
            for c in chunks:
                c = transform(c) if transform else c
                out[row : row + len(c)] = c
                row += len(c)
            out.flush()
            del out
            if row != n:
                raise ValueError(f"write_chunks: got {row} rows, expected {n}")
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                csv.writer(f, lineterminator="\n").writerow(columns)  # quotes names with commas
                for c in chunks:
                    np.savetxt(f, transform(c) if transform else c, delimiter=",", fmt="%.8g")
    return path


def write_array(path: str | Path, x: np.ndarray, columns: list[str]) -> Path:
    """Write all rows of ``x`` (N, D) under ``columns``, atomically."""
    return write_chunks(path, [x], n=len(x), columns=columns)
