"""The trainer's fast step computes the tutorial's step; EMA, LR schedule and checkpoints are exact."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from difflab.compute import cpu_threads
from difflab.config import TrainConfig
from difflab.diffusion import PARAMETERIZATIONS
from difflab.models import build_model
from difflab.training.ema import EMA
from difflab.training.optim import lr_lambda
from difflab.training.trainer import Trainer
from helpers import diffusion as make_diffusion


def _data(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, dim, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _model(name: str, dim: int, T: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, dim, T, **({"width": 32, "depth": 2} if name == "mlp" else {}))


def test_fast_step_equals_tutorial_loop(dim: int) -> None:
    """Gathered time code, fused AdamW, buffers: the plain loop's draws, losses, gradients and weights.

    Adam's first steps move each weight by ±lr whatever the gradient's size, so a gradient that is 0 up to
    rounding may move either way: weights are compared element-wise with that allowance, gradients exactly."""
    T, cfg = 10, TrainConfig(steps=5, seed=3)
    d = make_diffusion("poly", T)
    x = _data(200, dim)
    fast = Trainer(_model("seed", dim, T), d, x, cfg)
    ref = _model("seed", dim, T)
    ref.load_state_dict(fast.model.state_dict())
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, betas=(0.9, 0.999), weight_decay=1e-4, foreach=False)
    ab = torch.as_tensor(d.schedule.alpha_bars, dtype=torch.float32)
    gen = torch.Generator().manual_seed(3)
    for step in range(5):
        t = torch.randint(1, T + 1, (200,), generator=gen)
        eps = torch.randn(200, dim, generator=gen)
        xt = ab[t, None] ** 0.5 * x + (1 - ab[t, None]) ** 0.5 * eps
        h = torch.cat([xt, ref.time_code_onehot(t)], dim=1)
        loss_ref = F.mse_loss(ref.model(h), eps)
        loss_ref.backward()
        if step == 0:
            fast_loss = fast.loss(*fast.draw())
            fast_loss.backward()
            for p, q in zip(fast.model.parameters(), ref.parameters(), strict=True):
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-7)
            fast.generator.manual_seed(3)
            fast.opt.zero_grad()
        opt.step()
        opt.zero_grad()
        loss_fast = fast.step()
        assert float(loss_fast) == pytest.approx(loss_ref.item(), rel=1e-4)
    for p, q in zip(fast.model.parameters(), ref.parameters(), strict=True):
        off = (p - q).abs() > 1e-5
        assert off.float().mean() < 1e-3 and (p - q).abs().max() < 2.5 * 1e-2 * 5


def _same_random_grads(a: nn.Module, b: nn.Module, *, seed: int) -> None:
    """Give two identical modules the same random gradients, so only their optimizers can differ."""
    g = torch.Generator().manual_seed(seed)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        pa.grad = torch.randn(pa.shape, generator=g)
        pb.grad = pa.grad.clone()


def test_fused_adamw_equals_reference_adamw() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    oa = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=1e-4, fused=True)
    ob = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=1e-4, foreach=False)
    for i in range(10):
        _same_random_grads(a, b, seed=i)
        oa.step()
        ob.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)


def test_gather_time_code_equals_one_hot(dim: int) -> None:
    m = _model("seed", dim, 10)
    t = torch.arange(1, 11)
    torch.testing.assert_close(m.time_code(t), m.time_code_onehot(t))


@pytest.mark.parametrize("model", ["seed", "mlp"])
@pytest.mark.parametrize("param", list(PARAMETERIZATIONS))
def test_every_model_and_parameterization_trains(dim: int, model: str, param: str) -> None:
    d = make_diffusion("cosine", 50)
    cfg = TrainConfig(steps=60, batch_size=64, lr=3e-3, seed=0)
    tr = Trainer(_model(model, dim, 50), d, _data(300, dim) * 0.3 + 0.5, cfg, parameterization=param)
    tr.fit(progress=False)
    losses = torch.tensor(tr.losses())
    assert losses.shape == (60,) and torch.isfinite(losses).all()
    assert losses[-20:].mean() < losses[:5].mean()


def test_ema_closed_form() -> None:
    m = nn.Linear(2, 1)
    ema = EMA(m, decay=0.9)
    start = m.weight.detach().clone()
    values = [1.0, 2.0, -1.0]
    expected = start
    for v in values:
        with torch.no_grad():
            m.weight.fill_(v)
        ema.update(m)
        expected = 0.9 * expected + 0.1 * v
    torch.testing.assert_close(ema.state_dict()["weight"], expected)


def test_lr_schedule_warmup_then_cosine() -> None:
    f = lr_lambda(TrainConfig(steps=110, warmup=10, lr_schedule="cosine"))
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0, abs=1e-12)
    g = lr_lambda(TrainConfig(steps=100, lr_schedule="constant"))
    assert all(g(s) == 1.0 for s in (0, 50, 99))
    assert lr_lambda(TrainConfig(steps=100, warmup=4))(1) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "cfg",
    [
        TrainConfig(steps=20, seed=1),
        TrainConfig(steps=20, seed=1, batch_size=32, ema=0.9, lr_schedule="cosine", warmup=3, grad_clip=1.0),
    ],
    ids=["full-batch", "minibatch-ema-cosine"],
)
def test_resume_equals_straight_run(dim: int, cfg: TrainConfig) -> None:
    d = make_diffusion("poly", 10)
    x = _data(100, dim)
    straight = Trainer(_model("seed", dim, 10), d, x, cfg)
    straight.fit(progress=False)
    first = Trainer(_model("seed", dim, 10), d, x, cfg)
    for _ in range(8):
        first.step()
        first.step_count += 1
    state = {k: v.clone() for k, v in first.state_tensors().items()}
    second = Trainer(_model("seed", dim, 10, seed=99), d, x, cfg)  # different init: all must come from the state
    second.load_state_tensors(state, 8)
    second.fit(progress=False)
    for p, q in zip(straight.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    if cfg.ema:
        torch.testing.assert_close(straight.eval_model().state_dict(), second.eval_model().state_dict())
    assert second.sched.get_last_lr() == straight.sched.get_last_lr()


def test_seed_model_shapes_match_tutorial() -> None:
    m = build_model("seed", 2, 10)
    shapes = [tuple(p.shape) for p in m.parameters()]
    assert shapes == [(1, 10), (1,), (100, 3), (100,), (100, 100), (100,), (100, 100), (100,), (20, 100), (20,),
                      (2, 20), (2,)]
    acts = [type(layer).__name__ for layer in m.model]
    assert acts == ["Linear", "LeakyReLU"] * 4 + ["Linear"]
    assert all(layer.negative_slope == 0.01 for layer in m.model if isinstance(layer, nn.LeakyReLU))
    with torch.no_grad():
        assert not math.isnan(float(m(torch.zeros(4, 2), torch.tensor([1, 2, 3, 10])).sum()))


def test_mlp_time_table_equals_direct_embedding(dim: int) -> None:
    """The gathered table of e(1..T) gives the same network output as embedding each row's t directly."""
    m = _model("mlp", dim, 10)
    t = torch.randint(1, 11, (64,), generator=torch.Generator().manual_seed(0))
    x = torch.randn(64, dim)
    gathered = m(x, t)  # 64 rows > T = 10: table path
    direct = torch.cat([m(x[i : i + 8], t[i : i + 8]) for i in range(0, 64, 8)])  # 8 rows < T: direct path
    torch.testing.assert_close(gathered, direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("param", ["eps", "x0", "v"])  # the parameterizations the hand-written step runs
@pytest.mark.parametrize(
    "cfg",
    [TrainConfig(steps=6, seed=2), TrainConfig(steps=6, seed=2, batch_size=50, ema=0.9, grad_clip=0.5,
                                                lr_schedule="cosine", warmup=2)],
    ids=["full-batch", "minibatch-ema-clip"],
)
def test_hand_written_step_equals_autograd_step(dim: int, param: str, cfg: TrainConfig) -> None:
    """The seed network's hand-written forward/backward (no autograd) gives autograd's losses and gradients."""
    d = make_diffusion("linear", 10)
    x = _data(120, dim)
    with cpu_threads(1):
        fast = Trainer(_model("seed", dim, 10), d, x, cfg, parameterization=param)
        ref = Trainer(_model("seed", dim, 10), d, x, cfg, parameterization=param, fused=False)
        assert fast.net is not None and ref.net is None
        for _ in range(cfg.steps):
            lf, lr = fast.compute_grads(), ref.compute_grads()
            assert float(lf) == pytest.approx(float(lr), rel=1e-5)
            for p, q in zip(fast.model.parameters(), ref.model.parameters(), strict=True):
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
            fast.apply_update()
            ref.apply_update()
    for p, q in zip(fast.model.parameters(), ref.model.parameters(), strict=True):
        off = (p - q).abs() > 1e-5
        assert off.float().mean() < 1e-3 and (p - q).abs().max() < 2.5 * cfg.lr * cfg.steps


def test_direct_fused_adamw_call_equals_optimizer_step() -> None:
    """The trainer's direct call of the fused AdamW kernel is bit-for-bit ``opt.step()``, also across a state
    reload."""
    from difflab.training.optim import fused_adamw_step

    torch.manual_seed(0)
    a, b = nn.Linear(7, 5), nn.Linear(7, 5)
    b.load_state_dict(a.state_dict())
    oa = torch.optim.AdamW(a.parameters(), lr=3e-3, weight_decay=1e-2, betas=(0.8, 0.99), fused=True)
    ob = torch.optim.AdamW(b.parameters(), lr=3e-3, weight_decay=1e-2, betas=(0.8, 0.99), fused=True)
    for i in range(6):
        _same_random_grads(a, b, seed=i)
        oa.step()
        if i == 0:
            ob.step()  # creates the state the direct call uses
        else:
            fused_adamw_step(ob)
        if i == 3:  # state replaced, as on resume: the step counters are rebuilt as views and keep counting
            ob.load_state_dict(copy.deepcopy(ob.state_dict()))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert float(ob.state[next(b.parameters())]["step"]) == 6


def test_changed_seed_network_falls_back_to_autograd() -> None:
    """The hand-written step is used only for the network it was written for; a changed one trains by autograd."""
    from difflab.models.batched import is_plain_seed

    d = make_diffusion("poly", 10)
    plain = _model("seed", 2, 10)
    assert is_plain_seed(plain) and Trainer(plain, d, _data(50, 2), TrainConfig(steps=1)).net is not None
    changed = _model("seed", 2, 10)
    changed.model[1] = nn.LeakyReLU(0.2)
    assert not is_plain_seed(changed) and Trainer(changed, d, _data(50, 2), TrainConfig(steps=1)).net is None
    relu = _model("seed", 2, 10)
    relu.model[3] = nn.ReLU()
    assert not is_plain_seed(relu)


