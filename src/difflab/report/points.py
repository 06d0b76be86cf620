"""Samples against data, in the data's units, as interactive figures with densities; and the loss curve.

D = 1: the two densities as overlaid histograms. D = 2: a scatter of both with density contours and a marginal
histogram on each axis. D > 2: a scatter matrix of the first :data:`MAX_PAIRS` columns, and the marginal
histograms of the first :data:`MAX_MARGINALS` columns. :func:`what_is_shown` says which, for the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from difflab.errors import DifflabError
from difflab.viz import ema, panels

MAX_PAIRS = 4
MAX_MARGINALS = 12
DATA_COLOR, SAMPLE_COLOR = "rgba(110,110,110,0.6)", "rgba(31,119,180,0.6)"
LINE_COLOR = {DATA_COLOR: "rgb(90,90,90)", SAMPLE_COLOR: "rgb(31,119,180)"}  # density contours
LOSS_SMOOTHING = 0.98  # the EMA weight of the loss PNG (viz.plot_loss)


def what_is_shown(d: int) -> str:
    """The page's note on which columns the samples figure shows for width ``d``."""
    robust = " Axes span the central 99 % of the points, so a few far-out samples may lie outside."
    if d == 1:
        return "D = 1: the density of the samples against the data's, as histograms." + robust
    if d == 2:
        return ("D = 2: both point clouds with their density contours, and the marginal density of each column."
                + robust)
    pairs = f"the first {MAX_PAIRS} of {d} columns" if d > MAX_PAIRS else f"all {d} columns"
    marg = f"the first {MAX_MARGINALS} of {d} columns" if d > MAX_MARGINALS else "every column"
    return f"D = {d}: pairs of {pairs} (scatter matrix), then the marginal density of {marg}." + robust


def _names(d: int, columns: Sequence[str] | None) -> list[str]:
    return [str(c) for c in columns] if columns else [f"x{i + 1}" for i in range(d)]


def _bins(a: np.ndarray, b: np.ndarray, n_bins: int = 40) -> dict[str, float]:
    """One set of bins for both samples, over their robust joint range, so the two histograms compare."""
    lo, hi = panels.limits([a[:, None], b[:, None]], pad=0.02)[0]
    return {"start": float(lo), "end": float(hi), "size": float(hi - lo) / n_bins}


def _hist(v: np.ndarray, bins: dict[str, float], name: str, color: str, *, vertical: bool = True,
          showlegend: bool = True) -> go.Histogram:
    axis = {"x": v.astype(np.float32)} if vertical else {"y": v.astype(np.float32)}
    return go.Histogram(**axis, **({"xbins": bins} if vertical else {"ybins": bins}), histnorm="probability density",
                        name=name, legendgroup=name, showlegend=showlegend, marker={"color": color})


def samples_figures(data: np.ndarray | None, samples: np.ndarray, columns: Sequence[str] | None = None, *,
                    max_points: int = 2000, seed: int = 0) -> list[go.Figure]:
    """The figures of generated ``samples`` against ``data`` (both (n, D), data units), as described above; the
    samples alone when ``data`` is None (a page that must not carry training rows). Non-finite sample rows (a
    diverged run) are left out; at most ``max_points`` points of each are drawn."""
    y, _ = panels.finite_rows(panels.as_points(samples, "samples"))
    x = panels.subsample(panels.as_points(data, "data"), max_points, seed) if data is not None else y[:0]
    if x.shape[1] != y.shape[1]:
        raise DifflabError(f"samples have {y.shape[1]} columns, the data {x.shape[1]}")
    if len(y) == 0:
        raise DifflabError("samples: every row is NaN or inf; nothing to draw")
    y = panels.subsample(y, max_points, seed)
    names = _names(x.shape[1], columns)
    if x.shape[1] == 2:
        return [joint_figure(x, y, names)]
    figs = [pairs_figure(x, y, names)] if x.shape[1] > 2 else []
    return [*figs, marginals_figure(x, y, names)]


def _clouds(x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, str, str]]:
    """(points, name, colour) of the data (unless it has no rows) and of the samples."""
    return [(x, "data", DATA_COLOR)] * bool(len(x)) + [(y, "samples", SAMPLE_COLOR)]


def joint_figure(x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> go.Figure:
    """D = 2: scatter and density contours of data and samples, marginal histograms on top and right."""
    fig = make_subplots(rows=2, cols=2, row_heights=[0.22, 0.78], column_widths=[0.78, 0.22], shared_xaxes=True,
                        shared_yaxes=True, horizontal_spacing=0.02, vertical_spacing=0.02)
    for pts, name, color in _clouds(x, y):
        fig.add_trace(go.Scatter(x=pts[:, 0].astype(np.float32), y=pts[:, 1].astype(np.float32), mode="markers",
                                 name=name, legendgroup=name, marker={"size": 3, "color": color}), row=2, col=1)
        fig.add_trace(go.Histogram2dContour(
            x=pts[:, 0].astype(np.float32), y=pts[:, 1].astype(np.float32), name=f"{name} density",
            legendgroup=name, showlegend=False, showscale=False, ncontours=8, histnorm="probability density",
            contours={"coloring": "none"}, line={"color": LINE_COLOR[color], "width": 1}), row=2, col=1)
    for col, (row, c, vertical) in enumerate(((1, 1, True), (2, 2, False))):
        bins = _bins(x[:, col], y[:, col])
        for pts, name, color in _clouds(x, y):
            fig.add_trace(_hist(pts[:, col], bins, name, color, vertical=vertical, showlegend=False), row=row, col=c)
    lims = panels.limits([x, y], pad=0.05)  # robust: a few far-out samples of a poor model do not squash the rest
    fig.update_xaxes(title_text=names[0], range=list(lims[0]), row=2, col=1)
    fig.update_yaxes(title_text=names[1], range=list(lims[1]), row=2, col=1)
    fig.update_layout(barmode="overlay", height=620, legend={"orientation": "h", "y": 1.06},
                      margin={"t": 50, "b": 40})
    return fig


def pairs_figure(x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> go.Figure:
    """D > 2: scatter matrix of the first :data:`MAX_PAIRS` columns, data and samples overlaid."""
    k = min(x.shape[1], MAX_PAIRS)
    fig = go.Figure([go.Splom(dimensions=[{"label": names[j], "values": pts[:, j].astype(np.float32)}
                                          for j in range(k)],
                              name=name, marker={"size": 2.5, "color": color}, diagonal={"visible": False},
                              showupperhalf=False)
                     for pts, name, color in _clouds(x, y)])
    lims = panels.limits([x[:, :k], y[:, :k]], pad=0.05)
    axes = {f"{a}axis{j + 1 if j else ''}": {"range": list(lims[j])} for j in range(k) for a in "xy"}
    fig.update_layout(height=180 * k + 80, legend={"orientation": "h", "y": 1.04}, margin={"t": 50, "b": 40}, **axes)
    return fig


def marginals_figure(x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> go.Figure:
    """The density of each of the first :data:`MAX_MARGINALS` columns: data against samples."""
    k = min(x.shape[1], MAX_MARGINALS)
    ncols = min(k, 4)
    nrows = math.ceil(k / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[names[j] for j in range(k)],
                        horizontal_spacing=0.06, vertical_spacing=0.12 if nrows > 1 else 0.1)
    for j in range(k):
        bins = _bins(x[:, j], y[:, j])
        for pts, name, color in _clouds(x, y):
            fig.add_trace(_hist(pts[:, j], bins, name, color, showlegend=j == 0), row=j // ncols + 1,
                          col=j % ncols + 1)
    fig.update_layout(barmode="overlay", height=max(320, 230 * nrows + 60), legend={"orientation": "h", "y": 1.1},
                      margin={"t": 60, "b": 30})
    return fig


def loss_figure(steps: np.ndarray, losses: np.ndarray) -> go.Figure:
    """Training loss against step: raw (faint) and its bias-corrected moving average (:func:`difflab.viz.ema`).
    Non-finite losses (a diverged run) are left out; log scale when every loss shown is positive."""
    s, v = np.asarray(steps, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    keep = np.isfinite(s) & np.isfinite(v)
    if not keep.any():
        raise DifflabError("loss: every value is NaN or inf; nothing to draw")
    s, v = s[keep], v[keep]
    fig = go.Figure([
        go.Scatter(x=s, y=v.astype(np.float32), mode="lines", name="loss", line={"width": 1, "color": "#9ecae1"}),
        go.Scatter(x=s, y=ema(v, LOSS_SMOOTHING), mode="lines", name=f"moving average ({LOSS_SMOOTHING:g})",
                   line={"width": 2.5, "color": "#1f77b4"}),
    ])
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="loss", type="log" if np.all(v > 0) else "linear")
    fig.update_layout(height=380, legend={"orientation": "h", "y": 1.1}, margin={"t": 40, "b": 40})
    return fig
