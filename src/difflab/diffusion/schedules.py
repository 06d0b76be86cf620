"""Noise schedules β_t, t = 0..T, in float64.

Index convention (the tutorial's): t = 0 is clean data, so every schedule has β_0 = 0 and ᾱ_0 = 1, and the noisy
steps are t = 1..T. A schedule is a function ``(T, **options) -> betas`` returning a float64 array of length T + 1,
registered under the name users type.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from difflab.errors import ConfigError

ScheduleFn = Callable[..., np.ndarray]
SCHEDULES: dict[str, ScheduleFn] = {}
DESCRIPTIONS: dict[str, str] = {}

# Clip for schedules defined through ᾱ(t): β_t = 1 keeps ᾱ_T = 0 but makes 1/√α_t infinite in the ε-form mean.
MAX_BETA = 0.999
# Sampling starts from N(0, I); above this ᾱ_T the start distribution is measurably off (Lin et al. 2023).
ALPHA_BAR_T_WARN = 1e-2


def register(name: str, description: str) -> Callable[[ScheduleFn], ScheduleFn]:
    def deco(fn: ScheduleFn) -> ScheduleFn:
        SCHEDULES[name] = fn
        DESCRIPTIONS[name] = description
        return fn

    return deco


def _with_zero(betas_1_to_T: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.asarray(betas_1_to_T, dtype=np.float64)])


def _betas_from_alpha_bar(alpha_bar: np.ndarray) -> np.ndarray:
    """β_t = 1 − ᾱ_t / ᾱ_{t−1} for t = 1..T, clipped to MAX_BETA (Nichol & Dhariwal 2021, §3.2)."""
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return _with_zero(np.clip(betas, 0.0, MAX_BETA))


@register("seed-linear", "β_t = linspace(0, 0.99, T+1): the tutorial's first, linear schedule")
def seed_linear(T: int) -> np.ndarray:
    return np.linspace(0.0, 0.99, T + 1, dtype=np.float64)


@register("poly", "β_t = linspace(0, 0.99, T+1)^p, p = 4: the tutorial's schedule (small β near t = 0)")
def poly(T: int, power: float = 4.0) -> np.ndarray:
    return np.linspace(0.0, 0.99, T + 1, dtype=np.float64) ** power


@register("linear", "Ho et al. 2020: β from 1e-4 to 0.02 over T=1000, rescaled by 1000/T for other T")
def linear(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    scale = 1000.0 / T
    return _with_zero(np.clip(np.linspace(beta_start * scale, beta_end * scale, T), 0.0, MAX_BETA))


@register("cosine", "Nichol & Dhariwal 2021: ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2), s = 0.008")
def cosine(T: int, s: float = 0.008) -> np.ndarray:
    u = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2
    return _betas_from_alpha_bar(f / f[0])


@register("sigmoid", "Jabri et al. 2022 / Chen 2023: ᾱ(t) from a sigmoid over [start, end] with temperature τ")
def sigmoid(T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> np.ndarray:
    def sig(z: np.ndarray | float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))

    u = np.arange(T + 1, dtype=np.float64) / T
    v_start, v_end = sig(start / tau), sig(end / tau)
    alpha_bar = (v_end - sig((u * (end - start) + start) / tau)) / (v_end - v_start)
    return _betas_from_alpha_bar(np.clip(alpha_bar, 1e-12, 1.0))


def from_array(values: Sequence[float]) -> np.ndarray:
    """A user schedule: β_1..β_T (length T) or β_0..β_T (length T + 1 with β_0 = 0)."""
    b = np.asarray(values, dtype=np.float64).ravel()
    if b.size >= 2 and b[0] == 0.0:
        b = b[1:]
    if b.size < 1:
        raise ConfigError("schedule array: needs at least one β value")
    if not np.all(np.isfinite(b)) or np.any(b <= 0.0) or np.any(b >= 1.0):
        raise ConfigError("schedule array: every β_t for t = 1..T must lie in (0, 1)")
    return _with_zero(b)


@dataclass(frozen=True)
class Schedule:
    """A named schedule with its derived quantities, all float64 arrays of length T + 1.

    ``alphas[t] = 1 − β_t`` and ``alpha_bars[t] = ∏_{s≤t} α_s`` (Ho et al. 2020, eq. 4), so ``alpha_bars[0] = 1``.
    """

    name: str
    betas: np.ndarray

    @property
    def T(self) -> int:
        return len(self.betas) - 1

    @property
    def alphas(self) -> np.ndarray:
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> np.ndarray:
        return np.cumprod(self.alphas)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "T": self.T, "betas": self.betas.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Schedule:
        betas = np.asarray(d["betas"], dtype=np.float64)
        return cls(name=str(d.get("name", "array")), betas=betas)


def zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Rescale a schedule so that ᾱ_T = 0 (Lin et al. 2023, Alg. 1): √ᾱ_t ← (√ᾱ_t − √ᾱ_T) √ᾱ_1 / (√ᾱ_1 − √ᾱ_T) for
    t = 1..T, which keeps ᾱ_1 and makes β_T = 1. Sampling then starts from exactly the distribution it assumes,
    N(0, I); only x_0- or v-prediction can use it (ε̂ says nothing about x_0 where ᾱ_T = 0)."""
    a = np.sqrt(np.cumprod(1.0 - betas))  # a[0] = 1
    if len(a) < 3:
        raise ConfigError("zero terminal SNR needs T >= 2 (it keeps ᾱ_1 and sets ᾱ_T = 0)")
    a_new = a.copy()
    a_new[1:] = (a[1:] - a[-1]) * a[1] / (a[1] - a[-1])
    ab = a_new**2
    with np.errstate(divide="ignore", invalid="ignore"):
        b = 1.0 - ab[1:] / ab[:-1]
    return _with_zero(np.clip(b, 0.0, 1.0))


def make_schedule(
    name: str,
    T: int,
    *,
    betas: Sequence[float] | None = None,
    warn: bool = True,
    zero_snr: bool = False,
    **options: float,
) -> Schedule:
    """Build the schedule ``name`` with T noisy steps (``name="array"`` takes ``betas``); ``zero_snr`` rescales it
    to ᾱ_T = 0 (:func:`zero_terminal_snr`).

    Warns when ᾱ_T > 1e-2, because sampling starts from N(0, I) and the model never saw such x_T.
    """
    if name == "array":
        if betas is None:
            raise ConfigError("schedule 'array' needs a list of betas")
        b = from_array(betas)
    else:
        if name not in SCHEDULES:
            raise ConfigError(f"unknown schedule '{name}'; choose one of: {', '.join([*SCHEDULES, 'array'])}")
        if T < 1:
            raise ConfigError(f"T must be at least 1, got {T}")
        try:
            b = SCHEDULES[name](T, **options)
        except TypeError as e:
            raise ConfigError(f"schedule '{name}': bad options {options} ({e})") from None
    if zero_snr:
        b = zero_terminal_snr(b)
    alpha_bar_T = float(np.prod(1.0 - b))
    if warn and alpha_bar_T > ALPHA_BAR_T_WARN:
        warnings.warn(
            f"schedule '{name}' with T={len(b) - 1} ends at ᾱ_T = {alpha_bar_T:.3g} > {ALPHA_BAR_T_WARN}: "
            "x_T is not close to N(0, I), where sampling starts",
            stacklevel=2,
        )
    return Schedule(name=name, betas=b)
