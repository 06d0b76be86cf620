"""Column-by-column checks of generated rows against real rows: one-dimensional distances, pairwise correlations,
and samples piled up at a column's range ends.

- Numbers (continuous, integer): the two-sample Kolmogorov–Smirnov statistic sup_x |F_a(x) - F_b(x)| of the
  empirical CDFs.
- Labels (boolean, categorical): the total variation distance ½ Σ_k |p_a(k) - p_b(k)| of the level frequencies.
- Correlations: Pearson correlation matrices of the two samples' numeric matrices (labels one-hot), compared by the
  mean absolute difference over the pairs i < j. A column constant in a sample correlates 0 with everything.
- Piling: the share of rows at or beyond a column's training minimum or maximum. A generator that clips in its
  scaled space (as a popular TabDDPM port does) puts a visible heap there; real data put about 2/N.

Each is 0 for identical samples and grows with the difference; callers report them next to the same number between
two real samples (the noise floor).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from difflab.errors import DataError

NUMBER_KINDS = ("continuous", "integer")
LABEL_KINDS = ("boolean", "categorical")


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """sup_x |F_a(x) - F_b(x)| over the pooled values, where both empirical CDFs jump (ties handled)."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    if len(a) == 0 or len(b) == 0:
        raise DataError("the KS statistic needs at least one value in each sample")
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def total_variation(a: pd.Series, b: pd.Series) -> float:
    """½ Σ_k |p_a(k) - p_b(k)| over every level seen in either sample (missing values are a level)."""
    if len(a) == 0 or len(b) == 0:
        raise DataError("total variation needs at least one value in each sample")
    pa = a.astype(object).where(a.notna(), None).value_counts(normalize=True, dropna=False)
    pb = b.astype(object).where(b.notna(), None).value_counts(normalize=True, dropna=False)
    both = pa.index.union(pb.index)
    return float(0.5 * np.abs(pa.reindex(both, fill_value=0.0) - pb.reindex(both, fill_value=0.0)).sum())


def column_distances(a: pd.DataFrame, b: pd.DataFrame, kinds: dict[str, str]) -> dict[str, dict[str, float | str]]:
    """{column: {"stat": "ks" | "tv", "value": v}} for every number and label column of ``kinds``."""
    out: dict[str, dict[str, float | str]] = {}
    for name, kind in kinds.items():
        if kind in NUMBER_KINDS:
            x, y = a[name].to_numpy(dtype=np.float64), b[name].to_numpy(dtype=np.float64)
            out[name] = {"stat": "ks", "value": ks_statistic(x[~np.isnan(x)], y[~np.isnan(y)])}
        elif kind in LABEL_KINDS:
            out[name] = {"stat": "tv", "value": total_variation(a[name], b[name])}
    return out


def correlation_matrix(x: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns of ``x`` (N, D); a constant column correlates 0 (1 with itself)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    sd = np.sqrt((centred**2).mean(axis=0))
    z = np.divide(centred, sd, out=np.zeros_like(centred), where=sd > 0)
    c = z.T @ z / len(x)
    np.fill_diagonal(c, 1.0)
    return c


def correlation_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |corr_a - corr_b| over the column pairs i < j (0.0 for a single column)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DataError(f"correlations need two samples of equal width; got shapes {a.shape} and {b.shape}")
    d = a.shape[1]
    if d < 2:
        return 0.0
    i, j = np.triu_indices(d, k=1)
    return float(np.mean(np.abs(correlation_matrix(a)[i, j] - correlation_matrix(b)[i, j])))


def piled_at_bounds(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per column, the share of rows of ``x`` (N, D) at or below ``low`` or at or above ``high`` (NaN ignored)."""
    x = np.asarray(x, dtype=np.float64)
    at = (x <= low) | (x >= high)
    present = ~np.isnan(x)
    return np.where(present.sum(axis=0) > 0, (at & present).sum(axis=0) / np.maximum(present.sum(axis=0), 1), 0.0)
