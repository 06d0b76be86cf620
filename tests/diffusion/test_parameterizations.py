"""Parameterizations and the Denoiser against the papers' own formulas, written out here.

EDM's preconditioning in Karras et al. 2022, Table 1 (in their variance-exploding variables x_VE = x_t/α,
σ_VE = σ/α), the score ∇ log q(x_t | x_0) by autograd of the Gaussian density, the posterior mean from Ho et al.
2020, eq. 7, and the Denoiser's reading of a network's output computed by hand on a tiny linear network.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from difflab.diffusion import ContinuousDiffusion, Denoiser, GaussianDiffusion, get_parameterization, make_schedule

T = 100


def draws(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(2, n, dim, generator=g, dtype=torch.float64)
    return x0, eps


def row_times(process, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if process.discrete:
        return torch.randint(1, process.T + 1, (n,), generator=g)
    return process.t_min + (1 - process.t_min) * torch.rand(n, generator=g, dtype=torch.float64)


PROCESSES = {
    "discrete": lambda: GaussianDiffusion(make_schedule("cosine", T)),
    "continuous": lambda: ContinuousDiffusion("linear"),
    "edm": lambda: ContinuousDiffusion("edm"),
}


def karras_table_1(x0: torch.Tensor, xt: torch.Tensor, a: torch.Tensor, s: torch.Tensor, sd: float) -> dict:
    """Karras et al. 2022, Table 1, 'EDM' column, in the VE variables: x_VE = x_t/α, σ_VE = σ/α."""
    sig = s / a
    x_ve = xt / a
    c_skip = sd**2 / (sig**2 + sd**2)
    c_out = sig * sd / torch.sqrt(sig**2 + sd**2)
    c_in = 1.0 / torch.sqrt(sig**2 + sd**2)
    return {"x_ve": x_ve, "sigma": sig, "c_skip": c_skip, "c_out": c_out, "c_in": c_in,
            "target": (x0 - c_skip * x_ve) / c_out, "c_noise": 0.25 * torch.log(sig)}


# --- targets ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("process", ["discrete", "continuous", "edm"])
@pytest.mark.parametrize("sd", [0.5, 1.0, 2.0])
def test_edm_target_is_karras_table_1(dim: int, process: str, sd: float) -> None:
    """F's target (x_0 − c_skip x_VE)/c_out; with σ_data = 1 it is −v = σ x_0 − α ε (Salimans & Ho 2022's v)."""
    d = PROCESSES[process]()
    x0, eps = draws(200, dim, 1)
    t = row_times(d, 200, 2)
    a, s = d.alpha_sigma(t, x0)
    xt = a * x0 + s * eps
    p = get_parameterization("edm", sigma_data=sd)
    target = p.target(x0, eps, a, s)
    torch.testing.assert_close(target, karras_table_1(x0, xt, a, s, sd)["target"], rtol=1e-9, atol=1e-9)
    if sd == 1.0:
        torch.testing.assert_close(target, -(a * eps - s * x0), rtol=1e-12, atol=1e-12)
    # the loss weight λ(σ) c_out² = 1 (Table 1): F's loss is unweighted
    assert p.loss_weight(a, s) is None
    # and the output is read back through Table 1's D(x) = c_skip x_VE + c_out F
    pred = p.predict(xt, target, a, s)
    torch.testing.assert_close(pred.x0, x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(pred.eps, eps, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("sd", [0.5, 1.0, 1.7])
@pytest.mark.parametrize("process", ["continuous", "edm", "discrete"])
def test_edm_c_in_gives_unit_input_variance(dim: int, process: str, sd: float) -> None:
    """Var(c_in x_t) = 1 for data of variance σ_data² (Karras et al. 2022, App. B.6), here uniform data (not
    Gaussian: only the variance matters), simulated; and c_in x_t equals Table 1's c_in x_VE."""
    d = PROCESSES[process]()
    g = torch.Generator().manual_seed(3)
    n = 20_000
    x0 = (torch.rand(n, dim, generator=g, dtype=torch.float64) * 2 - 1) * math.sqrt(3) * sd  # Var = σ_data²
    p = get_parameterization("edm", sigma_data=sd)
    for t in ([0.01, 0.1, 0.5, 0.9, 1.0] if not d.discrete else [1, 10, 50, 100]):
        eps = torch.randn(n, dim, generator=g, dtype=torch.float64)
        a, s = d.alpha_sigma(torch.full((n,), t, dtype=torch.float64 if not d.discrete else torch.long), x0)
        xt = a * x0 + s * eps
        scaled = p.input_scale(a, s) * xt
        torch.testing.assert_close(scaled, karras_table_1(x0, xt, a, s, sd)["c_in"] * (xt / a), rtol=1e-10, atol=1e-10)
        var = scaled.var(0)
        assert torch.allclose(var, torch.ones_like(var), rtol=0.04), (t, var)  # ~4 standard errors at n = 20 000


@pytest.mark.parametrize("process", ["discrete", "continuous"])
def test_score_target_is_gradient_of_log_density(dim: int, process: str) -> None:
    """The score target equals ∇_x log q(x_t | x_0), by autograd of torch.distributions' Normal log-density;
    its loss weight σ² turns the score loss into ε's (Song et al. 2021)."""
    d = PROCESSES[process]()
    x0, eps = draws(64, dim, 4)
    t = row_times(d, 64, 5)
    a, s = d.alpha_sigma(t, x0)
    xt = (a * x0 + s * eps).requires_grad_(True)
    log_q = torch.distributions.Normal(a * x0, s.expand_as(x0)).log_prob(xt).sum()
    (grad,) = torch.autograd.grad(log_q, xt)
    p = get_parameterization("score")
    torch.testing.assert_close(p.target(x0, eps, a, s), grad, rtol=1e-10, atol=1e-10)
    # a wrong score ŝ = score + δ costs σ² ‖δ‖², what ε̂ = −σ ŝ costs in the ε loss
    delta = torch.randn(64, dim, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    eps_hat = -s * (grad + delta)
    weighted = p.loss_weight(a, s) * delta.pow(2)
    torch.testing.assert_close(weighted, (eps_hat - eps).pow(2), rtol=1e-10, atol=1e-12)
    # and the prediction is Tweedie's formula x̂_0 = (x_t + σ² ŝ)/α
    pred = p.predict(xt.detach(), grad, a, s)
    torch.testing.assert_close(pred.x0, (xt.detach() + s**2 * grad) / a, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(pred.eps, eps, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("schedule", ["cosine", "linear", "poly"])
def test_mean_target_is_posterior_mean(dim: int, schedule: str) -> None:
    """The 'mean' target is μ̃_t(x_t, x_0) = √ᾱ_{t−1} β_t/(1 − ᾱ_t) x_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) x_t (Ho et al.
    2020, eq. 7), with ᾱ recomputed here from β."""
    sched = make_schedule(schedule, T, warn=False)
    d = GaussianDiffusion(sched)
    beta = sched.betas
    ab = np.cumprod(1.0 - beta)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    ab[0] = 0.5  # step 0 is never drawn; keeps 0/0 out of the tables
    x0, eps = draws(300, dim, 7)
    t = torch.randint(1, T + 1, (300,), generator=torch.Generator().manual_seed(8))
    col = lambda v: torch.as_tensor(v[t.numpy()], dtype=torch.float64)[:, None]  # noqa: E731
    xt = col(np.sqrt(ab)) * x0 + col(np.sqrt(1 - ab)) * eps
    mu = (col(np.sqrt(ab_prev) * beta / (1 - ab)) * x0
          + col(np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)) * xt)
    p = get_parameterization("mean")
    a, s = d.alpha_sigma(t, x0)
    post = d.posterior_coefs(t, x0)
    torch.testing.assert_close(p.target(x0, eps, a, s, post), mu, rtol=1e-10, atol=1e-10)
    pred = p.predict(xt, mu, a, s, post)
    torch.testing.assert_close(pred.x0, x0, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(pred.eps, eps, rtol=1e-7, atol=1e-7)


# --- the Denoiser on a tiny network, by hand ---------------------------------------------------------------------


class TinyNet(nn.Module):
    """out = W x + b + t w: a linear network whose time input is kept, to check what the Denoiser feeds it."""

    def __init__(self, dim: int, out_dim: int, *, seed: int, with_at_step: bool) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lin = nn.Linear(dim, out_dim).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(out_dim, dim, generator=g, dtype=torch.float64) * 0.5)
            self.lin.bias.copy_(torch.randn(out_dim, generator=g, dtype=torch.float64) * 0.1)
        self.w_t = nn.Parameter(torch.randn(out_dim, generator=g, dtype=torch.float64) * 0.1)
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        if with_at_step:
            self.at_step = self._at_step

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.detach().clone(), t.detach().clone()))
        return self.lin(x) + t.to(x.dtype)[:, None] * self.w_t

    def _at_step(self, t: float):
        def fn(x: torch.Tensor) -> torch.Tensor:
            self.seen.append((x.detach().clone(), torch.full((x.shape[0],), float(t), dtype=torch.float64)))
            return self.lin(x) + float(t) * self.w_t

        return fn


def manual(name: str, d, xt: torch.Tensor, t, out: torch.Tensor, sd: float = 0.5) -> tuple[torch.Tensor, ...]:
    """(x̂_0, ε̂) from a network output ``out`` by each parameterization's paper formula."""
    ab = d.alpha_bar(t)
    a, s = math.sqrt(ab), math.sqrt(1 - ab)
    if name == "v":  # Salimans & Ho 2022: x̂_0 = α x_t − σ v̂
        x0 = a * xt - s * out
    elif name == "eps":
        x0 = (xt - s * out) / a
    elif name == "x0":
        x0 = out
    elif name == "score":  # Tweedie
        x0 = (xt + s**2 * out) / a
    elif name == "mean":  # invert Ho et al. eq. 7 for x_0
        ab_prev = d.alpha_bar(t - 1)
        beta = 1 - ab / ab_prev
        c0 = math.sqrt(ab_prev) * beta / (1 - ab)
        ct = math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
        x0 = (out - ct * xt) / c0
    else:  # edm: D = c_skip x_VE + c_out F
        k = karras_table_1(xt, xt, torch.tensor(a, dtype=torch.float64), torch.tensor(s, dtype=torch.float64), sd)
        x0 = k["c_skip"] * k["x_ve"] + k["c_out"] * out
    return x0, (xt - a * x0) / s


def net_input(name: str, d, xt: torch.Tensor, t, sd: float = 0.5) -> tuple[torch.Tensor, float]:
    """What the network should see: c_in x_VE for EDM (else x_t), and the step or c_noise = ¼ ln σ_VE."""
    ab = d.alpha_bar(t)
    sig_ve = math.sqrt((1 - ab) / ab)
    x = xt / math.sqrt(ab) / math.sqrt(sig_ve**2 + sd**2) if name == "edm" else xt
    return x, (float(t) if d.discrete else 0.25 * math.log(sig_ve))


CASES = [("discrete", n) for n in ("eps", "x0", "v", "score", "mean", "edm")] + [
    ("continuous", n) for n in ("eps", "x0", "v", "score", "edm")] + [("edm", "edm")]


@pytest.mark.parametrize("with_at_step", [False, True], ids=["forward", "at_step"])
@pytest.mark.parametrize("learned", [False, True], ids=["fixed", "learned"])
@pytest.mark.parametrize(("process", "name"), CASES)
def test_denoiser_reads_outputs_by_hand(dim: int, process: str, name: str, learned: bool, with_at_step: bool) -> None:
    """The Denoiser gives the network c_in · x_t and the process's time code, splits learned-variance outputs
    into (parameterization's D, v), and reads the first half through the parameterization."""
    d = PROCESSES[process]()
    net = TinyNet(dim, 2 * dim if learned else dim, seed=dim, with_at_step=with_at_step)
    den = Denoiser(net, d, name, learned_variance=learned)
    xt = torch.randn(16, dim, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for t in ([3, 40, 100] if d.discrete else [0.01, 0.3, 0.97]):
        net.seen.clear()
        pred = den(xt, t)
        x_in, code = net_input(name, d, xt, t)
        (seen_x, seen_t), = net.seen
        torch.testing.assert_close(seen_x, x_in, rtol=1e-6, atol=1e-6)  # c_in from α, σ: see below
        assert torch.allclose(seen_t.double(), torch.full_like(seen_t.double(), code), rtol=1e-6, atol=1e-6)
        raw = net.lin(seen_x) + seen_t.double()[:, None] * net.w_t  # the inputs as the network got them
        out, v = (raw[:, :dim], raw[:, dim:]) if learned else (raw, None)
        x0, eps = manual(name, d, xt, t, out)
        # tolerance: a structural slip is O(1); 1e-5 leaves room for α, σ rounded to float32 (a separate test,
        # test_continuous.py::test_float64_data_get_float64_coefficients, holds them to float64)
        torch.testing.assert_close(pred.x0, x0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pred.eps, eps, rtol=1e-5, atol=1e-5)
        if learned:
            torch.testing.assert_close(pred.v, v, rtol=1e-12, atol=1e-12)
        else:
            assert pred.v is None
        # predict() (autograd on, the likelihood's path) gives the same numbers
        again = den.predict(xt, t)
        torch.testing.assert_close(again.x0, pred.x0, rtol=1e-6, atol=1e-6)
