"""RePaint (difflab.sampling.inpaint): its path over the grid, its hooks, and its draws against exact conditionals of
Gaussian and Gaussian-mixture data with exact denoisers (so the error measured is the algorithm's, not a network's).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from difflab.data import DATASETS, GaussianMixture
from difflab.data.mixture_conditional import mixture_conditional
from difflab.diffusion import Denoiser, GaussianDiffusion, make_schedule
from difflab.errors import ConfigError
from difflab.models.oracles import MixtureOracle
from difflab.sampling import make_grid, sample_ddpm
from difflab.sampling.inpaint import (
    ColumnKernels,
    GaussianKernel,
    inpaint,
    known_replacer,
    repaint_moves,
    repaint_path,
)

PROCESS = GaussianDiffusion(make_schedule("linear", 50))
GRID = make_grid(PROCESS)


def oracle(weights, means, covs) -> Denoiser:
    return Denoiser(MixtureOracle.of(weights, means, covs, PROCESS), PROCESS)


def draw(denoise, x0, mask, **kw) -> torch.Tensor:
    return inpaint(denoise, PROCESS, GRID, x0, mask, generator=torch.Generator().manual_seed(0), **kw)


# -- the path -------------------------------------------------------------------------------------------------------
def test_path_of_a_small_grid_by_hand():
    # 4 jumps, blocks of 2, each walked twice: down 0→2, back to 0, down to 2, on to 4, back to 2, down to 4
    assert repaint_path(4, resample=2, jump=2) == [0, 1, 2, 0, 1, 2, 3, 4, 2, 3, 4]
    assert repaint_path(3) == [0, 1, 2, 3]


@pytest.mark.parametrize(("K", "U", "j"), [(1, 1, 1), (10, 3, 1), (10, 4, 3), (7, 2, 10), (100, 10, 10)])
def test_path_walks_every_jump_U_times(K, U, j):
    moves = repaint_moves(K, U, j)[1:]
    down = [(a, b, c) for a, b, c in moves if b > a]
    assert all(b == a + 1 for a, b, _ in down) and len(down) == K * U
    assert sum(not c for _, _, c in down) == K  # the last pass of each block: the reverse process itself
    ups = [(a, b) for a, b, _ in moves if b < a]
    assert len(ups) == math.ceil(K / j) * (U - 1) and all(a - b <= j for a, b in ups)
    assert repaint_path(K, U, j)[-1] == K


def test_path_refuses_zero_settings():
    for args in ((0, 1, 1), (5, 0, 1), (5, 1, 0)):
        with pytest.raises(ConfigError, match="at least 1"):
            repaint_path(*args)


# -- hooks and kernels ----------------------------------------------------------------------------------------------
def test_gaussian_kernel_moments_and_composition():
    """q(x_t | x_s) has mean √(ᾱ_t/ᾱ_s) x_s and variance 1 − ᾱ_t/ᾱ_s, and q(x_s | x_0) then q(x_t | x_s) is
    q(x_t | x_0) (a simulation against the closed form of the marginal)."""
    k, g = GaussianKernel(PROCESS), torch.Generator().manual_seed(1)
    x0 = torch.full((200_000, 1), 1.5, dtype=torch.float64)
    xs = k.marginal(x0, 10, g)
    xt = k.transition(xs, 10, 30, g)
    for x, t in ((xs, 10), (xt, 30)):
        ab = PROCESS.alpha_bar(t)
        assert abs(x.mean() - math.sqrt(ab) * 1.5) < 0.01 and abs(x.var() / (1 - ab) - 1) < 0.02
    r = PROCESS.alpha_bar(30) / PROCESS.alpha_bar(10)
    step = k.transition(torch.zeros(200_000, 1, dtype=torch.float64), 10, 30, g)
    assert abs(step.var() / (1 - r) - 1) < 0.02


class Shift:
    """A stand-in kernel that marks what it drew: x + its offset, so each group's columns can be told apart."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def marginal(self, x0, t, generator):
        return x0 + self.offset

    def transition(self, xs, s, t, generator):
        return xs + 10 * self.offset


def test_column_kernels_draw_each_group_with_its_own_kernel():
    k = ColumnKernels([([0, 2], Shift(1.0)), ([1], Shift(2.0))], dim=3)
    x = torch.zeros(4, 3)
    assert k.marginal(x, 5, None)[0].tolist() == [1.0, 2.0, 1.0]
    assert k.transition(x, 5, 9, None)[0].tolist() == [10.0, 20.0, 10.0]
    with pytest.raises(ConfigError, match="each of the 3 columns once"):
        ColumnKernels([([0, 1], Shift(1.0)), ([1], Shift(2.0))], dim=3)


def test_replacer_redraws_known_cells_and_restores_them_at_zero():
    x0, mask = torch.ones(3, 2), torch.tensor([[True, False]] * 3)
    replace = known_replacer(Shift(5.0), x0, mask, None)
    x = torch.zeros(3, 2)
    assert replace(x, 7)[:, 0].tolist() == [6.0] * 3 and replace(x, 7)[:, 1].tolist() == [0.0] * 3
    assert replace(x, 0)[:, 0].tolist() == [1.0] * 3
    nothing = known_replacer(Shift(5.0), x0, torch.zeros(3, 2, dtype=torch.bool), None)
    assert nothing(x, 7) is x


@pytest.mark.parametrize("dim", [1, 2, 10])
def test_nothing_known_without_resampling_is_the_sampler_draw_for_draw(dim):
    denoise = oracle([1.0], [np.zeros(dim)], [np.eye(dim) * 0.5])
    g = torch.Generator().manual_seed(3)
    plain = sample_ddpm(denoise, torch.randn(64, dim, generator=g, dtype=torch.float64), PROCESS, GRID, generator=g)
    mine = inpaint(denoise, PROCESS, GRID, torch.zeros(64, dim, dtype=torch.float64),
                   torch.zeros(64, dim, dtype=torch.bool), generator=torch.Generator().manual_seed(3))
    assert torch.equal(plain, mine)


@pytest.mark.parametrize("dim", [1, 2, 10])
def test_known_cells_come_back_exactly(dim):
    rng = np.random.default_rng(dim)
    denoise = oracle([1.0], [np.zeros(dim)], [np.eye(dim)])
    x0 = torch.as_tensor(rng.normal(size=(32, dim)))
    mask = torch.as_tensor(rng.random((32, dim)) < 0.5)
    mask[0] = True  # a whole row known (D = 1: every row that is known at all)
    out = draw(denoise, x0, mask, resample=2, jump=3)
    assert torch.equal(out[mask], x0[mask]) and torch.isfinite(out).all()
    assert not torch.equal(out[~mask], x0[~mask])


def test_inpaint_refuses_mismatched_shapes():
    with pytest.raises(ConfigError, match="same shape"):
        inpaint(oracle([1.0], [np.zeros(2)], [np.eye(2)]), PROCESS, GRID, torch.zeros(4, 2),
                torch.zeros(4, 3, dtype=torch.bool))


# -- against exact conditionals -------------------------------------------------------------------------------------
def test_resampling_removes_the_bias_of_plain_replacement_d2():
    """x ~ N(0, [[1, .9], [.9, 1]]) given x_0 = 1: y | x ~ N(0.9, 0.19). Replacing the known coordinate alone (U = 1)
    draws y around 0.6 (measured 0.58-0.61); resampling brings it to the conditional. With the posterior's β̃ in the
    resampling passes too (no cycle variance), the chain loses a third of the variance (measured 0.12)."""
    denoise = oracle([1.0], [np.zeros(2)], [[[1.0, 0.9], [0.9, 1.0]]])
    x0 = torch.zeros(1000, 2, dtype=torch.float64)
    x0[:, 0] = 1.0
    mask = torch.zeros(1000, 2, dtype=torch.bool)
    mask[:, 0] = True
    plain = draw(denoise, x0, mask)[:, 1]
    repaint = draw(denoise, x0, mask, resample=10, jump=1)[:, 1]
    shrunk = draw(denoise, x0, mask, resample=10, jump=1, cycle_options={})[:, 1]
    se = math.sqrt(0.19 / 1000)
    assert plain.mean() < 0.9 - 0.2
    assert abs(repaint.mean() - 0.9) < 0.03 + 3 * se and abs(repaint.var() / 0.19 - 1) < 0.15
    assert shrunk.var() / 0.19 < 0.8


def test_gaussian_conditional_d10():
    """A correlated Gaussian in D = 10, three coordinates known: the other seven's mean and variance against the
    Schur complement (measured: mean within 0.04 sd, variance ratios 0.90-1.04 at U = 10, j = 1)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((10, 10))
    cov = a @ a.T / 10 + 0.1 * np.eye(10)
    cov = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    mu = rng.standard_normal(10) * 0.5
    known, free = [0, 3, 7], [i for i in range(10) if i not in (0, 3, 7)]
    v = rng.multivariate_normal(mu, cov)[known]
    exact = mixture_conditional(GaussianMixture(np.ones(1), mu[None], cov[None]), known, v)
    x0 = torch.zeros(1000, 10, dtype=torch.float64)
    x0[:, known] = torch.as_tensor(v)
    mask = torch.zeros(1000, 10, dtype=torch.bool)
    mask[:, known] = True
    y = draw(oracle([1.0], [mu], [cov]), x0, mask, resample=10, jump=1)[:, free].numpy()
    sd = np.sqrt(np.diag(exact.covs[0]))
    assert np.all(np.abs(y.mean(0) - exact.means[0]) / sd < 0.12)
    assert np.all(np.abs(y.var(0) / sd**2 - 1) < 0.2)


def test_mixture_conditional_d2():
    """8gaussians, y given x = 2: two modes at y = ±2 with 48.4 % each, the far mode at y = 0 with 3.1 %. RePaint
    puts the mass in the right places, overweighting the far mode (measured 7-9 % at U = 10, j = 1; 14-17 % at
    U = 1): the known limit of resampling, which cannot move mass between separated modes once they are apart."""
    mix = DATASETS["8gaussians"].mixture
    x0 = torch.zeros(1000, 2, dtype=torch.float64)
    x0[:, 0] = 2.0
    mask = torch.zeros(1000, 2, dtype=torch.bool)
    mask[:, 0] = True
    y = draw(oracle(mix.weights, mix.means, mix.covs), x0, mask, resample=10, jump=1)[:, 1].numpy()
    up, down, far = y[y > 1], y[y < -1], y[np.abs(y) <= 1]
    assert 0.40 < len(up) / 1000 < 0.52 and 0.40 < len(down) / 1000 < 0.52 and len(far) / 1000 < 0.13
    for mode, centre in ((up, 2.0), (down, -2.0)):
        assert abs(mode.mean() - centre) < 0.06 and 0.8 < mode.std() / (0.5 / math.sqrt(2)) < 1.15
