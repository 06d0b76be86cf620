"""The ELBO on any grid of jumps (continuous time, strided discrete steps) and with learned variances, against a
closed-form expectation and torch.distributions.

For Gaussian data N(μ, diag s²) and its exact denoiser x̂_0 = μ + k_t (x_t − √ᾱ_t μ), k_t = √ᾱ_t s²/(ᾱ_t s² + 1 − ᾱ_t),
the error given x_0 has E‖x_0 − x̂_0‖² = Σ_d (1 − k √ᾱ)² (x_0 − μ)² + k² (1 − ᾱ), so the bound on a grid
t_K > … > t_1 > 0 has a closed-form expectation over the x_t draws:

    prior    ½ Σ_d (ᾱ_K x_0² + (1 − ᾱ_K) − 1 − log(1 − ᾱ_K))
    t → s    ½ D (log(σ²/β̃) + β̃/σ² − 1) + ½ c² E‖x_0 − x̂_0(x_t)‖²/σ²,   β = 1 − ᾱ_t/ᾱ_s, β̃ = β (1 − ᾱ_s)/(1 − ᾱ_t),
             c = √ᾱ_s β/(1 − ᾱ_t), σ² = β ("large")
    decoder  ½ D log(2π (1 − ᾱ_1)) + ½ E‖x_0 − x̂_0(x_1)‖²/(1 − ᾱ_1)

with ᾱ recomputed here from each paper's schedule.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from difflab.diffusion import ContinuousDiffusion, GaussianDiffusion, Prediction, make_schedule
from difflab.evaluation.likelihood import decoder_nll, elbo, elbo_grid, elbo_terms, step_kl
from helpers import GaussianOracle

HO_BETAS = np.concatenate([[0.0], np.linspace(1e-4, 0.02, 1000)])


def ab_linear_vp(t: float) -> float:
    return math.exp(-0.1 * t - 0.5 * 19.9 * t * t)  # Song et al. 2021, eq. 33


def ab_ho(t: int) -> float:
    return float(np.prod(1.0 - HO_BETAS[: int(t) + 1]))


def expected_bound(abs_: list[float], x0: torch.Tensor, mu: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """E[bound] per point (nats, summed over dims) on the grid with ᾱ values ``abs_`` = [ᾱ_K, …, ᾱ_1] (module doc)."""
    D = x0.shape[1]
    dev2 = (x0 - mu) ** 2

    def err2(ab: float) -> torch.Tensor:
        k = math.sqrt(ab) * s2 / (ab * s2 + 1 - ab)
        return ((1 - k * math.sqrt(ab)) ** 2 * dev2 + k**2 * (1 - ab)).sum(1)

    ab_K = abs_[0]
    total = 0.5 * (ab_K * x0**2 + (1 - ab_K) - 1 - math.log(1 - ab_K)).sum(1)
    for ab_t, ab_s in zip(abs_[:-1], abs_[1:]):
        beta = 1 - ab_t / ab_s
        post = beta * (1 - ab_s) / (1 - ab_t)
        c = math.sqrt(ab_s) * beta / (1 - ab_t)
        total = total + 0.5 * D * (math.log(beta / post) + post / beta - 1) + 0.5 * c * c * err2(ab_t) / beta
    ab_1 = abs_[-1]
    return total + 0.5 * D * math.log(2 * math.pi * (1 - ab_1)) + 0.5 * err2(ab_1) / (1 - ab_1)


def problem(dim: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(dim)
    mu = torch.randn(dim, generator=g, dtype=torch.float64) * 0.5
    s = 0.2 + torch.rand(dim, generator=g, dtype=torch.float64)
    return mu, s, mu + s * torch.randn(n, dim, generator=g, dtype=torch.float64)


def nll(x: torch.Tensor, mu: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return -torch.distributions.Normal(mu, s).log_prob(x).sum(1)


def t_linear_vp(log_snr: np.ndarray) -> np.ndarray:
    """The inverse of eq. 33: ᾱ = sigmoid(λ), so 9.95 t² + 0.1 t = log(1 + e^−λ), solved for t ≥ 0."""
    c = np.log1p(np.exp(-log_snr))
    return (-0.1 + np.sqrt(0.01 + 4 * 9.95 * c)) / (2 * 9.95)


def logsnr_times(K: int) -> list[float]:
    """K times uniform in log-SNR λ = log(ᾱ / (1 − ᾱ)) from t = 1 to t = 1e-3 (the process's t_min)."""
    lam = [math.log(ab_linear_vp(t) / (1 - ab_linear_vp(t))) for t in (1.0, 1e-3)]
    return list(t_linear_vp(np.linspace(lam[0], lam[1], K)))


GRIDS = {  # process, ᾱ of a grid time (recomputed), steps, the grid's times written out
    "continuous": (lambda: ContinuousDiffusion("linear"), ab_linear_vp, logsnr_times),
    "strided": (lambda: GaussianDiffusion(make_schedule("linear", 1000)), ab_ho,
                lambda K: list(range(1000, 0, -1000 // K))),
}


@pytest.mark.parametrize(("grid", "steps"), [("continuous", 100), ("continuous", 1000), ("strided", 50)])
def test_estimate_matches_closed_form_on_the_grid(dim: int, grid: str, steps: int) -> None:
    """The bound's times are the grid written out here, and its per-point estimate is unbiased for the closed form:
    the mean difference is within 4 standard errors of the per-point differences (only the x_t draws vary)."""
    make, ab, times = GRIDS[grid]
    d = make()
    ts = elbo_grid(d, steps)
    np.testing.assert_allclose(ts[:-1], times(steps), rtol=1e-9)
    assert ts[-1] == 0
    mu, s, x = problem(dim, 300)
    terms = elbo_terms(GaussianOracle(d, mu, s), d, x, generator=torch.Generator().manual_seed(1), steps=steps)
    summary = elbo(GaussianOracle(d, mu, s), d, x, generator=torch.Generator().manual_seed(1), steps=steps)
    assert summary["steps"] == steps and summary["T"] == d.T
    assert summary["nats_per_dim"] == pytest.approx(float(terms["total"].mean()) / dim, rel=1e-12)
    expected = expected_bound([ab(t) for t in ts[:-1]], x, mu, s**2)
    diff = terms["total"] - expected
    assert abs(float(diff.mean())) < 4 * float(diff.std()) / math.sqrt(len(x)) + 1e-9, (float(diff.mean()),
                                                                                         float(diff.std()))
    torch.testing.assert_close(terms["prior"], 0.5 * (ab(ts[0]) * x**2 + (1 - ab(ts[0])) - 1
                                                      - math.log(1 - ab(ts[0]))).sum(1))


def test_continuous_bound_approaches_the_nll(dim: int) -> None:
    """On the continuous linear VP process the expected bound's gap to −log N(x; μ, s²) shrinks as the grid refines
    (steps 10 → 100 → 1000), to under 0.01 nats/dim (the estimate is that expectation's, tested above)."""
    make, ab, _ = GRIDS["continuous"]
    d = make()
    mu, s, x = problem(dim, 400)
    truth = float(nll(x, mu, s).mean()) / dim
    gaps = []
    for steps in (10, 100, 1000):
        ts = elbo_grid(d, steps)
        gaps.append(float(expected_bound([ab(t) for t in ts[:-1]], x, mu, s**2).mean()) / dim - truth)
    assert gaps[0] > gaps[1] > gaps[2] > 0 and gaps[2] < 0.01, gaps


# --- learned variances --------------------------------------------------------------------------------------------


def posterior_mean(x0: torch.Tensor, xt: torch.Tensor, ab_t: float, ab_s: float) -> torch.Tensor:
    """Ho et al. 2020, eq. 7, for a jump t → s."""
    beta = 1 - ab_t / ab_s
    return math.sqrt(ab_s) * beta / (1 - ab_t) * x0 + math.sqrt(ab_t / ab_s) * (1 - ab_s) / (1 - ab_t) * xt


JUMPS = [("discrete", 40, 39), ("discrete", 700, 650), ("continuous", 0.6, 0.45), ("continuous", 0.02, 0.01)]


@pytest.mark.parametrize(("time", "t", "s"), JUMPS)
@pytest.mark.parametrize("variance", ["learned", "small", "large"])
def test_step_kl_is_torch_kl(dim: int, time: str, t, s, variance: str) -> None:
    """KL(q(x_s | x_t, x_0) ‖ p(x_s | x_t)) per row equals torch.distributions' KL of the two diagonal Gaussians,
    p's variance exp(v log β + (1 − v) log β̃) with a random v (Nichol & Dhariwal 2021, eq. 15), or β̃, or β."""
    make, ab, _ = GRIDS["continuous" if time == "continuous" else "strided"]
    d = make()
    g = torch.Generator().manual_seed(dim)
    x0, eps, noise = torch.randn(3, 64, dim, generator=g, dtype=torch.float64)
    ab_t, ab_s = ab(t), ab(s)
    xt = math.sqrt(ab_t) * x0 + math.sqrt(1 - ab_t) * eps
    x0_hat = x0 + 0.3 * noise
    v = torch.rand(64, dim, generator=g, dtype=torch.float64)
    beta = 1 - ab_t / ab_s
    post = beta * (1 - ab_s) / (1 - ab_t)
    log_var = {"learned": v * math.log(beta) + (1 - v) * math.log(post),
               "small": torch.full_like(v, math.log(post)), "large": torch.full_like(v, math.log(beta))}[variance]
    q = torch.distributions.Normal(posterior_mean(x0, xt, ab_t, ab_s), math.sqrt(post))
    p = torch.distributions.Normal(posterior_mean(x0_hat, xt, ab_t, ab_s), torch.exp(0.5 * log_var))
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    got = step_kl(d, x0, x0_hat, t, variance, s=s, v=v if variance == "learned" else None)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("time", "t"), [("discrete", 1), ("discrete", 20), ("continuous", 1e-3)])
def test_learned_decoder_is_torch_log_prob(dim: int, time: str, t) -> None:
    """The last jump t → 0 scores −log N(x_0; x̂_0, σ²): σ² = 1 − ᾱ_t ('large'), or with v the interpolation
    between β = 1 − ᾱ_t and the log β̃ the module documents for β̃ = 0 (step 2's β̃ of a discrete process, β for a
    continuous one)."""
    make, ab, _ = GRIDS["continuous" if time == "continuous" else "strided"]
    d = make()
    g = torch.Generator().manual_seed(dim + 1)
    x0, noise = torch.randn(2, 32, dim, generator=g, dtype=torch.float64)
    x0_hat = x0 + 0.01 * noise
    v = torch.rand(32, dim, generator=g, dtype=torch.float64)
    beta = 1 - ab(t)
    post = beta if time == "continuous" else (ab(1) - ab(2)) / ab(1) * (1 - ab(1)) / (1 - ab(2))
    for variance, log_var in (("large", torch.full_like(v, math.log(beta))),
                              ("learned", v * math.log(beta) + (1 - v) * math.log(post))):
        expected = -torch.distributions.Normal(x0_hat, torch.exp(0.5 * log_var)).log_prob(x0).sum(1)
        got = decoder_nll(d, x0, x0_hat, t, variance=variance, v=v if variance == "learned" else None)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


class WithV:
    def __init__(self, oracle, v: float) -> None:
        self.oracle, self.v = oracle, v

    def __call__(self, xt: torch.Tensor, t) -> Prediction:
        p = self.oracle(xt, t)
        return Prediction(eps=p.eps, x0=p.x0, v=torch.full_like(xt, self.v))


@pytest.mark.parametrize("time", ["continuous", "strided"])
def test_learned_v_one_is_the_large_bound(dim: int, time: str) -> None:
    """A network that always says v = 1 has the 'large' variance β at every jump, decoder included: the same
    bound, point by point, for the same draws."""
    make, _, _ = GRIDS[time]
    d = make()
    mu, s, x = problem(dim, 100)
    oracle = GaussianOracle(d, mu, s)
    learned = elbo_terms(WithV(oracle, 1.0), d, x, variance="learned", steps=50,
                         generator=torch.Generator().manual_seed(3))
    large = elbo_terms(oracle, d, x, variance="large", steps=50, generator=torch.Generator().manual_seed(3))
    for key in ("prior", "diffusion", "decoder", "total"):
        torch.testing.assert_close(learned[key], large[key], rtol=1e-9, atol=1e-9)
