"""The ``jumps`` sampler and the two-time denoiser against the exact flow map of Gaussian data, written out in
tests/helpers.py (GaussianAverageVelocity): a one-step model that is exact must reproduce that map in one call, and
on any grid in K calls land on it after every jump."""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import ContinuousDiffusion, Prediction
from difflab.diffusion.jump_denoiser import JumpDenoiser
from difflab.errors import ConfigError
from difflab.sampling import SAMPLERS, make_grid
from difflab.sampling.api import generate
from difflab.sampling.budgets import calls_for_steps
from difflab.sampling.guards import clipped
from difflab.sampling.samplers import ddim_step
from helpers import GaussianAverageVelocity

pytestmark = pytest.mark.usefixtures("one_thread")


def setup(gaussian_problem) -> tuple[ContinuousDiffusion, GaussianAverageVelocity, JumpDenoiser]:
    d = ContinuousDiffusion("rectified")
    exact = GaussianAverageVelocity(*gaussian_problem)
    return d, exact, JumpDenoiser(exact, d, "velocity")


def noise(n: int, dim: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


def test_one_jump_is_the_flow_map(dim: int, gaussian_problem) -> None:
    """One call from x_1 = ε lands at Φ_{1→0}(ε) = μ + s ε: the data's own law, point by point."""
    d, _, den = setup(gaussian_problem)
    mu, s = (v.double() for v in gaussian_problem)
    eps = noise(4000, dim)
    x = SAMPLERS["jumps"](den, eps.clone(), d, make_grid(d, 1, "trailing"))
    torch.testing.assert_close(x, mu + s * eps, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("grid,steps", [("trailing", 2), ("trailing", 4), ("karras", 3), ("logsnr", 5)])
def test_every_jump_lands_on_the_flow(dim: int, gaussian_problem, grid: str, steps: int) -> None:
    """On any grid each jump t → s lands at Φ_{1→s}(ε) = m_s + σ_s ε on the path's scale (the sampler's
    variance-preserving state times k(s) = 1/(α_s + σ_s)), so the last one at μ + s ε."""
    d, exact, den = setup(gaussian_problem)
    eps = noise(500, dim)
    seen: list[tuple[float, torch.Tensor]] = []
    ts = make_grid(d, steps, grid)
    x = SAMPLERS["jumps"](den, eps.clone(), d, ts, callback=lambda i, t, xs: seen.append((t, xs)))
    assert [t for t, _ in seen] == ts[1:]
    for t, xs in seen:
        m, sd = exact.moments(torch.tensor([t]))
        torch.testing.assert_close(xs * d.path_scale(t, xs), m + sd * eps, rtol=1e-6, atol=1e-6)
    mu, s = (v.double() for v in gaussian_problem)
    torch.testing.assert_close(x, mu + s * eps, rtol=1e-6, atol=1e-6)


def test_the_prediction_is_the_jump_read_as_x0_and_eps(dim: int, gaussian_problem) -> None:
    """x̂_0 = z − t ū and ε̂ = z + (1 − t) ū for the path's z (written here from the definitions), and DDIM's step
    from them is z − (t − s) ū."""
    d, exact, den = setup(gaussian_problem)
    z = noise(300, dim) * 1.3
    for t, s in [(1.0, 0.0), (0.8, 0.3), (0.5, 0.5), (0.3, 0.0)]:
        rows = lambda v: torch.full((len(z),), v, dtype=torch.float64)  # noqa: E731
        u = exact(z, rows(t), rows(t - s))
        xvp = z / d.path_scale(t, z)  # the samplers' state for the path's z
        pred = den(xvp, t, s)
        # (the network is given t in float32: 1e-6)
        torch.testing.assert_close(pred.x0, z - t * u, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(pred.eps, z + (1 - t) * u, rtol=1e-6, atol=1e-6)
        if s < t:
            after = ddim_step(d, xvp, t, s, pred) * d.path_scale(s, z)
            torch.testing.assert_close(after, z - (t - s) * u, rtol=1e-6, atol=1e-6)


def test_without_an_end_it_is_the_instantaneous_velocity(gaussian_problem) -> None:
    """``denoise(x, t)`` (no s) reads v(z, t): Heun's method on 40 steps then follows the same flow to μ + s ε."""
    d, _, den = setup(gaussian_problem)
    mu, s = (v.double() for v in gaussian_problem)
    eps = noise(300, len(mu))
    x = SAMPLERS["heun"](den, eps.clone(), d, make_grid(d, 40, "trailing"))
    torch.testing.assert_close(x, mu + s * eps, rtol=0, atol=1e-2)
    z = noise(50, len(mu))
    torch.testing.assert_close(den(z, 0.6).x0, den(z, 0.6, 0.6).x0)


def test_chunked_guarded_and_conditional_calls_pass_the_end_through(gaussian_problem) -> None:
    """The blocked front end (several threads, blocks of rows) and the guards hand s to the two-time denoiser."""
    d, _, den = setup(gaussian_problem)
    mu, s = (v.double() for v in gaussian_problem)
    dim = len(mu)
    x, _ = generate(lambda xt, t, *e: den(xt.double(), t, *e), d, 3000, dim, sampler="jumps", steps=1, seed=3,
                    chunk_size=3000, block=512)
    eps = torch.randn(3000, dim, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(x.double(), mu + s * eps.double(), rtol=1e-5, atol=1e-5)
    box = clipped(den, d, (mu - 0.1).numpy(), (mu + 0.1).numpy())
    out = SAMPLERS["jumps"](box, noise(200, dim), d, make_grid(d, 1, "trailing"))
    assert bool(((out - mu).abs() <= 0.1 + 1e-9).all())
    given = den.given(None)
    z = noise(20, dim)
    torch.testing.assert_close(given(z, 1.0, 0.0).x0, den(z, 1.0, 0.0).x0)


def test_bad_jumps_and_paths() -> None:
    d = ContinuousDiffusion("rectified")
    den = JumpDenoiser(GaussianAverageVelocity(torch.zeros(2), torch.ones(2)), d, "velocity")
    with pytest.raises(ValueError, match="goes from t down to s"):
        den(torch.zeros(3, 2, dtype=torch.float64), 0.3, 0.5)
    with pytest.raises(ConfigError, match="straight path"):
        JumpDenoiser(GaussianAverageVelocity(torch.zeros(2), torch.ones(2)), ContinuousDiffusion("edm"), "edm")
    assert isinstance(den(torch.zeros(3, 2, dtype=torch.float64), 1.0, 0.0), Prediction)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_one_call_per_jump(gaussian_problem, steps: int) -> None:
    """K jumps cost K network calls (calls_for_steps), each asked for its own (t, s) of the grid."""
    d, _, den = setup(gaussian_problem)
    asked: list[tuple[float, float]] = []

    def counted(xt: torch.Tensor, t: float, s: float) -> Prediction:
        asked.append((t, s))
        return den(xt, t, s)

    ts = make_grid(d, steps, "karras")
    SAMPLERS["jumps"](counted, noise(10, len(gaussian_problem[0])), d, ts)
    assert asked == list(zip(ts[:-1], ts[1:], strict=True)) and calls_for_steps("jumps", steps) == steps
