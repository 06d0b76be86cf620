"""CUDA-graph training computes the eager steps.

The graph-free logic (snapshot/restore around the warm-up, the step that gets captured, the LR table, the
scheduler's bookkeeping afterwards) is checked on the CPU; capture and replay are checked on a GPU when one is
present (skipped otherwise)."""

from __future__ import annotations

import copy

import pytest
import torch

from difflab.compute import cpu_threads
from difflab.config import TrainConfig
from difflab.models import build_model
from difflab.training.batched import BatchedSeedTrainer
from difflab.training.cuda_graph import GraphedTrainer, lr_table, restore, snapshot
from difflab.training.optim import lr_lambda
from difflab.training.trainer import Trainer
from helpers import diffusion as make_diffusion


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny problems: one thread, so other processes on the machine do not stall OpenMP hand-offs."""
    with cpu_threads(1):
        yield

CONFIGS = [
    {"steps": 12, "seed": 1},
    {"steps": 12, "seed": 1, "batch_size": 32, "ema": 0.9, "lr_schedule": "cosine", "warmup": 3, "grad_clip": 1.0},
]
IDS = ["tutorial", "minibatch-ema-cosine-clip"]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# On a GPU a graph that fell back to eager steps (difflab.training.cuda_graph) is a failure of these tests, not a pass.
pytestmark = pytest.mark.filterwarnings("error::difflab.errors.FallbackWarning")


def _trainer(name: str, cfg: TrainConfig, device: str = "cpu", dim: int = 2) -> Trainer:
    torch.manual_seed(0)
    model = build_model(name, dim, 10, **({"width": 32, "depth": 2} if name == "mlp" else {}))
    x = torch.rand(100, dim, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return Trainer(model, make_diffusion("poly", 10), x, cfg.model_copy(update={"device": device}))


def _weights(tr: Trainer) -> list[torch.Tensor]:
    return [p.detach().cpu().clone() for p in tr.model.parameters()]


def _eager(tr: Trainer) -> None:
    while tr.step_count < tr.cfg.steps:
        tr.loss_log[tr.step_count] = tr.step()
        tr.step_count += 1


@pytest.mark.parametrize("name", ["seed", "mlp"])
@pytest.mark.parametrize("train", CONFIGS, ids=IDS)
def test_restore_undoes_steps_exactly(name: str, train: dict) -> None:
    """The warm-up's steps leave no trace: after restore, training continues as if they never ran."""
    cfg = TrainConfig(**train)
    ref, tr = _trainer(name, cfg), _trainer(name, cfg)
    for t in (ref, tr):  # one step each so that the optimizer state exists and must be put back, not zeroed
        t.loss_log[0] = t.step()
        t.step_count = 1
    snap = snapshot(tr)
    for _ in range(3):
        tr.step()
    restore(tr, snap)
    assert tr.step_count == 1 and tr.sched.last_epoch == ref.sched.last_epoch
    _eager(ref)
    _eager(tr)
    for p, q in zip(_weights(ref), _weights(tr), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    torch.testing.assert_close(ref.loss_log, tr.loss_log, rtol=0, atol=0)


def test_restore_zeroes_optimizer_state_created_after_the_snapshot() -> None:
    """A fresh trainer's warm-up creates AdamW state; restore leaves it as a fresh AdamW's first step finds it."""
    cfg = TrainConfig(**CONFIGS[0])
    ref, tr = _trainer("seed", cfg), _trainer("seed", cfg)
    snap = snapshot(tr)
    for _ in range(2):
        tr.step()
    restore(tr, snap)
    assert all(float(s["step"]) == 0 and not s["exp_avg"].any() for s in tr.opt.state.values())
    _eager(ref)
    _eager(tr)
    for p, q in zip(_weights(ref), _weights(tr), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["seed", "mlp"])
@pytest.mark.parametrize("train", CONFIGS, ids=IDS)
def test_captured_step_computes_the_eager_step(name: str, train: dict) -> None:
    """The function that gets captured (device-side LR table, step counter and loss log), run eagerly on the CPU,
    equals Trainer.step; afterwards the scheduler and LR are where eager steps leave them."""
    cfg = TrainConfig(**train)
    ref, tr = _trainer(name, cfg), _trainer(name, cfg)
    _eager(ref)
    g = GraphedTrainer(tr, capture=False)
    while tr.step_count < cfg.steps:
        g.replay()
    g.release()
    torch.testing.assert_close(tr.loss_log, ref.loss_log, rtol=1e-5, atol=1e-7)
    for p, q in zip(_weights(ref), _weights(tr), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    assert tr.sched.get_last_lr() == pytest.approx(ref.sched.get_last_lr())
    assert tr.sched.last_epoch == ref.sched.last_epoch
    assert isinstance(tr.opt.param_groups[0]["lr"], float)


def test_lr_table_is_the_schedule() -> None:
    cfg = TrainConfig(steps=50, lr=2e-3, warmup=5, lr_schedule="cosine")
    tr = _trainer("seed", cfg)
    f = lr_lambda(cfg)
    table = lr_table(tr)
    assert table is not None and table.shape == (50,)
    torch.testing.assert_close(table, torch.tensor([2e-3 * f(s) for s in range(50)], dtype=torch.float32))
    assert lr_table(_trainer("seed", TrainConfig(steps=5))) is None  # constant: kept as a plain float


# --- on a GPU ---------------------------------------------------------------------------------------------------
@cuda
@pytest.mark.parametrize("name", ["seed", "mlp"])
@pytest.mark.parametrize("train", CONFIGS, ids=IDS)
def test_graphed_fit_equals_eager_fit_on_cuda(name: str, train: dict, monkeypatch) -> None:
    """Same seed → same draws (graph-safe Philox offsets), same losses, same weights within rounding."""
    import difflab.training.cuda_graph as cg

    replays = []
    monkeypatch.setattr(cg.CapturedStep, "replay", lambda self: (replays.append(1), self.graph.replay()))
    cfg = TrainConfig(**train)
    eager, graphed = _trainer(name, cfg, "cuda"), _trainer(name, cfg, "cuda")
    _eager(eager)
    graphed.fit(progress=False)  # on CUDA, fit replays a captured graph
    assert len(replays) == cfg.steps
    torch.testing.assert_close(graphed.loss_log, eager.loss_log, rtol=1e-4, atol=1e-6)
    for p, q in zip(_weights(eager), _weights(graphed), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)
    assert graphed.sched.get_last_lr() == pytest.approx(eager.sched.get_last_lr())


@cuda
def test_cuda_graph_config_turns_the_graph_off(monkeypatch) -> None:
    import difflab.training.cuda_graph as cg

    replays = []
    monkeypatch.setattr(cg.CapturedStep, "replay", lambda self: (replays.append(1), self.graph.replay()))
    tr = _trainer("seed", TrainConfig(steps=20, cuda_graph=False), "cuda")
    assert tr._graphed() is None
    tr.fit(progress=False)
    assert replays == [] and tr.step_count == 20


@cuda
@pytest.mark.parametrize("name", ["seed", "mlp"])
def test_graphed_batched_fit_equals_eager_on_cuda(name: str) -> None:
    """Both batched trainers captured in a graph: the hand-written one (tutorial's network) and torch.func's over
    stacked residual MLPs, with per-member lr, cosine warm-up, EMA and parameterization."""
    from difflab.training.batched import make_trainer

    cfgs = [TrainConfig(steps=10, seed=s, lr=1e-2 / (1 + s), device="cuda", batch_size=64, ema=0.9,
                        lr_schedule="cosine", warmup=2) for s in range(3)]
    torch.manual_seed(0)
    models = [build_model(name, 2, 10, **({"width": 32, "depth": 2} if name == "mlp" else {})) for _ in cfgs]
    xs = torch.rand(3, 100, 2) * 2 - 1
    diffs = [make_diffusion("linear", 10)] * 3
    a = make_trainer(copy.deepcopy(models), diffs, xs, cfgs, ["eps", "x0", "v"])
    b = make_trainer(copy.deepcopy(models), diffs, xs, cfgs, ["eps", "x0", "v"])
    a.fit(graph=False)
    b.fit(graph=True)
    torch.testing.assert_close(b.loss_log, a.loss_log, rtol=1e-4, atol=1e-6)
    for p, q in zip(a.params, b.params, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)


@cuda
def test_batched_member_equals_single_trainer_on_cuda() -> None:
    """Injected draws on the GPU: member losses and gradients equal the single model's autograd ones."""
    cfgs = [TrainConfig(steps=3, seed=s, lr=1e-2, device="cuda") for s in range(3)]
    torch.manual_seed(0)
    models = [build_model("seed", 2, 10) for _ in cfgs]
    xs = torch.rand(3, 64, 2) * 2 - 1
    d = make_diffusion("poly", 10)
    batched = BatchedSeedTrainer(copy.deepcopy(models), [d] * 3, xs, cfgs, ["eps"] * 3)
    t = torch.randint(1, 11, (3, 64), device="cuda")
    eps = torch.randn(3, 64, 2, device="cuda")
    batched.compute_grads(batched.x, t, eps)
    for m, model in enumerate(models):
        tr = Trainer(copy.deepcopy(model), d, xs[m], cfgs[m], fused=False)
        loss = tr.loss(tr.x, t[m], eps[m])
        loss.backward()
        assert float(batched.loss[m]) == pytest.approx(loss.item(), rel=1e-5)
        for k, p in enumerate(tr.model.parameters()):
            torch.testing.assert_close(batched.grads[k][m], p.grad, rtol=1e-4, atol=1e-6)
