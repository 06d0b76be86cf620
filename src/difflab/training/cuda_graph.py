"""A whole training step as one CUDA graph: captured once, then replayed once per step.

The tutorial's network is so small that a GPU step is a hundred kernel launches of a few microseconds each, and
the launches, not the arithmetic, set the pace. A CUDA graph records the launches once and replays them with one
call (NVIDIA, "CUDA Graphs", CUDA C++ Programming Guide §3.2.8.7; ``torch.cuda.graph``). What a replay may not
do is anything on the host: so the noise comes from a ``torch.Generator`` registered with the graph (graph-safe
Philox offsets: replay k draws the numbers eager step k would), AdamW runs with ``capturable=True``, the learning
rate and the loss log are indexed by a step counter on the device, and every input lives in a buffer allocated
before capture.

Capture needs a warm-up (cuBLAS workspaces, optimizer state); the warm-up steps run on a side stream and are then
undone (:func:`snapshot` / :func:`restore`), so the graphed run computes the same steps as the eager run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from difflab.compute import warn_fallback
from difflab.errors import DifflabError
from difflab.training.optim import lr_lambda

GRAPH_MIN_STEPS = 10  # fewer remaining steps than this run eagerly: a capture costs about as much


class GraphableTrainer(Protocol):
    """What a graphed run needs of :class:`difflab.training.trainer.Trainer` (which imports this module)."""

    cfg: Any
    device: torch.device
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    ema: Any
    generator: torch.Generator
    loss_log: Tensor
    step_count: int

    def compute_grads(self) -> Tensor: ...

    def apply_update(self, *, schedule: bool = True) -> None: ...


class _OnCuda:
    """Warm-up on a side stream, then capture into a CUDA graph that replays with one call."""

    def __init__(self) -> None:
        self.stream = torch.cuda.current_stream()

    @staticmethod
    def warm_up(fn: Callable[[], Any], n: int) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(n):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()

    @staticmethod
    def capture(fn: Callable[[], Any], generators: Sequence[torch.Generator]) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        for g in generators:
            graph.register_generator_state(g)
        with torch.cuda.graph(graph):  # records the kernels; nothing runs, the state stays as it was
            fn()
        return graph

    def settle(self) -> None:
        """After a failure: wait for the work left on any stream, and make the stream current before the attempt
        current again (a capture that fails as it ends leaves its own stream current)."""
        torch.cuda.synchronize()
        torch.cuda.set_stream(self.stream)


class _Eager:
    """``capture=False``: the same warm-up, and ``fn`` itself replays (any device; for tests on a CPU)."""

    @staticmethod
    def warm_up(fn: Callable[[], Any], n: int) -> None:
        for _ in range(n):
            fn()

    @staticmethod
    def capture(fn: Callable[[], Any], generators: Sequence[torch.Generator]) -> None:
        return None

    @staticmethod
    def settle() -> None:
        pass


class CapturedStep:
    """``fn()`` captured in a CUDA graph after ``warmup`` eager calls that ``restore(save())`` undoes.

    ``fn`` must read and write only tensors that outlive this object; its random draws must use ``generators``.
    ``capture=False`` goes through the same warm-up and undo, then replays ``fn`` eagerly: on any device, so that
    tests on a CPU check that the warm-up leaves no trace (everything a step changes must be in ``save``).

    If the warm-up or the capture raises, the state is restored to what ``save()`` saw and the error propagates:
    the caller can go on without the graph as if it had never been tried."""

    def __init__(
        self,
        fn: Callable[[], Any],
        *,
        generators: Sequence[torch.Generator] = (),
        save: Callable[[], Any],
        restore: Callable[[Any], None],
        warmup: int = 3,
        capture: bool = True,
    ) -> None:
        runtime = _OnCuda() if capture else _Eager()
        state = save()
        try:
            runtime.warm_up(fn, warmup)
            restore(state)
            self.graph = runtime.capture(fn, generators)
        except Exception:
            runtime.settle()
            restore(state)  # a capture runs nothing, but a failed one may come after a partial warm-up
            raise
        self._run = fn if self.graph is None else self.graph.replay

    def replay(self) -> None:
        self._run()


# --- a Trainer's state, copied out and back in place (pure tensor logic; runs on any device) ------------------
def snapshot(tr: GraphableTrainer) -> dict[str, Any]:
    """Copies of everything a Trainer's step changes: weights, optimizer state, EMA, RNG, loss log, counters."""
    return {
        "model": [v.clone() for v in tr.model.state_dict().values()],
        "optim": {id(p): {k: v.clone() for k, v in s.items()} for p, s in tr.opt.state.items()},
        "ema": [s.clone() for s in tr.ema.shadow] if tr.ema else [],
        "rng": tr.generator.get_state(),
        "loss_log": tr.loss_log.clone(),
        "step": tr.step_count,
        "sched": tr.sched.state_dict(),
        "lr": [g["lr"].clone() if isinstance(g["lr"], Tensor) else g["lr"] for g in tr.opt.param_groups],
    }


def restore(tr: GraphableTrainer, snap: dict[str, Any]) -> None:
    """Put ``snap`` back into the same tensors (a captured graph keeps pointing at them). Optimizer state created
    after the snapshot is zeroed, which is the state a fresh AdamW creates at its first step."""
    with torch.no_grad():
        for v, saved in zip(tr.model.state_dict().values(), snap["model"], strict=True):
            v.copy_(saved)
        for p, state in tr.opt.state.items():
            saved = snap["optim"].get(id(p))
            for k, v in state.items():
                if saved is None:
                    v.zero_()
                else:
                    v.copy_(saved[k])
        for s, saved in zip(tr.ema.shadow if tr.ema else [], snap["ema"], strict=True):
            s.copy_(saved)
        tr.loss_log.copy_(snap["loss_log"])
        for g, lr in zip(tr.opt.param_groups, snap["lr"], strict=True):
            _set_lr(g, lr)
    tr.generator.set_state(snap["rng"])
    tr.step_count = snap["step"]
    tr.sched.load_state_dict(snap["sched"])


def _set_lr(group: dict[str, Any], lr: float | Tensor) -> None:
    """Set a param group's LR in place when it is a tensor (a captured graph reads that tensor)."""
    if isinstance(group["lr"], Tensor):
        group["lr"].copy_(lr if isinstance(lr, Tensor) else torch.tensor(lr))
    else:
        group["lr"] = float(lr)


def _undo_settings(tr: GraphableTrainer, groups: list[tuple[bool, Any]], had_state: set[int]) -> None:
    """After a failed attempt (whose tensors :class:`CapturedStep` has put back): the param groups' own
    ``capturable`` flag and LR object again, and no optimizer state that the attempt created."""
    for g, (capturable, lr) in zip(tr.opt.param_groups, groups, strict=True):
        g["capturable"], g["lr"] = capturable, lr
    for p in [p for p in tr.opt.state if id(p) not in had_state]:
        del tr.opt.state[p]


def warn_graph_failed(what: str, error: BaseException) -> None:
    """The one warning of a training run whose CUDA graph of ``what`` failed and was undone."""
    warn_fallback(f"the CUDA graph of {what}", error, instead="training continues without it (the same steps, "
                  "eagerly)", skip="Set cuda_graph = false in [train] to skip the attempt.")


def lr_table(tr: GraphableTrainer) -> Tensor | None:
    """Learning rate of every step (steps,) on the device, or None for a constant rate (kept as a plain float)."""
    cfg = tr.cfg
    if cfg.lr_schedule == "constant" and not cfg.warmup:
        return None
    f = lr_lambda(cfg)
    return torch.tensor([cfg.lr * f(s) for s in range(cfg.steps)], dtype=torch.float32, device=tr.device)


class GraphedTrainer:
    """Replays a Trainer's step (draw, forward, backward, clip, AdamW, EMA, loss log) from one CUDA graph.

    After ``replay()`` the Trainer's weights, optimizer, EMA, RNG and ``loss_log`` are what ``trainer.step()``
    would have left; call :meth:`sync` before reading its Python-side counters (step count, LR scheduler)."""

    def __init__(self, trainer: GraphableTrainer, warmup: int = 3, *, capture: bool = True) -> None:
        """``capture=False`` runs the very step that would be captured, with its warm-up and undo, eagerly, on any
        device (for tests)."""
        if capture and trainer.device.type != "cuda":
            raise DifflabError(f"CUDA graphs need a CUDA device; the trainer runs on {trainer.device}")
        self.tr = tr = trainer
        before = [(g["capturable"], g["lr"]) for g in tr.opt.param_groups], {id(p) for p in tr.opt.state}
        try:
            self.step_t = torch.full((1,), tr.step_count, dtype=torch.long, device=tr.device)
            self.lrs = lr_table(tr)
            for g in tr.opt.param_groups:
                g["capturable"] = g["capturable"] or capture
                if self.lrs is not None:
                    g["lr"] = torch.tensor(float(g["lr"]), dtype=torch.float32, device=tr.device)
            # the step counter on the device is this object's, so it is saved and restored with the Trainer's state
            self.run = CapturedStep(self._step, generators=[tr.generator], restore=self._restore, warmup=warmup,
                                    save=lambda: (snapshot(tr), self.step_t.clone()), capture=capture).replay
        except Exception:
            _undo_settings(tr, *before)
            raise

    def _restore(self, saved: tuple[dict[str, Any], Tensor]) -> None:
        restore(self.tr, saved[0])
        self.step_t.copy_(saved[1])

    def _step(self) -> None:
        tr = self.tr
        if self.lrs is not None:
            lr = torch.index_select(self.lrs, 0, self.step_t).squeeze(0)
            for g in tr.opt.param_groups:
                g["lr"].copy_(lr)
        loss = tr.compute_grads()
        tr.apply_update(schedule=False)
        tr.loss_log.index_copy_(0, self.step_t, loss.view(1))
        self.step_t.add_(1)

    def replay(self) -> None:
        self.run()
        self.tr.step_count += 1

    def sync(self) -> None:
        """Bring the LR scheduler (and a float LR) up to the replayed step count, as eager steps would leave it."""
        tr = self.tr
        step = min(tr.step_count, tr.cfg.steps)
        lrs = [base * lr_lambda(tr.cfg)(step) for base in tr.sched.base_lrs]
        for g, lr in zip(tr.opt.param_groups, lrs, strict=True):
            _set_lr(g, lr)
        tr.sched.load_state_dict({**tr.sched.state_dict(), "last_epoch": tr.step_count, "_last_lr": lrs})

    def release(self) -> None:
        """Leave the Trainer as eager training expects it: float LR, optimizer no longer in capturable mode."""
        self.sync()
        for g in self.tr.opt.param_groups:
            g["capturable"] = False
            if isinstance(g["lr"], Tensor):
                g["lr"] = float(g["lr"])
