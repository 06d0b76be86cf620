"""An animated GIF of the reverse process: one frame per step of a trajectory, x_T (noise) to samples."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.animation import PillowWriter

from difflab.errors import DifflabError
from difflab.io import atomic_path
from difflab.viz import panels
from difflab.viz.style import figure, styled

MAX_FRAMES = 48  # 12 s at 4 frames a second: a 200-step trajectory is kept to every ~4th state (a 201-frame GIF took
# 12 s of the demo's 88 and ran 50 s)


def _frame_title(i: int, k: int) -> str:
    # Frame titles differ from frame to frame, which also keeps Pillow from merging identical frames.
    what = "noise $x_T$" if i == 0 else ("samples" if i == k else "denoising")
    return f"step {i} / {k}: {what}"


def animate_reverse(
    traj: object,
    path: str | os.PathLike[str],
    *,
    fps: int = 4,
    lim: float | None = None,
    data: object = None,
    dpi: int = 100,
    max_frames: int = MAX_FRAMES,
) -> Path:
    """Write a GIF of the states ``traj[i]`` ((K+1, n, D), traj[0] = x_T): all K+1 of them, or ``max_frames``
    evenly spaced in i (the first and the last among them) when there are more.

    D = 1: a histogram per frame; D >= 2: a scatter of the first two columns, with ``data`` (same width)
    drawn faintly behind if given. Axes stay fixed across frames: [-lim, lim] or fitted to all frames.
    """
    tr = np.asarray(traj, dtype=np.float64)
    if tr.ndim != 3 or min(tr.shape) == 0:
        raise DifflabError(f"traj: expected shape (K+1, n, D), got {tr.shape}")
    if fps <= 0:
        raise DifflabError(f"fps: expected a positive number, got {fps}")
    d = tr.shape[2]
    cols = [0] if d == 1 else [0, 1]
    tr = tr[:, :, cols]
    bg = None
    if data is not None:
        bg = panels.as_points(data, "data")
        if bg.shape[1] != d:
            raise DifflabError(f"data: expected width D={d} like the trajectory, got D={bg.shape[1]}")
        bg = panels.finite_rows(panels.subsample(bg[:, cols], 2000))[0]
    if lim is not None:
        lims = np.tile([-float(lim), float(lim)], (len(cols), 1))
    else:
        lims = panels.limits([f for f in tr] + ([bg] if bg is not None and len(bg) else []), pad=0.08)
    k = len(tr) - 1
    shown = np.unique(np.round(np.linspace(0, k, min(k + 1, max(2, max_frames)))).astype(int))
    with styled():
        fig, axes = figure(1, 1, size=(4.5, 4.7))
        ax = axes[0, 0]
        draw = _draw_1d(ax, tr, lims[0], bg) if d == 1 else _draw_2d(ax, tr, lims, bg)
        with atomic_path(path) as tmp:
            # setup/finish by hand rather than ``writer.saving``: that one also finishes after an error, and a
            # failure there would hide the original one.
            writer = PillowWriter(fps=fps)
            writer.setup(fig, tmp, dpi)
            for i in shown:
                draw(i)
                ax.set_title(_frame_title(i, k))
                writer.grab_frame()
                if i == 0:  # the layout of the first frame holds for all (only points and title change): half the
                    fig.set_layout_engine("none")  # time of a frame went to recomputing it (T = 200: 201 frames)
            writer.finish()
    return Path(path)


def _draw_2d(ax, tr: np.ndarray, lims: np.ndarray, bg: np.ndarray | None):
    xlim, ylim = panels.pair_limits(lims, (0, 1))
    if bg is not None:
        ax.scatter(bg[:, 0], bg[:, 1], s=5, color="0.82", linewidths=0, zorder=1)
    pts = ax.scatter(tr[0, :, 0], tr[0, :, 1], s=8, color="C0", linewidths=0, zorder=2)
    panels.set_pair_axes(ax, xlim, ylim, *panels.column_names(2, None))

    def draw(i: int) -> None:
        pts.set_offsets(tr[i])

    return draw


def _draw_1d(ax, tr: np.ndarray, lim: np.ndarray, bg: np.ndarray | None):
    bins = np.linspace(lim[0], lim[1], 41)
    width = bins[1] - bins[0]
    heights = [np.histogram(f[np.isfinite(f[:, 0]), 0], bins=bins)[0] / max(1, len(f)) / width for f in tr]
    if bg is not None:
        ax.hist(bg[:, 0], bins=bins, density=True, color="0.8", linewidth=0)
    bars = ax.bar(bins[:-1], heights[0], width=width, align="edge", color="C0", alpha=0.7, linewidth=0)
    top = max(float(np.max(heights)), ax.get_ylim()[1])
    ax.set_xlim(*lim)
    ax.set_ylim(0, 1.05 * top)
    ax.set_box_aspect(1)
    ax.set_xlabel("$x$")
    ax.set_ylabel("density")

    def draw(i: int) -> None:
        for bar, h in zip(bars, heights[i], strict=True):
            bar.set_height(h)

    return draw
