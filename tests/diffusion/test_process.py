"""Forward process, posterior and parameterizations against independent computations."""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import PARAMETERIZATIONS, GaussianDiffusion, get_parameterization, make_schedule
from helpers import continuous
from helpers import diffusion as make_diffusion


@pytest.mark.parametrize("t", [1, 3, 7, 10])
def test_closed_form_marginal_matches_iterated_steps(dim: int, gaussian_problem, t: int) -> None:
    """q(x_t | x_0) in closed form vs. simulating q(x_s | x_{s−1}) for s = 1..t (Ho et al. 2020, eq. 2 vs 4)."""
    mu, s = gaussian_problem
    d = GaussianDiffusion(make_schedule("poly", 10))
    g = torch.Generator().manual_seed(t)
    n = 200_000
    x0 = mu + s * torch.randn(n, dim, generator=g, dtype=torch.float64)
    x = x0.clone()
    for step in range(1, t + 1):
        x = d.q_step(x, step, torch.randn(n, dim, generator=g, dtype=torch.float64))
    direct = d.q_sample(x0, t, torch.randn(n, dim, generator=g, dtype=torch.float64))
    ab = float(d.alpha_bars[t])
    exp_mean, exp_var = ab**0.5 * mu.double(), ab * s.double() ** 2 + 1 - ab
    se = (exp_var / n).sqrt()
    for sample in (x, direct):
        assert torch.all((sample.mean(0) - exp_mean).abs() < 5 * se)
        assert torch.allclose(sample.var(0), exp_var, rtol=0.02)
    # the iterated chain keeps the same coupling to x_0: Cov(x_0, x_t) = √ᾱ_t Var(x_0)
    cov = ((x - x.mean(0)) * (x0 - x0.mean(0))).mean(0)
    assert torch.allclose(cov, ab**0.5 * s.double() ** 2, atol=0.01)


@pytest.mark.parametrize("schedule", ["poly", "linear", "cosine"])
@pytest.mark.parametrize("t", [1, 2, 5, 10])
def test_posterior_matches_bayes(dim: int, schedule: str, t: int) -> None:
    """q(x_{t−1} | x_t, x_0) (Ho et al. 2020, eq. 7) vs. conditioning the joint Gaussian of (x_{t−1}, x_t) | x_0."""
    d = GaussianDiffusion(make_schedule(schedule, 10))
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, dim, generator=g, dtype=torch.float64)
    xt = torch.randn(64, dim, generator=g, dtype=torch.float64)
    ab_prev = float(d.alpha_bars[t - 1])
    a, b = float(d.alphas[t]), float(d.betas[t])
    # given x_0: x_{t−1} ~ N(√ᾱ_{t−1} x_0, v1), x_t = √α_t x_{t−1} + √β_t e
    m1, v1 = ab_prev**0.5 * x0, 1 - ab_prev
    var_t = a * v1 + b
    bayes_mean = m1 + (a**0.5 * v1 / var_t) * (xt - a**0.5 * m1)
    bayes_var = v1 - a * v1**2 / var_t
    mean, var = d.q_posterior_mean_variance(x0, xt, t)
    torch.testing.assert_close(mean, bayes_mean, rtol=1e-10, atol=1e-10)
    assert float(var) == pytest.approx(bayes_var, rel=1e-10, abs=1e-15)


def test_posterior_variance_is_tutorial_sigma() -> None:
    d = GaussianDiffusion(make_schedule("poly", 10))
    sigma = d.posterior_variance.sqrt().numpy()
    expected = [0, 0.0095, 0.037, 0.083, 0.149, 0.236, 0.349, 0.493, 0.678, 0.913]  # settings.md, t = 1..10
    assert sigma[1] == 0.0
    assert sigma[1:] == pytest.approx(expected, abs=6e-4)


@pytest.mark.parametrize("t", [1, 5, 999])
def test_conversions_round_trip(dim: int, t: int) -> None:
    d = make_diffusion("linear", 1000)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 32, dim, generator=g, dtype=torch.float64)
    xt = d.q_sample(x0, t, eps)
    torch.testing.assert_close(d.x0_from_eps(xt, t, eps), x0)
    torch.testing.assert_close(d.eps_from_x0(xt, t, x0), eps)
    v = d.v_from(x0, eps, t)
    torch.testing.assert_close(d.x0_from_v(xt, t, v), x0)
    torch.testing.assert_close(d.eps_from_v(xt, t, v), eps)


@pytest.mark.parametrize("name", list(PARAMETERIZATIONS))
@pytest.mark.parametrize("time", ["discrete", "continuous"])
def test_parameterization_target_predicts_truth(dim: int, name: str, time: str) -> None:
    """Feeding a parameterization its own target back must recover the true (ε, x_0), per-row t included."""
    p = get_parameterization(name)
    if time == "continuous" and p.discrete_only:
        pytest.skip("defined per discrete step")
    d = make_diffusion("cosine", 100) if time == "discrete" else continuous("cosine")
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(2, 50, dim, generator=g, dtype=torch.float64)
    t = torch.randint(1, 101, (50,), generator=g) if time == "discrete" else torch.rand(50, generator=g,
                                                                                       dtype=torch.float64)
    xt = d.q_sample(x0, t, eps)
    a, s = d.alpha_sigma(t, x0)
    post = d.posterior_coefs(t, x0) if p.needs_posterior else None
    pred = p.predict(xt, p.target(x0, eps, a, s, post), a, s, post)
    torch.testing.assert_close(pred.eps, eps, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(pred.x0, x0, rtol=1e-7, atol=1e-7)


def test_per_row_t_equals_scalar_t(dim: int) -> None:
    d = make_diffusion("poly", 10)
    x0, eps = torch.randn(2, 8, dim, dtype=torch.float64)
    t = torch.tensor([1, 2, 3, 4, 5, 6, 7, 10])
    rows = d.q_sample(x0, t, eps)
    for i, ti in enumerate(t.tolist()):
        torch.testing.assert_close(rows[i], d.q_sample(x0[i : i + 1], ti, eps[i : i + 1])[0])


@pytest.mark.parametrize("zero_snr", [False, True], ids=["plain", "zsnr"])
def test_log_alpha_bar_rows_equal_scalar_at_whole_and_fractional_steps(zero_snr: bool) -> None:
    """The row form agrees with the scalar form at every whole step (as float or int) and between steps, also next
    to log ᾱ_T = −∞ of a zero-terminal-SNR schedule (where (1 − w) log ᾱ_{T−1} + w log ᾱ_T once gave 0 · (−∞) = NaN at
    t = T − 1)."""
    import math

    d = GaussianDiffusion(make_schedule("cosine", 20, zero_snr=zero_snr))
    t = torch.cat([torch.arange(0, 21, dtype=torch.float64), torch.arange(0, 20, dtype=torch.float64) + 0.25])
    rows = d.log_alpha_bar_rows(t)
    want = torch.tensor([d.log_alpha_bar(float(v)) for v in t], dtype=torch.float64)
    assert not torch.isnan(rows).any()
    torch.testing.assert_close(rows, want, rtol=1e-12, atol=0.0)
    torch.testing.assert_close(d.log_alpha_bar_rows(torch.arange(0, 21)), want[:21], rtol=0.0, atol=0.0)
    assert (rows[20] == -math.inf) == zero_snr
