"""Every sampler against independent computations, with Gaussian data N(μ, diag s²) and its exact denoiser
(grids: test_grids.py; guards on x̂_0: test_guards.py).

The exact probability-flow map of Gaussian data. Per coordinate the marginal of x_t is N(α_t μ, α_t² s² + σ_t²)
(α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t)). The exact denoiser is affine in x_t, so the probability-flow ODE has a drift affine
in x; its flow map is affine, increasing (it starts as the identity and never folds) and carries the marginal at
one time to the marginal at any other (Song et al. 2021, §4.3). The only increasing affine map between two 1-D
Gaussians keeps the standardised value z = (x_t − α_t μ)/√(α_t² s² + σ_t²) fixed. Every sampler's last jump returns
the denoised point at its last network time L, x̂_0 = μ + α_L s²/(α_L² s² + σ_L²) (x_L − α_L μ), so an exact solve
from x_T ends at

    x_0 = μ + α_L s² z / √(α_L² s² + σ_L²),   z = (x_T − α_T μ)/√(α_T² s² + σ_T²),

which is μ + s z, the map x_0 = μ + s (x_T − α_T μ)/√(α_T² s² + σ_T²), as σ_L → 0. ᾱ is recomputed in this file
from each paper's schedule, not read from the library.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from difflab.diffusion import ContinuousDiffusion, Denoiser, GaussianDiffusion, Prediction, make_schedule
from difflab.sampling import SAMPLERS, make_grid
from helpers import GaussianOracle

HO_BETAS = np.concatenate([[0.0], np.linspace(1e-4, 0.02, 1000)])  # Ho et al. 2020, T = 1000


def ab_linear_vp(t: float) -> float:
    return math.exp(-0.1 * t - 0.5 * 19.9 * t * t)  # Song et al. 2021, eq. 33


def ab_edm(t: float) -> float:
    return 1.0 / (1.0 + (80.0 * t) ** 2)  # Karras et al. 2022, σ = 80 t


def ab_ho(t: int) -> float:
    return float(np.prod(1.0 - HO_BETAS[: int(t) + 1]))


REFERENCE = {"linear-vp": (lambda: ContinuousDiffusion("linear"), ab_linear_vp),
             "edm": (lambda: ContinuousDiffusion("edm"), ab_edm),
             "ho-1000": (lambda: GaussianDiffusion(make_schedule("linear", 1000)), ab_ho)}


def exact_map(x_T: torch.Tensor, mu: torch.Tensor, s: torch.Tensor, ab_T: float, ab_L: float) -> torch.Tensor:
    """The end of an exact probability-flow solve from x_T whose last network time has ᾱ_L (module doc)."""
    z = (x_T - math.sqrt(ab_T) * mu) / torch.sqrt(ab_T * s**2 + 1 - ab_T)
    return mu + math.sqrt(ab_L) * s**2 * z / torch.sqrt(ab_L * s**2 + 1 - ab_L)


def start(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def run(name: str, denoise, d, ts, x_T: torch.Tensor, seed: int = 1, **options) -> torch.Tensor:
    return SAMPLERS[name](denoise, x_T.clone(), d, ts, generator=torch.Generator().manual_seed(seed), **options)


def case_id(value) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "defaults"
    return str(value)


def assert_gaussian(x: torch.Tensor, mu: torch.Tensor, s: torch.Tensor) -> None:
    """Mean within 0.06 s (≈ 4.6 standard errors at n = 6000) and std within 5 % per coordinate."""
    assert torch.isfinite(x).all()
    assert torch.all((x.mean(0) - mu).abs() < 0.06 * s), ((x.mean(0) - mu) / s)
    assert torch.allclose(x.std(0), s, rtol=0.05), x.std(0) / s


# --- every sampler reproduces the data distribution ---------------------------------------------------------------

# (sampler, options, steps): steps chosen so that each one's discretisation error is under ~2 % of s
# (ddim with η = 1 is ddpm, tests/sampling/test_samplers.py::test_ddim_eta1_equals_ddpm)
CONTINUOUS_CASES = [("ddpm", {}, 400), ("ddpm", {"variance": "large"}, 200), ("ddim", {}, 200), ("dpm++", {}, 50),
                    ("dpm++-sde", {}, 100), ("heun", {}, 50), ("heun-sde", {}, 200), ("ode", {}, 10)]
DISCRETE_CASES = [("ddpm", {"variance": "large"}, 200), ("ddim", {}, 200), ("dpm++", {}, 100),
                  ("dpm++-sde", {}, 200), ("heun", {}, 200), ("heun-sde", {}, 200), ("ode", {}, 200)]


@pytest.mark.parametrize(("sampler", "options", "steps"), CONTINUOUS_CASES, ids=case_id)
def test_every_sampler_reproduces_gaussian_continuous(dim, gaussian_problem, sampler, options, steps) -> None:
    mu, s = (v.double() for v in gaussian_problem)
    d = ContinuousDiffusion("linear")
    x = run(sampler, GaussianOracle(d, mu, s), d, make_grid(d, steps, "logsnr"), start(6000, dim), **options)
    assert_gaussian(x, mu, s)


@pytest.mark.parametrize(("sampler", "options", "steps"), DISCRETE_CASES, ids=case_id)
def test_every_sampler_reproduces_gaussian_discrete(dim, gaussian_problem, sampler, options, steps) -> None:
    mu, s = (v.double() for v in gaussian_problem)
    d = GaussianDiffusion(make_schedule("cosine", 200))
    x = run(sampler, GaussianOracle(d, mu, s), d, make_grid(d, steps), start(6000, dim), **options)
    assert_gaussian(x, mu, s)


# --- deterministic samplers follow the exact probability-flow map ------------------------------------------------


def map_errors(sampler: str, process: str, grid: str, steps: list[int], dim: int, **options) -> list[float]:
    make, ab = REFERENCE[process]
    d = make()
    g = torch.Generator().manual_seed(dim)
    mu = torch.randn(dim, generator=g, dtype=torch.float64) * 0.5
    s = 0.2 + torch.rand(dim, generator=g, dtype=torch.float64)
    x_T = start(500, dim, seed=7)
    errors = []
    for K in steps:
        ts = make_grid(d, K, grid)
        x = run(sampler, GaussianOracle(d, mu, s), d, ts, x_T, **options)
        errors.append(float((x - exact_map(x_T, mu, s, ab(ts[0]), ab(ts[-2]))).abs().max()))
    return errors


@pytest.mark.parametrize(("process", "grid"), [("linear-vp", "logsnr"), ("edm", "karras")])
def test_heun_is_second_order(dim: int, process: str, grid: str) -> None:
    """Karras et al. 2022, Alg. 1: the error falls about 4× per doubling of the steps."""
    e = map_errors("heun", process, grid, [10, 20, 40, 80], dim)
    ratios = [a / b for a, b in zip(e, e[1:])]
    assert all(3.2 < r < 6.0 for r in ratios), (e, ratios)
    assert e[-1] < 0.01


@pytest.mark.parametrize(("process", "grid"), [("linear-vp", "logsnr"), ("edm", "karras")])
def test_ddim_is_first_order(dim: int, process: str, grid: str) -> None:
    """DDIM with η = 0 is the first-order exponential integrator of the ODE: about 2× per doubling."""
    e = map_errors("ddim", process, grid, [10, 20, 40, 80], dim)
    ratios = [a / b for a, b in zip(e, e[1:])]
    assert all(1.7 < r < 2.3 for r in ratios), (e, ratios)


@pytest.mark.parametrize(("process", "grid"), [("linear-vp", "logsnr"), ("edm", "karras")])
def test_dpmpp_converges_at_second_order(dim: int, process: str, grid: str) -> None:
    """DPM-Solver++(2M) (Lu et al. 2022): the error shrinks with every doubling, about 4× once the grid is fine."""
    e = map_errors("dpm++", process, grid, [10, 20, 40, 80], dim)
    assert e[0] > e[1] > e[2] > e[3] and e[2] / e[3] > 3.2, e
    assert e[-1] < 0.01


@pytest.mark.parametrize("process", ["linear-vp", "edm", "ho-1000"])
def test_adaptive_ode_is_the_exact_map(dim: int, process: str) -> None:
    """scipy's RK45 at the default tolerances lands within 1e-3 of the exact map; tighter tolerances get closer."""
    default = map_errors("ode", process, "karras", [10], dim)[0]
    tight = map_errors("ode", process, "karras", [10], dim, rtol=1e-9, atol=1e-9)[0]
    assert default < 1e-3 and tight < 1e-6, (default, tight)


def test_discrete_deterministic_samplers_converge_to_the_map(dim: int) -> None:
    """On Ho et al.'s discrete schedule (whole steps) every deterministic sampler closes in on the exact map."""
    for sampler in ("ddim", "dpm++", "heun"):
        e = map_errors(sampler, "ho-1000", "trailing", [25, 100, 1000], dim)
        assert e[0] > e[1] > e[2], (sampler, e)
        assert e[2] < (0.02 if sampler == "ddim" else 1e-3), (sampler, e)


# --- learned variances in ancestral sampling -----------------------------------------------------------------------


class WithV:
    """The oracle with a fixed or random learned-variance output v (Nichol & Dhariwal 2021, eq. 15)."""

    def __init__(self, oracle, v) -> None:
        self.oracle, self.v = oracle, v

    def __call__(self, xt: torch.Tensor, t) -> Prediction:
        p = self.oracle(xt, t)
        v = self.v(xt) if callable(self.v) else torch.full_like(xt, float(self.v))
        return Prediction(eps=p.eps, x0=p.x0, v=v)


@pytest.mark.parametrize("time", ["discrete", "continuous"])
def test_learned_variance_endpoints_are_large_and_small(dim: int, time: str) -> None:
    d = GaussianDiffusion(make_schedule("cosine", 100)) if time == "discrete" else ContinuousDiffusion("cosine")
    oracle = GaussianOracle(d, torch.zeros(dim, dtype=torch.float64), torch.full((dim,), 0.5, dtype=torch.float64))
    ts = make_grid(d, 20)
    x_T = start(300, dim, seed=6)
    for v, fixed in ((1.0, "large"), (0.0, "small")):
        learned = run("ddpm", WithV(oracle, v), d, ts, x_T, seed=9)
        # to float32's resolution: float64 arithmetic is held to 1e-10 by test_ddpm_jump_by_hand
        torch.testing.assert_close(learned, run("ddpm", oracle, d, ts, x_T, seed=9, variance=fixed),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("variance", ["small", "large", "learned"])
@pytest.mark.parametrize(("time", "t", "s"), [("discrete", 40, 39), ("discrete", 60, 45), ("continuous", 0.7, 0.55)])
def test_ddpm_jump_by_hand(dim: int, time: str, t, s, variance: str) -> None:
    """One ancestral jump t → s in float64: mean μ̃ = √ᾱ_s β/(1 − ᾱ_t) x̂_0 + √(ᾱ_t/ᾱ_s)(1 − ᾱ_s)/(1 − ᾱ_t) x_t (Ho et
    al. 2020, eq. 7 for a jump, β = 1 − ᾱ_t/ᾱ_s) and variance β̃ = β (1 − ᾱ_s)/(1 − ᾱ_t) (small), β (large) or, with
    a random v, exp(v log β + (1 − v) log β̃) (learned; Nichol & Dhariwal 2021, eq. 15), with the same noise draw."""
    d = GaussianDiffusion(make_schedule("linear", 100)) if time == "discrete" else ContinuousDiffusion("linear")
    ab = (lambda u: ab_linear_vp(u)) if time == "continuous" else (
        lambda u: float(np.prod(1 - np.linspace(1e-3, 0.2, 100)[:u])))  # Ho's β × 1000/T
    oracle = GaussianOracle(d, torch.full((dim,), 0.3, dtype=torch.float64), torch.full((dim,), 0.7, dtype=torch.float64))
    v_of = lambda x: torch.sigmoid(x.sum(1, keepdim=True) + torch.arange(dim, dtype=x.dtype))  # noqa: E731
    x_t = start(200, dim, seed=8)
    if variance == "learned":
        out = run("ddpm", WithV(oracle, v_of), d, [t, s], x_t, seed=12)
    else:
        out = run("ddpm", oracle, d, [t, s], x_t, seed=12, variance=variance)
    ab_t, ab_s = ab(t), ab(s)
    beta = 1 - ab_t / ab_s
    post = beta * (1 - ab_s) / (1 - ab_t)
    x0_hat = oracle(x_t, t).x0
    mean = math.sqrt(ab_s) * beta / (1 - ab_t) * x0_hat + math.sqrt(ab_t / ab_s) * (1 - ab_s) / (1 - ab_t) * x_t
    v = v_of(x_t)
    log_var = {"small": math.log(post), "large": math.log(beta), "learned": v * math.log(beta) + (1 - v) * math.log(post)}
    std = torch.exp(0.5 * torch.as_tensor(log_var[variance], dtype=torch.float64))
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    torch.testing.assert_close(out, mean + std * z, rtol=1e-10, atol=1e-10)


# --- zero terminal SNR --------------------------------------------------------------------------------------------


class ExactV(nn.Module):
    """A 'v-network' that is exact for N(μ, diag s²) data: v = α ε̂ − σ x̂_0 at the ᾱ its time code stands for (the
    step of a discrete process, or c_noise = −λ/8 of a continuous one: ᾱ = sigmoid(−8 c_noise))."""

    def __init__(self, d, mu: torch.Tensor, s: torch.Tensor) -> None:
        super().__init__()
        self.d, self.oracle = d, GaussianOracle(d, mu, s)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        c = float(code[0])
        if not math.isfinite(c):  # what a network's sinusoidal embedding makes of an infinite time code
            return torch.full_like(x, math.nan)
        ab = self.d.alpha_bar(int(c)) if self.d.discrete else 1.0 / (1.0 + math.exp(8.0 * c))
        mu, s2 = self.oracle.mu, self.oracle.s2
        x0 = mu + math.sqrt(ab) * s2 / (ab * s2 + 1 - ab) * (x - math.sqrt(ab) * mu)  # x̂_0 = μ where ᾱ = 0
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        return math.sqrt(ab) * eps - math.sqrt(1 - ab) * x0


ZSNR = {"discrete": lambda: GaussianDiffusion(make_schedule("cosine", 200, zero_snr=True)),
        "continuous": lambda: ContinuousDiffusion("cosine", zero_terminal_snr=True)}
ZSNR_CASES = [("discrete", "ddpm", {"variance": "large"}, 200), ("continuous", "ddpm", {"variance": "large"}, 200),
              ("discrete", "ddim", {}, 200), ("continuous", "ddim", {}, 400), ("discrete", "heun", {}, 200),
              ("continuous", "heun", {}, 200), ("discrete", "dpm++", {}, 100), ("continuous", "dpm++", {}, 100)]


@pytest.mark.parametrize(("time", "sampler", "options", "steps"), ZSNR_CASES, ids=case_id)
def test_zero_terminal_snr_sampling(dim, gaussian_problem, time, sampler, options, steps) -> None:
    """ᾱ(t_max) = 0: the first jump can only use x̂_0 (ε̂ = x_T says nothing); with an exact v-predicting network
    read by the Denoiser every sampler still reproduces N(μ, s²) (trailing grids, which start at t_max)."""
    mu, s = (v.double() for v in gaussian_problem)
    d = ZSNR[time]()
    assert d.alpha_bar(d.t_max) == 0.0
    den = Denoiser(ExactV(d, mu, s), d, "v")
    x = run(sampler, den, d, make_grid(d, steps), start(6000, dim), **options)
    assert_gaussian(x, mu, s)


# --- Heun's correction on long jumps ------------------------------------------------------------------------------


class Biased:
    """The exact denoiser with x̂_0 off by a constant b (ε̂ consistent with it): a denoiser error of size |b|."""

    def __init__(self, oracle: GaussianOracle, d, b: float) -> None:
        self.oracle, self.d, self.b = oracle, d, b

    def __call__(self, xt: torch.Tensor, t: float) -> Prediction:
        x0 = self.oracle(xt, t).x0 + self.b
        ab = self.d.alpha_bar(t)
        return Prediction(eps=(xt - math.sqrt(ab) * x0) / math.sqrt(1 - ab), x0=x0)


@pytest.mark.parametrize("K", [2, 3, 4])
def test_heun_long_jump_does_not_amplify_denoiser_error(dim, gaussian_problem, K) -> None:
    """On EDM's karras grid of 2-4 jumps the first jump falls from σ = 80 to a few times σ_min: Heun's trapezoid in
    x̄ = x/α multiplies the denoiser's error at the jump's end by (σ̄_t − σ̄_s)/(2σ̄_s) (20 000 for 80 → 0.002). With an
    error b in x̂_0 the sample must move by O(b), as with Euler (DDIM) on the same grid."""
    mu, s = (v.double() for v in gaussian_problem)
    d = ContinuousDiffusion("edm")
    ts = make_grid(d, K, "karras")
    oracle = GaussianOracle(d, mu, s)
    x_T = start(500, dim) * 80.0 / math.sqrt(1 + 80.0**2)
    moved = {name: float((run(name, Biased(oracle, d, 0.01), d, ts, x_T) - run(name, oracle, d, ts, x_T)).abs().max())
             for name in ("heun", "ddim")}
    # (the x̄-trapezoid alone moved it by 200, 6.3 and 1.3 for K = 2, 3, 4)
    assert moved["ddim"] < 0.04 and moved["heun"] < 2.0 * moved["ddim"], moved
