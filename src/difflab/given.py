"""Sampling a run given some of its columns: ``difflab sample --given x=0.5`` and the conditional figure.

The given values become a table of ``n`` identical rows with every other column missing, and imputation
(:mod:`difflab.impute`) draws the rest: the same conditional sampling that fills a table's missing cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from difflab.errors import ConfigError
from difflab.impute import impute_frame
from difflab.rundir import Run


def _label(levels: list[Any], text: str, column: str) -> Any:
    """The level of a label column that ``text`` names: equal as text, or as a number, or as a boolean."""
    for v in levels:
        if v is None:
            continue
        if str(v) == text or (isinstance(v, bool) and text.lower() == str(v).lower()):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            try:
                if float(text) == float(v):
                    return v
            except ValueError:
                pass
    shown = ", ".join(str(v) for v in levels if v is not None)
    raise ConfigError(f"--given {column}={text}: not a level of {column!r} (levels: {shown})")


def given_frame(run: Run, given: dict[str, str], n: int) -> pd.DataFrame:
    """``n`` rows with the ``given`` columns set and every other column missing, in the run's columns."""
    names = run.table.names if run.table is not None else run.columns
    for column in given:
        if column not in names:
            raise ConfigError(f"--given {column}=…: the run has no column {column!r} (columns: {', '.join(names)})")
    free = [c for c in names if c not in given and (run.table is None or run.table.column(c).kind != "constant")]
    if not free:
        raise ConfigError(f"--given: every column of the run is given ({', '.join(names)}); there is nothing left "
                          "to draw")
    columns = {}
    for c in names:
        spec = run.table.column(c) if run.table is not None else None
        if spec is not None and not spec.numeric:
            value = _label(spec.levels or [], given[c], c) if c in given else None
            columns[c] = pd.Series([value] * n, dtype=object)
        else:
            columns[c] = pd.Series(np.full(n, _number(c, given[c]) if c in given else np.nan))
    return pd.DataFrame(columns)


def _number(column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--given {column}={text}: {column!r} holds numbers; expected a number") from None
    if not np.isfinite(value):
        raise ConfigError(f"--given {column}={text}: expected a finite number")
    return value


def sample_given(run: Run, given: dict[str, str], n: int, *, seed: int = 0, **kwargs: Any) -> pd.DataFrame:
    """``n`` rows of the run's columns drawn given the ``given`` columns' values ({column: value as text})."""
    return impute_frame(run, given_frame(run, given, n), seed=seed, source="--given", **kwargs)[0]
