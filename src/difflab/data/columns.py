"""Column kinds of a table: detected from a DataFrame's dtypes and distinct values, overridable by name.

Kinds, and how each is modelled:

- ``continuous``: a number; one feature in data units.
- ``integer``: a number rounded to a whole one in data units and kept within the training rows' range.
- ``boolean`` / ``categorical``: levels encoded as indicators (:mod:`difflab.data.encodings`); a boolean is a
  two-level categorical that comes back with dtype bool.
- ``constant``: one value in every training row; no feature, every generated row repeats it.

Detection (:func:`detect_kind`): one distinct value → constant; bool dtype (or text that is all True/False) →
boolean; a number column with at most two distinct values (a 0/1 flag, a 1/2 code) → categorical; an integer dtype,
or floats that are all whole numbers → integer; other numbers → continuous; anything else (text, pandas categories)
→ categorical. Missing values are counted as a value of their own here; whether they are allowed is decided by the
missing-value policy (:func:`check_missing`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from difflab.data.coltypes import as_float, is_temporal
from difflab.errors import ConfigError, DataError

KINDS = ("continuous", "integer", "boolean", "categorical", "constant")
# The kinds a user may ask for by name, and the option that asks (training's --categorical, the estimator's
# categorical=...).
OVERRIDES = ("categorical", "integer", "continuous")
NUMERIC_KINDS = ("continuous", "integer")
MISSING_POLICIES = ("error", "category")


def _is_number_column(col: pd.Series) -> bool:
    return is_temporal(col) or (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
                                and not pd.api.types.is_complex_dtype(col))


def _is_boolean(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col):
        return True
    values = col.dropna()
    return col.dtype == object and len(values) > 0 and all(isinstance(v, bool | np.bool_) for v in values)


def detect_kind(col: pd.Series) -> str:
    """The kind of one column, from its dtype and its distinct values (see the module's docstring)."""
    if col.nunique(dropna=False) <= 1:
        return "constant"
    if _is_boolean(col):
        return "boolean"
    if not _is_number_column(col):
        return "categorical"
    values = as_float(col.dropna())  # datetimes and durations as seconds (difflab.data.coltypes)
    if len(np.unique(values)) <= 2:
        return "categorical"
    if pd.api.types.is_integer_dtype(col):
        return "integer"
    finite = values[np.isfinite(values)]
    return "integer" if len(finite) and np.all(finite == np.round(finite)) else "continuous"


def plan_kinds(
    frame: pd.DataFrame, overrides: Mapping[str, Sequence[str] | None], *, source: str,
    hints: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every column's kind: ``overrides`` ({kind: [column, ...]} for kinds in :data:`OVERRIDES`) win over
    ``hints`` (a data set's own declarations, e.g. a classification target), which win over detection.

    Raises a one-line DataError for a column that does not exist, a column asked for twice, a number kind asked
    for text, and a declared column with a single value (a categorical with one level has nothing to learn).
    """
    names = [str(c) for c in frame.columns]
    chosen: dict[str, str] = {}
    for kind, cols in overrides.items():
        if kind not in OVERRIDES:
            raise ConfigError(f"unknown column kind {kind!r}; choose one of: {', '.join(OVERRIDES)}")
        for c in cols or []:
            if c not in names:
                raise DataError(f"{source}: no column {c!r} (given to --{kind}); available columns: {', '.join(names)}")
            if c in chosen and chosen[c] != kind:
                raise ConfigError(f"column {c!r} is given both as {chosen[c]} and as {kind}")
            chosen[c] = kind
    kinds: dict[str, str] = {}
    for name in names:
        col = frame[name]
        detected = detect_kind(col)
        kind = chosen.get(name) or (hints or {}).get(name) or detected
        if name in chosen and detected == "constant":
            value = col.iloc[0].item() if isinstance(col.iloc[0], np.generic) else col.iloc[0]
            raise DataError(f"{source}: column {name!r} is declared {kind} but has one value ({value!r}) in the "
                            f"training rows; a {kind} column with one level has nothing to learn — leave it out "
                            "with --columns")
        if kind in NUMERIC_KINDS and not _is_number_column(col):
            raise DataError(f"{source}: column {name!r} holds {col.dtype} values, not numbers; it cannot be "
                            f"{kind} (use --categorical {name})")
        kinds[name] = "constant" if detected == "constant" else kind
    return kinds


def check_values(frame: pd.DataFrame, kinds: Mapping[str, str], *, source: str, missing: str) -> None:
    """Refuse what no kind can model: infinite numbers, and missing values unless ``missing`` is "category"."""
    if missing not in MISSING_POLICIES:
        raise ConfigError(f"--missing {missing!r}; choose one of: {', '.join(MISSING_POLICIES)}")
    for name in kinds:
        col = frame[name]
        if _is_number_column(col):
            n_inf = int(np.isinf(as_float(col)).sum())
            if n_inf:
                raise DataError(f"{source}: column {name!r} has {n_inf} infinite values")
        n_missing = int(col.isna().sum())
        if n_missing and missing == "error":
            raise DataError(f"{source}: column {name!r} has {n_missing} missing (NaN) values; leave the column out "
                            "with --columns, or model missing values as their own category with --missing category")
