"""Figures of point sets: the data (tutorial Fig. 1) and samples next to the data (tutorial Fig. 3).

Style after the tutorial: a filled kernel density (half Scott's bandwidth, as its ``bw_adjust=0.5``) with a
scatter of the first 100 points on top, axes [-1.5, 1.5] for data scaled to [-1, 1], equal aspect.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from difflab.errors import DataError
from difflab.viz import panels
from difflab.viz.style import figure, save, styled


def _prepare(x: object, name: str, max_points: int) -> tuple[np.ndarray, int, int]:
    """Finite rows of ``x`` (subsampled to ``max_points``), the width D and how many rows were not finite."""
    a = panels.as_points(x, name)
    finite, dropped = panels.finite_rows(a)
    if len(finite) == 0:
        raise DataError(f"{name}: all {len(a)} rows contain NaN or inf; nothing to plot")
    return panels.subsample(finite, max_points), a.shape[1], dropped


def _dropped_note(dropped: int) -> str:
    return f"\n({dropped} non-finite rows not shown)" if dropped else ""


def plot_data(
    x: object,
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    max_points: int = 1000,
) -> Path:
    """Plot a data set: density from up to ``max_points`` rows, scatter of the first 100 of them.

    D = 1: histogram with a density line; D = 2: one scatter panel; D > 2: one panel per pair of the first
    4 columns. Returns ``path``.
    """
    if max_points < 1:
        raise DataError(f"max_points: expected a positive number, got {max_points}")
    pts, d, dropped = _prepare(x, "data", max_points)
    names = panels.column_names(d, columns)
    lims = panels.limits([pts])
    cells = panels.panel_columns(d)
    ncols = min(3, len(cells))
    nrows = -(-len(cells) // ncols)
    with styled():
        fig, axes = figure(nrows, ncols, size=(4.0 * ncols, 4.0 * nrows + (0.4 if title else 0)))
        for ax, cols in zip(axes.flat, cells, strict=False):
            panels.draw_points(ax, pts, cols, lims, names, role="data")
        for ax in axes.flat[len(cells) :]:
            ax.set_visible(False)
        text = (title or "") + panels.column_note(d) + _dropped_note(dropped)
        if text:
            fig.suptitle(text.strip())
        return save(fig, path)


def plot_samples(
    samples: object,
    data: object,
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    labels: tuple[str, str] = ("data", "samples"),
) -> Path:
    """Data and samples side by side with the same axes (tutorial Fig. 3).

    D <= 2: two panels in a row; D > 2: two rows (data, samples), one column per pair of the first 4 columns.
    Returns ``path``.
    """
    data_pts, d, data_dropped = _prepare(data, "data", 1000)
    sample_pts, ds, dropped = _prepare(samples, "samples", 1000)
    if ds != d:
        raise DataError(f"samples: expected width D={d} like the data, got D={ds}")
    names = panels.column_names(d, columns)
    lims = panels.limits([data_pts, sample_pts])
    cells = panels.panel_columns(d)
    sets = [(data_pts, "data", labels[0], data_dropped), (sample_pts, "samples", labels[1], dropped)]
    with styled():
        if len(cells) == 1:
            fig, axes = figure(1, 2, size=(8.0, 4.4 + (0.4 if title else 0)))
            for ax, (pts, role, label, n_bad) in zip(axes.flat, sets, strict=True):
                panels.draw_points(ax, pts, cells[0], lims, names, role=role)
                ax.set_title(label + _dropped_note(n_bad))
        else:
            fig = _pair_rows(sets, cells, lims, names)
        text = (title or "") + panels.column_note(d)
        if text:
            fig.suptitle(text.strip())
        return save(fig, path)


def _pair_rows(sets: list, cells: list[tuple[int, ...]], lims: np.ndarray, names: list[str]) -> Figure:
    """One row of pair panels per point set, each row titled with its label."""
    n = len(cells)
    fig = Figure(figsize=(3.2 * n, 7.0), layout="constrained")
    for sub, (pts, role, label, n_bad) in zip(fig.subfigures(2, 1), sets, strict=True):
        axes = sub.subplots(1, n, squeeze=False)[0]
        for ax, cols in zip(axes, cells, strict=True):
            panels.draw_points(ax, pts, cols, lims, names, role=role)
        sub.suptitle(label + _dropped_note(n_bad).replace("\n", " "))
    return fig
