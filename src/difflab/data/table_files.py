"""Write table rows (DataFrames arriving chunk by chunk) to .csv, .parquet or .npy, atomically.

A .csv keeps category labels as text and a header of column names; a .parquet keeps every column's dtype; a .npy is
one float64 array and so only takes tables whose columns are all numbers. The file appears under its name only when
every chunk is written (:func:`difflab.io.atomic_path`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from difflab.errors import DataError, DifflabError
from difflab.io import atomic_path

TABLE_FORMATS = (".csv", ".parquet", ".npy")
CSV_FLOATS = "%.8g"  # the precision numeric sample files have always had


def check_table_format(path: Path, *, all_numbers: bool, text_columns: list[str]) -> None:
    """Refuse an output that cannot hold the table: an unknown extension, or .npy for a table with labels."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise DifflabError(f"{path}: unknown output format {suffix!r}; use one of: {', '.join(TABLE_FORMATS)}")
    if suffix == ".npy" and not all_numbers:
        shown = ", ".join(repr(c) for c in text_columns[:3])
        raise DifflabError(f"{path}: a .npy file holds numbers only, and the table's column(s) {shown} hold labels "
                           "or dates; write .csv or .parquet")


def write_table(path: str | Path, frames: Iterable[pd.DataFrame], *, n: int) -> Path:
    """Write ``n`` rows arriving as DataFrames with the same columns to ``path`` (.csv/.parquet/.npy)."""
    path = Path(path)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        rows = {".csv": _csv, ".parquet": _parquet, ".npy": _npy}[suffix](tmp, frames, n)
        if rows != n:
            raise ValueError(f"write_table: got {rows} rows, expected {n}")
    return path


def _csv(tmp: Path, frames: Iterable[pd.DataFrame], n: int) -> int:
    rows = 0
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        for i, frame in enumerate(frames):
            frame.to_csv(f, header=i == 0, index=False, float_format=CSV_FLOATS, lineterminator="\n")
            rows += len(frame)
    return rows


def _parquet(tmp: Path, frames: Iterable[pd.DataFrame], n: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, writer = 0, None
    try:
        for frame in frames:
            batch = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, batch.schema)
            writer.write_table(batch)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return rows


def _npy(tmp: Path, frames: Iterable[pd.DataFrame], n: int) -> int:
    rows, out = 0, None
    for frame in frames:
        try:
            block = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise DataError(f"{tmp}: the table has columns that are not numbers") from None
        if out is None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(n, frame.shape[1]))
        out[rows : rows + len(block)] = block
        rows += len(block)
    if out is not None:
        out.flush()
        del out
    return rows
