"""The conditional figure of a 2-D run: p(y | x = v), drawn by imputation, next to the data it came from.

Left: the training data with the line x = v and the draws on it. Right: a histogram of the drawn coordinate, the
exact conditional density where the data's distribution is known (a Gaussian-mixture toy), and the training rows
whose given coordinate lies within a narrow band around v (the empirical conditional the data itself offers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from difflab.errors import DataError
from difflab.viz import panels
from difflab.viz.style import figure, save, styled

BAND = 0.05  # half-width of the band of training rows around x = v, as a share of the column's range


def plot_conditional(
    draws: np.ndarray,
    data: np.ndarray,
    given: int,
    value: float,
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    exact: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Path:
    """``draws`` (n, 2) of rows whose coordinate ``given`` is ``value``, over the training ``data`` (N, 2);
    ``exact(y)`` is the true conditional density of the other coordinate, where known. Returns ``path``."""
    draws, data = np.asarray(draws, dtype=np.float64), np.asarray(data, dtype=np.float64)
    if draws.ndim != 2 or data.ndim != 2 or draws.shape[1] != 2 or data.shape[1] != 2 or given not in (0, 1):
        raise DataError(f"the conditional figure needs 2-D rows and one given coordinate, got draws {draws.shape}, "
                        f"data {data.shape}, given {given}")
    free = 1 - given
    names = panels.column_names(2, columns)
    y = draws[np.isfinite(draws[:, free]), free]
    lims = panels.limits([data, draws])
    lo, hi = float(data[:, given].min()), float(data[:, given].max())
    near = data[np.abs(data[:, given] - value) <= BAND * (hi - lo), free]
    with styled():
        fig, axes = figure(1, 2, size=(8.6, 4.2))
        left, right = axes[0]
        shown = panels.subsample(data, 1000)
        left.scatter(shown[:, 0], shown[:, 1], s=4, c="0.7", label="training data", rasterized=True)
        pts = panels.subsample(draws, 300)
        left.scatter(pts[:, 0], pts[:, 1], s=6, c="C3", alpha=0.5, label="draws")
        (left.axvline if given == 0 else left.axhline)(value, color="C3", lw=0.8)
        panels.set_pair_axes(left, *panels.pair_limits(lims, (0, 1)), names[0], names[1])
        left.legend(loc="upper right", markerscale=2)
        grid = np.linspace(*lims[free], 400)
        right.hist(y, bins=40, range=tuple(lims[free]), density=True, color="C3", alpha=0.45,
                   label=f"draws (n = {len(y)})")
        if len(near) >= 5:
            right.hist(near, bins=20, range=tuple(lims[free]), density=True, histtype="step", color="0.3",
                       label=f"training rows near {names[given]} = {value:g} ({len(near)})")
        if exact is not None:
            right.plot(grid, exact(grid), color="C0", lw=1.6, label="exact")
        right.set_xlabel(names[free])
        right.set_ylabel(f"p({names[free]} | {names[given]} = {value:g})")
        right.legend(loc="upper right")
        fig.suptitle(f"{names[free]} given {names[given]} = {value:g}")
        return save(fig, path)
