"""Test helpers: closed-form Gaussian denoisers and small diffusions."""

from __future__ import annotations

import torch

from difflab.diffusion import ContinuousDiffusion, GaussianDiffusion, Prediction, Process, make_schedule


class GaussianOracle:
    """The exact denoiser of data x_0 ~ N(mu, diag(s²)): E[x_0 | x_t] by Gaussian conditioning (closed form)."""

    def __init__(self, diffusion: Process, mu: torch.Tensor, s: torch.Tensor) -> None:
        self.d, self.mu, self.s2 = diffusion, mu.double(), s.double() ** 2

    def __call__(self, xt: torch.Tensor, t: float) -> Prediction:
        ab = self.d.alpha_bar(t)
        x = xt.double()
        x0 = self.mu + ab**0.5 * self.s2 / (ab * self.s2 + 1 - ab) * (x - ab**0.5 * self.mu)
        eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        return Prediction(eps=eps.to(xt.dtype), x0=x0.to(xt.dtype))


def diffusion(name: str = "linear", T: int = 1000) -> GaussianDiffusion:
    return GaussianDiffusion(make_schedule(name, T))


def continuous(name: str = "linear", T: int = 100, **kw: float) -> ContinuousDiffusion:
    return ContinuousDiffusion(name, T, **kw)
