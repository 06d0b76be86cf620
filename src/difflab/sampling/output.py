"""Write samples to .csv or .npy, atomically, streaming chunk by chunk so 10⁷ points need no more memory than a chunk."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from difflab.errors import DifflabError
from difflab.io import atomic_path

FORMATS = (".csv", ".npy")


def check_output_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise DifflabError(f"{path}: unknown output format '{path.suffix}'; use one of: {', '.join(FORMATS)}")
    if path.is_dir():
        raise DifflabError(f"{path}: is a folder; give a file name ending in .csv or .npy")
    return path


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
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(",".join(columns) + "\n")
                for c in chunks:
                    np.savetxt(f, transform(c) if transform else c, delimiter=",", fmt="%.8g")
    return path


def write_array(path: str | Path, x: np.ndarray, columns: list[str]) -> Path:
    return write_chunks(path, [x], n=len(x), columns=columns)
