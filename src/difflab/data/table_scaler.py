"""The scaler of a table run: the user's scaler on numeric features, y = 2x - 1 on indicator features.

A table's features (:mod:`difflab.data.table`) are numbers in their own units and indicators in {0, 1} (one-hot
columns, analog bits, missing-value flags). Indicators go to {-1, +1}, the two values a Gaussian diffusion over
analog bits or one-hot vectors is trained on (Chen et al. 2022, "Analog Bits"), whatever scaler the numbers get:
standardising a rare category's column would blow it up, and a quantile map has nothing to do on two values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from difflab.data.scaler_base import Scaler


class TableScaler(Scaler):
    """``inner`` (fitted or not, or None when there are no numeric features) on the columns that are not
    ``indicators``; 2x - 1 on the indicator columns. ``n_features`` is the width of the whole feature matrix."""

    name = "table"

    def __init__(self, inner: Scaler | None, indicators: Sequence[int], n_features: int) -> None:
        super().__init__()
        self.inner = inner
        self.indicators = sorted(int(i) for i in indicators)
        if len(set(self.indicators)) != len(self.indicators) or any(
                not 0 <= i < n_features for i in self.indicators):
            raise ValueError(f"indicator columns {self.indicators} do not fit {n_features} features")
        self.numeric = [j for j in range(n_features) if j not in set(self.indicators)]
        if (inner is None) != (not self.numeric):
            raise ValueError("a table scaler needs an inner scaler exactly when it has numeric features")
        self.affine = inner is None or inner.affine
        self._width = n_features
        if inner is None or inner.n_features is not None:  # rebuilt from a run directory: already fitted
            if inner is not None and inner.n_features != len(self.numeric):
                raise ValueError(f"inner scaler has {inner.n_features} columns, the table {len(self.numeric)}")
            self.n_features = n_features

    def _fit_params(self, x: np.ndarray, columns: Sequence[str] | None) -> dict[str, np.ndarray]:
        if x.shape[1] != self._width:
            raise ValueError(f"table scaler for {self._width} features fitted on {x.shape[1]}")
        if self.inner is not None:
            names = [columns[j] for j in self.numeric] if columns is not None else None
            self.inner.fit(x[:, self.numeric], columns=names)
        return {}

    def _forward(self, x: np.ndarray) -> np.ndarray:
        y = np.empty_like(x)
        if self.inner is not None:
            y[:, self.numeric] = self.inner.transform(x[:, self.numeric])
        y[:, self.indicators] = 2.0 * x[:, self.indicators] - 1.0
        return y

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        x = np.empty_like(y)
        if self.inner is not None:
            x[:, self.numeric] = self.inner.inverse_transform(y[:, self.numeric])
        x[:, self.indicators] = (y[:, self.indicators] + 1.0) / 2.0
        return x

    def log_abs_det_jacobian(self) -> float:
        """The inner scaler's log-determinant plus log 2 per indicator column (a block-diagonal Jacobian)."""
        self._check_fitted()
        inner = self.inner.log_abs_det_jacobian() if self.inner is not None else 0.0
        return inner + len(self.indicators) * float(np.log(2.0))

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {"name": self.name, "n_features": self.n_features, "indicators": list(self.indicators),
                "inner": self.inner.to_dict() if self.inner is not None else None}
