"""Many tutorial networks at once, with the hand-written batched step.

:class:`difflab.training.stacked.StackedTrainer` trains M networks of any architecture with stacked parameters
(``torch.func``); :class:`BatchedSeedTrainer` is the same trainer with the tutorial's network's forward and backward
written out (``difflab.models.batched``), which on a CPU runs the members on threads of their own.
:func:`difflab.pipeline.train_many` uses them to train a sweep's compatible cells together.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from difflab.compute import cpu_threads
from difflab.errors import ConfigError
from difflab.models.batched import StackedSeedMLP, is_plain_seed
from difflab.training.stacked import StackedTrainer


class BatchedSeedTrainer(StackedTrainer):
    """M tutorial networks (``SeedMLP``) trained with stacked parameters and the hand-written step of
    :class:`difflab.models.batched.StackedSeedMLP` (no autograd); the arguments are :class:`StackedTrainer`'s."""

    def _setup_compute(self, models: list[torch.nn.Module]) -> None:
        if not all(is_plain_seed(m) for m in models):
            raise ConfigError("BatchedSeedTrainer: every member must be the tutorial's network ('seed')")
        self._pool = None
        if self.device.type == "cpu":
            self._cpu_nets(min(self.threads or 1, self.M))
        else:
            self.nets = [StackedSeedMLP(self.params, self.grads, self.B)]

    def _cpu_nets(self, lanes: int) -> None:
        """On the CPU: one network per model, run model after model so that each one's buffers stay in cache
        (see ``difflab.models.batched._addmm``), in ``lanes`` groups computed at the same time on threads of their
        own (members are independent: no hand-off inside a step), each with one torch thread."""
        self.nets, self._lanes = [], [list(range(i, self.M, lanes)) for i in range(lanes)]
        for lane in self._lanes:
            first = None
            for m in lane:
                net = StackedSeedMLP([p[m : m + 1] for p in self.params], [g[m : m + 1] for g in self.grads], self.B,
                                     share=first)
                first = first or net
                self.nets.append(net)
        self._net_of = {m: net for m, net in zip([m for lane in self._lanes for m in lane], self.nets, strict=True)}
        if lanes > 1:
            self.threads = 1
            self._pool = ThreadPoolExecutor(max_workers=lanes - 1, thread_name_prefix="difflab-lane")

    def compute_grads(self, x0: Tensor, t: Tensor, eps: Tensor) -> None:
        """Loss per member into :attr:`loss` and its gradients into :attr:`grads` for the given draws."""
        a, s, target = self.coefficients(x0, t, eps)
        if self.device.type != "cpu":
            self._members(self.nets[0], slice(None), x0, t, eps, target)
            return

        def lane(members: list[int]) -> None:
            for m in members:
                self._members(self._net_of[m], slice(m, m + 1), x0, t, eps, target)

        if self._pool is None:
            lane(list(range(self.M)))
            return
        with cpu_threads(1):
            others = [self._pool.submit(lane, ms) for ms in self._lanes[1:]]
            lane(self._lanes[0])
            for f in others:
                f.result()

    def _members(self, net: StackedSeedMLP, rows: slice, x0: Tensor, t: Tensor, eps: Tensor, target: Tensor) -> None:
        a, s = self._coef[0], self._coef[1]
        torch.mul(x0[rows], a[rows], out=net.xt)
        net.xt.addcmul_(s[rows], eps[rows])
        net.forward(t[rows])
        net.backward(target[rows], self.loss[rows])


def make_trainer(models: list[torch.nn.Module], *args, **kwargs) -> StackedTrainer:  # noqa: ANN002, ANN003
    """The batched trainer for ``models``: the hand-written one for the tutorial's network, else torch.func's."""
    cls = BatchedSeedTrainer if all(is_plain_seed(m) for m in models) else StackedTrainer
    return cls(models, *args, **kwargs)
