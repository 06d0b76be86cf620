"""Samplers with the exact denoiser of Gaussian data must reproduce that Gaussian; grids and equivalences."""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import Denoiser, GaussianDiffusion, make_schedule
from difflab.errors import ConfigError
from difflab.models import SeedMLP
from difflab.sampling import SAMPLERS, get_sampler, make_grid
from difflab.sampling.api import generate
from helpers import GaussianOracle
from helpers import diffusion as make_diffusion

CASES = [  # (sampler, schedule, T, steps, options): fine enough grids that discretisation error is < 5 %
    ("ddpm", "linear", 1000, None, {}),
    ("ddpm", "cosine", 400, None, {"variance": "large"}),
    ("ddim", "linear", 1000, None, {"eta": 0.0}),
    ("ddim", "cosine", 200, None, {"eta": 1.0}),
    ("dpm++", "linear", 1000, 100, {}),
    ("dpm++", "cosine", 100, None, {}),
]


@pytest.mark.parametrize(("sampler", "schedule", "T", "steps", "options"), CASES)
def test_exact_denoiser_reproduces_gaussian(dim, gaussian_problem, sampler, schedule, T, steps, options) -> None:
    mu, s = gaussian_problem
    d = make_diffusion(schedule, T)
    oracle = GaussianOracle(d, mu, s)
    n = 10_000  # std of the sample std ≈ 0.7 %: well inside the 5 % tolerance
    x, _ = generate(oracle, d, n, dim, sampler=sampler, steps=steps, seed=3, options=options)
    x = x.double()
    assert torch.allclose(x.mean(0), mu.double(), atol=0.03)
    assert torch.allclose(x.std(0), s.double(), rtol=0.05)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
def test_ode_solvers_converge_with_steps(sampler: str) -> None:
    """Deterministic samplers of the probability-flow ODE: the std error shrinks as the grid refines."""
    mu, s = torch.tensor([0.3]), torch.tensor([0.25])
    d = make_diffusion("linear", 1000)
    errors = []
    for steps in (10, 40, 160):
        x, _ = generate(GaussianOracle(d, mu, s), d, 20_000, 1, sampler=sampler, steps=steps, seed=0)
        errors.append(abs(float(x.std()) - 0.25))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01


def test_tutorial_schedule_discretisation_shrinks_with_T() -> None:
    """The tutorial's poly schedule with the exact denoiser: the mean is right at any T, while T = 10 steps
    under-disperse a Gaussian (a discretisation error, not a model error) and more steps remove it."""
    mu, s = torch.tensor([0.3, -0.2]), torch.tensor([0.5, 0.8])
    errors = []
    for T in (10, 100, 1000):
        d = GaussianDiffusion(make_schedule("poly", T))
        x, _ = generate(GaussianOracle(d, mu, s), d, 20_000, 2, sampler="ddpm", seed=0)
        assert torch.allclose(x.mean(0), mu, atol=0.03)
        errors.append(float((x.std(0) / s - 1).abs().max()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.03


def test_ddim_eta1_equals_ddpm(dim, gaussian_problem) -> None:
    """Song et al. 2021: DDIM with η = 1 is the ancestral sampler with the posterior variance."""
    mu, s = gaussian_problem
    d = make_diffusion("cosine", 50)
    oracle = GaussianOracle(d, mu, s)
    ts = make_grid(d, 10)
    x_T = torch.randn(256, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = SAMPLERS["ddpm"](oracle, x_T, d, ts, generator=torch.Generator().manual_seed(1))
    b = SAMPLERS["ddim"](oracle, x_T, d, ts, generator=torch.Generator().manual_seed(1), eta=1.0)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def _tutorial_sample(model: torch.nn.Module, betas: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """The tutorial's ReverseProcess.sample, written as the post writes it (torch.roll for ᾱ_{t−1}, σ_1 = 0)."""
    alphas = 1.0 - betas
    alpha_bar = torch.cumprod(alphas, dim=-1)
    sigma = ((1 - alphas) * (1 - torch.roll(alpha_bar, 1)) / (1 - alpha_bar)) ** 0.5
    sigma[1] = 0.0
    T = len(betas) - 1
    x_t = torch.randn(n, 2, generator=gen)
    for t in range(T, 0, -1):
        with torch.no_grad():
            eps = model(x_t, torch.full((n,), t, dtype=torch.long))
            eps = eps * (1 - alphas[t]) / ((1 - alpha_bar[t]) ** 0.5)
            mean = 1 / (alphas[t] ** 0.5) * (x_t - eps)
            x_t = mean + sigma[t] * torch.randn(x_t.shape, generator=gen)
    return x_t


def test_ddpm_is_the_tutorial_sampler() -> None:
    torch.manual_seed(0)
    model = SeedMLP(2, 10).eval()
    schedule = make_schedule("poly", 10)
    d = GaussianDiffusion(schedule)
    ref = _tutorial_sample(model, torch.tensor(schedule.betas, dtype=torch.float32), 500, torch.Generator().manual_seed(7))
    ours, _ = generate(Denoiser(model, d), d, 500, 2, sampler="ddpm", seed=7)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["trailing", "linspace"])
@pytest.mark.parametrize(("T", "K"), [(10, 10), (10, 3), (1000, 50), (100, 7), (5, 1)])
def test_grids(kind: str, T: int, K: int) -> None:
    ts = make_grid(make_diffusion("linear", T), K, kind)
    assert ts[0] == T and ts[-1] == 0 and len(ts) == K + 1
    assert all(a > b for a, b in zip(ts, ts[1:]))


def test_grid_default_is_every_step() -> None:
    assert make_grid(make_diffusion("poly", 10)) == list(range(10, -1, -1))


@pytest.mark.parametrize(("steps", "match"), [(11, "between 1 and T"), (0, "between 1 and T")])
def test_bad_grids(steps, match) -> None:
    d = make_diffusion("poly", 10)
    with pytest.raises(ConfigError, match=match):
        make_grid(d, steps)
    with pytest.raises(ConfigError, match="unknown time grid"):
        make_grid(d, 5, "bogus")


def test_unknown_sampler_and_options() -> None:
    with pytest.raises(ConfigError, match="unknown sampler 'euler'"):
        get_sampler("euler")
    d = make_diffusion("poly", 10)
    oracle = GaussianOracle(d, torch.zeros(2), torch.ones(2))
    with pytest.raises(ConfigError, match="variance"):
        generate(oracle, d, 4, 2, sampler="ddpm", options={"variance": "medium"})
    with pytest.raises(ConfigError, match="eta"):
        generate(oracle, d, 4, 2, sampler="ddim", options={"eta": -1.0})


def test_seeded_and_chunked(dim) -> None:
    d = make_diffusion("poly", 10)
    oracle = GaussianOracle(d, torch.zeros(dim), torch.ones(dim))
    a, _ = generate(oracle, d, 100, dim, seed=5)
    b, _ = generate(oracle, d, 100, dim, seed=5)
    c, _ = generate(oracle, d, 100, dim, seed=6)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    x, traj = generate(oracle, d, 100, dim, seed=5, chunk_size=30, trajectory=True, steps=4)
    assert x.shape == (100, dim) and traj is not None and traj.shape == (5, 100, dim)
    torch.testing.assert_close(traj[-1], x)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_survive_underflowing_alpha_bar(sampler: str) -> None:
    """seed-linear at T = 1000 has ᾱ_t = 0 in float64 for large t; ratios come from log ᾱ, so sampling works."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = GaussianDiffusion(make_schedule("seed-linear", 1000))
    assert float(d.alpha_bars[-1]) == 0.0
    mu, s = torch.tensor([0.3, -0.2]), torch.tensor([0.5, 0.8])
    x, _ = generate(GaussianOracle(d, mu, s), d, 4000, 2, sampler=sampler, seed=0)
    assert torch.isfinite(x).all()
    assert torch.allclose(x.mean(0), mu, atol=0.06) and torch.allclose(x.std(0), s, rtol=0.1)
