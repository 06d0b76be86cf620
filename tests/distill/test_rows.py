"""Per-row denoisers and ODE steps equal the samplers' one-time ones, row by row (D = 1, 2, 10)."""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import Denoiser, GaussianDiffusion, get_parameterization, make_schedule
from difflab.distill.rows import ddim_step, grouped_rows, heun_rows, network_rows
from difflab.models import ResMLP
from difflab.sampling import sample_ddim, sample_heun
from helpers import GaussianOracle, continuous, diffusion

PROCESSES = {
    "continuous": (continuous("linear"), [(1.0, 0.7), (0.5, 0.2), (0.1, 0.0)]),
    "discrete": (diffusion("linear", 100), [(100, 70), (50, 20), (10, 0)]),
    "zero-snr": (GaussianDiffusion(make_schedule("linear", 100, zero_snr=True)), [(100, 70), (50, 20), (10, 0)]),
}


@pytest.mark.parametrize("name", PROCESSES)
def test_steps_per_row_equal_the_samplers(name: str, dim: int, gaussian_problem) -> None:
    process, pairs = PROCESSES[name]
    mu, s = gaussian_problem
    oracle = GaussianOracle(process, mu, s)
    teacher = grouped_rows(oracle, process)
    x = torch.randn(3 * 50, dim, dtype=torch.float64)
    kind = torch.long if process.discrete else torch.float64
    t = torch.tensor([p[0] for p in pairs], dtype=kind).repeat_interleave(50)
    to = torch.tensor([p[1] for p in pairs], dtype=kind).repeat_interleave(50)
    heun, ddim = heun_rows(teacher, process, x, t, to), ddim_step(teacher, process, x, t, to)
    for k, (a, b) in enumerate(pairs):
        rows = slice(50 * k, 50 * (k + 1))
        if name != "zero-snr" or k:  # the sampler's Heun step is DDIM's where ᾱ_t = 0, and so is ours
            torch.testing.assert_close(heun[rows], sample_heun(oracle, x[rows], process, [a, b]))
        torch.testing.assert_close(ddim[rows], sample_ddim(oracle, x[rows], process, [a, b]))
    if name == "zero-snr":
        torch.testing.assert_close(heun[:50], ddim[:50])


@pytest.mark.parametrize("param", ["eps", "v", "edm"])
def test_network_rows_equal_the_denoiser_at_each_time(param: str, dim: int) -> None:
    process = continuous("cosine")
    torch.manual_seed(dim)
    net = ResMLP(dim, 0, width=16, depth=1).eval()
    p = get_parameterization(param, sigma_data=0.5)
    x, t = torch.randn(40, dim), torch.tensor([0.9] * 20 + [0.3] * 20, dtype=torch.float64)
    rows = network_rows(net, process, p)(x, t)
    den = Denoiser(net, process, p)
    for sl, when in [(slice(0, 20), 0.9), (slice(20, 40), 0.3)]:
        one = den(x[sl], when)
        torch.testing.assert_close(rows.x0[sl], one.x0, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(rows.eps[sl], one.eps, atol=1e-5, rtol=1e-4)
