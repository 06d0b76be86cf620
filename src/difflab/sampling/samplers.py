"""Samplers, all with one signature (after k-diffusion's sampling.py).

``sampler(denoise, x, diffusion, ts, *, generator=None, callback=None, **options) -> x_0``

- ``denoise(x_t, t) -> Prediction(eps, x0)``: a trained network or an oracle (see ``difflab.diffusion``).
- ``x``: the start x_T, shape (B, D), usually N(0, I).
- ``ts``: descending integer steps ``[T, ..., 0]`` from :func:`difflab.sampling.grids.make_grid`.
- ``callback(i, t, x)`` is called with the state after each jump (i = 1..K), e.g. to keep a trajectory.

A jump goes from step t to the next grid step s < t; with ᾱ_{t|s} = ᾱ_t / ᾱ_s it uses the exact marginals of the
forward process, so skipping steps needs no retraining (Song et al. 2021, §4.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from difflab.diffusion.parameterization import DenoiseFn
from difflab.diffusion.process import GaussianDiffusion
from difflab.errors import ConfigError

Callback = Callable[[int, int, Tensor], None] | None
SamplerFn = Callable[..., Tensor]
SAMPLERS: dict[str, SamplerFn] = {}
DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str) -> Callable[[SamplerFn], SamplerFn]:
    def deco(fn: SamplerFn) -> SamplerFn:
        SAMPLERS[name] = fn
        DESCRIPTIONS[name] = description
        return fn

    return deco


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _ab(d: GaussianDiffusion, t: int) -> float:
    return float(d.alpha_bars[t])


@register("ddpm", "ancestral sampling from p(x_s | x_t) (Ho et al. 2020, Alg. 2; the tutorial's sampler)")
@torch.no_grad()
def sample_ddpm(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: GaussianDiffusion,
    ts: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    variance: str = "small",
) -> Tensor:
    """Ancestral sampling, Ho et al. 2020 Alg. 2, generalised to jumps t → s.

    Mean: μ = (x_t − β_{t|s} / √(1 − ᾱ_t) · ε̂) / √α_{t|s} with α_{t|s} = ᾱ_t/ᾱ_s, β_{t|s} = 1 − α_{t|s}; for s = t − 1
    this is the tutorial's (x_t − (1 − α_t)/√(1 − ᾱ_t) ε̂)/√α_t. Variance ``small`` is the posterior's
    β̃ = (1 − ᾱ_s)/(1 − ᾱ_t) β_{t|s} (the tutorial's σ_t²), ``large`` is β_{t|s}; the last jump (s = 0) adds no noise,
    as the tutorial's σ_1 = 0.
    """
    if variance not in ("small", "large"):
        raise ConfigError(f"unknown reverse variance '{variance}'; choose one of: small, large")
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
        ab_t, ab_s = _ab(diffusion, t), _ab(diffusion, s)
        alpha_ts = diffusion.alpha_bar_ratio(t, s)
        beta_ts = 1.0 - alpha_ts
        eps = denoise(x, t).eps
        x = (x - (beta_ts / math.sqrt(1.0 - ab_t)) * eps) / math.sqrt(alpha_ts)
        if s > 0:
            var = beta_ts * (1.0 - ab_s) / (1.0 - ab_t) if variance == "small" else beta_ts
            x = x + math.sqrt(var) * _noise(x, generator)
        if callback is not None:
            callback(i, s, x)
    return x


@register("ddim", "DDIM (Song et al. 2021, eq. 12): η = 0 deterministic, η = 1 matches ddpm")
@torch.no_grad()
def sample_ddim(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: GaussianDiffusion,
    ts: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    eta: float = 0.0,
) -> Tensor:
    """x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ + σ z, σ = η √((1 − ᾱ_s)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_s) (Song et al. 2021, eq. 12, 16).

    √ᾱ_s x̂_0 is computed as (x_t − √(1 − ᾱ_t) ε̂) / √(ᾱ_t/ᾱ_s): the same number, without x̂_0's division by √ᾱ_t,
    which overflows where ᾱ_t underflows (seed-linear at T = 1000)."""
    if eta < 0:
        raise ConfigError(f"DDIM eta must be >= 0, got {eta}")
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
        ab_t, ab_s = _ab(diffusion, t), _ab(diffusion, s)
        ratio = diffusion.alpha_bar_ratio(t, s)
        eps = denoise(x, t).eps
        sigma = eta * math.sqrt((1.0 - ab_s) / (1.0 - ab_t) * (1.0 - ratio))
        x = (x - math.sqrt(1.0 - ab_t) * eps) / math.sqrt(ratio) + math.sqrt(max(1.0 - ab_s - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * _noise(x, generator)
        if callback is not None:
            callback(i, s, x)
    return x


@register("dpm++", "DPM-Solver++(2M), multistep 2nd-order ODE solver in x_0-form (Lu et al. 2022, Alg. 2)")
@torch.no_grad()
def sample_dpmpp_2m(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: GaussianDiffusion,
    ts: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
) -> Tensor:
    """Probability-flow ODE in log-SNR time λ = log(√ᾱ/√(1 − ᾱ)), data prediction, 2-step multistep.

    The step into s = 0 (λ = ∞) returns the denoised point, as a first-order step into clean data does.
    ``generator`` is accepted for the shared signature; the solver is deterministic.
    """

    def lam(ab: float) -> float:
        return 0.5 * math.log(ab / (1.0 - ab))

    x0_prev, h_prev = None, None
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
        ab_t, ab_s = _ab(diffusion, t), _ab(diffusion, s)
        x0 = denoise(x, t).x0
        if s == 0:
            x = x0
        else:
            h = lam(ab_s) - lam(ab_t)
            d = x0
            if x0_prev is not None and h_prev is not None:
                r = h_prev / h
                d = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * x0_prev
            # x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) D, with α = √ᾱ and σ = √(1 − ᾱ)
            x = math.sqrt((1.0 - ab_s) / (1.0 - ab_t)) * x - math.sqrt(ab_s) * math.expm1(-h) * d
            x0_prev, h_prev = x0, h
        if callback is not None:
            callback(i, s, x)
    return x


def get_sampler(name: str) -> SamplerFn:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{name}'; choose one of: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
