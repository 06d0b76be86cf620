"""Teachers with closed-form answers for the distillation tests: the exact denoiser of Gaussian data, per row."""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import Prediction, Process


class RowGaussianOracle:
    """E[x_0 | x_t] of x_0 ~ N(mu, diag(s²)) at one time per row: Gaussian conditioning, x̂_0 = μ + α s²/(α² s² + σ²)
    (x_t − α μ), with (α, σ) of each row's time."""

    def __init__(self, process: Process, mu: torch.Tensor, s: torch.Tensor) -> None:
        self.d, self.mu, self.s2 = process, mu.double(), s.double() ** 2

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> Prediction:
        a, sig = (v.double() for v in self.d.alpha_sigma(t, xt.double()))
        x = xt.double()
        x0 = self.mu + a * self.s2 / (a**2 * self.s2 + sig**2) * (x - a * self.mu)
        return Prediction(eps=((x - a * x0) / sig).to(xt.dtype), x0=x0.to(xt.dtype))


@pytest.fixture
def gaussian_data(dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mu, s, 2000 rows of N(mu, diag(s²)))."""
    g = torch.Generator().manual_seed(dim)
    mu = torch.randn(dim, generator=g) * 0.5
    s = 0.3 + 0.5 * torch.rand(dim, generator=g)
    return mu, s, mu + s * torch.randn(2000, dim, generator=g)
