"""Ancestral (DDPM) and DDIM sampling. A jump goes from time t to the next grid time s < t; with ᾱ_{t|s} = ᾱ_t / ᾱ_s
it uses the exact marginals of the forward process, so skipping steps needs no retraining (Song et al. 2021, §4.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from difflab.diffusion.parameterization import DenoiseFn, Prediction
from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError
from difflab.sampling.registry import Callback, noise_like, register

VARIANCES = ("small", "large", "learned")


def reverse_log_variance(pred: Prediction, beta_ts: float, posterior_var: float, variance: str) -> Tensor | float:
    """log σ² of the reverse jump: β̃ (``small``), β_{t|s} (``large``) or the network's interpolation
    v log β_{t|s} + (1 − v) log β̃ (``learned``; Nichol & Dhariwal 2021, eq. 15, with the jump's own β and β̃ as
    their §4 does for strided sampling)."""
    if variance == "small":
        return math.log(posterior_var)
    if variance == "large":
        return math.log(beta_ts)
    if pred.v is None:
        raise ConfigError("reverse variance 'learned' needs a model trained with variance = 'learned-range'")
    return pred.v * math.log(beta_ts) + (1.0 - pred.v) * math.log(posterior_var)


@register("ddpm", "ancestral sampling from p(x_s | x_t) (Ho et al. 2020, Alg. 2; the tutorial's sampler)")
@torch.no_grad()
def sample_ddpm(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    variance: str | None = None,
) -> Tensor:
    """Ancestral sampling, Ho et al. 2020 Alg. 2, generalised to jumps t → s.

    Mean: μ = (x_t − β_{t|s} / √(1 − ᾱ_t) · ε̂) / √α_{t|s} with α_{t|s} = ᾱ_t/ᾱ_s, β_{t|s} = 1 − α_{t|s}; for s = t − 1
    this is the tutorial's (x_t − (1 − α_t)/√(1 − ᾱ_t) ε̂)/√α_t. Where α_{t|s} = 0 (zero terminal SNR) the same mean
    is taken in its x_0-form √ᾱ_s x̂_0. Variance ``small`` is the posterior's β̃ = (1 − ᾱ_s)/(1 − ᾱ_t) β_{t|s} (the
    tutorial's σ_t²), ``large`` is β_{t|s}, ``learned`` the network's (default when it has one, else small); the
    last jump (s = 0) adds no noise, as the tutorial's σ_1 = 0.
    """
    if variance is not None and variance not in VARIANCES:
        raise ConfigError(f"unknown reverse variance '{variance}'; choose one of: {', '.join(VARIANCES)}")
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
        ab_t, ab_s = diffusion.alpha_bar(t), diffusion.alpha_bar(s)
        alpha_ts = diffusion.alpha_bar_ratio(t, s)
        beta_ts = 1.0 - alpha_ts
        pred = denoise(x, t)
        if alpha_ts > 0:
            x = (x - (beta_ts / math.sqrt(1.0 - ab_t)) * pred.eps) / math.sqrt(alpha_ts)
        else:
            x = math.sqrt(ab_s) * pred.x0
        if s > 0:
            var = beta_ts * (1.0 - ab_s) / (1.0 - ab_t)
            v = variance or ("learned" if pred.v is not None else "small")
            if v == "small":  # the tutorial's arithmetic, kept as it is
                x = x + math.sqrt(var) * noise_like(x, generator)
            else:
                log_var = reverse_log_variance(pred, beta_ts, var, v)
                scale = math.exp(0.5 * log_var) if isinstance(log_var, float) else torch.exp(0.5 * log_var)
                x = x + scale * noise_like(x, generator)
        if callback is not None:
            callback(i, s, x)
    return x


def ddim_step(diffusion: Process, x: Tensor, t: Time, s: Time, pred: Prediction, sigma: float = 0.0) -> Tensor:
    """DDIM's x_s before its noise: √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ (Song et al. 2021, eq. 12), √ᾱ_s x̂_0 taken as
    (x_t − √(1 − ᾱ_t) ε̂) / √(ᾱ_t/ᾱ_s) where ᾱ_t > 0 (see :func:`sample_ddim`)."""
    ab_t, ab_s = diffusion.alpha_bar(t), diffusion.alpha_bar(s)
    ratio = diffusion.alpha_bar_ratio(t, s)
    signal = (x - math.sqrt(1.0 - ab_t) * pred.eps) / math.sqrt(ratio) if ratio > 0 else math.sqrt(ab_s) * pred.x0
    return signal + math.sqrt(max(1.0 - ab_s - sigma**2, 0.0)) * pred.eps


@register("ddim", "DDIM (Song et al. 2021, eq. 12): η = 0 deterministic, η = 1 matches ddpm")
@torch.no_grad()
def sample_ddim(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    eta: float = 0.0,
) -> Tensor:
    """x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ + σ z, σ = η √((1 − ᾱ_s)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_s) (Song et al. 2021, eq. 12, 16).

    √ᾱ_s x̂_0 is computed as (x_t − √(1 − ᾱ_t) ε̂) / √(ᾱ_t/ᾱ_s): the same number, without x̂_0's division by √ᾱ_t,
    which overflows where ᾱ_t underflows (seed-linear at T = 1000); where ᾱ_t = 0 exactly (zero terminal SNR) x̂_0
    is used as it is."""
    if eta < 0:
        raise ConfigError(f"DDIM eta must be >= 0, got {eta}")
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
        ab_t, ab_s = diffusion.alpha_bar(t), diffusion.alpha_bar(s)
        pred = denoise(x, t)
        sigma = eta * math.sqrt((1.0 - ab_s) / (1.0 - ab_t) * (1.0 - diffusion.alpha_bar_ratio(t, s)))
        x = ddim_step(diffusion, x, t, s, pred, sigma)
        if sigma > 0:
            x = x + sigma * noise_like(x, generator)
        if callback is not None:
            callback(i, s, x)
    return x
