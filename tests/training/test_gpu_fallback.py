"""A CUDA graph that cannot be built, warmed up or captured costs one warning, not the run.

No GPU is needed: the graphed classes' ``capture=False`` mode runs the very warm-up and undo that precede a capture,
and the failures a card could raise are simulated by making the step, the capture or the set-up raise. The run
that fell back must equal an eager run bit for bit: weights, optimizer moments, EMA, loss log, RNG, LR schedule.
Everything here runs on the CPU, also on a machine with a GPU (where capture=True would really capture)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import difflab.training.cuda_graph as cg
from difflab.compute import cpu_threads
from difflab.config import TrainConfig
from difflab.errors import FallbackWarning
from difflab.models import build_model
from difflab.training.batched import make_trainer
from difflab.training.trainer import Trainer
from helpers import diffusion as make_diffusion


@pytest.fixture(autouse=True)
def _one_thread():
    with cpu_threads(1):
        yield


CONFIGS = {
    "tutorial": {"steps": 14, "seed": 1},
    "minibatch-ema-cosine-clip": {"steps": 14, "seed": 1, "batch_size": 32, "ema": 0.9, "lr_schedule": "cosine",
                                  "warmup": 3, "grad_clip": 1.0},
}


def _trainer(name: str, train: dict, dim: int) -> Trainer:
    torch.manual_seed(0)
    model = build_model(name, dim, 10, **({"width": 32, "depth": 2} if name == "mlp" else {}))
    x = torch.rand(100, dim, generator=torch.Generator().manual_seed(dim)) * 2 - 1
    return Trainer(model, make_diffusion("poly", 10), x, TrainConfig(**train, device="cpu"))


def _eager_steps(tr: Trainer, n: int) -> None:
    for _ in range(n):
        tr.loss_log[tr.step_count] = tr.step()
        tr.step_count += 1


def _state(tr: Trainer) -> dict:
    """Everything a step changes, copied, with the optimizer state by parameter position."""
    params = list(tr.model.parameters())
    return {
        "model": {k: v.clone() for k, v in tr.model.state_dict().items()},
        "optim": [{k: v.clone() for k, v in tr.opt.state[p].items()} if p in tr.opt.state else None for p in params],
        "groups": [(g["capturable"], type(g["lr"]), g["lr"]) for g in tr.opt.param_groups],
        "ema": [s.clone() for s in tr.ema.shadow] if tr.ema else [],
        "rng": tr.generator.get_state(),
        "loss_log": tr.loss_log.clone(),
        "step": tr.step_count,
        "sched": tr.sched.state_dict(),
        "stepped": tr._stepped,
    }


PLAIN = ("groups", "step", "sched", "stepped")  # compared with ==; the rest are tensors, compared bit for bit


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in PLAIN:
        assert a[key] == b[key], key
    for key in a.keys() - PLAIN:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}")


def _fail_on_call(monkeypatch: pytest.MonkeyPatch, owner: object, attr: str, call: int) -> list[int]:
    """Make ``owner.attr`` raise a CUDA-like error on its ``call``-th call (1-based) and only then."""
    original, calls = getattr(owner, attr), []

    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore detail")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attr, wrapper)
    return calls


def _capture_fails(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


FAILURES = ["warm-up", "capture", "set-up"]


def _break(monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    if failure == "warm-up":  # the second warm-up step: the first has already changed every tensor
        _fail_on_call(monkeypatch, Trainer, "compute_grads", call=2)
    elif failure == "capture":  # after the warm-up and its undo
        monkeypatch.setattr(cg._Eager, "capture", staticmethod(_capture_fails))
    else:  # after the param groups were switched to device-side LRs, before any step
        monkeypatch.setattr(cg, "CapturedStep", _capture_fails)


def _one_fallback_warning(record: list[warnings.WarningMessage]) -> str:
    ours = [w for w in record if issubclass(w.category, FallbackWarning)]
    assert len(ours) == 1, [str(w.message) for w in record]
    return str(ours[0].message)


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("name", ["seed", "mlp"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_failed_graph_restores_the_trainer(failure: str, name: str, config: str, dim: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failed attempt the Trainer holds exactly what it held before it (here after 4 eager steps, so that
    optimizer state exists and must come back as it was, not zeroed), and one warning names the cause and the
    switch."""
    tr = _trainer(name, CONFIGS[config], dim)
    _eager_steps(tr, 4)
    before = _state(tr)
    _break(monkeypatch, failure)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert tr._graphed(True) is None
    message = _one_fallback_warning(record)
    assert "RuntimeError: CUDA error: operation not permitted" in message and "more detail" not in message
    assert "cuda_graph = false" in message and "[train]" in message and "\n" not in message
    _assert_same(_state(tr), before)


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("name", ["seed", "mlp"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("start", [0, 4])
def test_run_that_fell_back_equals_the_eager_run(failure: str, name: str, config: str, start: int, dim: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """fit with a graph that fails finishes with the eager run's weights, moments, EMA, losses and RNG, bit for
    bit; from a fresh trainer (the attempt created the optimizer state) and from one part-way (it existed)."""
    eager, tr = _trainer(name, CONFIGS[config], dim), _trainer(name, CONFIGS[config], dim)
    for t in (eager, tr):
        _eager_steps(t, start)
    eager.fit(progress=False, graph=False)
    _break(monkeypatch, failure)
    with pytest.warns(FallbackWarning, match="cuda_graph = false"):
        tr.fit(progress=False, graph=True)
    after, expected = _state(tr), _state(eager)
    _assert_same(after, expected)
    assert tr.losses() == eager.losses() and len(tr.losses()) == tr.cfg.steps


def test_graph_that_works_gives_no_warning() -> None:
    """The warm-up, undo and eager replays of ``capture=False`` succeed: nothing to warn about."""
    tr = _trainer("seed", CONFIGS["minibatch-ema-cosine-clip"], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        tr.fit(progress=False, graph=True)
    assert tr.step_count == tr.cfg.steps and isinstance(tr.opt.param_groups[0]["lr"], float)


# --- the batched trainers' graph ---------------------------------------------------------------------------------
def _batched(name: str, dim: int):  # noqa: ANN202
    cfgs = [TrainConfig(steps=12, seed=s, device="cpu", lr=1e-2 / (1 + s), batch_size=32, ema=0.9, lr_schedule="cosine",
                        warmup=2, grad_clip=1.0) for s in range(3)]
    torch.manual_seed(0)
    models = [build_model(name, dim, 10, **({"width": 32, "depth": 2} if name == "mlp" else {})) for _ in cfgs]
    xs = torch.rand(3, 100, dim, generator=torch.Generator().manual_seed(dim)) * 2 - 1
    diffs = [make_diffusion("linear", 10)] * 3
    return make_trainer(copy.deepcopy(models), diffs, xs, cfgs, ["eps", "x0", "v"])


def _batched_state(tr) -> list[torch.Tensor]:  # noqa: ANN001
    return [*tr._flat.values(), tr.loss_log, tr.step_t, *(g.get_state() for g in tr.generators)]


@pytest.mark.parametrize("failure", ["warm-up", "capture"])
@pytest.mark.parametrize("name", ["seed", "mlp"])
def test_batched_fit_with_failed_graph_equals_eager(failure: str, name: str, dim: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """StackedTrainer (torch.func) and BatchedSeedTrainer (hand-written): a failed graph costs one warning and the
    members' weights, moments, EMA, losses and draws are the eager run's, bit for bit."""
    eager, tr = _batched(name, dim), _batched(name, dim)
    eager.fit(graph=False)
    if failure == "warm-up":
        _fail_on_call(monkeypatch, tr, "step", call=2)
    else:
        monkeypatch.setattr(cg._Eager, "capture", staticmethod(_capture_fails))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        tr.fit(graph=True)
    assert "cuda_graph = false" in _one_fallback_warning(record)
    assert tr.step_count == eager.step_count == 12
    for a, b in zip(_batched_state(tr), _batched_state(eager), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
