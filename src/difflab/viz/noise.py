"""The forward process at chosen noise levels (tutorial Fig. 2, for any process; :mod:`difflab.viz.levels` picks
the levels).

A forward panel draws x_t = α_t x_0 + σ̃_t ε with the process's own coefficients (α_t, σ̃_t) (Ho et al. 2020, eq. 4
for a variance-preserving process; (1 − t, t) for a straight path), one ε per point for every panel.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from difflab.errors import DifflabError
from difflab.viz import panels
from difflab.viz.style import figure, save, styled


def forward_at(x0: object, alpha: float, sigma: float, seed: int = 0) -> np.ndarray:
    """alpha · x0 + sigma · ε with ε ~ N(0, I) from ``default_rng(seed)``: the same ε for every (alpha, sigma)."""
    x = panels.as_points(x0, "x0")
    if not (np.isfinite(alpha) and np.isfinite(sigma) and alpha >= 0 and sigma >= 0):
        raise DifflabError(f"forward coefficients: expected finite α ≥ 0 and σ ≥ 0, got α = {alpha}, σ = {sigma}")
    return alpha * x + sigma * np.random.default_rng(seed).standard_normal(x.shape)


def plot_forward_levels(
    x0: object,
    steps: Sequence[tuple[float, float, str]],
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    n_points: int = 300,
) -> Path:
    """The forward process at ``steps`` = [(α_t, σ̃_t, title), ...]: one panel each, the first ``n_points`` of
    ``x0`` noised by :func:`forward_at` with one ε. D = 1: histograms on one y scale; D ≥ 2: the first two columns,
    on one square box per panel (equal aspect), each panel's limits its own so the noisy ones are not dots."""
    x = panels.finite_rows(panels.as_points(x0, "x0"))[0][:n_points]
    if not steps:
        raise DifflabError("steps: expected at least one (α, σ, title)")
    if len(x) == 0:
        raise DifflabError("x0: no finite rows to plot")
    cols = (0,) if x.shape[1] == 1 else (0, 1)
    noised = [forward_at(x[:, cols], a, s, seed) for a, s, _ in steps]
    names = panels.column_names(x.shape[1], None)
    with styled():
        fig, axes = figure(1, len(steps), size=(3.6 * len(steps), 4.0))
        for ax, (_, _, title), xt in zip(axes[0], steps, noised, strict=True):
            lims = panels.limits([xt], pad=0.1, robust=False)
            if len(cols) == 1:
                panels.draw_points(ax, xt, (0,), lims, names, density=False)
            else:
                panels.draw_points(ax, xt, (0, 1), lims, names, density=False, n_scatter=len(xt))
            ax.set_title(title, fontsize=10)
        if len(cols) == 1:
            top = max(ax.get_ylim()[1] for ax in axes[0])
            for ax in axes[0]:
                ax.set_ylim(0, top)
        return save(fig, path)
