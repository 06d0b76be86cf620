"""difflab's figure style: a styled ``Figure`` factory and an atomic ``save``.

The tutorial (Elflein 2022) used seaborn's "ticks" style, despined axes and a LaTeX serif font. We get
the same look from matplotlib alone with an ``rc_context`` that is active only while a figure is built, so
importing difflab never changes the caller's global matplotlib state, and nothing goes through pyplot.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from difflab.io import atomic_path

#: rcParams applied while a difflab figure is created and drawn.
STYLE: dict[str, object] = {
    "font.family": "serif",
    # STIX ships with matplotlib and is the closest match to the LaTeX (Times-like) font of the tutorial.
    "font.serif": ["STIXGeneral", "DejaVu Serif"],
    "mathtext.fontset": "stix",
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.linewidth": 0.8,
    "xtick.direction": "out",
    "ytick.direction": "out",
    "xtick.major.size": 4,
    "ytick.major.size": 4,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "image.cmap": "Blues",
}

#: Default resolution for saved figures.
DPI = 120


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """Context (or decorator) under which new artists pick up :data:`STYLE`; rcParams are restored after."""
    with matplotlib.rc_context(STYLE):
        yield


def figure(
    nrows: int = 1, ncols: int = 1, size: tuple[float, float] | None = None
) -> tuple[Figure, np.ndarray]:
    """A styled figure with an ``(nrows, ncols)`` array of axes (always 2-D, even for one panel).

    ``size`` is the whole figure's (width, height) in inches; by default each panel gets 4 x 4 inches.
    Call it inside :func:`styled` so that titles and labels added later get the same font.
    """
    if size is None:
        size = (4.0 * ncols, 4.0 * nrows)
    with styled():
        fig = Figure(figsize=size, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save(fig: Figure, path: str | os.PathLike[str], dpi: int | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix: .png, .gif, .pdf); return the path.

    ``dpi`` defaults to :data:`DPI`, read at call time so one setting changes every figure.
    """
    path = Path(path)
    with styled(), atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI if dpi is None else dpi)
    return path
