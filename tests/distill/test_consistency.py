"""Consistency distillation (Song et al. 2023) against independent computations: the discretisation follows
Karras et al.'s σ ramp, the EDM-preconditioned f meets the boundary condition f(x, 0) = x, and f learned from the
exact Gaussian denoiser maps the points of one probability-flow ODE trajectory (solved by the samplers' Heun
method) to (nearly) the same x_0 (D = 1, 2, 10); multistep consistency sampling re-noises as Alg. 1 says."""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import Denoiser, Prediction, get_parameterization
from difflab.distill.consistency import TABLE, Consistency, karras_pairs
from difflab.distill.loop import LoopSettings
from difflab.models import ResMLP
from difflab.sampling import make_grid, sample_heun
from difflab.sampling.grids import KARRAS_RHO
from helpers import GaussianOracle, continuous, diffusion


@pytest.mark.parametrize("intervals", [2, 18])
def test_pairs_follow_the_karras_ramp(intervals: int) -> None:
    d = continuous("linear")
    t_hi, t_lo = karras_pairs(d, intervals)
    r_max, r_min = d.sigma(1.0) ** (1 / KARRAS_RHO), d.sigma(d.t_min) ** (1 / KARRAS_RHO)
    u = torch.arange(TABLE, dtype=torch.float64) / (TABLE - 1)
    r_hi = torch.tensor([d.sigma(float(t)) ** (1 / KARRAS_RHO) for t in t_hi], dtype=torch.float64)
    torch.testing.assert_close(r_hi, r_max + u * (r_min - r_max), atol=1e-6, rtol=1e-6)  # eq. 5 at u
    inner = u + 1.0 / intervals <= 1.0
    r_lo = torch.tensor([d.sigma(float(t)) ** (1 / KARRAS_RHO) for t in t_lo[inner]], dtype=torch.float64)
    torch.testing.assert_close(r_lo - r_hi[inner], torch.full_like(r_lo, (r_min - r_max) / intervals), atol=1e-6,
                               rtol=1e-6)  # one interval, 1/N of the ramp, further on
    assert bool((t_lo[~inner] == 0).all()) and bool((t_lo < t_hi).all())


def test_discrete_pairs_are_whole_steps_one_apart_at_least() -> None:
    d = diffusion("linear", 100)
    t_hi, t_lo = karras_pairs(d, 18)
    assert t_hi.dtype == t_lo.dtype == torch.long
    assert bool((t_lo <= t_hi - 1).all()) and t_hi.max() == 100 and t_hi.min() == 1 and t_lo.min() == 0


def test_edm_consistency_function_meets_the_boundary_condition(dim: int) -> None:
    """f(x, t) = c_skip x̄ + c_out F with c_skip → 1, c_out → 0 as σ̄ → 0: any network gives f(x, 0⁺) = x."""
    d = continuous("linear")
    torch.manual_seed(dim)
    f = Denoiser(ResMLP(dim, 0, width=16, depth=1), d, get_parameterization("edm", sigma_data=0.5))
    x = torch.randn(100, dim)
    for t, tol in [(1e-7, 1e-4), (1e-5, 2e-3)]:
        torch.testing.assert_close(f(x, t).x0, x / d.alpha_sigma(t, x)[0], atol=tol, rtol=tol)


@pytest.mark.slow
def test_learned_f_maps_one_ode_trajectory_to_one_point(dim: int, gaussian_data) -> None:
    mu, s, x = gaussian_data
    d = continuous("linear")
    param = get_parameterization("edm", sigma_data=float(s.mean()))
    torch.manual_seed(0)
    student = ResMLP(dim, 0, width=64, depth=2)

    def teacher(xt: torch.Tensor, t: torch.Tensor) -> Prediction:  # the exact denoiser, one time per row
        a, sig = d.alpha_sigma(t, xt)
        x0 = mu + a * s**2 / (a**2 * s**2 + sig**2) * (xt - a * mu)
        return Prediction(eps=(xt - a * x0) / sig, x0=x0)

    loop = Consistency(teacher, student, d, param, x, LoopSettings(round_steps=500, batch_size=256, lr=4e-3),
                       intervals=18, solver="heun", ema=0.95)
    loop.fit()
    f = Denoiser(loop.target, d, param)
    oracle = GaussianOracle(d, mu, s)
    ts = make_grid(d, 100, "karras")
    states: dict[float, torch.Tensor] = {}
    z = torch.randn(1000, dim, generator=torch.Generator().manual_seed(1))
    states[ts[0]] = z
    end = sample_heun(oracle, z, d, ts, callback=lambda i, t, xt: states.__setitem__(t, xt))  # one trajectory each
    spread, posterior = [], []
    for k in (0, 20, 40, 60, 80):  # from σ̄ = 157 down to σ̄ ≈ 0.1
        t = ts[k]
        rel = lambda y: float((y - end).pow(2).mean() / end.var(0).mean())  # noqa: E731
        spread.append(rel(f(states[t], t).x0))
        posterior.append(rel(oracle(states[t], t).x0))
    assert max(spread) < 0.05
    assert posterior[0] > 0.5  # E[x_0 | x_t] is not the trajectory's end: the test could fail
