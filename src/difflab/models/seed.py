"""The tutorial's network (Elflein 2022), generalised from 2 to D data columns.

ε̂(x_t, t) = MLP([x_t, Linear_T→1(one_hot(t − 1, T))]), MLP = (D+1)→100→100→100→20→D with LeakyReLU (slope 0.01)
after every layer but the last.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class SeedMLP(nn.Module):
    """The tutorial's ε-predictor. ``t`` is a long tensor (B,) of steps in 1..T."""

    def __init__(self, dim: int, T: int) -> None:
        super().__init__()
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
            nn.Linear(20, dim),
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
