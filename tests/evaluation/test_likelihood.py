"""The ELBO against closed forms: Gaussian data x_0 ~ N(μ, diag s²) with its exact denoiser.

For such data x̂_0(x_t) = μ + k_t (x_t − √ᾱ_t μ) with k_t = √ᾱ_t s² / (ᾱ_t s² + 1 − ᾱ_t), so given x_0 the error
x_0 − x̂_0 = (1 − k_t √ᾱ_t)(x_0 − μ) − k_t √(1 − ᾱ_t) ε has E‖·‖² = (1 − k_t √ᾱ_t)² (x_0 − μ)² + k_t² (1 − ᾱ_t)
per dimension, and every term of the bound has a closed-form expectation over x_t. That expectation is written
here from β alone, independently of the library's process tables.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from difflab.data import MinMaxScaler
from difflab.diffusion import GaussianDiffusion, make_schedule
from difflab.errors import ConfigError, DataError
from difflab.evaluation.likelihood import decoder_nll, elbo, elbo_terms, prior_kl, step_kl
from helpers import GaussianOracle


def expected_bound(betas: np.ndarray, x0: np.ndarray, mu: np.ndarray, s2: np.ndarray, variance: str) -> np.ndarray:
    """E_q[L(x_0)] per point (nats, summed over dims) for N(μ, diag s²) data and its exact denoiser."""
    T = len(betas) - 1
    ab = np.cumprod(1.0 - betas)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    dev2 = (x0 - mu) ** 2  # (N, D)

    def err2(t: int) -> np.ndarray:  # E‖x_0 − x̂_0(x_t)‖² given x_0, per point
        k = math.sqrt(ab[t]) * s2 / (ab[t] * s2 + 1.0 - ab[t])
        return ((1.0 - k * math.sqrt(ab[t])) ** 2 * dev2 + k**2 * (1.0 - ab[t])).sum(axis=1)

    D = x0.shape[1]
    total = 0.5 * (ab[T] * x0**2 + (1.0 - ab[T]) - 1.0 - math.log(1.0 - ab[T])).sum(axis=1)  # prior
    total = total + 0.5 * D * math.log(2 * math.pi * betas[1]) + 0.5 * err2(1) / betas[1]  # decoder
    for t in range(2, T + 1):
        var_q = betas[t] * (1.0 - ab_prev[t]) / (1.0 - ab[t])
        var_p = var_q if variance == "small" else betas[t]
        c = math.sqrt(ab_prev[t]) * betas[t] / (1.0 - ab[t])
        total = total + 0.5 * D * (math.log(var_p / var_q) + var_q / var_p - 1.0) + 0.5 * c * c * err2(t) / var_p
    return total


def gaussian_points(mu: torch.Tensor, s: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return mu.double() + s.double() * torch.randn(n, len(mu), generator=g, dtype=torch.float64)


def nll(x: torch.Tensor, mu: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """−log N(x; μ, diag s²) per point."""
    s = s.double()
    return (0.5 * torch.log(2 * math.pi * s**2) + 0.5 * ((x - mu.double()) / s) ** 2).sum(dim=1)


@pytest.mark.parametrize(("schedule", "T", "variance"), [
    ("linear", 100, "large"), ("linear", 100, "small"), ("cosine", 10, "large"), ("poly", 10, "small"),
    ("cosine", 1000, "large"),
])
def test_estimate_matches_closed_form_expectation(dim, gaussian_problem, schedule, T, variance) -> None:
    """Per point, the sampled bound minus its exact expectation averages to 0 within 4 standard errors."""
    mu, s = gaussian_problem
    d = GaussianDiffusion(make_schedule(schedule, T, warn=False))
    x = gaussian_points(mu, s, 400, seed=1)
    terms = elbo_terms(GaussianOracle(d, mu, s), d, x, n_noise=2, variance=variance,
                       generator=torch.Generator().manual_seed(2))
    exact = expected_bound(d.schedule.betas, x.numpy(), mu.double().numpy(), s.double().numpy() ** 2, variance)
    resid = terms["total"].numpy() - exact
    assert abs(resid.mean()) < 4 * resid.std(ddof=1) / math.sqrt(len(resid)) + 1e-9
    assert torch.allclose(terms["total"], terms["prior"] + terms["diffusion"] + terms["decoder"])


def test_exact_expectation_bounds_the_nll_and_the_gap_shrinks_with_T() -> None:
    """Over the data distribution (E(x_0 − μ)² = s²) the bound is at least the entropy ½ log(2πe s²) per dim. With
    the "large" variance the gap shrinks with T toward 0 for the linear and cosine families; the "small" one
    shrinks on the linear schedule but levels off near 0.3 nats/dim (see the likelihood module's doc)."""
    s2 = np.array([0.25, 0.64])
    mu = np.zeros(2)
    x_pop = mu + np.sqrt(s2)  # a point with (x_0 − μ)² = s² makes the per-point formula the population mean
    entropy = 0.5 * np.log(2 * np.pi * np.e * s2).sum()
    gaps = {}
    for schedule in ("linear", "cosine"):
        for variance in ("large", "small"):
            gaps[schedule, variance] = [
                (expected_bound(make_schedule(schedule, T, warn=False).betas, x_pop[None], mu, s2, variance)[0]
                 - entropy) / 2 for T in (10, 100, 1000)
            ]
    for g in gaps.values():
        assert min(g) > 0
    for schedule in ("linear", "cosine"):
        g = gaps[schedule, "large"]
        assert g[0] > 5 * g[1] > 25 * g[2] and g[2] < 2e-3
    small = gaps["linear", "small"]
    assert small[0] > small[1] > small[2] > 0.2


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_estimate_bounds_empirical_nll_and_is_tight_at_large_T(dim, gaussian_problem, schedule) -> None:
    """T = 1000, "large": the bound minus −log N on the same 1000 points is ≥ 0 and below 0.01 nats/dim, up to
    4 standard errors of the paired difference."""
    mu, s = gaussian_problem
    d = GaussianDiffusion(make_schedule(schedule, 1000))
    x = gaussian_points(mu, s, 1000, seed=3)
    terms = elbo_terms(GaussianOracle(d, mu, s), d, x, generator=torch.Generator().manual_seed(4))
    diff = (terms["total"] - nll(x, mu, s)) / dim
    se = float(diff.std()) / math.sqrt(len(diff))
    assert -4 * se < float(diff.mean()) < 0.01 + 4 * se


@pytest.mark.parametrize("variance", ["small", "large"])
def test_terms_equal_gaussian_kl_and_log_density(dim, variance) -> None:
    """Each term against torch.distributions: KL of the two Gaussians over x_{t−1} (means from the posterior at x_0
    and at x̂_0), the decoder's −log N(x_0; x̂_0, β_1), and the prior's KL to N(0, I)."""
    from torch.distributions import Normal, kl_divergence

    d = GaussianDiffusion(make_schedule("cosine", 20))
    g = torch.Generator().manual_seed(dim)
    x0, x0_hat, xt = (torch.randn(7, dim, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (2, 5, 20):
        mean_q, var_q = d.q_posterior_mean_variance(x0, xt, t)
        mean_p, _ = d.q_posterior_mean_variance(x0_hat, xt, t)
        var_p = var_q if variance == "small" else d.betas[t]
        want = kl_divergence(Normal(mean_q, var_q.sqrt()), Normal(mean_p, var_p.sqrt())).sum(1)
        assert torch.allclose(step_kl(d, x0, x0_hat, t, variance), want, rtol=1e-9, atol=1e-12)
    want = -Normal(x0_hat, d.betas[1].sqrt()).log_prob(x0).sum(1)
    assert torch.allclose(decoder_nll(d, x0, x0_hat), want, rtol=1e-12)
    ab = d.alpha_bars[d.T]
    want = kl_divergence(Normal(ab.sqrt() * x0, (1 - ab).sqrt()), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(prior_kl(d, x0), want, rtol=1e-9, atol=1e-12)


def test_summary_parts_add_up_and_units(gaussian_problem, dim) -> None:
    mu, s = gaussian_problem
    d = GaussianDiffusion(make_schedule("cosine", 50))
    x = gaussian_points(mu, s, 300, seed=0)
    r = elbo(GaussianOracle(d, mu, s), d, x, scaler_logdet=0.7, generator=torch.Generator().manual_seed(0))
    assert r["prior"] + r["diffusion"] + r["decoder"] == pytest.approx(r["nats_per_dim_scaled"], abs=1e-12)
    assert r["nats_per_dim_scaled"] + r["jacobian"] == pytest.approx(r["nats_per_dim"], abs=1e-12)
    assert r["jacobian"] == pytest.approx(-0.7 / dim)
    assert r["bits_per_dim"] == pytest.approx(r["nats_per_dim"] / math.log(2))
    assert (r["n"], r["dim"], r["T"], r["variance"]) == (300, dim, 50, "large")
    assert 0 < r["stderr"] < 1


def test_scaler_log_det_shifts_exactly(dim) -> None:
    """Data in its own units, a fitted min-max scaler, the exact denoiser of the scaled Gaussian: the bound's gap
    to the data-unit NLL (computed directly in data units) equals its gap in scaled units, which holds only with
    −log p_data = −log p_scaled − log|det J|."""
    g = torch.Generator().manual_seed(dim)
    m, sigma = torch.randn(dim, generator=g) * 10, 0.1 + 5 * torch.rand(dim, generator=g)
    x = gaussian_points(m, sigma, 500, seed=5).numpy()
    scaler = MinMaxScaler().fit(x)
    a = scaler.transform(np.ones((1, dim)))[0] - scaler.transform(np.zeros((1, dim)))[0]
    b = scaler.transform(np.zeros((1, dim)))[0]
    mu_s, s_s = torch.as_tensor(a * m.double().numpy() + b), torch.as_tensor(np.abs(a) * sigma.double().numpy())
    d = GaussianDiffusion(make_schedule("linear", 200))
    xs = torch.as_tensor(scaler.transform(x))
    kw = {"variance": "large"}
    data_units = elbo(GaussianOracle(d, mu_s, s_s), d, xs, scaler_logdet=scaler.log_abs_det_jacobian(),
                      generator=torch.Generator().manual_seed(6), **kw)
    scaled = elbo(GaussianOracle(d, mu_s, s_s), d, xs, generator=torch.Generator().manual_seed(6), **kw)
    nll_data = float(nll(torch.as_tensor(x), m, sigma).mean()) / dim
    nll_scaled = float(nll(xs, mu_s, s_s).mean()) / dim
    assert data_units["nats_per_dim"] - nll_data == pytest.approx(scaled["nats_per_dim"] - nll_scaled, abs=1e-9)
    assert data_units["nats_per_dim"] - scaled["nats_per_dim"] == pytest.approx(
        -scaler.log_abs_det_jacobian() / dim, abs=1e-12)


def test_float32_network_input(gaussian_problem) -> None:
    """A float32 denoiser (as networks are) is called with float32 x_t; the result agrees with float64."""
    mu, s = gaussian_problem
    d = GaussianDiffusion(make_schedule("cosine", 100))
    x = gaussian_points(mu, s, 500, seed=0)
    seen = []
    oracle = GaussianOracle(d, mu, s)

    def denoise(xt: torch.Tensor, t: int):  # noqa: ANN202
        seen.append(xt.dtype)
        return oracle(xt, t)

    r32 = elbo(denoise, d, x.float(), generator=torch.Generator().manual_seed(0))
    r64 = elbo(oracle, d, x, generator=torch.Generator().manual_seed(0))
    assert set(seen) == {torch.float32}
    assert r32["nats_per_dim"] == pytest.approx(r64["nats_per_dim"], abs=1e-3)


def test_bad_inputs() -> None:
    d = GaussianDiffusion(make_schedule("cosine", 10))
    oracle = GaussianOracle(d, torch.zeros(2), torch.ones(2))
    x = torch.zeros(5, 2)
    with pytest.raises(ConfigError, match="reverse variance"):
        elbo(oracle, d, x, variance="medium")
    with pytest.raises(ConfigError, match="n_noise"):
        elbo(oracle, d, x, n_noise=0)
    with pytest.raises(DataError, match="non-finite"):
        elbo(oracle, d, torch.full((3, 2), float("nan")))
    with pytest.raises(DataError, match="2-D"):
        elbo(oracle, d, torch.zeros(4))


@pytest.mark.parametrize("schedule", ["seed-linear", "poly"])
def test_elbo_finite_where_alpha_bar_underflows(schedule: str) -> None:
    """At T = 1000 these schedules reach ᾱ_t < 1e-100 (seed-linear: exactly 0): x̂_0 overflows but the KL terms,
    written with ε̂, stay finite, and the bound still sits above the true NLL."""
    import warnings

    from difflab.diffusion import GaussianDiffusion, make_schedule
    from difflab.evaluation.likelihood import elbo
    from helpers import GaussianOracle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = GaussianDiffusion(make_schedule(schedule, 1000))
    mu, s = torch.tensor([0.3, -0.2], dtype=torch.float64), torch.tensor([0.5, 0.8], dtype=torch.float64)
    x = mu + s * torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = elbo(GaussianOracle(d, mu, s), d, x, generator=torch.Generator().manual_seed(1))
    nll = float(torch.distributions.Normal(mu, s).log_prob(x).neg().mean())
    assert math.isfinite(out["nats_per_dim"])
    assert out["nats_per_dim"] > nll - 3 * out["stderr"]


@pytest.mark.parametrize("variance", ["large", "small"])
def test_zero_terminal_snr_bound_matches_closed_form(dim, gaussian_problem, variance) -> None:
    """ᾱ_T = 0 (Lin et al. 2023): the first jump's posterior mean has α_{T|T−1} = 0, where the ε̂-form of the mean gap
    divides by zero (once a ZeroDivisionError); its x̂_0 form gives the closed-form expectation, as elsewhere."""
    mu, s = gaussian_problem
    d = GaussianDiffusion(make_schedule("cosine", 50, zero_snr=True))
    assert d.alpha_bar(50) == 0.0
    x = gaussian_points(mu, s, 400, seed=5)
    terms = elbo_terms(GaussianOracle(d, mu, s), d, x, n_noise=2, variance=variance,
                       generator=torch.Generator().manual_seed(6))
    exact = expected_bound(d.schedule.betas, x.numpy(), mu.double().numpy(), s.double().numpy() ** 2, variance)
    resid = terms["total"].numpy() - exact
    assert np.isfinite(resid).all()
    assert abs(resid.mean()) < 4 * resid.std(ddof=1) / math.sqrt(len(resid)) + 1e-9


@pytest.mark.parametrize("schedule", ["cosine", "rectified"])
def test_continuous_zero_snr_bound_is_finite_and_above_the_nll(gaussian_problem, schedule) -> None:
    """Continuous time with ᾱ(1) = 0 (cosine with zero terminal SNR; the straight path by itself): finite, ≥ −log p."""
    from difflab.diffusion import ContinuousDiffusion

    mu, s = gaussian_problem
    d = ContinuousDiffusion(schedule, 200, zero_terminal_snr=schedule == "cosine")
    assert d.alpha_bar(1.0) == 0.0
    x = gaussian_points(mu, s, 300, seed=7)
    out = elbo(GaussianOracle(d, mu, s), d, x, generator=torch.Generator().manual_seed(8))
    per_dim = float(nll(x, mu, s).mean()) / len(mu)
    assert math.isfinite(out["nats_per_dim"])
    assert out["nats_per_dim"] > per_dim - 3 * out["stderr"]
