"""Continuous-time schedules: log ᾱ(t) for t ∈ (0, 1], each registered under the name users type.

Time t = 0 is clean data (ᾱ = 1) and t = 1 the most noise, as with the discrete steps 0..T. A schedule is a function
``(t, **options) -> log ᾱ(t)`` on a float64 tensor (torch, so that training on a GPU computes it there), with the smallest time ``t_min`` at which a sampler evaluates the
network (the last jump goes from t_min to 0, where it returns the denoised point). Everything else follows from
log ᾱ: the log signal-to-noise ratio λ = log ᾱ − log(1 − ᾱ) (Kingma et al. 2021), the variance-exploding noise level
σ = √((1 − ᾱ)/ᾱ) = e^{−λ/2} (Karras et al. 2022, whose x = x_0 + σ ε is ours divided by √ᾱ), and the coefficients
of :class:`difflab.diffusion.process.ContinuousDiffusion`.

The network of a continuous-time run is conditioned on the noise level, not on t: c_noise = ¼ ln σ = −λ/8 (Karras
et al. 2022, Table 1), so a run can be sampled on any grid of any schedule's times. :func:`c_noise` clamps λ to
±:data:`LOGSNR_NET_CLAMP` first, so that t = 1 of a schedule with ᾱ(1) = 0 (zero terminal SNR, the straight path)
gives the network a finite code; training and sampling both call it.

A schedule also names its *path*, the scale of x_t: ``vp`` (variance preserving, x_t = √ᾱ x_0 + √(1 − ᾱ) ε) or
``straight`` (x_t = α x_0 + σ ε with α + σ = 1: the rectified flow of Liu et al. 2022 and the conditional OT path of
Lipman et al. 2023, x_t = (1 − t) x_0 + t ε). Paths with the same log-SNR differ only by a factor per time, so
samplers work in the vp scale and the network sees the path's own x_t (:mod:`difflab.diffusion.process`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from difflab.errors import ConfigError

LogAlphaBarFn = Callable[..., Tensor]


@dataclass(frozen=True)
class ContinuousSchedule:
    """A continuous schedule: ``log_alpha_bar(t)`` for t ∈ (0, 1] (float64), ``t_min`` and a description."""

    name: str
    description: str
    fn: LogAlphaBarFn
    t_min: float
    defaults: dict[str, float] = field(default_factory=dict)
    path: str = "vp"


CONTINUOUS: dict[str, ContinuousSchedule] = {}
# λ is clamped to ±30 before it becomes the network's noise code: far outside what any schedule's t_min (λ ≤ 14) or
# EDM's log-normal training draws (|λ| > 30 is 12 standard deviations away) reach, so no trained value changes,
# while λ = −∞ at t = 1 of a zero-terminal-SNR schedule gives c_noise = 3.75 instead of +∞ (NaN in the embedding).
LOGSNR_NET_CLAMP = 30.0
# EDM's σ_max = 80 as a log-SNR, −2 ln 80 = −8.76: where grids uniform in λ or σ start when λ(t_max) = −∞, and the
# floor of the straight path's noise code. On that path t = 1 is λ = −∞, which the ±30 clamp made a code (3.75) that
# training times almost never give (logit-normal: t = 0.99 is a code of 1.15, drawn about once in 500 000 rows), so
# the one call of a 1-call sample was an extrapolation; one Euler step from pure noise taken at t = 0.95 instead drew
# 3-7.5x closer on every coupled or reflowed straight-path run (benchmarks/RESULTS.md, section 16). With the floor,
# t ∈ [0.9877, 1] share one code, which nearby training times reach.
LOGSNR_FLOOR = -2.0 * math.log(80.0)
NET_LOGSNR_MIN = {"vp": -LOGSNR_NET_CLAMP, "straight": LOGSNR_FLOOR}  # the smallest λ of the network code, by path


def c_noise(lam: Tensor, path: str = "vp") -> Tensor:
    """The network's noise code −λ/8 = ¼ ln σ_VE (Karras et al. 2022, Table 1) of log-SNRs λ, λ clamped to
    [NET_LOGSNR_MIN[path], LOGSNR_NET_CLAMP] (float32)."""
    return (-lam.clamp(NET_LOGSNR_MIN[path], LOGSNR_NET_CLAMP) / 8.0).to(torch.float32)


def _register(name: str, description: str, t_min: float, path: str = "vp",
              **defaults: float) -> Callable[[LogAlphaBarFn], LogAlphaBarFn]:
    def deco(fn: LogAlphaBarFn) -> LogAlphaBarFn:
        CONTINUOUS[name] = ContinuousSchedule(name, description, fn, t_min, defaults, path)
        return fn

    return deco


def _floor_log_snr(la: Tensor, logsnr_min: float) -> Tensor:
    """log ᾱ kept at or above that of log-SNR ``logsnr_min`` (log ᾱ = log σ(λ), the logistic sigmoid)."""
    return torch.clamp(la, min=-math.log1p(math.exp(-logsnr_min)))


@_register("linear", "VP SDE with β(t) = β_min + t (β_max − β_min), β = 0.1..20 (Song et al. 2021; Ho et al.'s linear "
           "schedule in the limit T → ∞)", t_min=1e-3, beta_min=0.1, beta_max=20.0)
def vp_linear(t: Tensor, beta_min: float = 0.1, beta_max: float = 20.0) -> Tensor:
    # log ᾱ(t) = −∫₀ᵗ β(u) du = −β_min t − ½ (β_max − β_min) t² (Song et al. 2021, eq. 33)
    return -beta_min * t - 0.5 * (beta_max - beta_min) * t**2


@_register("cosine", "ᾱ(t) = cos²((t + s)/(1 + s) · π/2) / cos²(s/(1 + s) · π/2), s = 0.008 (Nichol & Dhariwal 2021), "
           "its log-SNR kept above λ_min", t_min=1e-3, s=0.008, logsnr_min=-15.0)
def cosine(t: Tensor, s: float = 0.008, logsnr_min: float = -15.0) -> Tensor:
    la = 2.0 * torch.log(torch.cos((t + s) / (1.0 + s) * math.pi / 2.0)) - 2.0 * math.log(math.cos(s / (1.0 + s)
                                                                                                   * math.pi / 2.0))
    # ᾱ(1) = 0 exactly; keep λ ≥ logsnr_min so that ε-prediction can still recover x_0 (zero terminal SNR is its
    # own option, for x_0/v-prediction: it lifts the floor, logsnr_min = −∞)
    return _floor_log_snr(torch.nan_to_num(la, nan=-math.inf), logsnr_min)


@_register("sigmoid", "ᾱ(t) from a sigmoid over [start, end] with temperature τ (Jabri et al. 2022; Chen 2023), its "
           "log-SNR kept above λ_min", t_min=1e-3, start=-3.0, end=3.0, tau=1.0, logsnr_min=-15.0)
def sigmoid(t: Tensor, start: float = -3.0, end: float = 3.0, tau: float = 1.0, logsnr_min: float = -15.0) -> Tensor:
    sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    v_start, v_end = sig(start / tau), sig(end / tau)
    ab = (v_end - torch.sigmoid((t * (end - start) + start) / tau)) / (v_end - v_start)
    return _floor_log_snr(torch.log(ab.clamp(0.0, 1.0)), logsnr_min)


@_register("edm", "Karras et al. 2022: σ(t) = σ_max · t (EDM's σ(t) = t, time rescaled to [0, 1]), σ = 0.002..80",
           t_min=0.002 / 80.0, sigma_max=80.0)
def edm(t: Tensor, sigma_max: float = 80.0) -> Tensor:
    # x_VE = x_0 + σ ε is √(1 + σ²) x_VP, so ᾱ = 1 / (1 + σ²) (Karras et al. 2022, §2 and App. C.1)
    return -torch.log1p((sigma_max * t) ** 2)


@_register("rectified", "the straight path x_t = (1 − t) x_0 + t ε (Liu et al. 2022's rectified flow; Lipman et al. "
           "2023's conditional OT path): ᾱ(t) = (1 − t)² / ((1 − t)² + t²), λ = 2 ln((1 − t)/t), ᾱ(1) = 0",
           t_min=0.002, path="straight")
def rectified(t: Tensor) -> Tensor:
    # x_t/√((1 − t)² + t²) is variance preserving, with √ᾱ = (1 − t)/√((1 − t)² + t²); t_min = 0.002 is EDM's σ_min
    return 2.0 * torch.log1p(-t) - torch.log((1.0 - t) ** 2 + t**2)


def get_continuous(name: str) -> ContinuousSchedule:
    if name not in CONTINUOUS:
        raise ConfigError(f"schedule '{name}' has no continuous-time form; continuous schedules: "
                          f"{', '.join(CONTINUOUS)} (or use time = 'discrete')")
    return CONTINUOUS[name]


def check_options(name: str, options: dict[str, float]) -> dict[str, float]:
    """The schedule's options with defaults filled in; an unknown option is a one-line ConfigError."""
    sched = get_continuous(name)
    unknown = sorted(set(options) - set(sched.defaults))
    if unknown:
        allowed = ", ".join(sched.defaults) or "none"
        raise ConfigError(f"schedule '{name}': unknown option(s) {', '.join(unknown)}; allowed: {allowed}")
    return {**sched.defaults, **{k: float(v) for k, v in options.items()}}
