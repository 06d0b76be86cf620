"""The trainer's step for the residual MLP without autograd: the objective's own rows, the network written out.

A step of :class:`~difflab.training.trainer.Trainer` draws (x_0, t, ε) (:meth:`Trainer.draw`, and the class labels
of a conditional run), turns them into the regression the objective defines (:func:`regression`: the process's
per-row α, σ and time input from :meth:`Objective.coefficients`, the parameterization's input scale, target and
loss weight; nothing is derived here) and fits the network to it with the hand-written forward and backward of
:mod:`difflab.models.resmlp_fused`, in the run's lanes (:class:`~difflab.training.lanes.LanedResMLP`; the lane
count is the run's thread count, recorded in config.json). Whatever enters through the process, the
parameterization or the draw goes through unchanged.

Learned variances keep :meth:`Objective.loss` as it is (the hybrid loss, its stop-gradient and importance
sampling): only the network under it is the hand-written one (:func:`~difflab.training.lanes.fused_forward`), and
autograd runs the loss on the network's output. Other networks, and devices other than the CPU, stay on autograd.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from difflab.models.resmlp_fused import is_plain_resmlp
from difflab.training.lanes import LanedResMLP, fused_forward
from difflab.training.objective import Objective


class Trainer(Protocol):
    """What the fast step needs of :class:`difflab.training.trainer.Trainer` (which imports this module)."""

    model: nn.Module
    objective: Objective
    opt: torch.optim.Optimizer
    device: torch.device

    def draw(self) -> tuple[Tensor, Tensor, Tensor]: ...

    def draw_labels(self) -> Tensor | None: ...


def regression(objective: Objective, x0: Tensor, eps: Tensor, times: Tensor
               ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """(network input (B, D), time input (B,), target (B, D), per-row loss weight (B,) or None) of one step:
    what :meth:`Objective.loss` feeds the network and compares its output with, for fixed variances."""
    a, s, cond, post = objective.coefficients(times, x0)
    xt = a * x0 + s * eps
    c_in = objective.param.input_scale(a, s)
    inp = xt if c_in is None else xt * c_in
    target = objective.param.target(x0, eps, a, s, post)
    weight = None if objective.plain else objective.param.loss_weight(a, s)
    return inp, cond, target, None if weight is None else weight.squeeze(1)


def fast_step_applies(trainer: Trainer) -> bool:
    """True where :class:`FastStep` computes the trainer's step: a plain ResMLP on the CPU."""
    return trainer.device.type == "cpu" and is_plain_resmlp(trainer.model)


class FastStep:
    """``compute_grads()`` of ``trainer`` (see :func:`fast_step_applies`) in ``lanes`` row blocks: the step's loss,
    and its gradients in the parameters' ``.grad`` (views of one flat buffer, overwritten each step)."""

    def __init__(self, trainer: Trainer, lanes: int = 1) -> None:
        self.trainer = trainer
        self.laned = LanedResMLP(trainer.model, lanes)
        self.lanes = self.laned.lanes
        self._params = list(trainer.model.parameters())
        self._grads = [self.laned.grads[n] for n, _ in trainer.model.named_parameters()]
        self._network = fused_forward(self.laned) if trainer.objective.learned else None

    def compute_grads(self) -> Tensor:
        """Draw, forward and backward, as :meth:`Trainer.compute_grads` does; returns the loss (0-d)."""
        tr = self.trainer
        x0, t, eps = tr.draw()
        labels = tr.draw_labels()
        if self._network is not None:  # learned variances: the objective's own loss on the fused network
            tr.opt.zero_grad(set_to_none=True)
            loss = tr.objective.loss(self._network, x0, eps, t, labels)
            loss.backward()
            return loss.detach()
        inp, cond, target, weight = regression(tr.objective, x0, eps, t)
        for p, g in zip(self._params, self._grads, strict=True):
            if p.grad is not g:  # e.g. after opt.zero_grad(set_to_none=True)
                p.grad = g
        return self.laned.step(inp, cond, target, weight, labels)
