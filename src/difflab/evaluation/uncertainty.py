"""The standard error of a ratio to the noise floor, and how it is written (``4.52 ± 0.08``).

A ratio R = v̄ / f̄ divides the mean value over K repeats (generated vs true, each repeat a fresh subset of the
samples and a fresh true sample) by the mean floor over M pairs (true vs independent true). The two means come from
independent draws, so by the delta method (first-order Taylor expansion of v/f around the means)

    Var(R) ≈ (Var(v̄) + R² Var(f̄)) / f̄²,   Var(v̄) = s_v² / K,   Var(f̄) = s_f² / M,

with s_v, s_f the sample standard deviations of the per-repeat values and per-pair floors. For an accuracy-like
metric (c2st) v̄ and f̄ are first replaced by their excess over chance, clipped at the null standard deviation
(:meth:`difflab.evaluation.metrics.Metric.excess`); the same formula applies to the excesses. The simulation test
(tests/evaluation/test_uncertainty.py) checks the formula against the spread of R over independent evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error s / √m (NaN for fewer than 2 values)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(v.mean()), se


def ratio_se(value_excess: float, value_se: float, floor_excess: float, floor_se: float) -> tuple[float, float]:
    """(R, se of R) for R = value_excess / floor_excess of two independent means, by the delta method.

    A floor excess of 0 (two identical true samples) gives R = 1 for a zero value, else ∞, and an se of NaN."""
    if floor_excess <= 0.0:
        return (1.0 if value_excess <= 0.0 else math.inf), math.nan
    r = value_excess / floor_excess
    return r, math.sqrt(value_se**2 + r**2 * floor_se**2) / floor_excess


def relative_se(r: float, se: float) -> float:
    """se / R (∞ where R is 0, NaN where se is)."""
    if math.isnan(se):
        return math.nan
    return se / abs(r) if r != 0 else math.inf


def digits_for(se: float) -> int:
    """Decimals that show the first significant digit of ``se``: at least 2, at most 6."""
    if not math.isfinite(se) or se <= 0:
        return 2
    return int(min(6, max(2, -math.floor(math.log10(se)))))


def format_ratio(r: float, se: float | None, *, suffix: str = "") -> str:
    """``4.52 ± 0.08`` (the se to its first significant digit, at least 2 decimals, the ratio to the same
    decimals); ``4.52 ± ?`` where
    the se is unknown (one repeat); ``inf`` / ``nan`` as they are."""
    if r is None or not math.isfinite(r):
        return f"{r}{suffix}"
    if se is None or not math.isfinite(se):
        return f"{r:.2f}{suffix} ± ?"
    d = digits_for(se)
    return f"{r:.{d}f}{suffix} ± {se:.{d}f}"
