"""The training objective beyond the tutorial's: continuous time, every parameterization, learned variances with the
hybrid loss and importance sampling, and the stop on a non-finite loss."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from difflab.config import TrainConfig
from difflab.diffusion import get_parameterization
from difflab.models import build_model
from difflab.training.objective import HISTORY, Objective
from difflab.training.trainer import Trainer, TrainingDiverged
from helpers import continuous
from helpers import diffusion as make_diffusion


def _data(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(n, dim, generator=g) + 0.2


@pytest.mark.parametrize("param", ["eps", "x0", "v", "score", "edm"])
@pytest.mark.parametrize("sampling", ["uniform", "lognormal"])
def test_continuous_time_trains_every_parameterization(dim: int, param: str, sampling: str) -> None:
    d = continuous("cosine")
    cfg = TrainConfig(steps=80, batch_size=64, lr=3e-3, seed=0, noise_sampling=sampling)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("mlp", dim, 0, width=32, depth=1)
    tr = Trainer(model, d, _data(300, dim), cfg, parameterization=param)
    tr.fit(progress=False)
    losses = torch.tensor(tr.losses())
    assert torch.isfinite(losses).all() and losses[-20:].mean() < losses[:5].mean()


def test_continuous_loss_is_the_parameterizations_target(dim: int) -> None:
    """One step's loss recomputed by hand: λ → (α, σ) = (√sigmoid λ, √sigmoid −λ), x_t, c_in, target, weight."""
    d = continuous("linear")
    cfg = TrainConfig(steps=1, seed=3)
    param = get_parameterization("edm", sigma_data=0.7)
    obj = Objective(d, param, cfg, torch.device("cpu"))
    model = nn.Linear(dim, dim).double()
    g = torch.Generator().manual_seed(1)
    lam = obj.draw(16, g)
    x0, eps = torch.randn(2, 16, dim, generator=g, dtype=torch.float64)
    got = obj.loss(lambda x, c: model(x), x0, eps, lam)
    a, s = torch.sigmoid(lam).sqrt()[:, None], torch.sigmoid(-lam).sqrt()[:, None]
    sig = s / a  # EDM's σ
    c_skip, c_out = 0.49 / (sig**2 + 0.49), sig * 0.7 / (sig**2 + 0.49).sqrt()
    x_ve = x0 + sig * eps
    target = (x0 - c_skip * x_ve) / c_out  # Karras et al. 2022, eq. 8
    out = model(x_ve / (sig**2 + 0.49).sqrt())  # c_in x_VE
    assert got.item() == pytest.approx(((out - target) ** 2).mean().item(), rel=1e-9)
    assert (lam >= math.log(1e-8)).all() and d.t_min <= 1  # draws are log-SNRs of the schedule's times


def test_lognormal_draws_have_edm_moments() -> None:
    d = continuous("edm")
    cfg = TrainConfig(steps=1, noise_sampling="lognormal", p_mean=-1.2, p_std=1.2)
    lam = Objective(d, get_parameterization("edm"), cfg, torch.device("cpu")).draw(200_000, torch.Generator())
    log_sigma = -lam / 2
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.01)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.01)


def test_vlb_term_is_the_gaussian_kl_and_decoder_nll(dim: int) -> None:
    """L_t of the hybrid loss against torch.distributions, in bits/dim: KL of the posterior q(x_{t−1}|x_t, x_0) to
    N(μ_θ, Σ_θ) with log Σ_θ = v log β_t + (1 − v) log β̃_t, and −log N(x_0; μ_θ, Σ_θ) at t = 1 (β̃_1 → β̃_2)."""
    from torch.distributions import Normal, kl_divergence

    d = make_diffusion("cosine", 20)
    obj = Objective(d, get_parameterization("eps"), TrainConfig(steps=1), torch.device("cpu"), learned_variance=True)
    g = torch.Generator().manual_seed(dim)
    x0, eps, out = (torch.randn(6, dim, generator=g) for _ in range(3))
    v = torch.rand(6, dim, generator=g) * 1.4 - 0.2
    t = torch.tensor([1, 2, 5, 9, 15, 20])
    a, s = d.alpha_sigma(t, x0)
    xt = a * x0 + s * eps
    got = obj.vlb_term(x0, xt, t, a, s, None, out, v)
    for i, ti in enumerate(t.tolist()):
        x0_hat = (xt[i] - float(s[i]) * out[i]) / float(a[i])
        mean_p, _ = d.q_posterior_mean_variance(x0_hat.double(), xt[i].double(), ti)
        post = float(d.posterior_variance[max(ti, 2)])
        var_p = torch.exp(v[i].double() * math.log(float(d.betas[ti])) + (1 - v[i].double()) * math.log(post))
        if ti == 1:
            want = -Normal(mean_p, var_p.sqrt()).log_prob(x0[i].double())
        else:
            mean_q, var_q = d.q_posterior_mean_variance(x0[i].double(), xt[i].double(), ti)
            want = kl_divergence(Normal(mean_q, var_q.sqrt()), Normal(mean_p, var_p.sqrt()))
        assert got[i].item() == pytest.approx(want.mean().item() / math.log(2), rel=1e-4, abs=1e-5)


def test_hybrid_loss_trains_the_variance_only_through_vlb() -> None:
    """The simple loss does not depend on v, the VLB term's mean is stop-gradient: ∂L/∂(mean outputs) equals the
    simple loss's gradient alone, and v gets λ T ∂L_t/∂v."""
    d = make_diffusion("linear", 50)
    cfg = TrainConfig(steps=1, vlb_weight=0.001)
    obj = Objective(d, get_parameterization("eps"), cfg, torch.device("cpu"), learned_variance=True)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 32, 2, generator=g)
    t = torch.randint(1, 51, (32,), generator=g)
    head = torch.randn(32, 4, generator=g, requires_grad=True)
    obj.loss(lambda x, c: head, x0, eps, t).backward()
    assert head.grad is not None
    a, s = d.alpha_sigma(t, x0)
    simple = ((head[:, :2] - eps) ** 2).mean()
    (g_mean,) = torch.autograd.grad(simple, head)
    torch.testing.assert_close(head.grad[:, :2], g_mean[:, :2])
    assert head.grad[:, 2:].abs().sum() > 0


def test_learned_variance_and_importance_sampling_train_and_resume_exactly(tmp_path) -> None:
    d = make_diffusion("cosine", 12)
    cfg = TrainConfig(steps=200, batch_size=32, lr=2e-3, seed=0, vlb_sampling="importance", checkpoint_every=100)
    x = _data(200, 2)

    def trainer(steps: int) -> Trainer:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = build_model("mlp", 2, 12, width=32, depth=1, out_dim=4)
        return Trainer(model, d, x, cfg.model_copy(update={"steps": steps}), parameterization="v",
                       learned_variance=True)

    full = trainer(200)
    full.fit(progress=False)
    assert bool((full.objective.counts[1:] >= HISTORY).all())  # every step seen: importance sampling was on
    p = full.objective._p_t()
    assert p.sum().item() == pytest.approx(1.0) and (p > 0).all()
    half = trainer(100)
    half.fit(progress=False)
    state = {k: v.clone() for k, v in half.state_tensors().items()}
    resumed = trainer(200)
    resumed.load_state_tensors(state, 100)
    resumed.fit(progress=False)
    torch.testing.assert_close(torch.tensor(resumed.losses()), torch.tensor(full.losses()))
    for a, b in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_non_finite_loss_stops_training_naming_the_step(dim: int) -> None:
    d = make_diffusion("linear", 20)
    cfg = TrainConfig(steps=400, lr=1e6, seed=0, checkpoint_every=100)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("mlp", dim, 20, width=16, depth=1)
    saved: list[int] = []
    tr = Trainer(model, d, _data(100, dim), cfg)
    with pytest.raises(TrainingDiverged, match=r"at step \d+") as err:
        tr.fit(progress=False, on_checkpoint=lambda t: saved.append(t.step_count))
    step = int(str(err.value).split("at step ")[1].split()[0])
    assert not math.isfinite(tr.loss_log[step - 1].item())
    assert torch.isfinite(tr.loss_log[: step - 1]).all()
    assert all(s < step for s in saved)  # no checkpoint after the first non-finite loss


@pytest.mark.parametrize(("schedule", "param"), [("cosine", "v"), ("rectified", "velocity")])
def test_time_code_is_finite_where_alpha_bar_is_zero(dim: int, schedule: str, param: str) -> None:
    """t = 1 of a zero-terminal-SNR or straight-path process has λ = −∞: training and sampling give the network the
    same clamped, finite noise code there (c_noise = −λ/8 once was +∞, NaN after the sinusoidal embedding: training
    of cosine with zero terminal SNR stopped at step 95), and a real network's loss at λ = −∞ is finite."""
    d = continuous(schedule, zero_terminal_snr=schedule == "cosine")
    obj = Objective(d, get_parameterization(param), TrainConfig(steps=1), torch.device("cpu"))
    lam = torch.tensor([-math.inf, -3.0, 0.0, 5.0], dtype=torch.float64)
    x0, eps = _data(4, dim), torch.randn(4, dim, generator=torch.Generator().manual_seed(1))
    a, s, cond, _ = obj.coefficients(lam, x0)
    assert torch.isfinite(cond).all() and float(cond[0]) == d.net_time(1.0)
    assert float(a[0]) == 0.0 and float(s[0]) == 1.0
    for i, t in enumerate([1.0, *(d.t_of_log_snr(float(v)) for v in lam[1:])]):
        assert float(cond[i]) == pytest.approx(d.net_time(t), abs=1e-5)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("mlp", dim, 0, width=16, depth=1)
    assert torch.isfinite(obj.loss(model, x0, eps, lam))


def test_importance_sampling_weights_keep_the_hybrid_loss_unbiased() -> None:
    """With p_t far from uniform (ten times the history at t = 5, 6, 7), the weighted loss over t ~ p averages to the loss averaged
    uniformly over t (Nichol & Dhariwal 2021, §3.3), within 4 standard errors computed from the exact p and the
    per-t losses; without the weights 1/(T p_t) it would miss by more than 10 of them."""
    T, dim, N = 8, 2, 200_000
    d = make_diffusion("cosine", T)
    weighted = Objective(d, get_parameterization("eps"), TrainConfig(steps=1, vlb_sampling="importance"),
                         torch.device("cpu"), learned_variance=True)
    weighted.history[1:] = 1.0
    weighted.history[5:8] = 10.0
    weighted.counts[1:] = HISTORY
    plain = Objective(d, get_parameterization("eps"), TrainConfig(steps=1), torch.device("cpu"), learned_variance=True)
    x0, eps = torch.tensor([[0.4, -0.3]]), torch.tensor([[1.2, 0.5]])

    def net(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # a fixed output: ε̂ = tanh(x), v = 0.3
        return torch.cat([torch.tanh(x), torch.full_like(x, 0.3)], dim=1)

    per_t = torch.tensor([float(plain.loss(net, x0, eps, torch.tensor([t]))) for t in range(1, T + 1)],
                         dtype=torch.float64)
    p = weighted._p_t().double()
    t = weighted.draw(N, torch.Generator().manual_seed(0))
    got = float(weighted.loss(net, x0.expand(N, dim), eps.expand(N, dim), t))
    w = per_t / (T * p)
    se = math.sqrt(float((p * w**2).sum() - per_t.mean() ** 2) / N)
    assert abs(got - float(per_t.mean())) < 4 * se
    assert abs(float((p * per_t).sum()) - float(per_t.mean())) > 10 * se
