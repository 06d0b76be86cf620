"""The scaler interface: a per-column map between data units and the units a model is trained in.

``fit`` learns per-column parameters from training rows; ``transform``/``inverse_transform`` map data units to
scaled units and back; ``to_dict`` is JSON that :func:`difflab.data.scalers.scaler_from_dict` turns back into the
same fitted scaler. Affine scalers (``affine = True``) have a constant Jacobian, so ``log_abs_det_jacobian`` converts
densities between the two units (change of variables); the others refuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from difflab.errors import ConfigError, DataError


class Scaler:
    """Base class: ``fit`` learns per-column parameters, then the map is fixed."""

    name = "none"
    affine = True  # y = a * x + b per column: a constant Jacobian
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
        if not self.affine:
            raise ConfigError(f"the {self.name} scaler is not affine, so its Jacobian is not one constant; "
                              "likelihoods in data units need the minmax, standard or none scaler")
        return float(np.sum(np.log(np.abs(self._slope()))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description that :func:`scaler_from_dict` turns back into the same scaler."""
        self._check_fitted()
        return {"name": self.name, "n_features": self.n_features,
                **{k: np.asarray(self.params[k], dtype=np.float64).tolist() for k in self._param_names}}

    def load_params(self, d: dict[str, Any], n: int) -> None:
        """Set the fitted state from :meth:`to_dict` output for ``n`` columns (raises KeyError, TypeError or
        ValueError on a malformed dict, ConfigError on parameters of the wrong shape)."""
        params = {k: np.asarray(d[k], dtype=np.float64) for k in self._param_names}
        if any(p.shape != (n,) for p in params.values()):
            raise ConfigError(f"invalid {self.name} scaler settings: parameters do not have {n} columns")
        self.n_features, self.params = n, params

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
