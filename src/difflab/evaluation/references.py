"""Where ``difflab evaluate`` gets its true rows, and how many it compares: a toy's sampler, a run's held-out rows, a
file (for a table run, encoded into the run's features), two files read as one table; the largest feasible n; the
target column ML efficacy predicts; the standardisation every distance is taken after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from difflab.data import DATASETS, read_table
from difflab.data.columns import check_values, plan_kinds
from difflab.data.files import frame_to_array, read_frame
from difflab.data.table import TableSpec, fit_table
from difflab.errors import ConfigError, DataError
from difflab.evaluation.floors import Reference
from difflab.evaluation.tables import Standardiser, numeric_spec

DEFAULT_N = 2000
STANDARDISE_DRAW = 20_000  # points drawn from a toy's sampler to estimate the mean and sd to standardise by
TARGET = "target"  # the column ML efficacy predicts by default (scikit-learn's data sets name theirs so)


def pick_n(n: int | None, rows: int | None, what: str) -> tuple[int, str | None]:
    """``n`` if given (checked against the rows later), else :data:`DEFAULT_N` or, for a reference of fewer than
    2 × DEFAULT_N ``rows``, the largest n it allows (rows // 2), with a sentence saying so."""
    if n is not None:
        return n, None
    if rows is None or rows >= 2 * DEFAULT_N:
        return DEFAULT_N, None
    if rows < 4:
        raise ConfigError(f"{what} has {rows} rows; the metrics need at least 4 (two disjoint samples of n ≥ 2)")
    return rows // 2, (f"n = {rows // 2} chosen, the most the reference allows: {what} holds {rows} rows and every "
                       "comparison needs 2 × n disjoint ones")


def load_reference(spec: str, width: int, n: int | None) -> tuple[Reference, str]:
    """A toy name (its i.i.d. sampler) or a .csv/.npy/.parquet file of true points, checked against the samples'
    ``width`` and against ``n`` (an array must hold 2·n rows for two disjoint true samples; None: not checked)."""
    if spec in DATASETS:
        toy = DATASETS[spec]
        if width != 2:
            raise DataError(f"samples have {width} columns, the toy reference {spec!r} has 2")
        return toy.iid, f"toy {spec!r} (i.i.d. sampler)"
    check_reference_path(spec)
    points, _ = read_table(spec)
    return check_array(points, width, n, spec), f"file {spec} ({len(points)} rows)"


def check_reference_path(spec: str) -> None:
    if not Path(spec).suffix and not Path(spec).exists():
        raise ConfigError(f"--reference {spec!r}: not a toy dataset ({', '.join(DATASETS)}) nor a data file")


def check_array(points: np.ndarray, width: int, n: int | None, name: str) -> np.ndarray:
    if points.shape[1] != width:
        raise DataError(f"{name}: reference has {points.shape[1]} columns, the samples have {width}")
    if n is not None and len(points) < 2 * n:
        raise ConfigError(f"{name}: reference has {len(points)} points; n={n} needs 2 × n disjoint points — "
                          f"use --n {len(points) // 2} or fewer")
    return points


def subset(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(points) <= n:
        return points
    return points[np.sort(np.random.default_rng(seed).choice(len(points), size=n, replace=False))]


def run_reference(run: Any, spec: str) -> tuple[Reference, str]:
    """``--reference`` for a run: a toy or a file of true points; for a table run, a file of the table's rows,
    encoded into the run's features (a column it lacks, or a level the run never saw, is a one-line error)."""
    if run.table is None:
        return load_reference(spec, run.dim, None)
    if spec in DATASETS:
        raise DataError(f"--reference {spec!r} is a toy; {run.path} is a table run and needs a file of its rows")
    check_reference_path(spec)
    frame = read_frame(spec)
    return run.table.encode(frame, source=spec), f"file {spec} ({len(frame)} rows)"


def pick_target(spec: TableSpec, target: str | None) -> str | None:
    """The column ML efficacy predicts: ``target`` if given (it must exist), else a column named "target" when the
    table has one and other columns besides; None: no efficacy."""
    if target is not None:
        if target not in spec.names:
            raise DataError(f"--target {target!r}: no such column; the table has: {', '.join(spec.names)}")
        return target
    usable = [c for c in spec.columns if c.kind != "constant"]
    return TARGET if TARGET in [c.name for c in usable] and len(usable) > 1 else None


def scaling(ref: Reference, rows: Any, raw_units: bool, seed: int) -> Any:
    """The map applied to every point set before the distances: identity in raw units, else standardisation by
    the reference's mean and sd (estimated from a large draw for a sampler)."""
    if raw_units:
        return lambda x: np.asarray(x, dtype=np.float64)
    return Standardiser(ref(STANDARDISE_DRAW, seed) if callable(ref) else rows(ref))


def file_tables(samples_path: str, frame: Any, reference: str) -> tuple[TableSpec, Any, Any]:
    """The spec both files are read by, the samples' frame and the reference's frame (its columns renamed to the
    samples' when both hold numbers only and are matched by position)."""
    ref_frame = read_frame(reference)
    try:
        frame_to_array(samples_path, frame)
        frame_to_array(reference, ref_frame)
        numbers = True
    except DataError:
        numbers = False
    if numbers:
        if ref_frame.shape[1] != frame.shape[1]:
            raise DataError(f"{reference}: reference has {ref_frame.shape[1]} columns, the samples have "
                            f"{frame.shape[1]}")
        return numeric_spec(list(frame.columns)), frame, ref_frame.set_axis(list(frame.columns), axis=1)
    lacking = [c for c in ref_frame.columns if c not in frame.columns]
    if lacking or frame.shape[1] != ref_frame.shape[1]:
        raise DataError(f"{samples_path}: the samples' columns ({', '.join(map(str, frame.columns))}) are not the "
                        f"reference's ({', '.join(map(str, ref_frame.columns))})")
    frame = frame[list(ref_frame.columns)]
    kinds = plan_kinds(ref_frame, {}, source=reference)
    check_values(ref_frame, kinds, source=reference, missing="category")
    return fit_table(ref_frame, kinds, levels_from=pd.concat([ref_frame, frame])), frame, ref_frame
