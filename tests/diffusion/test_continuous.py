"""Continuous-time schedules and zero terminal SNR against the papers' formulas, written out here.

Each schedule is rebuilt in this file from its paper (Ho et al. 2020 and Song et al. 2021 for the linear VP SDE,
Nichol & Dhariwal 2021 for the cosine, Chen 2023 for the sigmoid, Karras et al. 2022 for EDM, Lin et al. 2023 for
zero terminal SNR) in numpy, and compared with the library's ``ContinuousDiffusion`` and ``make_schedule``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from difflab.diffusion import CONTINUOUS, ContinuousDiffusion, GaussianDiffusion, make_schedule

TIMES = np.linspace(0.0, 1.0, 401)


def log_ab(d, ts) -> np.ndarray:
    return np.array([d.log_alpha_bar(float(t)) for t in ts])


def log_sigmoid(lam: np.ndarray) -> np.ndarray:
    """log ᾱ of log-SNR λ: ᾱ = σ(λ), the logistic function."""
    return -np.logaddexp(0.0, -lam)


# --- every continuous schedule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_snr", [False, True], ids=["plain", "zsnr"])
@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_clean_at_zero_and_decreasing(name: str, zero_snr: bool) -> None:
    """log ᾱ falls strictly on all of [0, 1], the last 1e-2 of it included at steps down to 1e-7 (a floored log-SNR
    rescaled to zero SNR once made ᾱ ≡ 0 on cosine's t ≥ 0.99965), and is finite before t = 1."""
    d = ContinuousDiffusion(name, zero_terminal_snr=zero_snr)
    assert d.log_alpha_bar(0) == 0.0 and d.alpha_bar(0.0) == 1.0
    assert np.all(np.diff(log_ab(d, TIMES)) < 0), "log ᾱ(t) must fall strictly in t"
    times = np.unique(np.concatenate([TIMES, 1.0 - np.geomspace(1e-2, 1e-7, 300)]))
    la = log_ab(d, times)
    # a log-SNR floor (cosine, sigmoid) holds log ᾱ constant at the end unless zero terminal SNR lifts it
    assert np.all(np.diff(la) < 0) if zero_snr else np.all(np.diff(la) <= 0)
    assert np.all(np.isfinite(la[:-1]))
    # the tensor form agrees with the scalar form, row by row
    rows = d.log_alpha_bar_rows(torch.as_tensor(times)).numpy()
    # (1e-9: near t = 1 the sigmoid schedule's ᾱ is a difference of two near-equal sigmoids, rounded per SIMD lane)
    np.testing.assert_allclose(rows, la, rtol=1e-9, atol=0.0)
    assert d.t_max == 1.0 and 0.0 < d.t_min < 0.01


def test_linear_vp_is_hos_linear_schedule_in_the_limit() -> None:
    """Ho et al. 2020: β_k = linspace(1e-4, 0.02, 1000), ᾱ_k = ∏ (1 − β_i). The VP SDE with β(t) = 0.1 + 19.9 t
    (Song et al. 2021) is its limit, so ᾱ(k/1000) and ᾱ_k agree up to the offset of half a step in β."""
    betas = np.linspace(1e-4, 0.02, 1000)
    ab_ho = np.cumprod(1.0 - betas)
    d = ContinuousDiffusion("linear")
    ab_c = np.exp(log_ab(d, np.arange(1, 1001) / 1000))
    assert np.max(np.abs(ab_c - ab_ho)) < 1e-3
    # the rate β(t) = −d log ᾱ/dt at each step's midpoint, divided by T, is Ho's β_k within one increment of β
    mid = (np.arange(1, 1001) - 0.5) / 1000
    h = 1e-6
    rate = -(log_ab(d, mid + h) - log_ab(d, mid - h)) / (2 * h)
    assert np.max(np.abs(rate / 1000 - betas)) < betas[1] - betas[0]
    # and as T grows the discrete schedule converges: at T = 10 000 (β scaled by 1000/T) the gap is 10× smaller
    b10k = np.linspace(1e-5, 0.002, 10_000)
    ab10k = np.cumprod(1.0 - b10k)[9::10]
    assert np.max(np.abs(ab_c - ab10k)) < 1.5e-4


def test_cosine_is_nichol_dhariwal() -> None:
    """ᾱ(t) = f(t)/f(0), f(t) = cos²((t + s)/(1 + s) · π/2), s = 0.008, with log-SNR floored at −15."""
    s = 0.008
    t = TIMES[1:]
    f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    ab = f / (np.cos(s / (1 + s) * np.pi / 2) ** 2)
    with np.errstate(divide="ignore"):
        lam = np.log(ab) - np.log1p(-ab)
    expected = log_sigmoid(np.maximum(lam, -15.0))
    d = ContinuousDiffusion("cosine")
    np.testing.assert_allclose(log_ab(d, t), expected, rtol=1e-9, atol=1e-12)
    assert d.log_snr(1.0) == pytest.approx(-15.0)
    # the library's discrete cosine schedule takes the same ᾱ at t = k/T (its β clipped at 0.999 only at the end)
    disc = make_schedule("cosine", 100).alpha_bars
    np.testing.assert_allclose(np.exp(log_ab(d, np.arange(0, 95) / 100)), disc[:95], rtol=1e-9)


def test_sigmoid_is_chen_2023() -> None:
    """Chen 2023, Alg. 1: ᾱ(t) = (σ(e/τ) − σ((t (e − s) + s)/τ)) / (σ(e/τ) − σ(s/τ)), s = −3, e = 3, τ = 1."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    for start, end, tau in [(-3.0, 3.0, 1.0), (0.0, 3.0, 0.3)]:
        d = ContinuousDiffusion("sigmoid", start=start, end=end, tau=tau)
        t = TIMES[1:-1]
        ab = (sig(end / tau) - sig((t * (end - start) + start) / tau)) / (sig(end / tau) - sig(start / tau))
        lam = np.log(ab) - np.log1p(-ab)
        np.testing.assert_allclose(log_ab(d, t), log_sigmoid(np.maximum(lam, -15.0)), rtol=1e-9, atol=1e-12)


def test_edm_sigma_is_linear_in_t() -> None:
    """Karras et al. 2022: σ(t) = t in their time; ours is rescaled to [0, 1], σ(t) = σ_max t, and x_VE = x_0 + σ ε
    is √(1 + σ²) x_VP, so ᾱ = 1/(1 + σ²)."""
    for sigma_max in (80.0, 5.0):
        d = ContinuousDiffusion("edm", sigma_max=sigma_max)
        for t in TIMES[1:]:
            sigma = sigma_max * t
            assert d.sigma(t) == pytest.approx(sigma, rel=1e-9)
            assert d.alpha_bar(t) == pytest.approx(1.0 / (1.0 + sigma**2), rel=1e-9)
    assert ContinuousDiffusion("edm").sigma(ContinuousDiffusion("edm").t_min) == pytest.approx(0.002)


# --- zero terminal SNR (Lin et al. 2023, Alg. 1) ------------------------------------------------------------------


def lin_rescale(betas: np.ndarray) -> np.ndarray:
    """Lin et al. 2023, Algorithm 1, as printed (betas for t = 1..T; their index 0 is our step 1)."""
    alphas = 1.0 - betas
    alphas_bar_sqrt = np.sqrt(np.cumprod(alphas))
    a0, aT = alphas_bar_sqrt[0], alphas_bar_sqrt[-1]
    alphas_bar_sqrt = (alphas_bar_sqrt - aT) * a0 / (a0 - aT)
    alphas_bar = alphas_bar_sqrt**2
    alphas = np.concatenate([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1.0 - alphas


@pytest.mark.parametrize("name", ["linear", "cosine", "poly", "sigmoid", "seed-linear"])
@pytest.mark.parametrize("T", [10, 100, 1000])
def test_zero_terminal_snr_discrete_is_lin_algorithm_1(name: str, T: int) -> None:
    if name == "seed-linear" and T > 10:
        pytest.skip("ᾱ_T underflows to 0 already; the rescaling is a no-op of 0/0")
    plain = make_schedule(name, T, warn=False)
    z = make_schedule(name, T, zero_snr=True, warn=False)
    assert z.betas[0] == 0.0 and len(z.betas) == T + 1
    np.testing.assert_allclose(z.betas[1:], lin_rescale(plain.betas[1:]), rtol=1e-10, atol=1e-12)
    assert z.alpha_bars[-1] == 0.0 and z.betas[-1] == 1.0
    assert z.alpha_bars[1] == pytest.approx(plain.alpha_bars[1], rel=1e-12)
    d = GaussianDiffusion(z)
    assert d.alpha_bar(T) == 0.0 and d.log_alpha_bar(T) == -math.inf and d.log_snr(T) == -math.inf


@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_zero_terminal_snr_continuous(name: str) -> None:
    """√ᾱ(t) ← (√ᾱ(t) − √ᾱ(1)) / (1 − √ᾱ(1)): the rescaling of Alg. 1 anchored at the clean end, ᾱ(0) = 1, of the
    schedule without its log-SNR floor (cosine and sigmoid reach ᾱ(1) = 0 unfloored: the rescaling is then the
    identity)."""
    unfloored = {"logsnr_min": -math.inf} if "logsnr_min" in CONTINUOUS[name].defaults else {}
    plain, z = ContinuousDiffusion(name, **unfloored), ContinuousDiffusion(name, zero_terminal_snr=True)
    assert z.alpha_bar(1.0) == 0.0 and z.alpha_bar(0.0) == 1.0 and z.log_snr(1.0) == -math.inf
    a = np.sqrt(np.exp(log_ab(plain, TIMES)))
    expected = ((a - a[-1]) / (1.0 - a[-1])) ** 2
    np.testing.assert_allclose(np.exp(log_ab(z, TIMES)), expected, rtol=1e-9, atol=1e-15)
    assert z.to_dict()["zero_terminal_snr"] is True


# --- the inverse of the log-SNR -------------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_snr", [False, True], ids=["plain", "zsnr"])
@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_t_of_log_snr_inverts_log_snr_continuous(name: str, zero_snr: bool) -> None:
    """λ(t_of_log_snr(λ)) = λ to 1e-4 (σ to 0.005 %) over the whole range a sampler asks for (down to −20 where λ(1) = −∞), and
    t is recovered where λ is strictly decreasing. Samplers rely on it: the adaptive ODE evaluates the network at
    t_of_log_snr(λ) for its own noise level, and EDM's churn at σ̂."""
    d = ContinuousDiffusion(name, zero_terminal_snr=zero_snr)
    lam_hi, lam_lo = d.log_snr(d.t_min), max(d.log_snr(1.0), -20.0)
    for lam in np.linspace(lam_hi, lam_lo, 41):
        t = d.t_of_log_snr(float(lam))
        assert d.t_min <= t <= 1.0
        assert d.log_snr(t) == pytest.approx(lam, abs=1e-4), (lam, t)
    for t in np.concatenate([np.geomspace(d.t_min, 0.05, 12), np.linspace(0.05, 0.9, 12)]):
        assert d.t_of_log_snr(d.log_snr(float(t))) == pytest.approx(t, rel=1e-4)
    # out of range: clamped to the ends
    assert d.t_of_log_snr(lam_hi + 5.0) == d.t_min
    assert d.t_of_log_snr(d.log_snr(1.0) - 5.0) == 1.0


@pytest.mark.parametrize(("name", "T"), [("linear", 1000), ("cosine", 100), ("poly", 10)])
def test_t_of_log_snr_fractional_discrete_steps(name: str, T: int) -> None:
    """A discrete process takes log ᾱ linear between neighbouring steps; the fractional step of a log-SNR solves
    (1 − w) log ᾱ_k + w log ᾱ_{k+1} = log σ(λ), checked here on log ᾱ recomputed from β."""
    betas = make_schedule(name, T).betas
    la = np.cumsum(np.log1p(-betas))  # log ᾱ_0..T
    lam_tab = la[1:] - np.log(-np.expm1(la[1:]))
    d = GaussianDiffusion(make_schedule(name, T))
    for k in range(1, T + 1, max(1, T // 10)):  # whole steps come back whole
        assert d.t_of_log_snr(float(lam_tab[k - 1])) == pytest.approx(k, abs=1e-9)
    g = np.random.default_rng(0)
    for _ in range(25):
        k = int(g.integers(1, T))
        w = float(g.uniform(0.05, 0.95))
        target_la = (1 - w) * la[k] + w * la[k + 1]
        lam = float(target_la - np.log(-np.expm1(target_la)))
        t = d.t_of_log_snr(lam)
        assert k < t < k + 1
        assert t == pytest.approx(k + w, abs=1e-9)
        assert d.log_snr(t) == pytest.approx(lam, rel=1e-9, abs=1e-9)
    assert d.t_of_log_snr(1e3) == 1.0 and d.t_of_log_snr(-1e3) == float(T)


# --- the forward marginal by simulation ---------------------------------------------------------------------------


def _beta_linear(t: float) -> float:
    return 0.1 + 19.9 * t  # Song et al. 2021, VP SDE


def _beta_cosine(t: float) -> float:
    # β(t) = −d/dt log ᾱ(t) for ᾱ ∝ cos²((t + s)/(1 + s) · π/2)
    s = 0.008
    return math.pi / (1 + s) * math.tan((t + s) / (1 + s) * math.pi / 2)


@pytest.mark.parametrize(("name", "beta"), [("linear", _beta_linear), ("cosine", _beta_cosine)])
def test_forward_marginal_by_sde_simulation(dim: int, gaussian_problem, name: str, beta) -> None:
    """The VP SDE dx = −½ β(t) x dt + √β(t) dW (Song et al. 2021, eq. 11), β(t) from the paper's formula, simulated
    from x_0 ~ N(μ, s²) to t = 0.6 in 60 steps, each the exact Ornstein–Uhlenbeck transition for β held at the
    step's midpoint (x ← e^{−B/2} x + √(1 − e^{−B}) z, B = β dt), against the library's q(x_t | x_0) =
    N(√ᾱ x_0, (1 − ᾱ) I): moments and the coupling Cov(x_0, x_t) = √ᾱ s²."""
    mu, s = (v.double() for v in gaussian_problem)
    g = torch.Generator().manual_seed(11)
    n, t_end, K = 20_000, 0.6, 60
    x0 = mu + s * torch.randn(n, dim, generator=g, dtype=torch.float64)
    x, dt = x0.clone(), t_end / K
    for k in range(K):
        B = beta((k + 0.5) * dt) * dt
        x = math.exp(-0.5 * B) * x + math.sqrt(-math.expm1(-B)) * torch.randn(n, dim, generator=g, dtype=torch.float64)
    d = ContinuousDiffusion(name)
    direct = d.q_sample(x0, t_end, torch.randn(n, dim, generator=g, dtype=torch.float64))
    mean, std = d.q_mean_std(x0, t_end)
    ab = d.alpha_bar(t_end)
    exp_mean, exp_var = math.sqrt(ab) * mu, ab * s**2 + 1 - ab
    torch.testing.assert_close(mean, math.sqrt(ab) * x0, rtol=1e-6, atol=1e-6)
    assert float(std) == pytest.approx(math.sqrt(1 - ab), rel=1e-6)
    se = (exp_var / n).sqrt()
    for sample in (x, direct):
        assert torch.all((sample.mean(0) - exp_mean).abs() < 5 * se)
        assert torch.allclose(sample.var(0), exp_var, rtol=0.04)  # 4 standard errors at n = 20 000
        cov = ((sample - sample.mean(0)) * (x0 - x0.mean(0))).mean(0)
        assert torch.allclose(cov, math.sqrt(ab) * s**2, atol=0.02)


def test_edm_forward_marginal_by_ve_simulation(dim: int, gaussian_problem) -> None:
    """EDM's forward process in its own variables: x_VE = x_0 + σ(t) W, with independent increments of variance
    σ(t_{k+1})² − σ(t_k)²; x_VP = x_VE/√(1 + σ²) must be N(√ᾱ μ, ᾱ s² + 1 − ᾱ) at every t."""
    mu, s = (v.double() for v in gaussian_problem)
    g = torch.Generator().manual_seed(5)
    n = 20_000
    d = ContinuousDiffusion("edm")
    x0 = mu + s * torch.randn(n, dim, generator=g, dtype=torch.float64)
    x, prev = x0.clone(), 0.0
    for t in (0.001, 0.01, 0.05, 0.3):
        sig = 80.0 * t
        x = x + math.sqrt(sig**2 - prev**2) * torch.randn(n, dim, generator=g, dtype=torch.float64)
        prev = sig
        xvp = x / math.sqrt(1 + sig**2)
        ab = d.alpha_bar(t)
        exp_var = ab * s**2 + 1 - ab
        assert torch.all((xvp.mean(0) - math.sqrt(ab) * mu).abs() < 5 * (exp_var / n).sqrt())
        assert torch.allclose(xvp.var(0), exp_var, rtol=0.04)



@pytest.mark.parametrize("time", ["continuous", "fractional-discrete"])
def test_float64_data_get_float64_coefficients(dim: int, time: str) -> None:
    """α_t, σ_t for a number t come back in float64 for float64 data (the module's promise: coefficients are
    float64, cast to the data's dtype at use), so a number t and the same t per row give the same x_t."""
    d = ContinuousDiffusion("linear") if time == "continuous" else GaussianDiffusion(make_schedule("linear", 100))
    t = 0.37 if time == "continuous" else 37.4
    like = torch.zeros(5, dim, dtype=torch.float64)
    a, s = d.alpha_sigma(t, like)
    ab = math.exp(d.log_alpha_bar(t))
    assert float(a) == pytest.approx(math.sqrt(ab), rel=1e-14)
    assert float(s) == pytest.approx(math.sqrt(1.0 - ab), rel=1e-14)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 5, dim, generator=g, dtype=torch.float64)
    rows = d.q_sample(x0, torch.full((5,), t, dtype=torch.float64), eps)
    torch.testing.assert_close(d.q_sample(x0, t, eps), rows, rtol=1e-14, atol=1e-14)
