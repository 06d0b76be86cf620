"""Figures of the diffusion process itself: the forward noising (tutorial Fig. 2), reverse trajectories,
the learned noise field (Fig. 4) and variance schedules (Fig. 5).

Notation follows Ho et al. (2020): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (their Eq. 4), with
abar_t = prod_{s<=t} (1 - beta_s) and abar_0 = 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from difflab.errors import DifflabError
from difflab.viz import panels
from difflab.viz.style import figure, save, styled


def check_alpha_bars(alpha_bars: object) -> np.ndarray:
    """``alpha_bars`` as a float64 vector of length T + 1 with values in (0, 1] (abar_0 = 1)."""
    ab = np.asarray(alpha_bars, dtype=np.float64)
    if ab.ndim != 1 or len(ab) < 2:
        raise DifflabError(f"alpha_bars: expected a vector of length T + 1 >= 2, got shape {ab.shape}")
    if not (np.all(np.isfinite(ab)) and np.all(ab > 0) and np.all(ab <= 1)):
        raise DifflabError("alpha_bars: expected values in (0, 1]")
    return ab


def _check_t(t: int, T: int, name: str, low: int = 0) -> int:
    if int(t) != t or not low <= t <= T:
        raise DifflabError(f"{name}: expected integer steps in {low}..{T}, got {t}")
    return int(t)


def forward_points(x0: object, alpha_bars: object, t: int, seed: int = 0) -> np.ndarray:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps with eps ~ N(0, I) from ``default_rng(seed)`` (Ho et al.
    2020, Eq. 4). The same seed gives the same eps for every t, so a point can be followed across panels."""
    x = panels.as_points(x0, "x0")
    ab = check_alpha_bars(alpha_bars)
    t = _check_t(t, len(ab) - 1, "t")
    eps = np.random.default_rng(seed).standard_normal(x.shape)
    return np.sqrt(ab[t]) * x + np.sqrt(1.0 - ab[t]) * eps


def _square_lims(lim: float | None, arrays: Sequence[np.ndarray], pad: float) -> np.ndarray:
    """Per-column limits: [-lim, lim] for every column if ``lim`` is given, otherwise from the arrays."""
    d = arrays[0].shape[1]
    if lim is not None:
        return np.tile([-float(lim), float(lim)], (d, 1))
    return panels.limits(arrays, pad=pad)


def _names(d: int) -> list[str]:
    return panels.column_names(d, None)


def plot_forward(
    x0: object,
    alpha_bars: object,
    ts: Sequence[int],
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    n_points: int = 100,
    lim: float | None = None,
) -> Path:
    """The forward process at steps ``ts`` (tutorial: 0, 2, T): one panel per t with the first ``n_points``
    of ``x0`` noised by :func:`forward_points`. D = 1: histograms; D > 2: the first two columns."""
    x = panels.finite_rows(panels.as_points(x0, "x0"))[0][:n_points]
    ab = check_alpha_bars(alpha_bars)
    T = len(ab) - 1
    ts = [_check_t(t, T, "ts") for t in ts]
    if not ts:
        raise DifflabError("ts: expected at least one step")
    if len(x) == 0:
        raise DifflabError("x0: no finite rows to plot")
    cols = (0,) if x.shape[1] == 1 else (0, 1)
    noised = [forward_points(x[:, cols], ab, t, seed) for t in ts]
    lims = _square_lims(lim, noised, pad=0.1)
    names = _names(x.shape[1])
    with styled():
        fig, axes = figure(1, len(ts), size=(4.0 * len(ts), 4.3))
        for ax, t, xt in zip(axes[0], ts, noised, strict=True):
            if len(cols) == 1:
                panels.draw_points(ax, xt, (0,), lims, names, density=False)
            else:
                panels.draw_points(ax, xt, (0, 1), lims, names, density=False, n_scatter=len(xt))
            ax.set_title(f"t = {t}")
        if len(cols) == 1:
            # One y scale for all histograms, so the spreading of the density reads across panels.
            top = max(ax.get_ylim()[1] for ax in axes[0])
            for ax in axes[0]:
                ax.set_ylim(0, top)
        return save(fig, path)


def plot_trajectories(
    traj: object,
    path: str | os.PathLike[str],
    *,
    ts: Sequence[int] | None = None,
    n_show: int = 30,
    title: str | None = None,
    ode: object = None,
    start: str | None = None,
) -> Path:
    """Reverse trajectories ``traj`` (K+1, n, D), traj[0] = x_T, traj[-1] = samples: ``n_show`` paths as thin
    lines from an open circle (start, x_T) to a dot (end, the samples), over all final samples. ``ts`` (length
    K+1) labels the steps; by default K, K-1, ..., 0, the time t of each state when the sampler takes every step
    (K = T). D = 1: value against step; D > 2: the first two columns. ``ode`` and ``start``: see
    :func:`trajectories_figure`."""
    return save(trajectories_figure(traj, ts=ts, n_show=n_show, title=title, ode=ode, start=start), path)


def trajectories_figure(
    traj: object, *, ts: Sequence[int] | None = None, n_show: int = 30, title: str | None = None,
    ode: object = None, start: str | None = None,
) -> Figure:
    """The figure :func:`plot_trajectories` saves (its legend names the start x_T and the end x_0 with their t).
    ``ode`` (K'+1, n', D): deterministic paths from the same starts, drawn dashed beside the first ``n_show``
    (a stochastic sampler's paths scribble; the probability-flow ODE's show the transport). ``start`` replaces
    the start's label."""
    tr = _check_traj(traj)
    det = _check_traj(ode)[:, : max(1, n_show)] if ode is not None else None
    # The reverse process runs from t = T down to 0, so the first state is the largest t.
    steps = np.arange(len(tr) - 1, -1, -1) if ts is None else np.asarray(ts)
    if len(steps) != len(tr):
        raise DifflabError(f"ts: expected {len(tr)} step labels (one per trajectory step), got {len(steps)}")
    shown = tr[:, : max(1, n_show)]
    with styled():
        fig, axes = figure(1, 1, size=(5.5, 5.0 if tr.shape[2] == 1 else 5.4))
        ax = axes[0, 0]
        if tr.shape[2] == 1:
            _trajectories_1d(ax, tr, shown, steps, start)
        else:
            _trajectories_2d(ax, tr, shown, steps, start, det)
        if det is not None and tr.shape[2] == 1:
            ax.plot(np.linspace(0, len(tr) - 1, len(det)), det[:, :, 0], color="C2", linewidth=1.0, linestyle="--",
                    alpha=0.8)
        if title:
            ax.set_title(title)
        fig.legend(loc="outside lower center", ncol=3, handletextpad=0.2)
        return fig


def _start_label(steps: np.ndarray, start: str | None = None) -> str:
    return start or f"start $x_T$ (t = {steps[0]})"


def _end_label(steps: np.ndarray) -> str:
    return f"end $x_0$ (t = {steps[-1]:g})"


def _check_traj(traj: object) -> np.ndarray:
    tr = np.asarray(traj, dtype=np.float64)
    if tr.ndim == 2:
        tr = tr[:, :, None]
    if tr.ndim != 3 or min(tr.shape) == 0 or len(tr) < 2:
        raise DifflabError(f"traj: expected shape (K+1, n, D) with K >= 1, got {np.shape(traj)}")
    return tr


def _trajectories_2d(ax, tr: np.ndarray, shown: np.ndarray, steps: np.ndarray, start: str | None = None,
                     det: np.ndarray | None = None) -> None:
    paths = np.concatenate([shown.reshape(-1, tr.shape[2])] + ([det.reshape(-1, tr.shape[2])] if det is not None
                                                                 else []))
    lims = _union(panels.limits([tr[-1]], pad=0.08), panels.limits([paths], pad=0.05, robust=False))
    xlim, ylim = panels.pair_limits(lims, (0, 1))
    final = panels.finite_rows(tr[-1][:, :2])[0]
    ax.scatter(final[:, 0], final[:, 1], s=6, color="0.75", linewidths=0, label="all samples", zorder=1)
    for k in range(shown.shape[1]):
        ax.plot(shown[:, k, 0], shown[:, k, 1], color="C0", linewidth=0.7, alpha=0.6 if det is None else 0.4,
                zorder=2, label="sampler's paths" if k == 0 and det is not None else None)
    if det is not None:
        for k in range(det.shape[1]):
            ax.plot(det[:, k, 0], det[:, k, 1], color="C2", linewidth=1.2, linestyle="--", zorder=2,
                    label="ODE paths (ddim, η = 0), same $x_T$" if k == 0 else None)
        ax.scatter(*det[-1, :, :2].T, s=16, marker="s", color="C2", linewidths=0, zorder=4)
    ax.scatter(*shown[0, :, :2].T, s=22, facecolors="white", edgecolors="C0", linewidths=1.0, zorder=3,
               label=_start_label(steps, start))
    ax.scatter(*shown[-1, :, :2].T, s=16, color="C3", linewidths=0, zorder=4, label=_end_label(steps))
    panels.set_pair_axes(ax, xlim, ylim, *_names(2))


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Limits covering both (lo, hi) arrays: robust ones for the many samples, full ones for the few paths."""
    return np.stack([np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])], axis=1)


def _trajectories_1d(ax, tr: np.ndarray, shown: np.ndarray, steps: np.ndarray, start: str | None = None) -> None:
    idx = np.arange(len(tr))
    ax.plot(idx, shown[:, :, 0], color="C0", linewidth=0.8, alpha=0.6)
    ax.scatter(np.zeros(shown.shape[1]), shown[0, :, 0], s=18, facecolors="white", edgecolors="C0", zorder=3,
               label=_start_label(steps, start))
    ax.scatter(np.full(shown.shape[1], idx[-1]), shown[-1, :, 0], s=14, color="C3", zorder=3,
               label=_end_label(steps))
    every = max(1, len(idx) // 10)
    ax.set_xticks(idx[::every], [f"{s:.3g}" for s in steps[::every]])
    ax.set_xlabel("t" if not np.array_equal(steps, idx) else "step")
    ax.set_ylabel(_names(1)[0])
    lims = panels.limits([shown[:, :, 0].reshape(-1, 1)], pad=0.05, robust=False)[0]
    ax.set_ylim(*lims)


def _t_label(t: int, T: int | None) -> str:
    return "T" if T is not None and t == T else str(t)


def reverse_field(
    eps_fn: Callable[[np.ndarray, int], np.ndarray], ts: Sequence[int], *, lim: float = 1.5, grid: int = 15
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The lattice ``xy`` (grid^2, 2) over [-lim, lim]^2 and, per t, the arrows -eps_fn(xy, t) (grid^2, 2):
    minus the predicted noise, the direction the reverse mean moves x_t (Ho et al. 2020, Eq. 11)."""
    if grid < 2 or not lim > 0:
        raise DifflabError(f"grid, lim: expected grid >= 2 and lim > 0, got grid={grid}, lim={lim}")
    g = np.linspace(-lim, lim, grid)
    gx, gy = np.meshgrid(g, g)
    xy = np.column_stack([gx.ravel(), gy.ravel()])
    fields = []
    for t in ts:
        eps = np.asarray(eps_fn(xy.copy(), t), dtype=np.float64)
        if eps.shape != xy.shape:
            raise DifflabError(f"eps_fn: expected an array of shape {xy.shape} at t={t}, got {eps.shape}")
        fields.append(-eps)
    return xy, fields


def plot_vector_field(
    eps_fn: Callable[[np.ndarray, int], np.ndarray],
    ts: Sequence[int],
    path: str | os.PathLike[str],
    *,
    trajectory: object = None,
    lim: float = 1.5,
    grid: int = 15,
    T: int | None = None,
    dim: int = 2,
    titles: Sequence[str] | None = None,
    background: object = None,
) -> Path:
    """The learned reverse direction (tutorial Fig. 4): per t in ``ts``, a quiver of -eps_hat(x, t) on a
    ``grid`` x ``grid`` lattice over [-lim, lim]^2. All panels share one arrow scale so magnitudes compare, unless
    ``titles`` are given: then ``ts`` are any positive times (a continuous process's), each panel is titled by its
    entry and scaled by itself (at low noise the arrows near the data are many times longer than at high noise;
    the title gives the longest). ``trajectory`` (K+1, 2) is drawn on the first panel, ``background`` points (n, 2)
    faintly on every panel (the data the arrows should point at). ``dim`` is the run's data width; only 2 works."""
    if dim != 2:
        raise DifflabError(f"vector field plots need 2-D data; this run has D={dim}")
    path_xy = None
    if trajectory is not None:
        path_xy = np.asarray(trajectory, dtype=np.float64)
        if path_xy.ndim != 2 or path_xy.shape[0] < 1:
            raise DifflabError(f"trajectory: expected shape (K+1, 2), got {path_xy.shape}")
        if path_xy.shape[1] != 2:
            raise DifflabError(f"vector field plots need 2-D data; this run has D={path_xy.shape[1]}")
    if background is not None:
        background = panels.subsample(panels.as_points(background, "background")[:, :2], 500)
    if titles is None:
        ts = [_check_t(t, T if T is not None else 10**9, "ts", low=1) for t in ts]
    elif len(titles) != len(ts) or not all(float(t) > 0 for t in ts):
        raise DifflabError(f"ts, titles: expected one title per time and times > 0, got {list(ts)}, {list(titles)}")
    if not ts:
        raise DifflabError("ts: expected at least one step")
    xy, fields = reverse_field(eps_fn, ts, lim=lim, grid=grid)
    g = np.linspace(-lim, lim, grid)

    def arrow_scale(fs: list[np.ndarray]) -> float:  # the 95th-percentile arrow spans 1.2 grid spacings
        norms = np.concatenate([np.linalg.norm(f, axis=1) for f in fs])
        ref = np.nanpercentile(norms, 95) if np.isfinite(norms).any() else 1.0
        return max(ref, 1e-12) / (1.2 * (g[1] - g[0]))

    scales = [arrow_scale(fields)] * len(fields) if titles is None else [arrow_scale([f]) for f in fields]
    with styled():
        fig, axes = figure(1, len(ts), size=(4.5 * len(ts), 4.6))
        for i, (ax, t, f, scale) in enumerate(zip(axes[0], ts, fields, scales, strict=True)):
            ax.quiver(xy[:, 0], xy[:, 1], f[:, 0], f[:, 1], angles="xy", scale_units="xy", scale=scale,
                      width=0.004, color="0.2")
            if background is not None:
                ax.scatter(background[:, 0], background[:, 1], s=4, color="C0", alpha=0.35, linewidths=0, zorder=0)
            if i == 0 and path_xy is not None:
                ax.plot(path_xy[:, 0], path_xy[:, 1], "o--", color="C0", markersize=4, linewidth=1.2)
            pad = 0.08 * lim
            panels.set_pair_axes(ax, np.array([-lim - pad, lim + pad]), np.array([-lim - pad, lim + pad]),
                                 *_names(2))
            if titles is None:
                ax.set_title(rf"$-\hat{{\epsilon}}(x_t,\ t={_t_label(t, T)})$")
            else:
                top = float(np.nanmax(np.linalg.norm(f, axis=1))) if np.isfinite(f).any() else float("nan")
                ax.set_title(rf"$-\hat{{\epsilon}}$ at {titles[i]} (longest {top:.3g})", fontsize=9)
        return save(fig, path)
