"""What the network predicts: ε (Ho et al. 2020, the tutorial's), x_0, or v (Salimans & Ho 2022).

A parameterization says which training target the network regresses and how to turn its output into the
(ε̂, x̂_0) pair that every sampler uses. A :class:`Denoiser` wraps a network with its parameterization so samplers,
oracles and plots see one interface: ``denoise(x_t, t) -> Prediction``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from difflab.diffusion.process import GaussianDiffusion
from difflab.errors import ConfigError


@dataclass(frozen=True)
class Prediction:
    """A denoiser's guess at the noise ε and the clean point x_0 behind x_t (each (B, D))."""

    eps: Tensor
    x0: Tensor


@dataclass(frozen=True)
class Parameterization:
    """``target(d, x0, eps, t)`` is the regression target; ``predict(d, xt, t, out)`` maps output → Prediction."""

    name: str
    description: str
    target: Callable[[GaussianDiffusion, Tensor, Tensor, Tensor], Tensor]
    predict: Callable[[GaussianDiffusion, Tensor, Tensor | int, Tensor], Prediction]


PARAMETERIZATIONS: dict[str, Parameterization] = {
    p.name: p
    for p in [
        Parameterization(
            "eps",
            "predict the noise ε (Ho et al. 2020; the tutorial)",
            target=lambda d, x0, eps, t: eps,
            predict=lambda d, xt, t, out: Prediction(eps=out, x0=d.x0_from_eps(xt, t, out)),
        ),
        Parameterization(
            "x0",
            "predict the clean point x_0",
            target=lambda d, x0, eps, t: x0,
            predict=lambda d, xt, t, out: Prediction(eps=d.eps_from_x0(xt, t, out), x0=out),
        ),
        Parameterization(
            "v",
            "predict v = √ᾱ ε − √(1−ᾱ) x_0 (Salimans & Ho 2022)",
            target=lambda d, x0, eps, t: d.v_from(x0, eps, t),
            predict=lambda d, xt, t, out: Prediction(eps=d.eps_from_v(xt, t, out), x0=d.x0_from_v(xt, t, out)),
        ),
    ]
}


def get_parameterization(name: str) -> Parameterization:
    if name not in PARAMETERIZATIONS:
        raise ConfigError(f"unknown parameterization '{name}'; choose one of: {', '.join(PARAMETERIZATIONS)}")
    return PARAMETERIZATIONS[name]


def target_tables(d: GaussianDiffusion, parameterization: str) -> tuple[Tensor, Tensor]:
    """(c_ε, c_x0), float64 (T+1,): the training target is c_ε[t] ε + c_x0[t] x_0 (v: Salimans & Ho 2022)."""
    get_parameterization(parameterization)  # a one-line ConfigError for unknown names
    one, zero = torch.ones(d.T + 1, dtype=torch.float64), torch.zeros(d.T + 1, dtype=torch.float64)
    tables = {"eps": (one, zero), "x0": (zero, one), "v": (d.sqrt_alpha_bars, -d.sqrt_one_minus_alpha_bars)}
    return tables[parameterization]


class DenoiseFn(Protocol):
    def __call__(self, xt: Tensor, t: int) -> Prediction: ...


class Denoiser:
    """A trained network as a denoiser: ``denoiser(x_t, t) -> Prediction`` for an integer step t in 1..T."""

    def __init__(self, model: nn.Module, diffusion: GaussianDiffusion, parameterization: str = "eps") -> None:
        self.model = model
        self.diffusion = diffusion
        self.param = get_parameterization(parameterization)
        self._steps: dict[int, tuple[tuple[tuple[int, int], ...], Callable[[Tensor], Tensor]]] = {}

    def _at_step(self, t: int) -> Callable[[Tensor], Tensor]:
        """The network's function for step t (``model.at_step``), built once per t and rebuilt when a weight has
        changed or been replaced since (every in-place update bumps a tensor's version counter)."""
        versions = tuple((id(p), p._version) for p in self.model.parameters())
        hit = self._steps.get(t)
        if hit is None or hit[0] != versions:
            hit = self._steps[t] = (versions, self.model.at_step(t))
        return hit[1]

    @torch.no_grad()
    def __call__(self, xt: Tensor, t: int) -> Prediction:
        if hasattr(self.model, "at_step"):  # the network's own path for one t shared by all rows
            out = self._at_step(int(t))(xt)
        else:
            out = self.model(xt, torch.full((xt.shape[0],), int(t), dtype=torch.long, device=xt.device))
        return self.param.predict(self.diffusion, xt, t, out)
