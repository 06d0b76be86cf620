"""Straightness of a model's probability-flow ODE (Liu et al. 2022, §2.2, Definition 2.5):

    S = ∫₀¹ E ‖(x_1 − x_0) − v(x_t, t)‖² dt

along the ODE's trajectories dx_t/dt = v(x_t, t) on the straight path x_t = (1 − t) x_0 + t ε, from noise x_1 down
to the sample x_0; S = 0 exactly when every trajectory is a straight line walked at constant speed, which one Euler
step then integrates without error.

Any Gaussian process's ODE is this one in other coordinates: two paths with the same log-SNR λ(t) share their
denoiser, and their trajectories differ only by the scale of x and the clock (Karras et al. 2022, §2 and eq. 4).
So :func:`straight_velocity` reads any denoiser (a diffusion model's, an exact one) on the straight path,
v(x_t, t) = ε̂ − x̂_0 with the prediction taken at the process's time of the same λ(t) = 2 ln((1 − t)/t) and x divided
by √((1 − t)² + t²) to its variance-preserving scale, and a teacher and its reflowed students are measured in the
same coordinates. Where λ(t) is below the process's λ(t_max) (EDM stops at σ = 80) the prediction at t_max is used.

Estimate (:func:`straightness`): K Euler steps on the uniform grid t_k = 1 − k/K from x_1 ~ N(0, I); x_0 is the
last state and S ≈ (1/K) Σ_k mean over rows ‖(x_1 − x_0) − v(x_{t_k}, t_k)‖² (Euler's trajectory; for a straight
field its only error is the field's own curvature). Summed over the D coordinates, as Liu et al. write it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from difflab.diffusion.parameterization import DenoiseFn
from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError

Velocity = Callable[[Tensor, float], Tensor]  # v(x_t on the straight path's scale, t) -> dx_t/dt, (B, D)
STEPS = 100  # Euler steps of the estimate


def process_time_of(process: Process, t: float) -> Time:
    """The process's time whose log-SNR is the straight path's at t, λ = 2 ln((1 − t)/t) (t_max past its end)."""
    if t <= 0.0:
        return 0
    lam = -math.inf if t >= 1.0 else 2.0 * math.log((1.0 - t) / t)
    if process.path == "straight" and not process.discrete:  # the process is the straight path itself
        return min(max(t, float(process.t_min)), float(process.t_max))
    if lam <= process.log_snr(process.t_max):
        return process.t_max
    return process.t_of_log_snr(lam)


def straight_velocity(denoise: DenoiseFn, process: Process) -> Velocity:
    """v(x_t, t) = ε̂ − x̂_0 of ``denoise`` (a denoiser on ``process``) on the straight path (module docstring)."""

    def v(x: Tensor, t: float) -> Tensor:
        r = math.sqrt((1.0 - t) ** 2 + t**2)
        pred = denoise(x / r, process_time_of(process, t))
        return pred.eps - pred.x0

    return v


@torch.no_grad()
def straightness(velocity: Velocity, x1: Tensor, steps: int = STEPS) -> tuple[float, Tensor]:
    """(S, x_0): Liu et al.'s straightness estimated on ``steps`` Euler steps from the noise rows ``x1`` (B, D),
    and the samples the trajectories end at."""
    if steps < 1:
        raise ConfigError(f"straightness needs at least 1 Euler step, got {steps}")
    x, dt = x1.clone(), 1.0 / steps
    vs = []
    for k in range(steps):
        v = velocity(x, 1.0 - k * dt)
        vs.append(v)
        x = x - dt * v
    chord = x1 - x
    s = sum(float((chord - v).pow(2).sum(dim=1).mean()) for v in vs) / steps
    return s, x
