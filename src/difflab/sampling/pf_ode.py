"""The probability-flow ODE of a process, written in one of two variables, for the adaptive solver
(:mod:`difflab.sampling.ode`) and the exact likelihood (:mod:`difflab.evaluation.ode_likelihood`).

- ``ve``: the variance-exploding variables of Karras et al. 2022, state x̄ = x/α and u = log σ̄ (σ̄ = σ/α), where
  dx̄/du = σ̄ ε̂(α x̄, t(u)) (Song et al. 2021, eq. 13, rewritten): smooth in u over the whole range of noise levels.
  It needs α > 0 at both ends, so a process with ᾱ(t_max) = 0 cannot start there (σ̄ = ∞).
- ``path``: the process's own path x_t = a_t x_0 + s_t ε in time t, where dx_t/dt = ȧ_t x̂_0 + ṡ_t ε̂ (the expected
  velocity of the interpolant given x_t, which is the probability-flow drift of any such path: Liu et al. 2022,
  Lipman et al. 2023, Albergo & Vanden-Eijnden 2023). It is defined at ᾱ = 0, and on the straight path, where
  ȧ = −1 and ṡ = 1, it is the flow the network was trained on. Used where ᾱ(t_max) = 0 (zero terminal SNR, the
  straight path), in continuous time.

Both take the samplers' variance-preserving x and give it back; ``drift(denoise, y, u)`` is the right-hand side.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from difflab.diffusion.parameterization import Prediction
from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError

Predict = Callable[[Tensor, Time], Prediction]
RATE_STEP = 1e-6  # finite-difference step in t for ȧ and ṡ (float64: ~1e-10 relative error, far below solver tolerances)


class VEForm:
    """x̄ = x/α in u = log σ̄."""

    name = "ve"

    def __init__(self, d: Process) -> None:
        self.d = d

    def u_of(self, t: Time) -> float:
        return math.log(self.d.sigma(t))

    def t_of(self, u: float) -> Time:
        return self.d.t_of_log_snr(-2.0 * u)

    def to_state(self, x: Tensor, t: Time) -> Tensor:
        return x / math.sqrt(self.d.alpha_bar(t))

    def from_state(self, y: Tensor, t: Time) -> Tensor:
        return y * math.sqrt(self.d.alpha_bar(t))

    def drift(self, predict: Predict, y: Tensor, u: float) -> Tensor:
        return math.exp(u) * predict(self.from_state(y, self.t_of(u)), self.t_of(u)).eps

    def log_det_to_x(self, t: Time, dim: int) -> float:
        """log |det ∂y/∂x| at time t (y = x/α): −D log α."""
        return -0.5 * dim * self.d.log_alpha_bar(t)


class PathForm:
    """x_t on the process's own path, in u = t."""

    name = "path"

    def __init__(self, d: Process) -> None:
        if d.discrete:
            raise ConfigError("the probability-flow ODE in time t needs a continuous-time process")
        self.d = d

    def u_of(self, t: Time) -> float:
        return float(t)

    def t_of(self, u: float) -> Time:
        return min(max(u, float(self.d.t_min)), 1.0)

    def _k(self, t: Time, like: Tensor) -> Tensor | float:
        return self.d.path_scale(t, like)

    def to_state(self, x: Tensor, t: Time) -> Tensor:
        return x * self._k(t, x)

    def from_state(self, y: Tensor, t: Time) -> Tensor:
        return y / self._k(t, y)

    def rates(self, t: Time, like: Tensor) -> tuple[Tensor, Tensor]:
        """(ȧ_t, ṡ_t) by central differences (one-sided at the ends of [t_min, 1])."""
        lo, hi = max(float(t) - RATE_STEP, 0.0), min(float(t) + RATE_STEP, 1.0)
        a_lo, s_lo = self.d.path_coefs(lo, like)
        a_hi, s_hi = self.d.path_coefs(hi, like)
        return (a_hi - a_lo) / (hi - lo), (s_hi - s_lo) / (hi - lo)

    def drift(self, predict: Predict, y: Tensor, u: float) -> Tensor:
        t = self.t_of(u)
        pred = predict(self.from_state(y, t), t)
        da, ds = self.rates(t, y)
        return da * pred.x0 + ds * pred.eps

    def log_det_to_x(self, t: Time, dim: int) -> float:
        """log |det ∂y/∂x| at time t (y = k(t) x)."""
        return dim * math.log(float(self.d.path_scale(t, torch.zeros(1, dtype=torch.float64))))


def pf_ode_form(d: Process) -> VEForm | PathForm:
    """The variables the ODE is solved in: ``ve`` unless ᾱ(t_max) = 0, where σ̄ = ∞ (then ``path``)."""
    if d.alpha_bar(d.t_max) > 0.0:
        return VEForm(d)
    if d.discrete:
        raise ConfigError("the probability-flow ODE starts at σ = ∞ where ᾱ(t_max) = 0 (zero terminal SNR) of a "
                          "discrete process; use heun, dpm++ or ddim")
    return PathForm(d)
