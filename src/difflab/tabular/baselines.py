"""Two simple generators of tables to measure difflab's against, with the estimator's fit/sample shape.

- :class:`GaussianCopula`: every column through its empirical CDF to a normal score, one correlation matrix between
  the scores, and back (the model behind SDV's GaussianCopulaSynthesizer). Labels enter as codes ordered by
  frequency, so their CDF is a step function. It keeps every marginal and all pairwise rank correlations, and
  nothing else.
- :class:`Interpolation`: SMOTE-style rows (Chawla et al. 2002): a random training row, one of its k nearest
  neighbours of the same class, and a random point on the segment between them; labels come from whichever end is
  nearer. Strong on ML efficacy, weak on privacy: its rows lie between training rows by construction.

Both fit a DataFrame with a :class:`~difflab.data.table.TableSpec` (:func:`difflab.data.table.fit_table`) and give
samples back with the table's columns and dtypes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri
from scipy.stats import rankdata

from difflab.data.table import ColumnSpec, TableSpec
from difflab.errors import ConfigError, DataError


def _codes(col: pd.Series, c: ColumnSpec) -> tuple[np.ndarray, list]:
    """A column as numbers: itself for a number, else level codes ordered by frequency (most common first)."""
    if c.numeric:
        return col.to_numpy(dtype=np.float64, na_value=np.nan), []
    values = col.astype(object).where(col.notna(), None).tolist()
    counts = pd.Series(values, dtype=object).value_counts(dropna=False)
    order = list(counts.index)
    index = {v: i for i, v in enumerate(order)}
    return np.array([index[v] for v in values], dtype=np.float64), order


def _to_rows(values: dict[str, list | np.ndarray], spec: TableSpec) -> pd.DataFrame:
    """Raw generated values per column → a frame with the table's dtypes (encoded and decoded once)."""
    frame = pd.DataFrame({c.name: values[c.name] if c.kind != "constant" else [c.levels[0]] * len(
        next(iter(values.values()))) for c in spec.columns})
    return spec.decode(spec.encode(frame, source="generated rows"))


class GaussianCopula:
    """Empirical marginals joined by a Gaussian copula. ``fit(frame, spec)``, then ``sample(n, seed=...)``."""

    def fit(self, frame: pd.DataFrame, spec: TableSpec) -> GaussianCopula:
        self.spec = spec
        self.columns = [c for c in spec.columns if c.kind != "constant"]
        self.sorted, self.orders, scores = [], [], []
        for c in self.columns:
            x, order = _codes(frame[c.name], c)
            if np.isnan(x).any():
                raise DataError(f"column {c.name!r}: the copula baseline takes no missing numbers")
            self.sorted.append(np.sort(x))
            self.orders.append(order)
            u = (rankdata(x) - 0.5) / len(x)  # mid-ranks: ties share the middle of their probability range
            scores.append(ndtri(u))
        z = np.column_stack(scores)
        corr = np.corrcoef(z, rowvar=False) if z.shape[1] > 1 else np.ones((1, 1))
        corr = np.nan_to_num(np.atleast_2d(corr))
        self.corr = corr + 1e-9 * np.eye(len(corr))  # numerically positive definite
        return self

    def sample(self, n: int, *, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        z = rng.multivariate_normal(np.zeros(len(self.corr)), self.corr, size=n, method="cholesky")
        u = ndtr(z)
        values: dict[str, list | np.ndarray] = {}
        for j, c in enumerate(self.columns):
            ref = self.sorted[j]
            if c.numeric:  # the inverse of the empirical CDF, interpolated between order statistics
                v = np.interp(u[:, j] * len(ref) - 0.5, np.arange(len(ref)), ref)
                values[c.name] = np.clip(np.round(v), c.low, c.high) if c.kind == "integer" else v
            else:  # a step CDF: the code whose probability range holds u
                code = ref[np.minimum((u[:, j] * len(ref)).astype(int), len(ref) - 1)].astype(int)
                values[c.name] = [self.orders[j][k] for k in code]
        return _to_rows(values, self.spec)


class Interpolation:
    """SMOTE-style rows between a training row and one of its ``k`` nearest same-class neighbours (``target`` is the
    class column; None: any row is a neighbour). Distances are taken on standardised numbers and one-hot labels."""

    def __init__(self, k: int = 5, target: str | None = None) -> None:
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        self.k, self.target = k, target

    def fit(self, frame: pd.DataFrame, spec: TableSpec) -> Interpolation:
        from sklearn.neighbors import NearestNeighbors

        self.spec, self.frame = spec, frame.reset_index(drop=True)
        m = spec.with_encoding("onehot").encode(self.frame, source="training rows")
        sd = m.std(axis=0)
        m = (m - m.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        groups = (self.frame[self.target].astype(object).where(self.frame[self.target].notna(), None).tolist()
                  if self.target is not None else [0] * len(self.frame))
        self.neighbours: list[np.ndarray] = [np.empty(0, dtype=int)] * len(self.frame)
        for g in set(groups):
            rows = np.flatnonzero(np.array([v == g for v in groups]))
            k = min(self.k, len(rows) - 1)
            if k < 1:  # a class of one row: it can only be repeated
                for r in rows:
                    self.neighbours[r] = np.array([r])
                continue
            idx = NearestNeighbors(n_neighbors=k + 1).fit(m[rows]).kneighbors(m[rows], return_distance=False)
            for r, near in zip(rows, idx):
                self.neighbours[r] = rows[[j for j in near if rows[j] != r][:k]]
        return self

    def sample(self, n: int, *, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        base = rng.integers(0, len(self.frame), n)
        other = np.array([self.neighbours[i][rng.integers(len(self.neighbours[i]))] for i in base])
        lam = rng.random(n)
        a, b = self.frame.iloc[base].reset_index(drop=True), self.frame.iloc[other].reset_index(drop=True)
        values: dict[str, list | np.ndarray] = {}
        for c in self.spec.columns:
            if c.kind == "constant":
                continue
            if c.numeric:
                xa, xb = a[c.name].to_numpy(dtype=np.float64), b[c.name].to_numpy(dtype=np.float64)
                v = np.where(np.isnan(xa) | np.isnan(xb), np.where(lam < 0.5, xa, xb), xa + lam * (xb - xa))
                values[c.name] = np.where(np.isnan(v), v, np.clip(np.round(v), c.low, c.high)) \
                    if c.kind == "integer" else v
            else:
                values[c.name] = np.where(lam < 0.5, a[c.name].to_numpy(dtype=object), b[c.name].to_numpy(dtype=object))
        return _to_rows(values, self.spec)
