"""The tutorial's network (Elflein 2022), generalised from 2 to D data columns.

ε̂(x_t, t) = MLP([x_t, Linear_T→1(one_hot(t − 1, T))]), MLP = (D+1)→100→100→100→20→D with LeakyReLU (slope 0.01)
after every layer but the last.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from difflab.errors import ConfigError


class SeedMLP(nn.Module):
    """The tutorial's ε-predictor. ``t`` is a long tensor (B,) of steps in 1..T. ``out_dim`` (default D): 2D for a
    network with learned variances."""

    integer_time = True  # the one-hot code knows whole steps only: a solver's fractional time is rounded

    def __init__(self, dim: int, T: int, out_dim: int | None = None) -> None:
        super().__init__()
        if T < 1:
            raise ConfigError("the tutorial's network codes time as one-hot over T steps: it needs time = 'discrete'"
                              " (use --model mlp for continuous time)")
        self.dim, self.T = dim, T
        self.t_encoder = nn.Linear(T, 1)
        self.model = nn.Sequential(
            nn.Linear(dim + 1, 100),
            nn.LeakyReLU(),
            nn.Linear(100, 100),
            nn.LeakyReLU(),
            nn.Linear(100, 100),
            nn.LeakyReLU(),
            nn.Linear(100, 20),
            nn.LeakyReLU(),
            nn.Linear(20, out_dim or dim),
        )

    def time_code(self, t: Tensor) -> Tensor:
        """Linear(one_hot(t − 1, T)), computed as a row gather: W[:, t − 1] + b is the same product without the
        (B, T) one-hot matrix."""
        return F.embedding(t - 1, self.t_encoder.weight.t()) + self.t_encoder.bias

    def time_code_onehot(self, t: Tensor) -> Tensor:
        """The tutorial's literal form, kept as the reference the gather is tested against."""
        return self.t_encoder(F.one_hot(t - 1, num_classes=self.T).to(self.t_encoder.weight.dtype))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.model(torch.cat([x, self.time_code(t)], dim=1))

    @torch.no_grad()
    def at_step(self, t: int) -> Callable[[Tensor], Tensor]:
        """``forward(·, t)`` for one step t shared by all rows, as samplers call it.

        With t fixed the time code is one number c_t = W[0, t − 1] + b, and the first layer's input [x, c_t] gives
        z₁ = x W₁[:, :D]ᵀ + (b₁ + c_t W₁[:, D]): the time column folds into the bias, and neither the code nor the
        concatenation is formed per row. LeakyReLU runs in place on each layer's fresh output."""
        if not 1 <= t <= self.T:
            raise ValueError(f"step t={t} is outside 1..{self.T}")
        linears = [m for m in self.model if isinstance(m, nn.Linear)]
        slopes = [m.negative_slope for m in self.model if isinstance(m, nn.LeakyReLU)]
        first = linears[0]
        code = self.t_encoder.weight[0, t - 1] + self.t_encoder.bias[0]
        bias1 = first.bias + code * first.weight[:, self.dim]
        layers = [(bias1, first.weight[:, : self.dim].t())] + [(m.bias, m.weight.t()) for m in linears[1:]]

        def run(x: Tensor) -> Tensor:
            h = x
            for k, (b, wt) in enumerate(layers):
                h = torch.addmm(b, h, wt)
                if k < len(slopes):
                    F.leaky_relu(h, slopes[k], inplace=True)
            return h

        return run
