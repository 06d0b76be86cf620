"""How an (n, D) array becomes panels: input checks, which columns go on which panel, shared limits, and
the drawing of one panel (histogram + density line for one column, density + scatter for a pair).

D = 1 gives one histogram panel, D = 2 one scatter panel, D > 2 the pairwise projections of the first
:data:`MAX_COLUMNS` columns. Every figure module goes through here so all figures look alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
from matplotlib.axes import Axes
from scipy.stats import gaussian_kde

from difflab.errors import DataError

#: Columns shown for D > 2 (4 columns -> 6 pairwise panels; more would be unreadable on a slide).
MAX_COLUMNS = 4
#: Points drawn as a scatter on top of a density (tutorial Fig. 1 and 3: the first 100 points).
SCATTER_POINTS = 100
#: The tutorial's seaborn call used ``bw_adjust=0.5``: half of Scott's bandwidth, to keep the moons separate.
BW_ADJUST = 0.5
#: Sequential colour maps for density fills and the matching dark colour for points, per role.
PALETTE = {"data": ("Blues", "#08306b"), "samples": ("Oranges", "#7f2704")}


def as_points(x: object, name: str) -> np.ndarray:
    """``x`` as a float64 (n, D) array; a 1-D array is read as n points of width 1."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{name}: expected a non-empty (n, D) array, got shape {np.shape(x)}")
    return a


def finite_rows(x: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows of ``x`` without NaN/inf (a diverged sampler produces them) and how many were dropped."""
    keep = np.isfinite(x).all(axis=1)
    return x[keep], int((~keep).sum())


def column_names(d: int, columns: Sequence[str] | None) -> list[str]:
    """Axis labels: the given names (a literal ``$`` escaped so it cannot start math text), or x_1..x_D."""
    if columns is None:
        return ["$x$"] if d == 1 else [f"$x_{{{i + 1}}}$" for i in range(d)]
    if len(columns) != d:
        raise DataError(f"columns: expected {d} names (one per data column), got {len(columns)}")
    return [str(c).replace("$", r"\$") for c in columns]


def panel_columns(d: int) -> list[tuple[int, ...]]:
    """Column indices per panel: (0,) for D = 1, (0, 1) for D = 2, pairs of the first 4 columns for D > 2."""
    if d <= 2:
        return [tuple(range(d))]
    return list(combinations(range(min(d, MAX_COLUMNS)), 2))


def column_note(d: int) -> str:
    """A suffix for titles saying that only some columns are shown."""
    return f" (first {MAX_COLUMNS} of {d} columns)" if d > MAX_COLUMNS else ""


def limits(arrays: Sequence[np.ndarray], pad: float = 0.25, robust: bool = True) -> np.ndarray:
    """Per-column (lo, hi) covering all ``arrays``, padded by ``pad`` x span on each side.

    ``robust`` uses the 0.5 % / 99.5 % quantiles so a few far-away samples cannot shrink the rest to a dot.
    With pad = 0.25, data scaled to [-1, 1] gets the tutorial's axes, [-1.5, 1.5].
    """
    finite = [finite_rows(a)[0] for a in arrays]
    both = np.concatenate([a for a in finite if len(a)] or [np.zeros((1, arrays[0].shape[1]))])
    q = (0.005, 0.995) if robust and len(both) >= 200 else (0.0, 1.0)
    lo, hi = np.quantile(both, q[0], axis=0), np.quantile(both, q[1], axis=0)
    span = hi - lo
    flat = span <= 1e-12 * np.maximum(1.0, np.abs(lo))
    span = np.where(flat, 1.0, span)
    lo, hi = np.where(flat, lo - 0.5, lo), np.where(flat, hi + 0.5, hi)
    return np.stack([lo - pad * span, hi + pad * span], axis=1)


def pair_limits(lims: np.ndarray, cols: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """x and y limits of a pair panel; comparable spans are made equal, so a square panel has equal aspect."""
    (x0, x1), (y0, y1) = lims[cols[0]], lims[cols[1]]
    sx, sy = x1 - x0, y1 - y0
    if max(sx, sy) <= 3 * min(sx, sy):
        s = max(sx, sy)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return np.array([cx - s / 2, cx + s / 2]), np.array([cy - s / 2, cy + s / 2])
    return np.array([x0, x1]), np.array([y0, y1])


def subsample(x: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """At most ``max_points`` rows of ``x``, chosen at random but reproducibly, in their original order."""
    if len(x) <= max_points:
        return x
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=max_points, replace=False))
    return x[idx]


def kde(x: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """Gaussian KDE of ``x`` (n, k) at ``grid`` (k, m) with half Scott's bandwidth; None if it is undefined
    (too few points, or all points on a line so the covariance is singular)."""
    if len(x) < max(3, x.shape[1] + 1):
        return None
    try:
        k = gaussian_kde(x.T, bw_method=lambda g: g.scotts_factor() * BW_ADJUST)
        return k(grid)
    except (np.linalg.LinAlgError, ValueError):
        return None


def draw_points(
    ax: Axes,
    x: np.ndarray,
    cols: tuple[int, ...],
    lims: np.ndarray,
    names: Sequence[str],
    *,
    role: str = "data",
    density: bool = True,
    n_scatter: int = SCATTER_POINTS,
) -> None:
    """Draw ``x`` (finite rows) on ``ax``: a histogram + density line for one column, a filled density with a
    scatter of the first ``n_scatter`` points for a pair of columns."""
    cmap, dark = PALETTE[role]
    if len(cols) == 1:
        _draw_1d(ax, x[:, cols[0]], lims[cols[0]], cmap, dark, density)
        ax.set_xlabel(names[cols[0]])
        return
    i, j = cols
    xlim, ylim = pair_limits(lims, (i, j))
    if density:
        gx, gy = np.meshgrid(np.linspace(*xlim, 100), np.linspace(*ylim, 100))
        z = kde(x[:, [i, j]], np.vstack([gx.ravel(), gy.ravel()]))
        if z is not None and z.max() > 0:
            ax.contourf(gx, gy, z.reshape(gx.shape), levels=np.linspace(0, z.max(), 12), cmap=cmap)
    ax.scatter(x[:n_scatter, i], x[:n_scatter, j], s=7, color=dark, alpha=0.85, linewidths=0)
    set_pair_axes(ax, xlim, ylim, names[i], names[j])


def set_pair_axes(ax: Axes, xlim: np.ndarray, ylim: np.ndarray, xlabel: str, ylabel: str) -> None:
    """Limits, labels and a square box (equal aspect when the two spans are equal)."""
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_box_aspect(1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _draw_1d(ax: Axes, v: np.ndarray, lim: np.ndarray, cmap: str, dark: str, density: bool) -> None:
    # About 2 sqrt(n) bins: fine enough for 1000 points, not ragged for 100.
    n_bins = int(np.clip(2 * np.sqrt(len(v)), 10, 40))
    bins = np.linspace(lim[0], lim[1], n_bins + 1)
    ax.hist(v, bins=bins, density=True, color=dark, alpha=0.25 if density else 0.5, linewidth=0)
    if density:
        grid = np.linspace(lim[0], lim[1], 300)
        z = kde(v[:, None], grid[None, :])
        if z is not None:
            ax.plot(grid, z, color=dark, linewidth=1.8)
    ax.set_xlim(*lim)
    ax.set_ylim(bottom=0)
    ax.set_box_aspect(1)
    ax.set_ylabel("density")
