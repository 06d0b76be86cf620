"""Per-column affine scalers between data units and the units a model is trained in.

Every scaler is an affine map y = a * x + b applied column by column, so its Jacobian is the constant
diagonal matrix diag(a) and ``log_abs_det_jacobian`` is sum_j log|a_j|. Densities computed in scaled
units convert to data units by adding that constant (change of variables).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from difflab.errors import ConfigError, DataError


class Scaler:
    """Base class: ``fit`` learns per-column parameters, then the map is fixed."""

    name = "none"
    _param_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.n_features: int | None = None
        self.params: dict[str, np.ndarray] = {}

    # -- subclasses define the per-column map and its slope ---------------------------------------
    def _fit_params(self, x: np.ndarray, columns: Sequence[str] | None) -> dict[str, np.ndarray]:
        return {}

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return x.copy()

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return y.copy()

    def _slope(self) -> np.ndarray:
        """dy/dx for each column."""
        return np.ones(self.n_features or 0)

    # -- public API ---------------------------------------------------------------------------
    def fit(self, x: np.ndarray, columns: Sequence[str] | None = None) -> Scaler:
        """Learn the parameters from ``x`` (N, D); ``columns`` names the columns in error messages."""
        x = _as_2d(x)
        if len(x) == 0:
            raise DataError("cannot fit a scaler on zero rows")
        if columns is not None and len(columns) != x.shape[1]:
            raise ValueError(f"{len(columns)} column names for {x.shape[1]} columns")
        self.params = self._fit_params(x, columns)
        self.n_features = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map data units to scaled units."""
        return self._forward(self._check_width(x))

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        """Map scaled units back to data units."""
        return self._inverse(self._check_width(y))

    def log_abs_det_jacobian(self) -> float:
        """log|det d(scaled)/d(data)|, the same at every point because the map is affine."""
        self._check_fitted()
        return float(np.sum(np.log(np.abs(self._slope()))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description that :func:`scaler_from_dict` turns back into the same scaler."""
        self._check_fitted()
        return {
            "name": self.name,
            "n_features": self.n_features,
            **{k: [float(v) for v in self.params[k]] for k in self._param_names},
        }

    # -- helpers --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.n_features is None:
            raise RuntimeError(f"{self.name} scaler is used before fit()")

    def _check_width(self, x: np.ndarray) -> np.ndarray:
        self._check_fitted()
        x = _as_2d(x)
        if x.shape[1] != self.n_features:
            raise DataError(f"scaler was fitted on {self.n_features} columns, data has {x.shape[1]}")
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_features={self.n_features})"


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"expected a 2-D array (rows, columns), got shape {x.shape}")
    return x


def _column_label(j: int, columns: Sequence[str] | None) -> str:
    return f"column {columns[j]!r}" if columns is not None else f"column {j}"


def _raise_if_constant(flat: np.ndarray, columns: Sequence[str] | None) -> None:
    if np.any(flat):
        j = int(np.flatnonzero(flat)[0])
        raise DataError(f"{_column_label(j, columns)} is constant; it cannot be scaled")


class MinMaxScaler(Scaler):
    """Each column to [-1, 1]: x' = 2 (x - min) / (max - min) - 1 (written this way so min -> -1 and
    max -> 1 exactly in floating point)."""

    name = "minmax"
    _param_names = ("min", "max")

    def _fit_params(self, x: np.ndarray, columns: Sequence[str] | None) -> dict[str, np.ndarray]:
        lo, hi = x.min(axis=0), x.max(axis=0)
        _raise_if_constant(hi == lo, columns)
        return {"min": lo, "max": hi}

    def _forward(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.params["min"], self.params["max"]
        return 2.0 * (x - lo) / (hi - lo) - 1.0

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        lo, hi = self.params["min"], self.params["max"]
        return (y + 1.0) / 2.0 * (hi - lo) + lo

    def _slope(self) -> np.ndarray:
        return 2.0 / (self.params["max"] - self.params["min"])


class StandardScaler(Scaler):
    """Each column to zero mean and unit (population, ddof=0) standard deviation."""

    name = "standard"
    _param_names = ("mean", "std")

    def _fit_params(self, x: np.ndarray, columns: Sequence[str] | None) -> dict[str, np.ndarray]:
        mean, std = x.mean(axis=0), x.std(axis=0)
        # A column whose values are all equal has std exactly 0 or, after rounding, tiny next to its mean.
        _raise_if_constant(x.max(axis=0) == x.min(axis=0), columns)
        return {"mean": mean, "std": std}

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return (x - self.params["mean"]) / self.params["std"]

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return y * self.params["std"] + self.params["mean"]

    def _slope(self) -> np.ndarray:
        return 1.0 / self.params["std"]


class IdentityScaler(Scaler):
    """No scaling; data are used in their own units."""

    name = "none"


SCALERS: dict[str, type[Scaler]] = {cls.name: cls for cls in (MinMaxScaler, StandardScaler, IdentityScaler)}


def make_scaler(name: str) -> Scaler:
    """A new, unfitted scaler by its user-facing name."""
    try:
        return SCALERS[name]()
    except KeyError:
        raise ConfigError(f"unknown scaler {name!r}; choose one of: {', '.join(SCALERS)}") from None


def scaler_from_dict(d: dict[str, Any]) -> Scaler:
    """Rebuild a fitted scaler from :meth:`Scaler.to_dict` output."""
    if not isinstance(d, dict) or "name" not in d:
        raise ConfigError(f"invalid scaler settings {d!r}: expected a dict with a 'name'")
    scaler = make_scaler(d["name"])
    try:
        n = int(d["n_features"])
        params = {k: np.asarray(d[k], dtype=np.float64) for k in scaler._param_names}
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"invalid {d['name']} scaler settings: {type(e).__name__} {e}") from None
    if n < 1 or any(p.shape != (n,) for p in params.values()):
        raise ConfigError(f"invalid {d['name']} scaler settings: parameters do not have {n} columns")
    scaler.n_features = n
    scaler.params = params
    return scaler
