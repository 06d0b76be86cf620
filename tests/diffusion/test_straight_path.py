"""The straight path x_t = (1 − t) x_0 + t ε (Liu et al. 2022's rectified flow; Lipman et al. 2023's conditional OT
path) and its velocity parameterization u = ε − x_0, against their definitions written out here: the path and its
marginals, the conversions, Euler's method on dx/dt = u (an integrator written in this file) against the library's
DDIM, every sampler with an exact velocity network, the time-sampling law, and the refusals."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from difflab.config import TrainConfig, resolve_config
from difflab.diffusion import ContinuousDiffusion, Denoiser, get_parameterization
from difflab.errors import ConfigError
from difflab.models import build_model
from difflab.sampling import SAMPLERS, make_grid
from difflab.training.objective import Objective
from difflab.training.trainer import Trainer
from helpers import GaussianOracle


def rectified() -> ContinuousDiffusion:
    return ContinuousDiffusion("rectified")


def rows(n: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_the_path_is_the_straight_line(dim: int) -> None:
    """x_t = (1 − t) x_0 + t ε on the path's own scale; the samplers' variance-preserving x_t is it divided by
    √((1 − t)² + t²), ᾱ(t) = (1 − t)²/((1 − t)² + t²), λ(t) = 2 ln((1 − t)/t)."""
    d = rectified()
    t = torch.cat([torch.rand(200, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
                   torch.tensor([0.0, 1e-6, 0.5, 1.0 - 1e-6, 1.0], dtype=torch.float64)])
    x0, eps = rows(len(t), dim, 1), rows(len(t), dim, 2)
    tt = t[:, None]
    torch.testing.assert_close(d.path_sample(x0, t, eps), (1 - tt) * x0 + tt * eps, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(d.q_sample(x0, t, eps), ((1 - tt) * x0 + tt * eps) / torch.sqrt((1 - tt) ** 2 + tt**2),
                               rtol=1e-9, atol=1e-9)
    for v in (0.01, 0.3, 0.5, 0.9, 0.999):
        assert d.alpha_bar(v) == pytest.approx((1 - v) ** 2 / ((1 - v) ** 2 + v**2), rel=1e-12)
        assert d.log_snr(v) == pytest.approx(2 * math.log((1 - v) / v), abs=1e-9)
    assert d.alpha_bar(1.0) == 0.0 and d.log_snr(1.0) == -math.inf and d.path == "straight"


def test_marginals_by_simulation(dim: int, gaussian_problem) -> None:
    """For x_0 ~ N(μ, s²): x_t ~ N((1 − t) μ, (1 − t)² s² + t²) per coordinate, by drawing 40 000 points."""
    mu, s = (v.double() for v in gaussian_problem)
    d = rectified()
    n = 40_000
    x0 = mu + s * rows(n, dim, 3)
    for t in (0.1, 0.5, 0.9):
        xt = d.path_sample(x0, t, rows(n, dim, 4))
        assert torch.all((xt.mean(0) - (1 - t) * mu).abs() < 5 * xt.std(0) / math.sqrt(n))
        torch.testing.assert_close(xt.var(0), (1 - t) ** 2 * s**2 + t**2, rtol=0.03, atol=0.0)


def test_velocity_conversions(dim: int) -> None:
    """u = ε − x_0 is the target; from the path's x_t and u: x_0 = x_t − t u, ε = x_t + (1 − t) u, at every t (t = 1,
    where ᾱ = 0, and t = 0 included)."""
    d = rectified()
    p = get_parameterization("velocity")
    t = torch.tensor([0.0, 1e-3, 0.25, 0.5, 0.75, 0.999, 1.0], dtype=torch.float64)
    x0, eps = rows(len(t), dim, 5), rows(len(t), dim, 6)
    a, s = d.path_coefs(t, x0)
    u = p.target(x0, eps, a, s)
    torch.testing.assert_close(u, eps - x0, rtol=0, atol=0)
    xt = d.path_sample(x0, t, eps)
    pred = p.predict(xt, u, a, s)
    torch.testing.assert_close(pred.x0, xt - t[:, None] * u, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pred.eps, xt + (1 - t[:, None]) * u, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pred.x0, x0, rtol=1e-12, atol=1e-12)


class ExactVelocity(nn.Module):
    """A velocity network that is exact for N(μ, diag s²) data: given the path's x_t and c_noise (−λ/8, λ = 2 ln((1 −
    t)/t)), it returns E[ε − x_0 | x_t] from the Gaussian oracle."""

    def __init__(self, d: ContinuousDiffusion, mu: torch.Tensor, s: torch.Tensor) -> None:
        super().__init__()
        self.d, self.oracle = d, GaussianOracle(d, mu, s)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        c = float(code[0])
        assert math.isfinite(c)
        t = 1.0 / (1.0 + math.exp(-4.0 * c))  # λ = −8c and t = 1/(1 + e^{λ/2})
        pred = self.oracle(x.double() / math.sqrt((1 - t) ** 2 + t**2), t)
        return (pred.eps - pred.x0).to(x.dtype)


def euler(u_of, x_T: torch.Tensor, ts: list[float], d: ContinuousDiffusion) -> list[torch.Tensor]:
    """Euler's method on dx/dt = u(x, t) on the path's scale, from t_max down the grid: the states after each jump."""
    x, out = x_T.clone(), []
    for t, s in zip(ts[:-1], ts[1:], strict=True):
        x = x + (s - t) * u_of(x, t)
        out.append(x)
    return out


@pytest.mark.parametrize(("grid", "K"), [("trailing", 8), ("karras", 5), ("logsnr", 3)])
def test_euler_on_the_straight_path_is_ddim(dim: int, gaussian_problem, grid: str, K: int) -> None:
    """DDIM (η = 0) on the straight path is Euler's method on its velocity: every state, mapped to the path's scale,
    and the sample equal the Euler integrator's (Liu et al. 2022, §2.1; Song et al. 2021's DDIM)."""
    mu, s = (v.double() for v in gaussian_problem)
    d = rectified()
    oracle = GaussianOracle(d, mu, s)
    ts = make_grid(d, K, grid)

    def u_of(x_path: torch.Tensor, t: float) -> torch.Tensor:
        pred = oracle(x_path / float(d.path_scale(t, x_path)), t)
        return pred.eps - pred.x0

    x_T = rows(300, dim, 7)  # at t = 1 both scales hold the noise itself
    states: list[torch.Tensor] = []
    out = SAMPLERS["ddim"](oracle, x_T.clone(), d, ts, callback=lambda i, t, x: states.append(
        x * (d.path_scale(t, x) if t > 0 else 1.0)))
    ref = euler(u_of, x_T, ts, d)
    for got, want in zip(states, ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out, ref[-1], rtol=1e-9, atol=1e-9)


# steps as tests/sampling/test_solvers.py takes them for EDM's process: each one's discretisation error under ~2 % of s
# (the stochastic ones, 200-400 network calls, on D = 2 only: they cost most of this file's time)
SAMPLER_CASES = [(dim, "ddim", {}, 200) for dim in (1, 2, 10)] + [(dim, "dpm++", {}, 50) for dim in (1, 2, 10)] + [
    (2, "heun", {}, 50), (10, "ode", {}, 10), (2, "ddpm", {"variance": "large"}, 200), (2, "dpm++-sde", {}, 100),
    (2, "heun-sde", {}, 200)]


@pytest.mark.parametrize(("dim", "sampler", "options", "steps"), SAMPLER_CASES, ids=lambda v: str(v))
def test_every_sampler_reproduces_the_data_with_an_exact_velocity_network(dim, sampler, options, steps) -> None:
    """The Denoiser reads the velocity network on the path's scale; every sampler then draws N(μ, s²) (on Karras et
    al.'s grid, which ends at t_min = 0.002: a last network time at 1/K would shrink x̂_0 toward μ)."""
    g = torch.Generator().manual_seed(dim)
    mu, s = torch.randn(dim, generator=g, dtype=torch.float64) * 0.5, 0.2 + torch.rand(dim, generator=g).double()
    d = rectified()
    den = Denoiser(ExactVelocity(d, mu, s), d, "velocity")
    x = SAMPLERS[sampler](den, rows(6000, dim, 8), d, make_grid(d, steps, "karras"),
                          generator=torch.Generator().manual_seed(9), **options)
    assert torch.isfinite(x).all()
    assert torch.all((x.mean(0) - mu).abs() < 0.06 * s), (x.mean(0) - mu) / s
    torch.testing.assert_close(x.std(0), s, rtol=0.05, atol=0.0)


def test_logit_normal_time_sampling() -> None:
    """Esser et al. 2024: logit t ~ N(m, s²)."""
    d = rectified()
    cfg = TrainConfig(steps=1, noise_sampling="logit-normal", logit_mean=0.3, logit_std=0.8)
    lam = Objective(d, get_parameterization("velocity"), cfg, torch.device("cpu")).draw(200_000, torch.Generator())
    t = torch.sigmoid(-lam / 2)  # λ = 2 ln((1 − t)/t)
    logit = torch.log(t / (1 - t))
    assert float(logit.mean()) == pytest.approx(0.3, abs=0.01)
    assert float(logit.std()) == pytest.approx(0.8, abs=0.01)


def test_the_noise_code_at_t_1_is_one_that_training_reaches() -> None:
    """On the straight path t = 1 is λ = −∞: its code is that of EDM's σ_max = 80 (λ = −2 ln 80, t = 1/81 from 1),
    in sampling and in training alike; below that the code is −λ/8 of the path's own λ = 2 ln((1 − t)/t)."""
    d = rectified()
    floor = math.log(80.0) / 4.0  # −λ/8 at λ = −2 ln 80
    assert d.net_time(1.0) == pytest.approx(floor, rel=1e-6)
    assert d.net_time(1.0 - 1.0 / 200) == pytest.approx(floor, rel=1e-6)  # t ≥ 80/81 share the code
    t = 0.9
    assert d.net_time(t) == pytest.approx(-2.0 * math.log((1 - t) / t) / 8.0, rel=1e-6)
    obj = Objective(d, get_parameterization("velocity"), TrainConfig(steps=1), torch.device("cpu"))
    lam = torch.tensor([-math.inf, -20.0, 2.0 * math.log(0.1 / 0.9)], dtype=torch.float64)
    codes = obj.coefficients(lam, torch.zeros(3, 2))[2]
    assert codes.tolist() == pytest.approx([floor, floor, d.net_time(0.9)], rel=1e-6)
    vp = ContinuousDiffusion("cosine", zero_terminal_snr=True)  # the variance-preserving path keeps the ±30 clamp
    assert vp.net_time(1.0) == pytest.approx(30.0 / 8.0)


@pytest.mark.parametrize("sampling", ["uniform", "logit-normal"])
def test_a_velocity_network_trains_and_samples(dim: int, sampling: str) -> None:
    """A small residual MLP on the straight path: the loss falls, and DDIM draws finite points near the data."""
    d = rectified()
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(400, dim, generator=g) + 0.5
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("mlp", dim, 0, width=32, depth=1)
    tr = Trainer(model, d, x, TrainConfig(steps=300, batch_size=128, lr=3e-3, seed=0, noise_sampling=sampling),
                 parameterization="velocity")
    tr.fit(progress=False)
    losses = torch.tensor(tr.losses())
    assert torch.isfinite(losses).all() and losses[-30:].mean() < 0.8 * losses[:10].mean()
    den = Denoiser(model.eval(), d, "velocity")
    out = SAMPLERS["ddim"](den, torch.randn(2000, dim, generator=g), d, make_grid(d, 10, "trailing"))
    assert torch.isfinite(out).all() and (out.mean(0) - 0.5).abs().max() < 0.15


@pytest.mark.parametrize(("overrides", "match"), [
    ({"diffusion": {"parameterization": "velocity"}}, "needs --schedule rectified"),
    ({"diffusion": {"time": "discrete", "schedule": "poly", "parameterization": "velocity"}}, "needs --schedule rectified"),
    ({"diffusion": {"time": "discrete", "schedule": "rectified", "parameterization": "velocity"}}, "no discrete form"),
    ({"diffusion": {"schedule": "rectified", "parameterization": "eps"}}, "'eps'-prediction cannot give x_0"),
])
def test_refusals(overrides: dict, match: str) -> None:
    from difflab.assemble import check_config

    with pytest.raises(ConfigError, match=match) as info:
        check_config(resolve_config(overrides=overrides))
    assert "\n" not in str(info.value)
