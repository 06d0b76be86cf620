"""The residual MLP's fast training step trains the weights the autograd step trains: every parameterization,
discrete and continuous time, uniform and log-normal noise levels, class labels, EMA, clipping, cosine LR with
warm-up, learned variances, one or two lanes; in distillation and in train_many too."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from difflab.compute import cpu_threads, default_threads
from difflab.config import TrainConfig, resolve_config
from difflab.diffusion import get_parameterization
from difflab.distill.consistency import Consistency
from difflab.distill.loop import LoopSettings
from difflab.distill.progressive import Progressive
from difflab.distill.rows import network_rows
from difflab.models import ResMLP, build_model
from difflab.pipeline import train_many, train_run
from difflab.rundir import FILES, load_run
from difflab.training.fast_step import FastStep, regression
from difflab.training.trainer import Trainer
from difflab.weights import load_weights
from helpers import continuous
from helpers import diffusion as discrete


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny problems: one torch thread (the lanes set their own), so busy cores do not stall OpenMP hand-offs."""
    with cpu_threads(1):
        yield


# (parameterization, time, noise sampling): everything the recipe's Trainer can be given; "straight": the straight
# path x_t = (1 − t) x_0 + t ε (α + σ = 1, not α² + σ² = 1) with its velocity target ε − x_0
MODES = [(p, "discrete", "uniform") for p in ("eps", "x0", "v", "score", "mean", "edm")] + [
    (p, "continuous", s) for p in ("eps", "x0", "v", "score", "edm") for s in ("uniform", "lognormal")] + [
    ("velocity", "straight", s) for s in ("uniform", "logit-normal")] + [("edm", "continuous", "logit-normal")]
# the options rotate over the modes, so that each is met with several of them
OPTIONS = [dict(ema=0.9), dict(grad_clip=0.3, lr_schedule="cosine", warmup=3), dict(ema=0.5, grad_clip=1.0),
           dict(lr_schedule="cosine", warmup=2)]


def _pair(dim: int, param: str, time: str, sampling: str, *, lanes: int = 1, classes: int = 0, steps: int = 8,
          learned: bool = False, **options):  # noqa: ANN003, ANN202
    """A fast and an autograd Trainer from the same initial weights, data and seed."""
    T = 0 if time in ("continuous", "straight") else 20
    process = {"continuous": lambda: continuous("edm" if param == "edm" else "cosine", 20),
               "straight": lambda: continuous("rectified", 20), "discrete": lambda: discrete("cosine", 20)}[time]()
    cfg = TrainConfig(steps=steps, seed=3, lr=3e-3, batch_size=32, threads=lanes, noise_sampling=sampling, **options)
    g = torch.Generator().manual_seed(dim)
    x = torch.rand(90, dim, generator=g) * 2 - 1
    labels = torch.randint(0, classes, (90,), generator=g) if classes else None
    torch.manual_seed(0)
    model = ResMLP(dim, T, width=16, depth=2, emb_dim=8, out_dim=2 * dim if learned else None, n_classes=classes)
    kw = dict(parameterization=get_parameterization(param), learned_variance=learned, labels=labels,
              n_classes=classes)
    fast = Trainer(model, process, x, cfg, **kw)
    ref = Trainer(copy.deepcopy(model), process, x, cfg, fused=False, **kw)
    assert isinstance(fast.fast, FastStep) and ref.fast is None
    return fast, ref


def _same_training(fast: Trainer, ref: Trainer) -> None:
    """Equal losses step by step and equal weights (and EMA weights) at the end. Adam moves a weight by about ±lr
    per step whatever its gradient's size, so a gradient that is 0 up to rounding may move either way: nearly all
    weights must agree to 1e-5, the rest within the moves Adam can make."""
    for _ in range(fast.cfg.steps):
        lf, lr = fast.step(), ref.step()
        assert float(lf) == pytest.approx(float(lr), rel=1e-4, abs=1e-7)
    for a, b in ((fast.model, ref.model), (fast.eval_model(), ref.eval_model())):
        for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            off = (p - q).abs() > 1e-5
            assert off.float().mean() < 1e-2, name
            assert (p - q).abs().max() < 2.5 * fast.cfg.lr * fast.cfg.steps, name


@pytest.mark.parametrize("mode", MODES, ids=["-".join(m) for m in MODES])
def test_fast_step_trains_the_autograd_weights(dim: int, mode: tuple[str, str, str]) -> None:
    options = OPTIONS[MODES.index(mode) % len(OPTIONS)]
    _same_training(*_pair(dim, *mode, **options))


@pytest.mark.parametrize("lanes", [1, 2])
def test_class_labels_and_lanes(dim: int, lanes: int) -> None:
    _same_training(*_pair(dim, "edm", "continuous", "lognormal", lanes=lanes, classes=3, ema=0.9))


@pytest.mark.parametrize("sampling", ["uniform", "importance"])
def test_learned_variances_through_the_objective(sampling: str) -> None:
    """The hybrid loss (and its importance sampling, which starts once every step has 10 values) on the
    hand-written network."""
    fast, ref = _pair(2, "eps", "discrete", "uniform", learned=True, lanes=2, steps=30, vlb_sampling=sampling)
    _same_training(fast, ref)
    if sampling == "importance":  # the last steps drew t from the importance weights
        assert fast.objective._ready() and ref.objective._ready()
        torch.testing.assert_close(fast.objective.history, ref.objective.history, rtol=1e-3, atol=1e-6)


def test_regression_is_the_objectives_loss(dim: int) -> None:
    """The rows the fast step fits give Objective.loss's value for any network (here the module itself)."""
    for param, time, sampling in MODES:
        fast, _ = _pair(dim, param, time, sampling)
        x0, t, eps = fast.draw()
        inp, cond, target, weight = regression(fast.objective, x0, eps, t)
        with torch.no_grad():
            per_row = (fast.model(inp, cond) - target).pow(2).mean(dim=1)
            mine = (per_row if weight is None else per_row * weight).mean()
            theirs = fast.objective.loss(fast.model, x0, eps, t)
        assert float(mine) == pytest.approx(float(theirs), rel=1e-6), param


def test_lanes_do_not_follow_torchs_thread_setting() -> None:
    """Two lanes give the same bits whatever torch's own thread count is (each lane runs one torch thread)."""
    runs = []
    for torch_threads in (1, 2):
        fast, _ = _pair(10, "edm", "continuous", "lognormal", lanes=2, steps=5)
        with cpu_threads(torch_threads):
            for _ in range(5):
                fast.step()
        runs.append([p.detach().clone() for p in fast.model.parameters()])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", ["progressive", "consistency"])
def test_distillation_trains_the_autograd_student(method: str, dim: int) -> None:
    """Student, teacher and EMA target on the hand-written network: the module's losses and student. (Consistency
    on a discrete process: its Karras pairs take seconds to tabulate on a continuous one.)"""
    process = continuous("edm", 64) if method == "progressive" else discrete("cosine", 20)
    param = get_parameterization("edm")
    torch.manual_seed(dim)
    teacher = ResMLP(dim, 0 if method == "progressive" else 20, width=16, depth=2, emb_dim=8).eval()
    x = torch.rand(80, dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
    students = []
    for fused in (True, False):
        student = copy.deepcopy(teacher)
        settings = LoopSettings(round_steps=5, batch_size=32, lr=1e-3, fused=fused)
        rows = network_rows(copy.deepcopy(teacher), process, param)
        loop = (Progressive(rows, student, process, param, x, settings, steps=2, teacher_steps=8)
                if method == "progressive" else Consistency(rows, student, process, param, x, settings, intervals=4))
        assert (loop.network is student) is not fused
        loop.fit()
        students.append((student, loop.losses))
    (a, la), (b, lb) = students
    assert la == pytest.approx(lb, rel=1e-4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert (p - q).abs().max() < 1e-4


def _small(steps: int, seed: int, **train):  # noqa: ANN003, ANN202
    return resolve_config("recommended", overrides={
        "data": {"n": 300}, "model": {"options": {"width": 16, "depth": 2}},
        "train": {"steps": steps, "seed": seed, "device": "cpu", **train}})


def test_train_many_members_are_train_runs(tmp_path) -> None:
    """Residual-MLP members on the CPU (continuous EDM, the recipe) are the runs train_run makes of their configs
    with one thread, bit for bit; config.json records that thread count."""
    cfgs = [_small(12, s, lr=1e-3 * (s + 1), ema=0.9 if s else None) for s in range(3)]
    train_many(cfgs, [tmp_path / f"m{s}" for s in range(3)])
    for s, c in enumerate(cfgs):
        saved = json.loads((tmp_path / f"m{s}" / FILES["config"]).read_text())
        assert saved["train"]["threads"] == 1
        train_run(c.model_copy(update={"train": c.train.model_copy(update={"threads": 1})}), tmp_path / f"r{s}",
                  progress=False)
        for name in ("model", "checkpoint"):
            got, _ = load_weights(tmp_path / f"m{s}" / FILES[name])
            ref, _ = load_weights(tmp_path / f"r{s}" / FILES[name])
            assert got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref), name


def test_same_seed_same_weights_beside_a_busy_process(tmp_path) -> None:
    """The thread count follows the config and the cores, not the load (issue 17): a run beside a process that
    keeps a core busy trains the bits of a run without it, and config.json records the count."""
    cfg = resolve_config("recommended", overrides={
        "data": {"n": 600}, "model": {"options": {"width": 64, "depth": 2}},  # 2.3·10⁴ parameters × 512 rows
        "train": {"steps": 150, "batch_size": 512, "device": "cpu"}})
    with cpu_threads(os.cpu_count()):  # torch's default, as `difflab train` runs
        first = train_run(cfg, tmp_path / "a", progress=False)
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            second = train_run(cfg, tmp_path / "b", progress=False)
        finally:
            busy.kill()
            busy.wait()
        want = default_threads(sum(p.numel() for p in first.model.parameters()), 512)
    for run in ("a", "b"):
        assert json.loads((tmp_path / run / FILES["config"]).read_text())["train"]["threads"] == want
    assert load_run(tmp_path / "b").config.train.threads == want
    for k, v in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[k], v), k


def test_other_networks_and_devices_keep_autograd() -> None:
    process = discrete("cosine", 10)
    x = torch.rand(40, 2) * 2 - 1
    seed = Trainer(build_model("seed", 2, 10), process, x, TrainConfig(steps=1))
    assert seed.fast is None and seed.net is not None  # the tutorial's network has its own hand-written step

    class Changed(ResMLP):
        pass

    assert Trainer(Changed(2, 10, width=8, depth=1), process, x, TrainConfig(steps=1)).fast is None
    assert Trainer(ResMLP(2, 10, width=8, depth=1), process, x, TrainConfig(steps=1), fused=False).fast is None
