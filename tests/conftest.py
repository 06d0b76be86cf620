"""Shared fixtures: small Gaussian problems with closed-form answers."""

from __future__ import annotations

import pytest
import torch

DIMS = [1, 2, 10]


@pytest.fixture(params=DIMS, ids=lambda d: f"D{d}")
def dim(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture
def gaussian_problem(dim: int):
    g = torch.Generator().manual_seed(dim)
    mu = torch.randn(dim, generator=g) * 0.5
    s = 0.2 + torch.rand(dim, generator=g)
    return mu, s
