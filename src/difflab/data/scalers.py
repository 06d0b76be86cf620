"""Per-column scalers between data units and the units a model is trained in, by the names users type.

minmax, standard and none are affine maps y = a * x + b applied column by column, so their Jacobian is the constant
diagonal matrix diag(a) and ``log_abs_det_jacobian`` is sum_j log|a_j|: densities computed in scaled units convert to
data units by adding that constant (change of variables). quantile (:mod:`difflab.data.quantile`) maps each column
through its empirical CDF to a standard normal; it is not affine. The table scaler (:mod:`difflab.data.table_scaler`)
is not chosen by users: a table run gets it to apply their choice to numeric features and 2x - 1 to indicators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from difflab.data.quantile import QuantileScaler
from difflab.data.scaler_base import Scaler, _raise_if_constant
from difflab.data.table_scaler import TableScaler
from difflab.errors import ConfigError

__all__ = ["SCALERS", "IdentityScaler", "MinMaxScaler", "QuantileScaler", "Scaler", "StandardScaler", "TableScaler",
           "make_scaler", "scaler_from_dict"]


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


SCALERS: dict[str, type[Scaler]] = {
    cls.name: cls for cls in (MinMaxScaler, StandardScaler, IdentityScaler, QuantileScaler)
}


def make_scaler(name: str) -> Scaler:
    """A new, unfitted scaler by its user-facing name."""
    try:
        return SCALERS[name]()
    except KeyError:
        raise ConfigError(f"unknown scaler {name!r}; choose one of: {', '.join(SCALERS)}") from None


def scaler_from_dict(d: dict[str, Any]) -> Scaler:
    """Rebuild a fitted scaler from :meth:`Scaler.to_dict` output (a table scaler holds another one inside)."""
    if not isinstance(d, dict) or "name" not in d:
        raise ConfigError(f"invalid scaler settings {d!r}: expected a dict with a 'name'")
    try:
        n = int(d["n_features"])
        if d["name"] == TableScaler.name:
            inner = scaler_from_dict(d["inner"]) if d["inner"] is not None else None
            scaler: Scaler = TableScaler(inner, [int(i) for i in d["indicators"]], n)
        else:
            scaler = make_scaler(d["name"])
            scaler.load_params(d, n)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"invalid {d['name']} scaler settings: {type(e).__name__} {e}") from None
    if n < 1:
        raise ConfigError(f"invalid {d['name']} scaler settings: {n} columns")
    return scaler
