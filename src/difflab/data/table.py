"""A table's spec: its columns' kinds, levels and ranges, and the map between table rows and model features.

The model of a table run sees D *features*, not the table's columns: a number is one feature in data units, a
categorical column of K levels is K one-hot or ceil(log2 K) analog-bit indicators (:mod:`difflab.data.encodings`),
a number with missing values gets an indicator flag next to it, and a constant column none. :meth:`TableSpec.encode`
maps a DataFrame to the (N, D) feature matrix and :meth:`TableSpec.decode` maps features (generated, so anywhere in
R^D) back to a DataFrame with the original columns, dtypes and labels. The spec is fitted on training rows
(:func:`fit_table`) and saved as JSON in a run's data.json (:meth:`TableSpec.to_dict`), never pickled.

Each column also carries a ``role``: "feature", or "condition" for the column a conditional run takes as its class
label instead of generating it (:mod:`difflab.data.condition`); its features stay in the matrix, so rows encode and
decode whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from difflab.data.coltypes import as_float, from_seconds, is_temporal, seconds
from difflab.data.encodings import get_encoding
from difflab.errors import DataError

ROLES = ("feature", "condition")
MISSING_LABEL = "<missing>"  # how a missing level is named in feature names and messages


def _plain(value: Any) -> Any:
    """A JSON-safe Python scalar for a level: numpy scalars unwrapped, NaN/None/NA → None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    value = seconds(value)  # a datetime or duration level as seconds (difflab.data.coltypes)
    return value.item() if isinstance(value, np.generic) else value


def _sorted_levels(values: pd.Series) -> list[Any]:
    present = [_plain(v) for v in pd.unique(values.dropna())]
    try:
        present.sort()
    except TypeError:  # mixed types: order by text
        present.sort(key=str)
    return present + ([None] if values.isna().any() else [])


@dataclass
class ColumnSpec:
    """One column: its kind, the dtype to give back, and what the kind needs to encode and decode."""

    name: str
    kind: str
    dtype: str
    role: str = "feature"
    levels: list[Any] | None = None  # boolean/categorical: the labels (None = missing); constant: [the value]
    low: float | None = None  # integer: the training rows' range, which decoded values are kept in
    high: float | None = None
    fill: float | None = None  # number with missing values: the training median, stored where a value is missing
    missing: bool = False  # number with missing values: an indicator feature flags them

    @property
    def numeric(self) -> bool:
        return self.kind in ("continuous", "integer")

    def width(self, encoding: str) -> int:
        if self.kind == "constant":
            return 0
        if self.numeric:
            return 1 + int(self.missing)
        return get_encoding(encoding).width(len(self.levels or []))

    def feature_names(self, encoding: str) -> list[str]:
        if self.kind == "constant":
            return []
        if self.numeric:
            return [self.name] + ([f"{self.name}:missing"] if self.missing else [])
        if get_encoding(encoding).one_hot:
            return [f"{self.name}={MISSING_LABEL if v is None else v}" for v in self.levels or []]
        return [f"{self.name}:bit{i}" for i in range(self.width(encoding))]


@dataclass
class TableSpec:
    """The columns of a table in order, and the encoding of its categorical columns."""

    columns: list[ColumnSpec]
    encoding: str = "onehot"
    notes: list[str] = field(default_factory=list)  # what detection decided that a user may want to know

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def features(self) -> list[str]:
        return [f for c in self.columns for f in c.feature_names(self.encoding)]

    @property
    def indicators(self) -> list[int]:
        """Indices of the features that are indicators in {0, 1} (everything but the numbers themselves)."""
        out, j = [], 0
        for c in self.columns:
            w = c.width(self.encoding)
            out += list(range(j + 1, j + w)) if c.numeric else list(range(j, j + w))
            j += w
        return out

    @property
    def all_numbers(self) -> bool:
        """Whether every column decodes to numbers or missing values (then a sample fits a .npy array); labels
        that are numbers (class codes 0, 1, 2; True/False) count."""
        return all((c.numeric or all(isinstance(v, int | float) or v is None for v in c.levels or []))
                   and not is_temporal(c.dtype) for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise DataError(f"no column {name!r}; the table has: {', '.join(self.names)}")

    def with_encoding(self, encoding: str) -> TableSpec:
        get_encoding(encoding)
        return replace(self, encoding=encoding)

    # -- rows → features -------------------------------------------------------------------------------
    def encode(self, frame: pd.DataFrame, *, source: str = "table") -> np.ndarray:
        """The (N, D) float64 feature matrix of ``frame`` (it must hold every column; others are ignored)."""
        missing = [c for c in self.names if c not in frame.columns]
        if missing:
            raise DataError(f"{source}: no column {missing[0]!r}; the table has: {', '.join(map(str, frame.columns))}")
        blocks = [self._encode_column(c, frame[c.name], source) for c in self.columns]
        blocks = [b for b in blocks if b.shape[1]]
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def _encode_column(self, c: ColumnSpec, col: pd.Series, source: str) -> np.ndarray:
        if c.kind == "constant":
            return np.zeros((len(col), 0))
        if c.numeric:
            try:
                x = as_float(col)
            except (TypeError, ValueError):
                raise DataError(f"{source}: column {c.name!r} should hold numbers, found {col.dtype}") from None
            gone = np.isnan(x)
            if gone.any() and not c.missing:
                raise DataError(f"{source}: column {c.name!r} has {int(gone.sum())} missing (NaN) values, and the "
                                "run was trained without missing values there")
            x = np.where(gone, c.fill if c.fill is not None else 0.0, x)
            return np.column_stack([x, gone.astype(np.float64)]) if c.missing else x[:, None]
        index = {v: i for i, v in enumerate(c.levels or []) if v is not None}
        # each distinct value looked up once (a million rows hold a handful of levels); -1: missing
        inverse, distinct = pd.factorize(col, use_na_sentinel=True)
        lookup = np.array([index.get(_plain(v), -2) for v in distinct] + [-1], dtype=np.int64)
        codes = lookup[np.asarray(inverse, dtype=np.int64)]  # inverse −1 picks the trailing −1
        unseen = codes == -2
        if unseen.any():
            value = col[unseen].iloc[0]
            known = ", ".join(map(str, (c.levels or [])[:10])) + (", …" if len(c.levels or []) > 10 else "")
            raise DataError(f"{source}: column {c.name!r} has the value {_plain(value)!r}, which the training rows "
                            f"never had (known: {known})")
        if (codes == -1).any():
            if None not in (c.levels or []):
                raise DataError(f"{source}: column {c.name!r} has {int((codes == -1).sum())} missing values, and "
                                "the run was trained without missing values there")
            codes[codes == -1] = (c.levels or []).index(None)
        return get_encoding(self.encoding).encode(codes, len(c.levels or []))

    # -- features → rows -------------------------------------------------------------------------------
    def decode(self, x: np.ndarray) -> pd.DataFrame:
        """A DataFrame of the table's columns and dtypes from (N, D) features in data units."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise DataError(f"expected features of shape (rows, {len(self.features)}), got {x.shape}")
        out, j = {}, 0
        for c in self.columns:
            w = c.width(self.encoding)
            out[c.name] = self._decode_column(c, x[:, j : j + w])
            j += w
        return pd.DataFrame(out)

    def _decode_column(self, c: ColumnSpec, f: np.ndarray) -> pd.Series:
        n = len(f)
        if c.kind == "constant":
            return _restore(pd.Series([c.levels[0]] * n, dtype=object), c)
        if c.numeric:
            v = f[:, 0]
            if c.kind == "integer":  # rounded in data units, kept in the training range
                v = np.clip(np.round(v), c.low, c.high)
            if c.missing:
                v = np.where(f[:, 1] > 0.5, np.nan, v)
            return _restore(pd.Series(v), c)
        codes = get_encoding(self.encoding).decode(f, len(c.levels or []))
        return _restore(pd.Series(np.asarray(c.levels, dtype=object)[codes], dtype=object), c)

    # -- JSON ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "columns": [asdict(c) for c in self.columns], "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TableSpec:
        """Inverse of :meth:`to_dict`; raises KeyError/TypeError/ValueError/ConfigError on a malformed dict."""
        columns = [ColumnSpec(**c) for c in d["columns"]]
        spec = cls(columns, str(d.get("encoding", "onehot")), [str(n) for n in d.get("notes", [])])
        spec.with_encoding(spec.encoding)
        for c in columns:
            if c.role not in ROLES or not c.name or (not c.numeric and c.kind != "constant" and len(c.levels) < 2):
                raise ValueError(f"column {c.name!r}: invalid spec")
        return spec


def _restore(values: pd.Series, c: ColumnSpec) -> pd.Series:
    """Give decoded values the column's original dtype where it can hold them (an int column with missing values
    stays float, a bool column with missing values stays object)."""
    try:
        temporal = from_seconds(values, c.dtype)
        if temporal is not None:
            return temporal
        if c.dtype == "category":
            cats = [v for v in c.levels or [] if v is not None] if c.kind != "constant" else c.levels
            return pd.Series(pd.Categorical(values, categories=cats))
        if values.isna().any() and (c.dtype.startswith(("int", "uint")) or c.dtype == "bool"):
            return values.astype("float64" if c.numeric else object)
        return values.astype(c.dtype)
    except (TypeError, ValueError):
        return values


def fit_table(
    train: pd.DataFrame, kinds: Mapping[str, str], *, encoding: str = "onehot",
    levels_from: pd.DataFrame | None = None, roles: Mapping[str, str] | None = None,
) -> TableSpec:
    """Fit the spec of ``kinds`` ({column: kind}, in order) on the training rows ``train``.

    Numbers take their range (integers) and median (the value stored where one is missing) from the training
    rows. Levels are the schema, not a statistic: they come from ``levels_from`` (by default ``train``), so that
    held-out rows with a level that no training row happens to have still encode. A number column gets a
    missing-value flag if any row of ``levels_from`` misses it.
    """
    get_encoding(encoding)
    everything = train if levels_from is None else levels_from
    columns = []
    for name, kind in kinds.items():
        col, spec = train[name], ColumnSpec(name, kind, str(train[name].dtype), (roles or {}).get(name, "feature"))
        if kind == "constant":
            spec.levels = [_plain(col.iloc[0])]
        elif spec.numeric:
            values = as_float(col)
            present = values[~np.isnan(values)]
            spec.missing = bool(everything[name].isna().any())
            spec.fill = float(np.median(present)) if spec.missing else None
            if kind == "integer":
                spec.low, spec.high = float(present.min()), float(present.max())
        else:
            spec.levels = _sorted_levels(everything[name])
        columns.append(spec)
    if not any(c.width(encoding) for c in columns):
        raise DataError("every column is constant in the training rows; there is nothing to learn")
    return TableSpec(columns, encoding)
