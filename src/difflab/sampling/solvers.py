"""Higher-order solvers of the reverse process: DPM-Solver++(2M) and its SDE form (Lu et al. 2022), and Heun's
method on the probability-flow ODE with and without churn (Karras et al. 2022, Alg. 1 and 2).

Notation: α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t), λ_t = log(α_t/σ_t) (half the log-SNR), and the variance-exploding view
x̄ = x/α with noise level σ̄_t = σ_t/α_t, in which the probability-flow ODE is dx̄/dσ̄ = ε̂ (Karras et al. 2022,
eq. 4 with s(t) = 1 after dividing by α). Every solver's step into t = 0 returns the denoised point x̂_0, a
first-order step (the lower-order final step of Lu et al. 2022, §3.3); where ᾱ_t = 0 (zero terminal SNR) the first
jump is the x_0-form step α_s x̂_0 + σ_s ε̂, since x̄ is not defined there.
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


def _half_lambda(d: Process, t: Time) -> float:
    """λ_t = log(α_t / σ_t) = ½ log-SNR (−∞ where ᾱ_t = 0, ∞ at t = 0)."""
    return 0.5 * d.log_snr(t)


def _dpmpp_2m(denoise: DenoiseFn, x: Tensor, d: Process, ts: Sequence[Time], generator: torch.Generator | None,
              callback: Callback, sde: bool) -> Tensor:
    x0_prev, h_prev = None, None
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
        ab_t, ab_s = d.alpha_bar(t), d.alpha_bar(s)
        x0 = denoise(x, t).x0
        if s == 0:
            x = x0
        else:
            h = _half_lambda(d, s) - _half_lambda(d, t)
            D = x0
            if x0_prev is not None and h_prev is not None and math.isfinite(h):
                r = h_prev / h
                D = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * x0_prev
            if sde:
                # x_s = (σ_s/σ_t) e^{−h} x_t + α_s (1 − e^{−2h}) D + σ_s √(1 − e^{−2h}) z (Lu et al. 2022, App. B,
                # SDE-DPM-Solver++(2M)); with λ = ½ log-SNR the ODE's h becomes 2h in the noise terms
                e2h = math.expm1(-2.0 * h)  # e^{−2h} − 1
                x = (math.sqrt((1.0 - ab_s) / (1.0 - ab_t)) * math.exp(-h)) * x - math.sqrt(ab_s) * e2h * D
                x = x + math.sqrt((1.0 - ab_s) * -e2h) * noise_like(x, generator)
            else:
                # x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) D (Lu et al. 2022, Alg. 2)
                x = math.sqrt((1.0 - ab_s) / (1.0 - ab_t)) * x - math.sqrt(ab_s) * math.expm1(-h) * D
            x0_prev, h_prev = x0, h
        if callback is not None:
            callback(i, s, x)
    return x


@register("dpm++", "DPM-Solver++(2M), multistep 2nd-order ODE solver in x_0-form (Lu et al. 2022, Alg. 2)")
@torch.no_grad()
def sample_dpmpp_2m(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
) -> Tensor:
    """Probability-flow ODE in λ = log(α/σ), data prediction, 2-step multistep on any grid (the step ratio r enters
    the update). ``generator`` is accepted for the shared signature; the solver is deterministic."""
    return _dpmpp_2m(denoise, x, diffusion, ts, generator, callback, sde=False)


@register("dpm++-sde", "SDE-DPM-Solver++(2M): the multistep solver of the reverse SDE (Lu et al. 2022, App. B)")
@torch.no_grad()
def sample_dpmpp_2m_sde(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
) -> Tensor:
    """The reverse SDE in data-prediction form, 2nd-order multistep: noise is injected at every jump but the last."""
    return _dpmpp_2m(denoise, x, diffusion, ts, generator, callback, sde=True)


# Heun's trapezoid in x̄ multiplies an error δ of the denoiser at the step's end by (σ̄_t − σ̄_s)/(2σ̄_s). A step with
# σ̄_t > 11 σ̄_s (more than 5 δ; grids of 2-5 jumps: one jump from σ̄ = 80 to 0.002 multiplied it by 20 000, W1/floor
# 1639 on moons at 4 calls) takes the trapezoid in x_0-form instead, which weighs δ by (1 − r)/2 ≤ ½. Karras et al.'s
# grid of 10 or more steps never jumps so far (EDM: ≤ 10.2 at 10 steps, 3.3 at 20): Alg. 1 runs there unchanged.
HEUN_MAX_RATIO = 11.0


def _heun_step(denoise: DenoiseFn, x: Tensor, d: Process, t: Time, s: Time) -> Tensor:
    """One step of Karras et al. 2022, Alg. 1, lines 4-8, from time t to s in the x̄ = x/α variables.

    With r = σ̄_s/σ̄_t < 1/HEUN_MAX_RATIO the correction is the trapezoid of the exponential integrator instead,
    x̄_s = r x̄_t + (1 − r) (x̂_0(t) + x̂_0(s))/2 (exact for a constant x̂_0, like the Euler step before it; second order
    as the x̄ form is): both are trapezoids of one ODE, this one without the division by σ̄_s."""
    ab_t, ab_s = d.alpha_bar(t), d.alpha_bar(s)
    pred = denoise(x, t)
    if ab_t == 0.0:  # σ̄_t = ∞: the x_0-form step
        return math.sqrt(ab_s) * pred.x0 + math.sqrt(1.0 - ab_s) * pred.eps
    sig_t, sig_s = d.sigma(t), (d.sigma(s) if s > 0 else 0.0)
    a_t, a_s = math.sqrt(ab_t), math.sqrt(ab_s)
    xbar = x / a_t
    euler = xbar + (sig_s - sig_t) * pred.eps
    if s == 0:
        return euler
    return a_s * heun_trapezoid(xbar, sig_t, sig_s, pred, denoise(a_s * euler, s))


def heun_trapezoid(xbar: Tensor, sig_t: float | Tensor, sig_s: float | Tensor, first: Prediction,
                   second: Prediction) -> Tensor:
    """Heun's corrected x̄_s from the predictions at both ends of a jump σ̄_t → σ̄_s > 0: the trapezoid of
    dx̄/dσ̄ = ε̂, x̄_t + (σ̄_s − σ̄_t)(ε̂_t + ε̂_s)/2, or where σ̄_t > HEUN_MAX_RATIO σ̄_s its x_0 form (per row when the
    σ̄ are tensors of rows)."""
    ve = xbar + (sig_s - sig_t) * 0.5 * (first.eps + second.eps)
    r = sig_s / sig_t
    x0_form = r * xbar + (1.0 - r) * 0.5 * (first.x0 + second.x0)
    if isinstance(sig_t, Tensor):
        return torch.where(sig_t > HEUN_MAX_RATIO * sig_s, x0_form, ve)
    return x0_form if sig_t > HEUN_MAX_RATIO * sig_s else ve


@register("heun", "Heun's 2nd-order method on the probability-flow ODE (Karras et al. 2022, Alg. 1); 2 calls per "
          "step, 1 into t = 0", calls_per_step=2)
@torch.no_grad()
def sample_heun(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
) -> Tensor:
    """Deterministic; ``generator`` is accepted for the shared signature."""
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
        x = _heun_step(denoise, x, diffusion, t, s)
        if callback is not None:
            callback(i, s, x)
    return x


@register("heun-sde", "EDM's stochastic sampler: churn (noise raises σ̄ to σ̄(1 + γ)), then a Heun step (Karras et "
          "al. 2022, Alg. 2)", calls_per_step=2)
@torch.no_grad()
def sample_heun_sde(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    s_churn: float = 40.0,
    s_tmin: float = 0.05,
    s_tmax: float = 50.0,
    s_noise: float = 1.003,
) -> Tensor:
    """γ_i = min(S_churn / K, √2 − 1) where S_tmin ≤ σ̄_i ≤ S_tmax, else 0; x̄ ← x̄ + √(σ̂² − σ̄_i²) S_noise z with
    σ̂ = σ̄_i (1 + γ_i) (capped at σ̄(t_max)), then Heun from σ̂ to σ̄_{i+1}. Defaults: Karras et al. 2022, Table 5
    (ImageNet-64). The time of σ̂ comes from the process (a fractional step for a discrete one)."""
    for name, value in (("s_churn", s_churn), ("s_tmin", s_tmin), ("s_tmax", s_tmax), ("s_noise", s_noise)):
        if not value >= 0:
            raise ConfigError(f"heun-sde: {name} must be >= 0, got {value}")
    d, K = diffusion, len(ts) - 1
    gamma_max = min(s_churn / K, math.sqrt(2.0) - 1.0)
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
        sig = d.sigma(t)
        if math.isfinite(sig) and s_tmin <= sig <= s_tmax and gamma_max > 0:
            sig_hat = min(sig * (1.0 + gamma_max), d.sigma(d.t_max))
            t_hat = d.t_of_log_snr(-2.0 * math.log(sig_hat))
            sig_hat = d.sigma(t_hat)  # the noise level of the time the network will be asked about
            if sig_hat > sig:
                xbar = x / math.sqrt(d.alpha_bar(t))
                xbar = xbar + math.sqrt(sig_hat**2 - sig**2) * s_noise * noise_like(x, generator)
                x, t = math.sqrt(d.alpha_bar(t_hat)) * xbar, t_hat
        x = _heun_step(denoise, x, d, t, s)
        if callback is not None:
            callback(i, s, x)
    return x
