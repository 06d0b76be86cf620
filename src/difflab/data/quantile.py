"""The quantile-normal scaler: each column through its empirical CDF, then the standard normal's inverse CDF.

It is scikit-learn's ``QuantileTransformer(output_distribution="normal")`` (the scaler TabDDPM uses), fitted by
scikit-learn and kept as JSON: for every column the data's quantiles q_0 ≤ … ≤ q_{K-1} at the K evenly spaced
probability levels r_k = k / (K - 1). The map itself is written out here, step for step as scikit-learn computes it,
so a run directory needs no pickled estimator:

    forward   u = ½ (interp(x; q → r) + interp_from_above(x; q → r)),  y = Φ⁻¹(u), clipped to Φ⁻¹(1e-7 …)
    inverse   u = Φ(y),  x = interp(u; r → q)

Averaging the interpolation from below and from above sends a value repeated across several knots (a discrete
column) to the middle of its probability range. The inverse is exact at the knots up to floating-point rounding:
q_k → r_k → Φ⁻¹(r_k) → r_k → q_k. Values outside the fitted range map to the range's ends, so the inverse never
leaves [q_0, q_{K-1}]. The map is not affine (its Jacobian changes from point to point).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from difflab.data.scaler_base import Scaler, _raise_if_constant
from difflab.errors import ConfigError

MAX_QUANTILES = 1000  # scikit-learn's default n_quantiles
BOUNDS = 1e-7  # scikit-learn's BOUNDS_THRESHOLD: probabilities within this of 0 or 1 go to the range's ends
# scipy.special is imported on use: it costs ~0.3 s of every command's start-up (benchmarks/startup.py).


def _clips() -> tuple[float, float]:
    """The forward map's clips, ≈ ±5.2, as scikit-learn computes them (1 - p in floating point is not quite
    symmetric)."""
    from scipy.special import ndtri

    return float(ndtri(BOUNDS - np.spacing(1))), float(ndtri(1.0 - (BOUNDS - np.spacing(1))))


class QuantileScaler(Scaler):
    """Each column to a standard normal through its empirical quantiles (min(1000, rows) of them)."""

    name = "quantile"
    affine = False
    _param_names = ("quantiles", "references")

    def _fit_params(self, x: np.ndarray, columns: Sequence[str] | None) -> dict[str, np.ndarray]:
        from sklearn.preprocessing import QuantileTransformer  # sklearn takes seconds to import

        _raise_if_constant(x.max(axis=0) == x.min(axis=0), columns)
        qt = QuantileTransformer(n_quantiles=min(MAX_QUANTILES, len(x)), output_distribution="normal",
                                 subsample=None).fit(x)
        return {"quantiles": np.asarray(qt.quantiles_, dtype=np.float64),
                "references": np.asarray(qt.references_, dtype=np.float64)}

    def _forward(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import ndtri

        q, r = self.params["quantiles"], self.params["references"]
        u = np.empty_like(x)
        for j in range(x.shape[1]):
            col, qj = x[:, j], q[:, j]
            u[:, j] = 0.5 * (np.interp(col, qj, r) - np.interp(-col, -qj[::-1], -r[::-1]))
            u[col + BOUNDS > qj[-1], j] = 1.0  # scikit-learn's order: the lower end wins a tie
            u[col - BOUNDS < qj[0], j] = 0.0
        return np.clip(ndtri(u), *_clips())

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        from scipy.special import ndtr

        q, r = self.params["quantiles"], self.params["references"]
        u = ndtr(y)
        x = np.empty_like(y)
        for j in range(y.shape[1]):
            x[:, j] = np.interp(u[:, j], r, q[:, j])
            x[u[:, j] + BOUNDS > 1.0, j] = q[-1, j]
            x[u[:, j] - BOUNDS < 0.0, j] = q[0, j]
        return x

    def load_params(self, d: dict[str, Any], n: int) -> None:
        q = np.asarray(d["quantiles"], dtype=np.float64)
        r = np.asarray(d["references"], dtype=np.float64)
        k = len(r)
        if r.ndim != 1 or k < 2 or q.shape != (k, n) or np.any(np.diff(r) <= 0) or np.any(np.diff(q, axis=0) < 0):
            raise ConfigError(f"invalid quantile scaler settings: expected increasing levels and ({k}, {n}) "
                              "non-decreasing quantiles")
        self.n_features, self.params = n, {"quantiles": q, "references": r}
