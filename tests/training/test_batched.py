"""Batched training: every member's step is the step a single Trainer takes with the same inputs, and train_many
writes the run directories train_run writes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from difflab.compute import cpu_threads
from difflab.config import TrainConfig, resolve_config
from difflab.errors import ConfigError
from difflab.models import build_model
from difflab.pipeline import batch_key, sweep_key, train_many, train_run
from difflab.rundir import FILES, load_run
from difflab.training.batched import BatchedSeedTrainer, make_trainer
from difflab.training.stacked import StackedTrainer
from difflab.training.trainer import Trainer
from helpers import diffusion as make_diffusion


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny problems: one thread, so other processes on the machine do not stall OpenMP hand-offs."""
    with cpu_threads(1):
        yield

T = 10
SCHEDULES = ["poly", "sigmoid", "cosine"]  # (linear at T = 10 clips β on 5 steps: refused)
PARAMS = ["eps", "x0", "v"]


MLP = {"width": 32, "depth": 2, "emb_dim": 8}
# (network, trainer): the hand-written step, torch.func's generic one for difflab's network, and the generic one
# for the tutorial's network (two independent computations of the same gradients)
TRAINERS = [("seed", BatchedSeedTrainer), ("mlp", StackedTrainer), ("seed", StackedTrainer)]
TRAINER_IDS = ["seed-handwritten", "mlp-func", "seed-func"]


def _members(dim: int, M: int = 3, model: str = "seed", **common):
    """M members differing in seed, data, schedule, parameterization, lr, weight decay, betas and clipping."""
    models, diffs, xs, cfgs = [], [], [], []
    for m in range(M):
        torch.manual_seed(m)
        models.append(build_model(model, dim, T, **(MLP if model == "mlp" else {})))
        diffs.append(make_diffusion(SCHEDULES[m % 3], T))
        xs.append(torch.rand(64, dim, generator=torch.Generator().manual_seed(10 + m)) * 2 - 1)
        cfgs.append(TrainConfig(steps=6, seed=m, lr=1e-2 / (m + 1), weight_decay=1e-4 * m,
                                adam_betas=(0.9, 0.99 if m == 1 else 0.999), grad_clip=0.5 if m == 2 else None,
                                **common))
    return models, diffs, torch.stack(xs), cfgs, [PARAMS[m % 3] for m in range(M)]


def _close_weights(p: torch.Tensor, q: torch.Tensor, lr: float, steps: int) -> None:
    """Adam moves a weight by about ±lr per step whatever its gradient's size, so a gradient that is 0 up to
    rounding may move either way: nearly all weights must agree, the rest within the moves Adam can make."""
    off = (p - q).abs() > 1e-5
    assert off.float().mean() < 1e-3 and (p - q).abs().max() < 2.5 * lr * steps


@pytest.mark.parametrize("name, cls", TRAINERS, ids=TRAINER_IDS)
def test_member_step_equals_single_trainer_step(dim: int, name: str, cls: type) -> None:
    """Injected identical draws: per-member loss and gradients equal the single model's (autograd, the reference
    path), and after five AdamW updates the weights agree."""
    models, diffs, xs, cfgs, params = _members(dim, model=name)
    batched = cls([copy.deepcopy(m) for m in models], diffs, xs, cfgs, params)
    singles = [Trainer(copy.deepcopy(mo), d, x, c, parameterization=p, fused=False)
               for mo, d, x, c, p in zip(models, diffs, xs, cfgs, params, strict=True)]
    gen = torch.Generator().manual_seed(0)
    logged = []
    for _ in range(5):
        t = torch.randint(1, T + 1, (3, 64), generator=gen)
        eps = torch.randn(3, 64, dim, generator=gen)
        batched.compute_grads(batched.x, t, eps)
        logged.append(batched.loss.clone())
        for m, tr in enumerate(singles):
            loss = tr.loss(tr.x, t[m], eps[m])
            tr.opt.zero_grad()
            loss.backward()
            assert float(batched.loss[m]) == pytest.approx(loss.item(), rel=1e-5)
            for k, p in enumerate(tr.model.parameters()):
                torch.testing.assert_close(batched.grads[k][m], p.grad, rtol=1e-4, atol=1e-6)
            tr.apply_update()
        batched.apply_update()
    for m, tr in enumerate(singles):
        for k, p in enumerate(tr.model.parameters()):
            _close_weights(batched.params[k][m], p.detach(), cfgs[m].lr, 5)
    torch.testing.assert_close(batched.loss_log[:5], torch.stack(logged), rtol=0, atol=0)  # row = step


@pytest.mark.parametrize("kind", ["fused", "stacked"])
def test_member_adamw_equals_fused_adamw_exactly_in_order(kind: str) -> None:
    """With gradients set by hand (no rounding noise), the batched AdamW matches torch's fused AdamW closely
    for every member's own lr, weight decay and betas: the CPU's grouped fused calls, and the elementwise form a GPU
    uses (run here on the CPU). Two members share their hyper-parameters, so that one fused call serves both."""
    models, diffs, xs, cfgs, params = _members(2, M=4)
    cfgs = [c.model_copy(update={"grad_clip": None, "steps": 10}) for c in cfgs]
    cfgs[3] = cfgs[3].model_copy(update={k: getattr(cfgs[0], k) for k in ("lr", "weight_decay", "adam_betas")})
    batched = BatchedSeedTrainer([copy.deepcopy(m) for m in models], diffs, xs, cfgs, params)
    batched._adamw = batched._fused_adamw if kind == "fused" else batched._stacked_adamw
    singles = [Trainer(copy.deepcopy(m), d, x, c) for m, d, x, c in zip(models, diffs, xs, cfgs, strict=True)]
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        for k, g in enumerate(batched.grads):
            g.copy_(torch.randn(g.shape, generator=gen))
            for m, tr in enumerate(singles):
                list(tr.model.parameters())[k].grad = g[m].clone()
        batched.apply_update()
        for tr in singles:
            tr.apply_update()
    # the same kernel: equal but for the last bit where an element falls in a vector's tail in one layout only
    tol = 3e-7 if kind == "fused" else 1e-6
    for m, tr in enumerate(singles):
        for k, p in enumerate(tr.model.parameters()):
            torch.testing.assert_close(batched.params[k][m], p.detach(), rtol=tol, atol=tol / 10)


def test_per_member_clip_and_ema() -> None:
    """Clipping scales each member's gradient by its own norm; EMA follows each member's weights."""
    models, diffs, xs, cfgs, params = _members(2, ema=0.9)
    batched = BatchedSeedTrainer(models, diffs, xs, cfgs, params)
    before = [p.clone() for p in batched.params]
    for g in batched.grads:
        g.fill_(1.0)
    n_params = sum(p[0].numel() for p in batched.params)
    batched.apply_update()
    clipped = batched.grads[0][2, 0, 0].item()
    assert clipped == pytest.approx(0.5 / (n_params**0.5 + 1e-6), rel=1e-5)
    assert batched.grads[0][0, 0, 0].item() == 1.0  # members 0 and 1 have no clipping
    for e, p, b in zip(batched.ema, batched.params, before, strict=True):
        torch.testing.assert_close(e, 0.9 * b + 0.1 * p)


@pytest.mark.parametrize(
    "train",
    [{"steps": 12}, {"steps": 12, "batch_size": 100, "ema": 0.9, "lr_schedule": "cosine", "warmup": 3,
                     "grad_clip": 1.0}],
    ids=["tutorial", "minibatch-ema-cosine-clip"],
)
@pytest.mark.parametrize("preset", ["seed", "recommended"])
def test_train_many_equals_train_run(tmp_path, train: dict, preset: str) -> None:
    """Same seeds, same draws (one generator per member on CPU): each member's run directory matches train_run's,
    for the tutorial's network (hand-written step) and difflab's (torch.func)."""
    model = {"options": MLP} if preset == "recommended" else {}
    # the batched trainers run discrete time (the recommended recipe is continuous: a discrete variant of it)
    diffusion = {"T": T, "time": "discrete", "schedule": "cosine", "parameterization": "v"}
    cfgs = [resolve_config(preset, overrides={"data": {"n": 300}, "model": model, "diffusion": diffusion,
                                              "train": {**train, "seed": s, "lr": 1e-2 / (1 + s)}})
            for s in range(2)]
    runs = train_many(cfgs, [tmp_path / f"m{s}" for s in range(2)])
    for s, cfg in enumerate(cfgs):
        ref = train_run(cfg, tmp_path / f"r{s}", progress=False)
        got = load_run(tmp_path / f"m{s}")
        assert sorted(p.name for p in (tmp_path / f"m{s}").iterdir()) == sorted(
            p.name for p in (tmp_path / f"r{s}").iterdir())
        for k, v in ref.model.state_dict().items():
            _close_weights(got.model.state_dict()[k], v, cfg.train.lr, cfg.train.steps)
            torch.testing.assert_close(runs[s].model.state_dict()[k], got.model.state_dict()[k])
        lb = np.loadtxt(tmp_path / f"m{s}" / FILES["loss"], delimiter=",", skiprows=1)
        la = np.loadtxt(tmp_path / f"r{s}" / FILES["loss"], delimiter=",", skiprows=1)
        np.testing.assert_allclose(lb, la, rtol=1e-4)
        np.testing.assert_array_equal(got.train, ref.train)


def test_resume_from_a_batched_checkpoint(tmp_path) -> None:
    """train_run(resume=True) continues a member as if it had been trained alone."""
    short = resolve_config("seed", overrides={"data": {"n": 200}, "train": {"steps": 6}})
    long = resolve_config("seed", overrides={"data": {"n": 200}, "train": {"steps": 10}})
    train_many([short, short.model_copy(deep=True)], [tmp_path / "a", tmp_path / "b"])
    resumed = train_run(long, tmp_path / "a", resume=True, progress=False)
    straight = train_run(long, tmp_path / "s", progress=False)
    for k, v in straight.model.state_dict().items():
        _close_weights(resumed.model.state_dict()[k], v, 1e-2, 10)


def test_shared_generator_draws_every_member_differently() -> None:
    """The GPU's draw mode: one generator, (M, B) draws at once; members get distinct noise, training runs."""
    models, diffs, xs, cfgs, params = _members(2)
    tr = BatchedSeedTrainer(models, diffs, xs, cfgs, params, rng="shared")
    _, t, eps = tr.draw()
    assert t.shape == (3, 64) and int(t.min()) >= 1 and int(t.max()) <= T
    assert not torch.equal(eps[0], eps[1])
    tr.fit()
    assert torch.isfinite(tr.loss_log).all() and tr.step_count == 6


def test_snapshot_restore_replays_the_same_steps() -> None:
    models, diffs, xs, cfgs, params = _members(2, batch_size=16, ema=0.5)
    tr = BatchedSeedTrainer(models, diffs, xs, cfgs, params)
    snap = tr.snapshot()
    for _ in range(3):
        tr.step()
    first = [p.clone() for p in tr.params]
    tr.restore(snap)
    assert int(tr.step_t) == 0
    for _ in range(3):
        tr.step()
    for p, q in zip(tr.params, first, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_batch_key_groups_what_can_train_together() -> None:
    base = resolve_config("seed")
    other_seed = resolve_config("seed", overrides={"train": {"seed": 5, "lr": 3e-3, "weight_decay": 0.0},
                                                   "diffusion": {"schedule": "linear"}, "data": {"scaler": "standard"}})
    assert batch_key(base) is not None and batch_key(base) == batch_key(other_seed)
    assert batch_key(resolve_config("seed", overrides={"diffusion": {"T": 20}})) != batch_key(base)
    assert batch_key(resolve_config("seed", overrides={"train": {"steps": 10}})) != batch_key(base)
    assert batch_key(resolve_config("seed", overrides={"train": {"cuda_graph": False}})) != batch_key(base)
    on_gpu = {"train": {"device": "cuda"}}
    assert batch_key(resolve_config("recommended", overrides=on_gpu)) is None  # continuous time: not stacked
    cpu = resolve_config("recommended", overrides={"train": {"device": "cpu"}})
    assert batch_key(cpu) is not None  # on a CPU the residual MLP trains as members of their own, any process
    assert batch_key(resolve_config("recommended", overrides={"train": {"device": "cpu"}, "diffusion": {
        "time": "discrete", "schedule": "linear", "variance": "learned-range"}})) is not None
    discrete = {"diffusion": {"time": "discrete", "schedule": "cosine", "parameterization": "v"}}
    rec = resolve_config("recommended", overrides=discrete)
    assert batch_key(rec) is not None and batch_key(rec) != batch_key(base)
    wider = resolve_config("recommended", overrides={**discrete, "model": {"options": {"width": 64}}})
    assert batch_key(wider) != batch_key(rec)
    assert batch_key(resolve_config("seed", overrides={"model": {"name": "oracle"}})) is None  # not trained


def test_sweeps_batch_difflabs_network_on_a_gpu_only() -> None:
    """torch.func's generic batched step does not pay on a CPU: the sweep runs those cells in processes."""
    on = {"train": {"device": "cuda"}}  # a key needs no GPU present
    assert sweep_key(resolve_config("recommended", overrides=on)) == batch_key(resolve_config("recommended", overrides=on))
    assert sweep_key(resolve_config("recommended", overrides={"train": {"device": "cpu"}})) is None
    seed_cpu = resolve_config("seed", overrides={"train": {"device": "cpu"}})
    assert sweep_key(seed_cpu) == batch_key(seed_cpu) is not None


def test_make_trainer_picks_the_handwritten_step_for_the_tutorials_network_only() -> None:
    models, diffs, xs, cfgs, params = _members(2, M=2)
    assert type(make_trainer(models, diffs, xs, cfgs, params)) is BatchedSeedTrainer
    models, diffs, xs, cfgs, params = _members(2, M=2, model="mlp")
    assert type(make_trainer(models, diffs, xs, cfgs, params)) is StackedTrainer


def test_members_must_share_one_architecture() -> None:
    models, diffs, xs, cfgs, params = _members(2, M=2, model="mlp")
    models[1] = build_model("mlp", 2, T, width=16, depth=2, emb_dim=8)
    with pytest.raises(ConfigError, match="one network architecture"):
        StackedTrainer(models, diffs, xs, cfgs, params)
    with pytest.raises(ConfigError, match="tutorial's network"):
        BatchedSeedTrainer(_members(2, M=2, model="mlp")[0], diffs, xs, cfgs, params)


def test_train_many_refuses_mixed_batches(tmp_path) -> None:
    a = resolve_config("seed", overrides={"train": {"steps": 2}})
    b = resolve_config("seed", overrides={"train": {"steps": 3}})
    with pytest.raises(ConfigError, match="cannot be trained together"):
        train_many([a, b], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="share an output folder"):
        train_many([a, a], [tmp_path / "a", tmp_path / "a"])
    with pytest.raises(ConfigError, match="one each"):
        train_many([a, a], [tmp_path / "a"])


def test_two_lanes_compute_what_one_lane_computes() -> None:
    """threads = 2 on the CPU trains the members in two groups at once; each member's arithmetic is unchanged."""
    models, diffs, xs, cfgs, params = _members(2, M=4)
    one = BatchedSeedTrainer(copy.deepcopy(models), diffs, xs, [c.model_copy(update={"threads": 1}) for c in cfgs],
                             params)
    two = BatchedSeedTrainer(copy.deepcopy(models), diffs, xs, [c.model_copy(update={"threads": 2}) for c in cfgs],
                             params)
    assert two._pool is not None and one._pool is None
    for _ in range(3):
        one.step()
        two.step()
    for p, q in zip(one.params, two.params, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    torch.testing.assert_close(one.loss_log, two.loss_log, rtol=0, atol=0)


def test_one_network_over_all_members_reads_and_writes_the_flat_buffers(dim: int) -> None:
    """The GPU's layout, run on the CPU: one StackedSeedMLP over all M members' views into the (M, P) buffers
    (batch stride P) computes each member's loss and gradients as the per-member networks do."""
    from difflab.models.batched import StackedSeedMLP

    models, diffs, xs, cfgs, params = _members(dim, M=3)
    tr = BatchedSeedTrainer(models, diffs, xs, cfgs, params)
    x0, t, eps = tr.draw()
    tr.compute_grads(x0, t, eps)
    per_member = [g.clone() for g in tr.grads]
    loss = tr.loss.clone()
    for g in tr.grads:
        g.zero_()
    net = StackedSeedMLP(tr.params, tr.grads, tr.B)
    a, s, target = tr.coefficients(x0, t, eps)
    torch.mul(x0, a, out=net.xt)
    net.xt.addcmul_(s, eps)
    net.forward(t)
    net.backward(target, tr.loss)
    torch.testing.assert_close(tr.loss, loss, rtol=1e-6, atol=1e-7)
    for got, want in zip(tr.grads, per_member, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
        assert got.abs().sum() > 0
