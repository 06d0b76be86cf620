"""Column types beyond numbers, text and booleans: what a table column may hold, decided before any file is written.

Handled:

- **datetimes** (``datetime64``, with or without a time zone; in a CSV, text that is all ISO 8601 dates) are numbers
  to the model: **seconds since 1970-01-01 00:00:00 UTC** (a zoned time at its UTC instant, a naive one read as
  UTC), float64, so to the microsecond for any date of the last and next few centuries. Samples are decoded back
  to the column's dtype and zone (:func:`from_seconds`).
- **durations** (``timedelta64``): seconds, decoded back the same way.

Refused in one line, with what to do instead: bytes (decode them to text), complex numbers (split them into real
and imaginary columns), lists, dicts, sets and arrays in cells (one value per cell), whole numbers beyond 2⁵³ that
float64 features would round (an ID? leave it out; or declare it ``--continuous`` or ``--categorical``), and text
that is numbers written with a decimal comma in a comma-separated file (they would become one level per value).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from difflab.errors import DataError
from difflab.limits import check

EPOCH = "1970-01-01 00:00:00 UTC"
EXACT_INT = 2**53  # the largest whole number below which float64 holds every integer exactly
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+([eE][+-]?\d+)?\s*$")
_NESTED = (list, tuple, dict, set, frozenset, np.ndarray)


def is_temporal(col: pd.Series | str) -> bool:
    """Whether a column (or a dtype's name) holds datetimes or durations."""
    dtype = col if isinstance(col, str) else str(col.dtype)
    return dtype.startswith(("datetime64", "timedelta64"))


def seconds(value: object) -> object:
    """A datetime or duration scalar as seconds (see the module docstring); anything else as it is."""
    if isinstance(value, pd.Timestamp | dt.datetime | np.datetime64):
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return (ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    if isinstance(value, pd.Timedelta | dt.timedelta | np.timedelta64):
        return pd.Timedelta(value) / pd.Timedelta(seconds=1)
    return value


def as_float(col: pd.Series) -> np.ndarray:
    """A column as float64 (missing values NaN): numbers as they are, datetimes and durations as seconds."""
    if str(col.dtype).startswith("datetime64"):
        utc = col.dt.tz_localize("UTC") if col.dt.tz is None else col.dt.tz_convert("UTC")
        delta = utc - pd.Timestamp(0, tz="UTC")
        return (delta / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    if str(col.dtype).startswith("timedelta64"):
        return (col / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def from_seconds(values: pd.Series, dtype: str) -> pd.Series | None:
    """Seconds back to a column of ``dtype`` (a datetime64 or timedelta64 dtype's name, with its zone); None for
    other dtypes."""
    if dtype.startswith("timedelta64"):
        return pd.to_timedelta(values.astype(np.float64), unit="s").astype(dtype)
    if not dtype.startswith("datetime64"):
        return None
    stamps = pd.to_datetime(values.astype(np.float64), unit="s", utc=True)
    zone = dtype.partition(",")[2].rstrip("]").strip()
    stamps = stamps.dt.tz_convert(zone) if zone else stamps.dt.tz_localize(None)
    return stamps.astype(dtype)


def parse_iso_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each text column whose every value is an ISO 8601 date (or date and time) as datetime64."""
    out = frame
    for name in frame.columns:
        col = frame[name]
        if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
            continue
        present = col.dropna()
        if len(present) == 0 or not all(isinstance(v, str) and _ISO_DATE.match(v.strip()) for v in present):
            continue
        try:
            parsed = pd.to_datetime(col, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            continue
        out = out.copy() if out is frame else out
        out[name] = parsed
    return out


def _kinds_of_values(col: pd.Series) -> set[type]:
    return {type(v) for v in col.dropna().to_numpy(dtype=object)}


def check_column_types(frame: pd.DataFrame, *, source: str, declared: Collection[str] = ()) -> None:
    """Refuse, in one line naming ``source`` and the column, a column of a type difflab cannot model (see the module
    docstring). ``declared``: columns the user gave a kind to (--continuous, --categorical), for which whole
    numbers beyond 2⁵³ are accepted as asked."""
    for name in frame.columns:
        col = frame[name]
        if is_temporal(col) or pd.api.types.is_bool_dtype(col):
            continue
        if pd.api.types.is_complex_dtype(col):
            raise DataError(f"{source}: column {name!r} holds complex numbers; split it into real and imaginary "
                            "columns, or leave it out with --columns")
        if pd.api.types.is_integer_dtype(col):
            _check_exact(source, name, col, declared)
            continue
        if pd.api.types.is_numeric_dtype(col):
            _check_span(source, name, col)
            continue
        types = _kinds_of_values(col)
        if any(issubclass(t, bytes | bytearray | memoryview) for t in types):
            raise DataError(f"{source}: column {name!r} holds bytes; decode them to text first (e.g. "
                            "frame[col].str.decode('utf-8')), or leave the column out with --columns")
        if any(issubclass(t, complex | np.complexfloating) for t in types):
            raise DataError(f"{source}: column {name!r} holds complex numbers; split it into real and imaginary "
                            "columns, or leave it out with --columns")
        nested = next((t for t in types if issubclass(t, _NESTED)), None)
        if nested is not None:
            what = "dicts" if issubclass(nested, dict) else "sets" if issubclass(nested, set | frozenset) else "lists"
            raise DataError(f"{source}: column {name!r} holds {what} (one per cell); a table needs one value per "
                            "cell: spread them over columns, or leave the column out with --columns")
        if any(issubclass(t, int) and not issubclass(t, bool) for t in types):
            _check_exact(source, name, col, declared)
        text = [v for v in col.dropna().to_numpy(dtype=object) if isinstance(v, str)]
        if text and len(text) == col.notna().sum() and all(_DECIMAL_COMMA.match(v) for v in text):
            raise DataError(f"{source}: column {name!r} holds numbers written with a decimal comma ({text[0]!r}); "
                            "write them with a decimal point, or separate the columns with ';'")


def _check_span(source: str, name: str, col: pd.Series) -> None:
    """A column whose range max − min overflows float64 cannot be scaled (every scaler divides by a spread)."""
    x = col.to_numpy(dtype=np.float64, na_value=np.nan)
    x = x[np.isfinite(x)]
    with np.errstate(over="ignore"):
        overflows = len(x) and not np.isfinite(x.max() - x.min())
    if overflows:
        raise DataError(f"{source}: column {name!r} spans {x.min():.3g} to {x.max():.3g}, a range float64 cannot hold "
                        "(max − min overflows); rescale it, e.g. divide by 1e300")


def _check_exact(source: str, name: str, col: pd.Series, declared: Collection[str]) -> None:
    present = col.dropna()
    if len(present) == 0 or name in declared:
        return
    if pd.api.types.is_integer_dtype(present):
        big = max(int(present.min()), int(present.max()), key=abs)
    else:
        big = max((int(v) for v in present.to_numpy(dtype=object) if isinstance(v, int | np.integer)), key=abs)
    if abs(big) > EXACT_INT:
        rounded = f"--continuous {name} to model it rounded, or " if pd.api.types.is_integer_dtype(present) else ""
        raise DataError(f"{source}: column {name!r} holds whole numbers up to {big}, beyond 2^53 = {EXACT_INT}, which "
                        f"float64 features would round; an ID? leave it out with --columns (or declare it {rounded}"
                        f"--categorical {name})")


def check_width(spec: Any, source: str) -> None:
    """The features a table spec (:class:`difflab.data.table.TableSpec`) makes, within the limit, checked before
    the (rows × features) matrix is made: a text ID column of 30 000 rows would be 30 000 one-hot features."""
    widest = max(spec.columns, key=lambda c: c.width(spec.encoding))
    w = widest.width(spec.encoding)
    levels = f" ({len(widest.levels)} distinct values: an ID or free text?)" if widest.levels else ""
    check("features", len(spec.features), label=f"{source}: a table of",
          hint=f"column {widest.name!r} alone gives {w}{levels}; leave it out with --columns, or use --encoding bits")
