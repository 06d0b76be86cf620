"""The one-step objectives against independent computations: MeanFlow's target against a finite-difference
derivative of u along the path and against the exact average velocity of Gaussian data (which is its own target);
the shortcut target by hand and against the exact flow's self-consistency; the time draws' laws; the adaptive
weight; training on a tiny toy; bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from difflab.config import TrainConfig
from difflab.diffusion import ContinuousDiffusion, get_parameterization
from difflab.diffusion.jump_denoiser import JumpDenoiser
from difflab.errors import ConfigError
from difflab.models.jump_mlp import JumpMLP
from difflab.sampling import SAMPLERS, make_grid
from difflab.training.jumps import ADAPTIVE_C
from difflab.training.meanflow import MeanFlow
from difflab.training.shortcut import Shortcut
from difflab.training.trainer import Trainer
from helpers import GaussianAverageVelocity

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def objective(kind: type, **cfg: object) -> MeanFlow | Shortcut:
    name = "meanflow" if kind is MeanFlow else "shortcut"
    return kind(ContinuousDiffusion("rectified"), get_parameterization("velocity"),
                TrainConfig(objective=name, **cfg), CPU)


class Plain(nn.Module):
    """The network without its written-out forward_jvp: MeanFlow then takes torch.func.jvp."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.net(*args)


def batch(n: int, dim: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    t = 0.2 + 0.7 * torch.rand(n, generator=g)
    r = t * torch.rand(n, generator=g)
    return torch.randn(n, dim, generator=g), t, t - r, torch.randn(n, dim, generator=g)


@pytest.mark.parametrize("written_out", [True, False], ids=["forward_jvp", "torch.func.jvp"])
def test_meanflow_target_is_a_finite_difference_along_the_path(dim: int, written_out: bool) -> None:
    """u_tgt = v − (t − r) d/dt u(z_t, r, t), d/dt u the derivative of τ ↦ u(z + (τ − t) v, r, τ) (z moving with
    velocity v, r fixed), here by central differences at δ = 0.02 and 0.01 combined by Richardson extrapolation
    (error O(δ⁴); slow time features, max_period = 4)."""
    torch.manual_seed(dim)
    net = JumpMLP(dim, 0, width=32, depth=2, max_period=4)
    model = net if written_out else Plain(net)
    z, t, h, v = batch(256, dim, seed=1)
    r = t - h
    with torch.no_grad():
        target = objective(MeanFlow).jump_targets(model, z, t, h, v, None)

        def central(delta: float) -> torch.Tensor:
            up = net(z + delta * v, t + delta, t + delta - r)
            return (up - net(z - delta * v, t - delta, t - delta - r)) / (2 * delta)

        dudt = (4 * central(0.01) - central(0.02)) / 3
    expected = v - h[:, None] * dudt
    derivative_part = float((v - expected).abs().mean())
    assert derivative_part > 0.02  # the derivative matters here: a target of v alone would fail below
    torch.testing.assert_close(target, expected, rtol=0, atol=2e-3 * derivative_part)


@pytest.mark.parametrize("tangent", ["sample", "model"])
def test_the_exact_average_velocity_is_its_own_meanflow_target(dim: int, gaussian_problem, tangent: str) -> None:
    """For Gaussian data the exact u (closed form from the flow map, tests/helpers.py) satisfies the MeanFlow identity
    with the marginal velocity v(z, t): u = v − (t − r)(v ∂_z u + ∂_t u), whether the derivative is taken along the
    given v or along the network's own u(z, t, t) (= v(z, t) here). A wrong tangent (h held fixed, or z not moved)
    breaks it."""
    exact = GaussianAverageVelocity(*gaussian_problem)
    z, t, h, _ = (x.double() for x in batch(300, dim, seed=2))
    v = exact.velocity(z, t)
    target = objective(MeanFlow, meanflow_tangent=tangent).jump_targets(exact, z, t, h, v, None)
    torch.testing.assert_close(target, exact(z, t, h), rtol=1e-9, atol=1e-9)


def test_the_model_tangent_keeps_the_mean_of_the_target() -> None:
    """Along the network's u(z, t, t) the target is v − h (u(z, t, t) ∂_z u + ∂_t u): here against torch.func.jvp
    with that tangent written out, for a sampled v that is not the network's velocity."""
    torch.manual_seed(0)
    net = JumpMLP(2, 0, width=16, depth=2, max_period=8)
    z, t, h, v = batch(64, 2, seed=5)
    one = torch.ones_like(t)
    with torch.no_grad():
        got = objective(MeanFlow, meanflow_tangent="model").jump_targets(net, z, t, h, v, None)
        w = net(z, t, torch.zeros_like(h))
        _, dudt = torch.func.jvp(lambda a, b, c: net(a, b, c), (z, t, h), (w, one, one))
    torch.testing.assert_close(got, v - h[:, None] * dudt, rtol=1e-5, atol=1e-5)


def test_meanflow_draws_sorted_pairs_and_a_fixed_share_of_jumps() -> None:
    """t ≥ r; exactly round(share · B) rows with r < t, at other rows each draw; with uniform times t and r are the
    max and min of two uniforms (E = 2/3 and 1/3), and t of the r = t rows too."""
    obj = objective(MeanFlow, noise_sampling="uniform", jump_share=0.3)
    g = torch.Generator().manual_seed(0)
    draws = [obj.draw(1000, g) for _ in range(40)]
    for d in draws:
        assert bool((d[:, 0] >= d[:, 1]).all()) and int((d[:, 0] > d[:, 1]).sum()) == 300
    assert not torch.equal(draws[0][:, 0] > draws[0][:, 1], draws[1][:, 0] > draws[1][:, 1])
    allt = torch.cat(draws)
    jump = allt[:, 0] > allt[:, 1]
    assert float(allt[jump, 0].mean()) == pytest.approx(2 / 3, abs=0.01)
    assert float(allt[jump, 1].mean()) == pytest.approx(1 / 3, abs=0.01)
    assert float(allt[~jump, 0].mean()) == pytest.approx(2 / 3, abs=0.01)
    logit = objective(MeanFlow, noise_sampling="logit-normal", logit_mean=-0.4, logit_std=1.0, jump_share=1.0)
    pair = logit.draw(20000, g)
    # max of two logit-normals: P(t ≤ 1/2) = Φ(0.4)² where 1/2 = sigmoid(0)
    phi = 0.5 * (1 + math.erf(0.4 / math.sqrt(2)))
    assert float((pair[:, 0] <= 0.5).float().mean()) == pytest.approx(phi**2, abs=0.015)


def test_shortcut_target_by_hand(dim: int) -> None:
    """½ s(z, t, d) + ½ s(z', t − d, d), z' = z − d s(z, t, d), d = h/2, written out here with the network's own
    calls; the finest level's half steps (d = 1/M) are the instantaneous velocity, d = 0."""
    torch.manual_seed(dim)
    net = JumpMLP(dim, 0, width=16, depth=2)
    obj = objective(Shortcut, shortcut_steps=8)
    g = torch.Generator().manual_seed(3)
    z, v = torch.randn(6, dim, generator=g), torch.randn(6, dim, generator=g)
    h = torch.tensor([1.0, 0.5, 0.5, 0.25, 0.25, 0.25])  # 0.25 = 2/M: its half steps are the finest level
    t = torch.tensor([1.0, 1.0, 0.5, 0.75, 0.5, 0.25])
    with torch.no_grad():
        got = obj.jump_targets(net, z, t, h, v, None)
        for i in range(6):
            d = float(h[i]) / 2
            given = 0.0 if d < 2 / 8 else d
            one = lambda x, tt, hh: net(x[None], torch.tensor([tt]), torch.tensor([hh]))[0]  # noqa: E731
            s1 = one(z[i], float(t[i]), given)
            s2 = one(z[i] - d * s1, float(t[i]) - d, given)
            torch.testing.assert_close(got[i], 0.5 * (s1 + s2), rtol=1e-5, atol=1e-6)


def test_the_exact_flow_is_self_consistent(dim: int, gaussian_problem) -> None:
    """Two exact half jumps make the whole jump: the shortcut target of the exact average velocity is itself (every
    level above the finest, whose half steps are read as d = 0)."""
    exact = GaussianAverageVelocity(*gaussian_problem)
    obj = objective(Shortcut, shortcut_steps=16)
    h = torch.tensor([1.0, 0.5, 0.5, 0.25, 0.25], dtype=torch.float64)
    t = torch.tensor([1.0, 1.0, 0.5, 0.75, 0.25], dtype=torch.float64)
    z = torch.randn(5, dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    got = obj.jump_targets(exact, z, t, h, torch.zeros_like(z), None)
    torch.testing.assert_close(got, exact(z, t, h), rtol=1e-9, atol=1e-9)


def test_shortcut_draws_dyadic_steps_on_their_grid() -> None:
    obj = objective(Shortcut, shortcut_steps=16, jump_share=0.5)
    d = obj.draw(4000, torch.Generator().manual_seed(5))
    jump = d[:, 0] > d[:, 1]
    assert int(jump.sum()) == 2000
    t, h = d[jump, 0], d[jump, 0] - d[jump, 1]
    levels = torch.log2(h)
    assert torch.equal(levels, levels.round()) and set(levels.round().int().tolist()) == {0, -1, -2, -3}
    assert torch.equal(t / h, (t / h).round()) and bool((d[:, 1] >= 0).all()) and bool((t <= 1).all())


@pytest.mark.parametrize("power", [0.0, 1.0, 0.5])
def test_the_loss_and_its_adaptive_weight(power: float) -> None:
    """loss = mean over rows of w·e, e = ‖Δ‖²/D, w = 1/(e + c)^p with no gradient through w (Geng et al. 2025,
    §4.3): value and gradient against the formula written here (rows without a jump: Δ = u − (ε − x_0))."""
    torch.manual_seed(0)
    net = JumpMLP(2, 0, width=16, depth=1)
    obj = objective(MeanFlow, loss_power=power, jump_share=0.0)
    x0, eps = torch.randn(64, 2), torch.randn(64, 2)
    times = obj.draw(64, torch.Generator().manual_seed(1))
    loss = obj.loss(net, x0, eps, times)
    loss.backward()
    got = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    t = times[:, 0]
    e = (net(torch.lerp(x0, eps, t[:, None]), t, torch.zeros(64)) - (eps - x0)).pow(2).mean(1)
    w = (e.detach() + ADAPTIVE_C) ** -power
    ref = (w * e).mean()
    ref.backward()
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    for a, b in zip(got, (p.grad for p in net.parameters()), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", ["meanflow", "shortcut"])
def test_training_on_a_gaussian_learns_the_one_call_map(name: str) -> None:
    """300 steps on 2-D N(μ, s²) rows: the loss falls, and one call of the trained model draws points whose mean
    and spread approach the data's (the largest error of mean and of sd, against the untrained model's)."""
    mu, s = torch.tensor([0.6, -0.4]), torch.tensor([0.3, 0.5])
    x = mu + s * torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    d = ContinuousDiffusion("rectified")
    torch.manual_seed(0)
    model = JumpMLP(2, 0, width=32, depth=2, max_period=20)
    cfg = TrainConfig(objective=name, steps=300, batch_size=128, lr=3e-3, noise_sampling="uniform", loss_power=0.0,
                      device="cpu", threads=1)

    def one_call() -> torch.Tensor:
        den = JumpDenoiser(model.eval(), d, "velocity")
        eps = torch.randn(4000, 2, generator=torch.Generator().manual_seed(1))
        return SAMPLERS["jumps"](den, eps, d, make_grid(d, 1, "trailing"))

    def error(y: torch.Tensor) -> float:
        return float((y.mean(0) - mu).abs().max() + (y.std(0) - s).abs().max())

    before = error(one_call())
    tr = Trainer(model.train(), d, x, cfg, parameterization="velocity")
    tr.fit(progress=False)
    losses = torch.tensor(tr.losses())
    # (the conditional velocity ε − x_0 keeps the loss far from 0: its variance about v(z, t) is the floor)
    assert float(losses[-50:].mean()) < 0.85 * float(losses[:50].mean())
    # (from an error near 1.9 to near 0.25 in these few steps)
    assert error(one_call()) < 0.2 * before


def test_bad_input() -> None:
    rect, edm = ContinuousDiffusion("rectified"), ContinuousDiffusion("edm")
    velocity = get_parameterization("velocity")
    with pytest.raises(ConfigError, match="straight path"):
        MeanFlow(edm, get_parameterization("edm"), TrainConfig(objective="meanflow"), CPU)
    with pytest.raises(ConfigError, match="straight path"):
        MeanFlow(rect, get_parameterization("x0"), TrainConfig(objective="meanflow"), CPU)
    with pytest.raises(ConfigError, match="noise_sampling"):
        MeanFlow(rect, velocity, TrainConfig(objective="meanflow", noise_sampling="lognormal"), CPU)
    with pytest.raises(ConfigError, match="power of two"):
        Shortcut(rect, velocity, TrainConfig(objective="shortcut", shortcut_steps=12), CPU)
