"""The probability-flow ODE likelihood against −log N(x; μ, Σ) of Gaussian data with its exact denoiser.

With the exact denoiser of N(μ, Σ) (any full covariance) the PF-ODE carries the data distribution to the prior, so
its change-of-variables log-density is the data's own, up to the smoothing at t_min (the integration starts from
x̄ = x/α at σ̄(t_min), whose marginal is N(μ, Σ + σ̄(t_min)² I)) and the prior's mismatch at t_max (ᾱ(t_max) > 0),
both far below 1 %. The references are torch.distributions' MultivariateNormal of N(μ, Σ) (to 1 %) and of the
smoothed N(μ, Σ + σ̄(t_min)² I) (to 0.1 %), evaluated point by point.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from difflab.data import MinMaxScaler
from difflab.diffusion import ContinuousDiffusion, Denoiser, GaussianDiffusion, make_schedule
from difflab.errors import ConfigError, DataError, DifflabError
from difflab.evaluation.likelihood import elbo
from difflab.evaluation.ode_likelihood import ode_nll
from difflab.models.oracles import MixtureOracle

PROCESSES = {
    "discrete": lambda: GaussianDiffusion(make_schedule("linear", 1000)),
    "continuous": lambda: ContinuousDiffusion("linear"),
    # ᾱ(1) = 0: integrated on the process's own path in t (sampling/pf_ode.py), the prior matched exactly
    "zsnr-cosine": lambda: ContinuousDiffusion("cosine", zero_terminal_snr=True),
    "rectified": lambda: ContinuousDiffusion("rectified"),
}


def gaussian(dim: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """μ, a full covariance Σ (correlated coordinates) and n points drawn from N(μ, Σ)."""
    g = torch.Generator().manual_seed(seed + dim)
    mu = torch.randn(dim, generator=g, dtype=torch.float64) * 0.5
    A = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    cov = 0.5 * A @ A.T / dim + 0.1 * torch.eye(dim, dtype=torch.float64)
    x = mu + torch.randn(n, dim, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    return mu, cov, x


def denoiser(d, mu: torch.Tensor, cov: torch.Tensor) -> Denoiser:
    return Denoiser(MixtureOracle.of([1.0], mu[None], cov[None], d), d)


def true_nll(x: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    return -torch.distributions.MultivariateNormal(mu, cov).log_prob(x)


def n_points(dim: int) -> int:
    return 200 if dim < 10 else 100


@pytest.mark.parametrize("process", list(PROCESSES))
def test_matches_gaussian_nll(dim: int, process: str) -> None:
    """Mean −log p per dimension within 1 % of the data's, within 0.1 % of the smoothed density's, and the spread
    over points too: the standard error it reports is that of the per-point −log N(x; μ, Σ)."""
    d = PROCESSES[process]()
    mu, cov, x = gaussian(dim, n_points(dim))
    out = ode_nll(denoiser(d, mu, cov), x)
    ref = true_nll(x, mu, cov) / dim
    assert out["nats_per_dim"] == pytest.approx(float(ref.mean()), rel=0.01)
    smoothed = true_nll(x, mu, cov + d.sigma(d.t_min) ** 2 * torch.eye(dim, dtype=torch.float64)) / dim
    assert out["nats_per_dim"] == pytest.approx(float(smoothed.mean()), rel=1e-3)
    assert out["stderr"] == pytest.approx(float(ref.std()) / math.sqrt(len(x)), rel=0.02)
    assert out["trace"] == "exact" and out["n"] == len(x) and out["dim"] == dim
    assert out["bits_per_dim"] == pytest.approx(out["nats_per_dim"] / math.log(2))
    assert out["nats_per_dim"] == out["nats_per_dim_scaled"] and out["jacobian"] == 0.0


def test_point_by_point() -> None:
    """Single points far apart in density (the mode, one and three standard deviations out) each get their own
    −log N(x; μ, Σ)."""
    mu, cov, _ = gaussian(2, 1)
    L = torch.linalg.cholesky(cov)
    d = PROCESSES["continuous"]()
    for z in ([0.0, 0.0], [1.0, 0.0], [0.0, -3.0], [2.0, 2.0]):
        x = (mu + L @ torch.tensor(z, dtype=torch.float64))[None]
        got = ode_nll(denoiser(d, mu, cov), x)["nats_per_dim"]
        assert got == pytest.approx(float(true_nll(x, mu, cov)[0]) / 2, rel=0.01, abs=1e-3)


def test_hutchinson_is_exact_in_one_dimension() -> None:
    """With a Rademacher probe z ∈ {±1}, z J z = J for a 1 × 1 Jacobian: the estimate is the exact trace."""
    mu, cov, x = gaussian(1, 100)
    den = denoiser(PROCESSES["continuous"](), mu, cov)
    exact = ode_nll(den, x)
    hutch = ode_nll(den, x, hutchinson=True, generator=torch.Generator().manual_seed(0))
    assert hutch["trace"] == "hutchinson"
    assert hutch["nats_per_dim"] == pytest.approx(exact["nats_per_dim"], rel=1e-9)


@pytest.mark.parametrize("dim_", [2, 10])
def test_hutchinson_is_unbiased(dim_: int) -> None:
    """Hutchinson's estimate zᵀ J z (Grathwohl et al. 2019) varies with the probes but averages to the exact trace:
    the mean over probe seeds lies within 4 of its standard errors of the exact-trace value."""
    mu, cov, x = gaussian(dim_, 30)
    den = denoiser(PROCESSES["continuous"](), mu, cov)
    exact = ode_nll(den, x)["nats_per_dim"]
    est = np.array([ode_nll(den, x, hutchinson=True, generator=torch.Generator().manual_seed(k))["nats_per_dim"]
                    for k in range(5)])
    spread = est.std(ddof=1)
    assert spread > 1e-4  # the probes matter: full covariance, off-diagonal Jacobian
    assert abs(est.mean() - exact) < 4 * spread / math.sqrt(len(est)) + 1e-4, (est, exact)
    # the same generator seed gives the same estimate
    again = ode_nll(den, x, hutchinson=True, generator=torch.Generator().manual_seed(0))["nats_per_dim"]
    assert again == est[0]


def test_above_sixteen_dimensions_hutchinson_is_the_default() -> None:
    """D = 17: the default switches to Hutchinson's estimate; on 40 points one probe each it is within a few %."""
    mu, cov, x = gaussian(17, 40)
    out = ode_nll(denoiser(PROCESSES["continuous"](), mu, cov), x, generator=torch.Generator().manual_seed(0))
    assert out["trace"] == "hutchinson"
    assert out["nats_per_dim"] == pytest.approx(float(true_nll(x, mu, cov).mean()) / 17, rel=0.1)


def test_scaler_log_det_shifts_exactly(dim: int) -> None:
    """Data in its own units, a fitted min-max scaler, the exact denoiser of the scaled Gaussian: with the scaler's
    log-det the result is −log N(x; m, C) in data units, and it moves by exactly −logdet/D."""
    g = torch.Generator().manual_seed(dim)
    m = torch.randn(dim, generator=g, dtype=torch.float64) * 10
    A = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    C = A @ A.T / dim + torch.diag(0.5 + 4 * torch.rand(dim, generator=g, dtype=torch.float64))
    x = m + torch.randn(80, dim, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(C).T
    scaler = MinMaxScaler().fit(x.numpy())
    b = scaler.transform(np.zeros((1, dim)))[0]
    a = scaler.transform(np.ones((1, dim)))[0] - b
    mu_s = torch.as_tensor(a * m.numpy() + b)
    cov_s = torch.as_tensor(a[:, None] * C.numpy() * a[None, :])
    xs = torch.as_tensor(scaler.transform(x.numpy()))
    den = denoiser(PROCESSES["continuous"](), mu_s, cov_s)
    logdet = scaler.log_abs_det_jacobian()
    assert logdet == pytest.approx(float(np.log(np.abs(a)).sum()))
    data_units = ode_nll(den, xs, scaler_logdet=logdet)
    scaled = ode_nll(den, xs)
    assert data_units["nats_per_dim"] - scaled["nats_per_dim"] == pytest.approx(-logdet / dim, abs=1e-12)
    assert data_units["jacobian"] == pytest.approx(-logdet / dim)
    assert data_units["nats_per_dim"] == pytest.approx(float(true_nll(x, m, C).mean()) / dim, rel=0.01)


def test_ode_nll_below_the_elbo() -> None:
    """With the exact denoiser the ODE's −log p is the (smoothed) data's own, and the ELBO of the same process lies
    above it by the bound's gap (~0.05 nats/dim at T = 10 with the 'large' variance)."""
    mu, cov, x = gaussian(2, 300)
    d = GaussianDiffusion(make_schedule("linear", 10))
    den = denoiser(d, mu, cov)
    ode = ode_nll(den, x)["nats_per_dim"]
    bound = elbo(den, d, x, n_noise=16, generator=torch.Generator().manual_seed(0))["nats_per_dim"]
    smoothed = float(true_nll(x, mu, cov + d.sigma(1) ** 2 * torch.eye(2, dtype=torch.float64)).mean()) / 2
    assert ode == pytest.approx(smoothed, rel=1e-3)
    assert ode + 0.02 < bound < ode + 0.2


BAD = [
    (lambda: torch.zeros(5), DataError, "2-D"),
    (lambda: torch.zeros(0, 2), DataError, "non-empty"),
    (lambda: torch.tensor([[0.0, float("nan")]]), DataError, "non-finite"),
    (lambda: torch.tensor([[0.0, float("inf")]]), DataError, "non-finite"),
]


@pytest.mark.parametrize(("points", "error", "match"), BAD)
def test_bad_points(points, error, match) -> None:
    mu, cov, _ = gaussian(2, 1)
    with pytest.raises(error, match=match) as info:
        ode_nll(denoiser(PROCESSES["continuous"](), mu, cov), points().double())
    assert "\n" not in str(info.value)


def test_bad_options() -> None:
    mu, cov, x = gaussian(2, 4)
    den = denoiser(PROCESSES["continuous"](), mu, cov)
    for kw in ({"rtol": 0.0}, {"atol": -1.0}):
        with pytest.raises(ConfigError, match="rtol and atol") as info:
            ode_nll(den, x, **kw)
        assert "\n" not in str(info.value)
    d = GaussianDiffusion(make_schedule("linear", 100, zero_snr=True))  # continuous time solves it on the path
    with pytest.raises(DifflabError, match="zero terminal SNR") as info:
        ode_nll(denoiser(d, mu, cov), x)
    assert "\n" not in str(info.value)
