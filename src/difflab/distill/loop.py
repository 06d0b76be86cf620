"""The optimisation loop both distillation methods share: rounds of steps on the teacher's training rows, AdamW
with the learning rate decayed linearly to 0 within each round, and checkpoints that resume bit for bit.

A method (:mod:`difflab.distill.progressive`, :mod:`difflab.distill.consistency`) subclasses :class:`RoundLoop` and
gives the loss of one batch, what happens when a round starts, and the extra tensors its checkpoint needs (the
round's teacher, the EMA target). Everything random comes from one ``torch.Generator`` seeded by ``seed``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from difflab.compute import cpu_threads, default_threads
from difflab.errors import DifflabError
from difflab.progress import progress_bar
from difflab.training.checkpoint import load_optimizer_tensors, model_tensors, optimizer_tensors, strip
from difflab.training.lanes import fused_or_module
from difflab.training.optim import AdamW


class DistillationDiverged(DifflabError):
    """The distillation loss stopped being finite; the message names the round and step."""


@dataclass(frozen=True)
class LoopSettings:
    """``round_steps`` optimizer steps per round on batches of ``batch_size`` rows; AdamW at ``lr`` (decayed
    linearly to 0 over each round), ``seed`` for every draw, a checkpoint every ``checkpoint_every`` steps;
    ``fused``: a residual MLP (student, teacher, target) runs its hand-written forward and backward
    (:mod:`difflab.training.lanes`), False: the module under autograd."""

    round_steps: int
    batch_size: int
    lr: float
    seed: int = 0
    checkpoint_every: int = 500
    fused: bool = True


def loop_threads(model: nn.Module, batch_size: int) -> int | None:
    """The CPU threads (the fused network's lanes) of a loop training ``model`` on ``batch_size`` rows: the rule of
    :func:`~difflab.compute.default_threads`; None off the CPU."""
    if next(model.parameters()).device.type != "cpu":
        return None
    return default_threads(sum(p.numel() for p in model.parameters()), batch_size)


class RoundLoop:
    """Trains ``student`` on the scaled rows ``x`` (N, D) for ``rounds`` rounds (subclasses set ``rounds``)."""

    rounds: int = 1

    def __init__(self, student: nn.Module, x: Tensor, settings: LoopSettings) -> None:
        self.student = student
        self.settings = settings
        self.device = next(student.parameters()).device
        self.x = x.to(self.device, torch.float32)
        self.generator = torch.Generator(device=self.device).manual_seed(settings.seed)
        self.round, self.step = 0, 0  # the step within the round
        self.losses: list[float] = []
        self.opt = self._optimizer()
        self.seconds = 0.0
        self.threads = loop_threads(student, settings.batch_size)
        self.network = self.fused(student)  # the student as the methods call it

    def fused(self, model: nn.Module) -> Callable[..., Tensor]:
        """``model`` as a callable with its signature: the hand-written network in this loop's lanes (one per
        thread) where that applies (:func:`~difflab.training.lanes.fused_or_module`), else the module."""
        return fused_or_module(model, self.threads or 1) if self.settings.fused else model

    def _optimizer(self) -> torch.optim.Optimizer:
        return AdamW(self.student.parameters(), lr=self.settings.lr, weight_decay=0.0, fused=True)

    # --- what a method gives --------------------------------------------------------------------------------
    def begin_round(self) -> None:
        """Called before the first step of each round (not again when a round is resumed in its middle)."""

    def loss(self, x0: Tensor) -> Tensor:
        raise NotImplementedError

    def after_update(self) -> None:
        """Called after every optimizer step (e.g. an EMA)."""

    def extra_tensors(self) -> dict[str, Tensor]:
        return {}

    def load_extra(self, tensors: dict[str, Tensor]) -> None:
        """Restore what :meth:`extra_tensors` saved (called after the round and step are set)."""

    # --- the loop -----------------------------------------------------------------------------------------------
    def batch(self) -> Tensor:
        idx = torch.randint(0, len(self.x), (self.settings.batch_size,), generator=self.generator,
                            device=self.device)
        return self.x[idx]

    def noise(self, like: Tensor) -> Tensor:
        return torch.randn(like.shape, generator=self.generator, device=like.device, dtype=like.dtype)

    def uniform_index(self, n: int) -> Tensor:
        """One index in 0..n−1 per row of a batch."""
        return torch.randint(0, n, (self.settings.batch_size,), generator=self.generator, device=self.device)

    def total_steps(self) -> int:
        return self.rounds * self.settings.round_steps

    def done_steps(self) -> int:
        return self.round * self.settings.round_steps + self.step

    def fit(self, *, progress: bool = False, on_checkpoint: Callable[[RoundLoop], None] | None = None) -> float:
        """Run to the end of the last round; returns the wall seconds of this call. ``on_checkpoint`` is called
        every ``checkpoint_every`` steps and at the end of every round."""
        s = self.settings
        start = time.perf_counter()
        bar = progress_bar(self.total_steps(), initial=self.done_steps(), desc="distill", enabled=progress)
        # the fused network's lanes run one torch thread each
        with cpu_threads(1 if self.network is not self.student else self.threads):
            while self.round < self.rounds:
                if self.step == 0:
                    self.opt = self._optimizer()
                    self.begin_round()
                self.student.train()
                for group in self.opt.param_groups:  # linear decay to 0 within the round
                    group["lr"] = s.lr * (1.0 - self.step / s.round_steps)
                loss = self.loss(self.batch())
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self.after_update()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise DistillationDiverged(f"distillation diverged: the loss is {value} at step {self.step + 1} "
                                               f"of round {self.round + 1}; try a smaller --lr")
                self.losses.append(value)
                self.step += 1
                bar.update(1)
                end_of_round = self.step == s.round_steps
                if end_of_round:
                    self.round, self.step = self.round + 1, 0
                if on_checkpoint is not None and (end_of_round or self.step % s.checkpoint_every == 0):
                    self.seconds += time.perf_counter() - start
                    start = time.perf_counter()
                    on_checkpoint(self)
        bar.close()
        self.seconds += time.perf_counter() - start
        self.student.eval()
        return self.seconds

    # --- checkpoints ------------------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, Tensor]:
        out = model_tensors(self.student, "student.")
        out.update(optimizer_tensors(self.opt))
        out["rng"] = self.generator.get_state()
        out["losses"] = torch.tensor(self.losses, dtype=torch.float64)
        out.update(self.extra_tensors())
        return out

    def state_meta(self) -> dict[str, object]:
        return {"round": self.round, "step": self.step, "seconds": self.seconds}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, object]) -> None:
        self.student.load_state_dict(strip(tensors, "student."))
        self.round, self.step = int(meta["round"]), int(meta["step"])  # type: ignore[arg-type]
        self.seconds = float(meta.get("seconds", 0.0))  # type: ignore[arg-type]
        self.opt = self._optimizer()
        if self.step > 0:  # mid-round: the round's optimizer state (a new round starts a fresh one)
            load_optimizer_tensors(self.opt, tensors)
        self.generator.set_state(tensors["rng"])
        self.losses = tensors["losses"].tolist()
        self.load_extra(tensors)
