"""Time grids for samplers: descending times from t_max (T, or 1) down to 0 (clean data), K jumps in all.

Every grid is a function ``(process, K) -> K times`` from t_max down to the last time the network is asked about;
:func:`make_grid` appends the 0. For a discrete process the times are whole steps 1..T (a grid that is uniform in
another variable is rounded to the nearest steps, and refused if two coincide); for a continuous one they are
numbers in [t_min, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from difflab.diffusion.continuous import LOGSNR_FLOOR
from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError

GridFn = Callable[[Process, int], np.ndarray]
GRIDS: dict[str, GridFn] = {}
DESCRIPTIONS: dict[str, str] = {}
# LOGSNR_FLOOR (diffusion/continuous.py) is where a grid that is uniform in λ or σ starts when λ(t_max) = −∞ (zero
# terminal SNR, the straight path): the first step is still t_max, the others are spaced from here, EDM's σ_max = 80
# (λ = −2 ln 80; from λ = −20,
# σ = 22 026, Karras's ramp spent most of its steps where x_t is noise: DDIM with the exact denoiser of N(0.3, 0.5²) on
# the straight path drew std 0.34 at 20 steps, against 0.44 from here).
KARRAS_RHO = 7.0  # Karras et al. 2022, eq. 5


def register(name: str, description: str) -> Callable[[GridFn], GridFn]:
    def deco(fn: GridFn) -> GridFn:
        GRIDS[name] = fn
        DESCRIPTIONS[name] = description
        return fn

    return deco


@register("trailing", "uniform in t, starting at t_max with spacing t_max/K (Lin et al. 2023, Table 2)")
def trailing(d: Process, K: int) -> np.ndarray:
    if d.discrete:
        # round(T (K − i)/K), i = 0..K−1, halves to even as np.round, in integers: a float arange with step T/K
        # sometimes picks up a K+1-th element near 1e-15 (T = 100, K = 29)
        q, r = np.divmod(d.T * (K - np.arange(K, dtype=np.int64)), K)
        return q + ((2 * r > K) | ((2 * r == K) & (q % 2 == 1)))
    return np.maximum(np.arange(K, 0, -1) / K, d.t_min)


@register("linspace", "uniform in t from t_max to t_min inclusive")
def linspace(d: Process, K: int) -> np.ndarray:
    if d.discrete:
        return np.round(np.linspace(d.T, 1, K)).astype(np.int64)
    return np.linspace(1.0, d.t_min, K)


def _from_log_snr(d: Process, lams: np.ndarray) -> np.ndarray:
    """Times for log-SNRs (first one forced to t_max), whole steps for a discrete process."""
    ts = np.array([d.t_of_log_snr(float(lam)) for lam in lams])
    ts[0] = d.t_max
    return np.round(ts).astype(np.int64) if d.discrete else ts


def lam_range(d: Process) -> tuple[float, float]:
    """(λ at t_max, λ at t_min): the log-SNR span a grid uniform in λ or σ covers (LOGSNR_FLOOR where λ(t_max) = −∞)."""
    lo = d.log_snr(d.t_max)
    return (lo if math.isfinite(lo) else LOGSNR_FLOOR), d.log_snr(d.t_min)


@register("logsnr", "uniform in log-SNR λ from λ(t_max) to λ(t_min) (Lu et al. 2022's choice for DPM-Solver)")
def logsnr(d: Process, K: int) -> np.ndarray:
    lo, hi = lam_range(d)
    return _from_log_snr(d, np.linspace(lo, hi, K))


@register("karras", "σ_i = (σ_max^{1/ρ} + i/(K−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7 (Karras et al. 2022, eq. 5)")
def karras(d: Process, K: int) -> np.ndarray:
    lo, hi = lam_range(d)
    s_max, s_min = math.exp(-lo / 2), math.exp(-hi / 2)  # σ = e^{−λ/2}
    if K == 1:
        return _from_log_snr(d, np.array([lo]))
    ramp = np.linspace(0.0, 1.0, K)
    sigmas = (s_max ** (1 / KARRAS_RHO) + ramp * (s_min ** (1 / KARRAS_RHO) - s_max ** (1 / KARRAS_RHO))) ** KARRAS_RHO
    return _from_log_snr(d, -2.0 * np.log(sigmas))


@register("karras-trailing", "Karras et al.'s ramp in K equal parts from σ_max, spaced like trailing: σ_i^{1/ρ} = "
          "σ_max^{1/ρ} + i/K (σ_min^{1/ρ} − σ_max^{1/ρ}), i = 0..K−1, ρ = 7; no call at σ_min, and each grid is every "
          "other time of the one twice as long (progressive distillation's grid)")
def karras_trailing(d: Process, K: int) -> np.ndarray:
    lo, hi = lam_range(d)
    r_max, r_min = math.exp(-lo / 2) ** (1 / KARRAS_RHO), math.exp(-hi / 2) ** (1 / KARRAS_RHO)  # σ^{1/ρ}
    r = r_max + np.arange(K) / K * (r_min - r_max)
    return _from_log_snr(d, -2.0 * KARRAS_RHO * np.log(r))  # λ = −2 ln σ


def distinct_steps(ts: np.ndarray, T: int) -> np.ndarray:
    """Whole steps from a rounded grid, made strictly decreasing from T: where rounding put two times on one step (a
    grid dense in σ near t = 0 on a short schedule) each is pushed to the next free step, up from the small end, then
    down from T. Possible whenever K ≤ T; a grid that is already strictly decreasing from T is returned unchanged."""
    ts = np.asarray(ts, dtype=np.int64).copy()
    for i in range(len(ts) - 2, -1, -1):
        ts[i] = max(ts[i], ts[i + 1] + 1)
    ts[0] = T
    for i in range(1, len(ts)):
        ts[i] = min(ts[i], ts[i - 1] - 1)
    return ts


def make_grid(d: Process, steps: int | None = None, kind: str = "trailing") -> list[Time]:
    """Times ``[t_max, ..., t_K, 0]``: K = ``steps`` model calls (default: the process's T)."""
    K = d.T if steps is None else int(steps)
    if kind not in GRIDS:
        raise ConfigError(f"unknown time grid '{kind}'; choose one of: {', '.join(GRIDS)}")
    if K < 1 or (d.discrete and K > d.T):
        bound = f"between 1 and T={d.T}" if d.discrete else "at least 1"
        raise ConfigError(f"sampling steps must be {bound}, got {K}")
    ts = GRIDS[kind](d, K)
    if d.discrete:
        ts = distinct_steps(ts, d.T)
    if len(np.unique(ts)) != K or ts[0] != d.t_max or np.any(np.diff(ts) >= 0):
        raise ConfigError(f"time grid '{kind}' with {K} steps of T={d.T} repeats steps; use another --steps or grid")
    cast = int if d.discrete else float
    return [cast(t) for t in ts] + [cast(0)]
