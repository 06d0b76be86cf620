"""Times picked by noise level, for every kind of process: the figures show where the data dissolve, not steps.

A process's time axis says little by itself: at t = 40 of 200 EDM steps the moons are long gone, at t = 2 of the
tutorial's 10 they are barely touched. What the eye sees is the noise level relative to the data: x_t / α_t =
x_0 + σ ε with σ = e^{−λ/2} (λ the log-SNR; Karras et al. 2022's σ), so the figures ask each process for the times
where σ crosses fixed multiples of the data's scale s (the root mean square of its columns' standard deviations):
0.1 s (sharp), 0.3 s (blurred), 1 s (nearly gone), and t_max (pure noise). Only ``Process.log_snr(t)``,
``Process.t_of_log_snr(λ)``, ``t_max`` and ``discrete`` are used, so a new process (a straight path, another
schedule) gets its figures with nothing added here. A discrete process takes the whole step nearest in log σ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from difflab.errors import DifflabError

FORWARD_LEVELS = (0.1, 0.3, 1.0)  # σ / s of the forward panels between the clean data and t_max
FIELD_LEVELS = (0.1, 0.3)  # the learned field where it shows the data's structure (and at t_max, where it has none)


def data_scale(x: np.ndarray) -> float:
    """The data's scale s: the root mean square of its columns' standard deviations (1 if they are all 0)."""
    sd = np.asarray(x, dtype=np.float64).std(axis=0)
    s = float(np.sqrt(np.mean(sd**2)))
    return s if s > 0 and math.isfinite(s) else 1.0


def sigma_at(process: Any, t: float) -> float:
    """σ_t = e^{−λ_t/2} (0 at t = 0, ∞ where the signal is gone)."""
    if t <= 0:
        return 0.0
    lam = process.log_snr(t)
    return math.inf if lam == -math.inf else math.exp(-0.5 * lam)


def time_at_sigma(process: Any, sigma: float) -> float:
    """The time whose σ is ``sigma`` (clamped to the process's range); for a discrete process the whole step
    nearest in log σ, as an int (what a discrete network is given)."""
    if not sigma > 0:
        raise DifflabError(f"noise level σ = {sigma}: expected a positive number")
    t = float(process.t_of_log_snr(-2.0 * math.log(sigma)))
    if not process.discrete:
        return min(t, float(process.t_max))
    steps = {min(max(1, k), int(process.t_max)) for k in (math.floor(t), math.ceil(t))}
    return min(steps, key=lambda k: abs(math.log(sigma_at(process, k)) - math.log(sigma)))


def noise_times(process: Any, levels: Sequence[float], scale: float, *, clean: bool = True,
                end: bool = True) -> list[float]:
    """Increasing, distinct times: 0 (if ``clean``), where σ = level × ``scale`` for each level, and t_max (if
    ``end``). Levels the process cannot reach, or that fall on the same step, appear once."""
    times = [0 if process.discrete else 0.0] if clean else []
    times += [time_at_sigma(process, level * scale) for level in levels]
    if end:
        times.append(process.t_max)
    out: list[float] = []
    for t in sorted(times):
        if not out or t > out[-1]:
            out.append(t)
    return out


def format_sigma(sigma: float) -> str:
    return "0" if sigma == 0 else ("∞" if math.isinf(sigma) else f"{sigma:.3g}")


def format_time(process: Any, t: float) -> str:
    return str(int(round(t))) if process.discrete or float(t).is_integer() else f"{t:.3g}"


def level_label(process: Any, t: float, *, tex: bool = False) -> str:
    """``σ = 0.15, t = 0.0019``: the noise level first, then the process's own time."""
    sig = r"$\sigma$" if tex else "σ"
    return f"{sig} = {format_sigma(sigma_at(process, t))}, t = {format_time(process, t)}"
