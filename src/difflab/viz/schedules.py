"""Variance schedules (tutorial Fig. 5): β_t and 1 − ᾱ_t against t / T, and on a log-SNR axis, where a schedule's
whole course is visible instead of most of the axis sitting where 1 − ᾱ ≈ 1.

Notation follows Ho et al. (2020): abar_t = prod_{s<=t} (1 - beta_s); λ_t = log ᾱ_t − log(1 − ᾱ_t) (Kingma et al.
2021).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from difflab.errors import DifflabError
from difflab.viz.style import figure, save, styled


def schedule_curves(betas: object, name: str = "betas") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t / T, beta_t, 1 - abar_t) for t = 0..T from betas of length T + 1 with beta_0 = 0."""
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 1 or len(b) < 2:
        raise DifflabError(f"schedule {name!r}: expected betas of length T + 1 >= 2, got shape {b.shape}")
    if b[0] != 0 or not (np.all(np.isfinite(b)) and np.all(b[1:] > 0) and np.all(b < 1)):
        raise DifflabError(f"schedule {name!r}: expected beta_0 = 0 and 0 < beta_t < 1 for t >= 1")
    return np.arange(len(b)) / (len(b) - 1), b, 1.0 - np.cumprod(1.0 - b)


def plot_schedules(schedules: Mapping[str, object], path: str | os.PathLike[str]) -> Path:
    """Variance schedules (tutorial Fig. 5 generalised): beta_t and 1 - abar_t against t / T, one line per
    schedule. ``schedules`` maps a name to betas of length T + 1 with beta_0 = 0 (T may differ)."""
    if not schedules:
        raise DifflabError("schedules: expected at least one schedule")
    curves = {name: schedule_curves(betas, name) for name, betas in schedules.items()}
    with styled():
        fig, axes = figure(1, 2, size=(9.0, 4.0))
        for name, (u, b, var) in curves.items():
            marker = "o" if len(u) <= 31 else None
            axes[0, 0].plot(u[1:], b[1:], marker=marker, markersize=3.5, label=name)
            axes[0, 1].plot(u, var, marker=marker, markersize=3.5, label=name)
        for ax, ylabel in zip(axes[0], (r"$\beta_t$", r"$1 - \bar{\alpha}_t$"), strict=True):
            ax.set_xlabel("$t\\,/\\,T$")
            ax.set_ylabel(ylabel)
            ax.set_xlim(0, 1.02)
            ax.set_ylim(bottom=0)
        axes[0, 0].set_title("noise added per step")
        axes[0, 1].set_title("total noise variance")
        axes[0, 1].legend(loc="lower right")
        return save(fig, path)


def plot_log_snr(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike[str],
    *,
    highlight: str | None = None,
    marks: Sequence[tuple[float, float, str]] = (),
    steps: tuple[np.ndarray, str] | None = None,
) -> Path:
    """Schedules on a log-SNR axis: λ(t) = log ᾱ_t − log(1 − ᾱ_t) against t / t_max (left), and where a sampler's
    steps fall in λ (right: λ at each of its times, in the order it visits them). ``curves`` maps a name to
    (u = t / t_max, λ) with finite λ; ``highlight`` names the run's own curve (drawn thick, black); ``marks`` are
    (u, λ, label) points on it, such as the figures' chosen noise levels; ``steps`` = (λ of each sampler time,
    its description)."""
    if not curves:
        raise DifflabError("curves: expected at least one schedule")
    for name, (u, lam) in curves.items():
        u, lam = np.asarray(u, dtype=np.float64), np.asarray(lam, dtype=np.float64)
        if u.shape != lam.shape or u.ndim != 1 or len(u) < 2 or not np.isfinite(lam).all():
            raise DifflabError(f"schedule {name!r}: expected matching vectors of times and finite log-SNRs")
    with styled():
        fig, axes = figure(1, 2 if steps is not None else 1, size=(10.0 if steps is not None else 5.5, 4.4))
        left = axes[0, 0]
        for name, (u, lam) in curves.items():
            own = name == highlight
            style = {"color": "black", "linewidth": 2.4, "zorder": 3} if own else {"linewidth": 1.2, "alpha": 0.8}
            left.plot(u, lam, marker="o" if len(u) <= 31 else None, markersize=3, label=name, **style)
        for u, lam, label in marks:
            left.plot([u], [lam], "o", color="C3", markersize=6, zorder=4)
            left.annotate(label, (u, lam), textcoords="offset points", xytext=(6, 4), fontsize=8, color="C3")
        left.axhline(0.0, color="0.6", linewidth=0.8, linestyle=":")
        left.set(xlabel="$t\\,/\\,t_{max}$", ylabel=r"log-SNR $\lambda_t$", title="log-SNR over time")
        left.legend(loc="lower left", fontsize=8)
        if steps is not None:
            lam, label = np.asarray(steps[0], dtype=np.float64), steps[1]
            right = axes[0, 1]
            right.plot(np.arange(len(lam)), lam, "o-", color="black", markersize=3, linewidth=1)
            for _, level, text in marks:
                right.axhline(level, color="C3", linewidth=0.8, linestyle="--")
                right.annotate(text, (0, level), textcoords="offset points", xytext=(2, 3), fontsize=8, color="C3")
            right.set(xlabel="sampling step", ylabel=r"log-SNR $\lambda$ of the state it leaves",
                      title=f"where the steps go: {label}")
        return save(fig, path)
