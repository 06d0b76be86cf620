"""What the network predicts: ε (Ho et al. 2020, the tutorial's), x_0, v (Salimans & Ho 2022), the score
∇ log q(x_t) (Song et al. 2021), the posterior mean μ̃ (Ho et al. 2020, §3.2), or EDM's preconditioned F (Karras
et al. 2022, Table 1).

Every one of them is a linear combination of x_0 and ε at each time t, ``target = c_ε(t) ε + c_x0(t) x_0``, and x_t
= α_t x_0 + σ_t ε is another, so a network output determines (x̂_0, ε̂) by solving that 2 × 2 system
(:meth:`Parameterization.predict`); the coefficients depend on t only through α_t = √ᾱ_t and σ_t = √(1 − ᾱ_t)
(and, for the posterior mean, the step's posterior coefficients). A parameterization may also scale the network's input (c_in, EDM) and weight the
loss per time (the score's σ_t², which turns its loss into ε's). A :class:`~difflab.diffusion.denoiser.Denoiser`
wraps a network with its parameterization so samplers, oracles and plots see one interface, ``denoise(x_t, t) ->
Prediction``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from difflab.diffusion.process import GaussianDiffusion, Time
from difflab.errors import ConfigError

Post = tuple[Tensor, Tensor] | None  # the posterior mean's coefficients (c0, ct) of one step, for 'mean'
Coefs = Callable[[Tensor, Tensor, Post], tuple[Tensor, Tensor]]
Scale = Callable[[Tensor, Tensor], Tensor]
Exact = Callable[[Tensor, Tensor, Tensor, Tensor], "Prediction"]


@dataclass(frozen=True)
class Prediction:
    """A denoiser's guess at the noise ε and the clean point x_0 behind x_t (each (B, D)), and, for a network with
    learned variances, v (B, D): the reverse variance is exp(v log β + (1 − v) log β̃) (Nichol & Dhariwal 2021, eq. 15)."""

    eps: Tensor
    x0: Tensor
    v: Tensor | None = None


@dataclass(frozen=True)
class Parameterization:
    """``coefs(α, σ, post) -> (c_ε, c_x0)``: the regression target is c_ε ε + c_x0 x_0 at a time with α = √ᾱ,
    σ = √(1 − ᾱ) (``post``: the step's posterior-mean coefficients, for ``needs_posterior``); ``c_in(α, σ)`` scales
    the network's input and ``weight(α, σ)`` the loss (both 1 when None); ``discrete_only``: defined per step."""

    name: str
    description: str
    coefs: Coefs
    c_in: Scale | None = None
    weight: Scale | None = None
    needs_posterior: bool = False
    exact: Exact | None = None  # the solution written out, where that saves rounding (ε: ε̂ is the output itself)
    path: str | None = None  # the one path (process scale) whose quantity it predicts, if any

    @property
    def discrete_only(self) -> bool:
        return self.needs_posterior

    def target(self, x0: Tensor, eps: Tensor, a: Tensor, s: Tensor, post: Post = None) -> Tensor:
        c_eps, c_x0 = self.coefs(a, s, post)
        return c_eps * eps + c_x0 * x0

    def predict(self, xt: Tensor, out: Tensor, a: Tensor, s: Tensor, post: Post = None) -> Prediction:
        """(ε̂, x̂_0) from the network output: the solution of α x̂_0 + σ ε̂ = x_t, c_x0 x̂_0 + c_ε ε̂ = out."""
        if self.exact is not None:
            return self.exact(xt, out, a, s)
        c_eps, c_x0 = self.coefs(a, s, post)
        det = a * c_eps - s * c_x0
        return Prediction(eps=(a * out - c_x0 * xt) / det, x0=(c_eps * xt - s * out) / det)

    def input_scale(self, a: Tensor, s: Tensor) -> Tensor | None:
        return None if self.c_in is None else self.c_in(a, s)

    def loss_weight(self, a: Tensor, s: Tensor) -> Tensor | None:
        return None if self.weight is None else self.weight(a, s)


def _const(c_eps: float, c_x0: float) -> Coefs:
    return lambda a, s, post: (torch.full_like(a, c_eps), torch.full_like(a, c_x0))


def _mean(a: Tensor, s: Tensor, post: Post) -> tuple[Tensor, Tensor]:
    # μ̃_t = c0 x_0 + ct x_t = (c0 + ct α) x_0 + ct σ ε (Ho et al. 2020, eq. 7, with x_t written out)
    if post is None:
        raise ConfigError("parameterization 'mean' predicts the posterior mean of one step t → t−1; it needs "
                          "time = 'discrete'")
    c0, ct = post
    return ct * s, c0 + ct * a


def _from_velocity(xt: Tensor, u: Tensor, a: Tensor, s: Tensor) -> Prediction:
    x0 = (xt - s * u) / (a + s)
    return Prediction(eps=x0 + u, x0=x0)


def edm(sigma_data: float = 0.5) -> Parameterization:
    """EDM's preconditioning (Karras et al. 2022, Table 1) in our α/σ terms, with σ_VE = σ/α:
    D(x) = c_skip x_VE + c_out F(c_in x_VE), c_skip = σd²/(σ_VE² + σd²), c_out = σ_VE σd/√(σ_VE² + σd²),
    c_in = 1/√(σ_VE² + σd²), loss weight 1/c_out² on D, i.e. 1 on F. F's target (x_0 − c_skip x_VE)/c_out is
    c_ε ε + c_x0 x_0 with c_ε = −σd α/r, c_x0 = σ/(σd r), r = √(σ² + α² σd²); the input c_in x_VE is x_t / r.
    With σd = 1 the target is −v."""
    sd = float(sigma_data)
    if not sd > 0:
        raise ConfigError(f"sigma_data must be positive, got {sigma_data}")

    def r(a: Tensor, s: Tensor) -> Tensor:
        return torch.sqrt(s**2 + (a * sd) ** 2)

    return Parameterization("edm", f"EDM preconditioning (Karras et al. 2022), σ_data = {sd:g}",
                            lambda a, s, post: (-sd * a / r(a, s), s / (sd * r(a, s))), c_in=lambda a, s: 1.0 / r(a, s))


PARAMETERIZATIONS: dict[str, Callable[..., Parameterization]] = {
    "eps": lambda: Parameterization(
        "eps", "predict the noise ε (Ho et al. 2020; the tutorial)", _const(1.0, 0.0),
        exact=lambda xt, out, a, s: Prediction(eps=out, x0=(xt - s * out) / a)),
    "x0": lambda: Parameterization(
        "x0", "predict the clean point x_0", _const(0.0, 1.0),
        exact=lambda xt, out, a, s: Prediction(eps=(xt - a * out) / s, x0=out)),
    "v": lambda: Parameterization(
        "v", "predict v = √ᾱ ε − √(1−ᾱ) x_0 (Salimans & Ho 2022)", lambda a, s, post: (a, -s),
        exact=lambda xt, out, a, s: Prediction(eps=s * xt + a * out, x0=a * xt - s * out)),
    "score": lambda: Parameterization(
        "score", "predict the score ∇ log q(x_t) = −ε/√(1−ᾱ), loss weighted by 1−ᾱ (Song et al. 2021)",
        lambda a, s, post: (-1.0 / s, torch.zeros_like(s)), weight=lambda a, s: s**2),
    "mean": lambda: Parameterization(
        "mean", "predict the posterior mean μ̃(x_t, x_0) of x_{t−1} directly (Ho et al. 2020, §3.2)", _mean,
        needs_posterior=True),
    "edm": edm,
    # On the straight path x_t = (1 − t) x_0 + t ε, dx_t/dt = ε − x_0 (Liu et al. 2022, eq. 1; Lipman et al. 2023's
    # conditional OT field); from α x_0 + σ ε = x_t and ε − x_0 = u: x_0 = (x_t − σ u)/(α + σ), ε = x_0 + u.
    "velocity": lambda: Parameterization(
        "velocity", "predict the straight path's velocity u = dx_t/dt = ε − x_0 (Liu et al. 2022; Lipman et al. 2023)",
        _const(1.0, -1.0), path="straight",
        exact=lambda xt, out, a, s: _from_velocity(xt, out, a, s)),
}
DESCRIPTIONS = {name: make().description for name, make in PARAMETERIZATIONS.items()}


def get_parameterization(name: str, **options: float) -> Parameterization:
    if name not in PARAMETERIZATIONS:
        raise ConfigError(f"unknown parameterization '{name}'; choose one of: {', '.join(PARAMETERIZATIONS)}")
    try:
        return PARAMETERIZATIONS[name](**options)
    except TypeError:
        return PARAMETERIZATIONS[name]()  # options that only another parameterization uses (sigma_data)


def target_tables(d: GaussianDiffusion, parameterization: str) -> tuple[Tensor, Tensor]:
    """(c_ε, c_x0), float64 (T+1,), for the parameterizations the fused trainers run (eps, x0, v): the training
    target is c_ε[t] ε + c_x0[t] x_0."""
    get_parameterization(parameterization)  # a one-line ConfigError for unknown names
    one, zero = torch.ones(d.T + 1, dtype=torch.float64), torch.zeros(d.T + 1, dtype=torch.float64)
    tables = {"eps": (one, zero), "x0": (zero, one), "v": (d.sqrt_alpha_bars, -d.sqrt_one_minus_alpha_bars)}
    if parameterization not in tables:
        raise ConfigError(f"the batched trainers run eps, x0 and v, not '{parameterization}'")
    return tables[parameterization]


class DenoiseFn(Protocol):
    def __call__(self, xt: Tensor, t: Time) -> Prediction: ...
