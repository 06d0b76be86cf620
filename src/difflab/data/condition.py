"""The condition column of a conditional run: one column of a table that becomes the model's class label.

``difflab train --condition COLUMN`` (``[data] condition``) names a categorical or boolean column, or a numeric one
with few distinct values (each value a class); a continuous column is refused. The column stays in the table's spec
and feature matrix (role "condition"), so stored rows, decoded samples and every row check see whole rows, but the
network does not generate its features: it gets the class code 0..K-1 as an input, and K, "no label", for the
unconditional prediction that classifier-free guidance needs (Ho & Salimans 2022).

:class:`Condition` is the vocabulary (the levels in code order), the training rows per class and where the column's
features sit; it is saved as JSON in the run directory (``condition.json``) and turns labels into features and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from difflab.data.encodings import get_encoding
from difflab.errors import ConfigError, DataError

# A numeric condition column with more distinct values than this is a quantity, not a set of classes.
MAX_CLASSES = 50


def plan_condition(frame: pd.DataFrame, kinds: Mapping[str, str], column: str, *, source: str) -> dict[str, str]:
    """``kinds`` with the condition ``column`` made a set of classes: a categorical or boolean column as it is, an
    integer column (whole numbers, detected or declared) of at most :data:`MAX_CLASSES` distinct values as
    categorical; a continuous or constant column is a one-line DataError."""
    if column not in kinds:
        raise DataError(f"{source}: no column {column!r} (given to --condition); available columns: "
                        f"{', '.join(kinds)}")
    kind = kinds[column]
    values = frame[column].dropna()
    distinct = values.nunique()
    if kind == "constant":
        raise DataError(f"{source}: --condition {column}: the column has one value in the training rows; there is "
                        "nothing to condition on")
    if kind == "continuous":
        raise DataError(f"{source}: --condition {column}: the column is continuous ({distinct} distinct values); a "
                        "condition is a class label: name a categorical column or one of few whole numbers (or "
                        f"declare it with --categorical {column} to take each value as a class)")
    if kind == "integer" and distinct > MAX_CLASSES:
        raise DataError(f"{source}: --condition {column}: the column has {distinct} distinct values; a numeric "
                        f"condition takes at most {MAX_CLASSES} (declare it with --categorical {column} to take "
                        "every value as a class)")
    if len(kinds) < 2 or all(k == "constant" for c, k in kinds.items() if c != column):
        raise DataError(f"{source}: --condition {column}: no other column varies; there is nothing to generate")
    return {**kinds, column: "boolean" if kind == "boolean" else "categorical"}


@dataclass
class Condition:
    """The condition column ``column``: its ``levels`` in code order (None stands for a missing value), the training
    rows per level (``counts``), and its features ``start:stop`` in the table's feature matrix, encoded by
    ``encoding``."""

    column: str
    levels: list[Any]
    counts: list[int]
    start: int
    stop: int
    encoding: str = "onehot"

    @property
    def n_classes(self) -> int:
        """K; the network's label input takes 0..K-1, and K for "no label"."""
        return len(self.levels)

    @property
    def null(self) -> int:
        return self.n_classes

    @property
    def frequencies(self) -> np.ndarray:
        c = np.asarray(self.counts, dtype=np.float64)
        return c / c.sum()

    def model_columns(self, n_features: int) -> list[int]:
        """Indices of the features the network generates: all but the condition's."""
        return [j for j in range(n_features) if not self.start <= j < self.stop]

    # -- labels ↔ features -------------------------------------------------------------------------------------
    def codes(self, features: np.ndarray) -> np.ndarray:
        """Class codes (N,) of feature rows (N, D) in data units (the nearest level's code decodes)."""
        block = np.asarray(features, dtype=np.float64)[:, self.start : self.stop]
        return get_encoding(self.encoding).decode(block, self.n_classes)

    def features_of(self, codes: np.ndarray) -> np.ndarray:
        """The condition's features (N, stop − start) in data units for class codes (N,)."""
        return get_encoding(self.encoding).encode(np.asarray(codes, dtype=np.int64), self.n_classes)

    def code_of(self, value: Any) -> int:
        """The code of a class value as the user wrote it (``--where COLUMN=VALUE``: text) or as a Python value;
        a value that no training row has is a one-line DataError that lists those that do."""
        seen = [i for i, c in enumerate(self.counts) if c > 0]
        for i in seen:
            if _same(self.levels[i], value):
                return i
        known = ", ".join(_show(self.levels[i]) for i in seen[:20]) + (", …" if len(seen) > 20 else "")
        raise DataError(f"--where {self.column}={_show(value)}: no training row has this class (known: {known})")

    # -- JSON ----------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "levels": list(self.levels), "counts": [int(c) for c in self.counts],
                "frequencies": [float(f) for f in self.frequencies], "features": [self.start, self.stop],
                "encoding": self.encoding}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Condition:
        """Inverse of :meth:`to_dict`; a malformed dict raises KeyError, TypeError, ValueError or ConfigError."""
        start, stop = (int(v) for v in d["features"])
        cond = cls(str(d["column"]), list(d["levels"]), [int(c) for c in d["counts"]], start, stop,
                   str(d.get("encoding", "onehot")))
        width = get_encoding(cond.encoding).width(cond.n_classes)
        if cond.n_classes < 2 or len(cond.counts) != cond.n_classes or stop - start != width or start < 0 \
                or min(cond.counts) < 0 or sum(cond.counts) < 1:
            raise ValueError(f"condition {cond.column!r}: inconsistent levels, counts or features")
        return cond


def condition_of(spec: Any, column: str, train: np.ndarray) -> Condition:
    """The :class:`Condition` of ``column`` in a fitted table spec (:class:`~difflab.data.table.TableSpec`), with the
    class counts of the training feature rows ``train`` (N, D)."""
    start = 0
    for c in spec.columns:
        width = c.width(spec.encoding)
        if c.name == column:
            cond = Condition(column, list(c.levels or []), [0] * len(c.levels or []), start, start + width,
                             spec.encoding)
            cond.counts = np.bincount(cond.codes(train), minlength=cond.n_classes).tolist()
            return cond
        start += width
    raise ConfigError(f"--condition {column}: not a column of the table")


def parse_where(items: Mapping[str, Any] | None, condition: Condition | None, run: str) -> int | None:
    """The class code that ``where`` ({column: value}) asks for, None when it asks for none; a column other than the
    run's condition, or a condition on a run trained without one, is a one-line ConfigError."""
    if not items:
        return None
    if condition is None:
        raise ConfigError(f"--where {_pairs(items)}: {run} was trained without a condition column (train with "
                          "--condition COLUMN to generate rows of a chosen class)")
    if len(items) > 1 or condition.column not in items:
        other = next(k for k in items if k != condition.column) if condition.column in items else next(iter(items))
        raise ConfigError(f"--where {other}=…: {run} is conditioned on the column {condition.column!r} only")
    return condition.code_of(items[condition.column])


def _same(level: Any, value: Any) -> bool:
    """Whether ``value`` names ``level``: equal as values, equal as text, or equal as numbers (``"1"`` and 1.0)."""
    if level is None:
        return value is None or str(value) == "<missing>"
    if value is None:
        return False
    if not isinstance(value, str):
        if isinstance(level, bool) or isinstance(value, bool | np.bool_):  # True is not the class 1
            return isinstance(level, bool) and isinstance(value, bool | np.bool_) and level == bool(value)
        try:
            return bool(level == value)
        except (TypeError, ValueError):
            return False
    if str(level) == value:
        return True
    if isinstance(level, bool):
        return value.strip().lower() == str(level).lower()
    if isinstance(level, int | float):
        try:
            return float(value) == float(level)
        except ValueError:
            return False
    return False


def _show(value: Any) -> str:
    return "<missing>" if value is None else str(value)


def _pairs(items: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={_show(v)}" for k, v in items.items())
