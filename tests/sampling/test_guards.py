"""Guards on x̂_0 against their definitions: clipping to the data's box and dynamic thresholding (Saharia et al.
2022, §2.3, re-implemented here with numpy's percentile), with ε̂ recomputed so that α x̂_0 + σ ε̂ = x_t."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from difflab.diffusion import ContinuousDiffusion, GaussianDiffusion, Prediction, make_schedule
from difflab.errors import ConfigError
from difflab.sampling import JUMP_SAMPLERS, SAMPLERS, make_grid
from difflab.sampling.guards import clipped, data_box, thresholded
from helpers import GaussianOracle


def start(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_data_box_by_hand() -> None:
    lo, hi = data_box(np.array([[0.0, 10.0], [2.0, 20.0], [1.0, 15.0]]), margin=0.1)
    np.testing.assert_allclose(lo, [-0.2, 9.0])
    np.testing.assert_allclose(hi, [2.2, 21.0])
    with pytest.raises(ConfigError, match="margin"):
        data_box(np.zeros((3, 2)), margin=-0.1)


def guard_setup(dim: int, time: str):
    d = GaussianDiffusion(make_schedule("cosine", 100)) if time == "discrete" else ContinuousDiffusion("linear")
    mu = torch.linspace(-1.5, 1.5, dim, dtype=torch.float64)  # data partly outside the box below
    oracle = GaussianOracle(d, mu, torch.full((dim,), 0.8, dtype=torch.float64))
    low, high = -np.ones(dim), np.linspace(0.5, 1.5, dim)
    return d, oracle, low, high


@pytest.mark.parametrize("time", ["discrete", "continuous"])
def test_clip_keeps_x0_in_the_box_and_eps_consistent(dim: int, time: str) -> None:
    d, oracle, low, high = guard_setup(dim, time)
    guarded = clipped(oracle, d, low, high)
    xt = start(400, dim, seed=3) * 2.0
    for t in ([1, 30, 100] if d.discrete else [0.001, 0.3, 1.0]):
        raw, g = oracle(xt, t), guarded(xt, t)
        lo, hi = torch.as_tensor(low), torch.as_tensor(high)
        assert torch.all(g.x0 >= lo) and torch.all(g.x0 <= hi)
        torch.testing.assert_close(g.x0, torch.clamp(raw.x0, lo, hi))
        a, s = math.sqrt(d.alpha_bar(t)), math.sqrt(1 - d.alpha_bar(t))
        torch.testing.assert_close(a * g.x0 + s * g.eps, xt, rtol=1e-6, atol=1e-6)
        inside = ((raw.x0 >= lo) & (raw.x0 <= hi)).all(1)
        torch.testing.assert_close(g.eps[inside], raw.eps[inside], rtol=1e-5, atol=1e-5)


def saharia(x0: np.ndarray, low: np.ndarray, high: np.ndarray, p: float) -> np.ndarray:
    """Saharia et al. 2022, §2.3, per row in box units: s = max(1, percentile(|r|, p)), r ← clip(r, −s, s)/s."""
    c, h = (low + high) / 2, (high - low) / 2
    r = (x0 - c) / h
    out = np.empty_like(r)
    for i, row in enumerate(r):
        s = max(1.0, np.percentile(np.abs(row), 100 * p))
        out[i] = np.clip(row, -s, s) / s
    return c + h * out


class Fixed:
    """A denoiser that returns a given x̂_0 (and the ε̂ that goes with it)."""

    def __init__(self, d, x0: torch.Tensor) -> None:
        self.d, self.x0 = d, x0

    def __call__(self, xt: torch.Tensor, t) -> Prediction:
        a, s = math.sqrt(self.d.alpha_bar(t)), math.sqrt(1 - self.d.alpha_bar(t))
        return Prediction(eps=(xt - a * self.x0) / s, x0=self.x0)


def test_threshold_by_hand() -> None:
    """Box [−1, 1]: the row (0.5, −2, 3, 0.2) with p = 0.75 has s = quantile(0.2, 0.5, 2, 3; 0.75) = 2.25 (linear
    interpolation), so x̂_0 = (0.5, −2, 2.25, 0.2)/2.25; an in-box row stays as it is; a box [0, 4] is the same
    rule in its own units."""
    d = ContinuousDiffusion("linear")
    x0 = torch.tensor([[0.5, -2.0, 3.0, 0.2], [0.9, -0.3, 0.0, -1.0]], dtype=torch.float64)
    xt = torch.zeros_like(x0)
    g = thresholded(Fixed(d, x0), d, -np.ones(4), np.ones(4), percentile=0.75)(xt, 0.5)
    expected = torch.tensor([[0.5 / 2.25, -2.0 / 2.25, 1.0, 0.2 / 2.25], [0.9, -0.3, 0.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(g.x0, expected)
    shifted = thresholded(Fixed(d, 2.0 + 2.0 * x0), d, np.zeros(4), 4.0 * np.ones(4), percentile=0.75)(xt, 0.5)
    torch.testing.assert_close(shifted.x0, 2.0 + 2.0 * expected)


@pytest.mark.parametrize("time", ["discrete", "continuous"])
@pytest.mark.parametrize("p", [0.5, 0.9, 1.0])
def test_threshold_matches_saharia(dim: int, time: str, p: float) -> None:
    d, oracle, low, high = guard_setup(dim, time)
    guarded = thresholded(oracle, d, low, high, percentile=p)
    xt = start(300, dim, seed=4) * 2.0
    for t in ([2, 50, 100] if d.discrete else [0.01, 0.5, 1.0]):
        raw, g = oracle(xt, t), guarded(xt, t)
        np.testing.assert_allclose(g.x0.numpy(), saharia(raw.x0.numpy(), low, high, p), rtol=1e-10, atol=1e-12)
        inside = ((raw.x0 >= torch.as_tensor(low)) & (raw.x0 <= torch.as_tensor(high))).all(1)
        torch.testing.assert_close(g.x0[inside], raw.x0[inside], rtol=1e-12, atol=1e-12)
        a, s = math.sqrt(d.alpha_bar(t)), math.sqrt(1 - d.alpha_bar(t))
        torch.testing.assert_close(a * g.x0 + s * g.eps, xt, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if s not in JUMP_SAMPLERS])  # (jumps: test_jumps)
def test_every_sampler_ends_in_the_clip_box(dim: int, sampler: str) -> None:
    """Every sampler's last jump returns x̂_0, so with the clip guard every sample lies in the box."""
    d, oracle, low, high = guard_setup(dim, "continuous")
    x = SAMPLERS[sampler](clipped(oracle, d, low, high), start(500, dim, seed=5), d, make_grid(d, 20, "logsnr"),
                          generator=torch.Generator().manual_seed(1))
    assert torch.all(x >= torch.as_tensor(low) - 1e-6) and torch.all(x <= torch.as_tensor(high) + 1e-6)
    assert (x <= torch.as_tensor(high) - 0.05).any()  # not all squashed onto a face
