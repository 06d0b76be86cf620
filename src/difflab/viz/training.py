"""The training-loss curve: raw loss faint, an exponential moving average bold, log-scale y."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter

from difflab.errors import DifflabError
from difflab.viz.style import figure, save, styled


def ema(values: object, weight: float) -> np.ndarray:
    """Bias-corrected exponential moving average: s_k = w s_{k-1} + (1 - w) v_k, s_0 = 0, reported as
    s_k / (1 - w^k) so the start is not pulled toward zero (the same correction as Adam's moments)."""
    v = np.asarray(values, dtype=np.float64)
    if not 0.0 <= weight < 1.0:
        raise DifflabError(f"smooth: expected a weight in [0, 1), got {weight}")
    out = np.empty_like(v)
    s = 0.0
    for k, x in enumerate(v, start=1):
        s = weight * s + (1.0 - weight) * x
        out[k - 1] = s / (1.0 - weight**k)
    return out


def _minor_label(y: float, narrow: bool) -> str:
    lead = round(y / 10 ** np.floor(np.log10(y)), 6) if y > 0 else 0
    return f"{y:g}" if narrow and lead in (2, 3, 5) else ""


def plot_loss(
    steps: object,
    losses: object,
    path: str | os.PathLike[str],
    *,
    smooth: float = 0.98,
    title: str | None = None,
) -> Path:
    """Loss against training step: the raw values faint, their :func:`ema` with weight ``smooth`` bold.

    Non-finite losses (a diverged run) are left out and counted in the legend; the y axis is logarithmic
    when every loss shown is positive.
    """
    s = np.asarray(steps, dtype=np.float64).ravel()
    v = np.asarray(losses, dtype=np.float64).ravel()
    if len(s) != len(v) or len(v) == 0:
        raise DifflabError(f"losses: expected one value per step (>= 1), got {len(v)} values, {len(s)} steps")
    keep = np.isfinite(v) & np.isfinite(s)
    if not keep.any():
        raise DifflabError("losses: every value is NaN or inf; nothing to plot")
    smoothed = ema(v[keep], smooth)
    dropped = int((~keep).sum())
    with styled():
        fig, axes = figure(1, 1, size=(6.0, 4.0))
        ax = axes[0, 0]
        ax.plot(s[keep], v[keep], color="C0", alpha=0.3, linewidth=0.8,
                label="loss" + (f" ({dropped} non-finite not shown)" if dropped else ""))
        ax.plot(s[keep], smoothed, color="C0", linewidth=2.0, label=f"moving average ({smooth:g})")
        if np.all(v[keep] > 0):
            ax.set_yscale("log")
            # Plain numbers (0.3, 2) read better on a slide than 3 x 10^-1; minor ticks 2, 3, 5 x 10^k get a
            # label only when the axis spans under two decades, where major ticks alone would be too few.
            shown = v[keep]
            narrow = np.log10(shown.max() / shown.min()) < 2
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: _minor_label(y, narrow)))
        ax.set_xlabel("training step")
        ax.set_ylabel("loss")
        ax.legend(loc="upper right")
        if title:
            ax.set_title(title)
        return save(fig, path)
