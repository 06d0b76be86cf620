"""The hand-written residual MLP (:mod:`difflab.models.resmlp_fused`) over a batch split into lanes, and as an
autograd function.

:class:`LanedResMLP` splits a batch into ``lanes`` consecutive blocks of rows, computes them at the same time on
threads of its own (each with one torch thread) and sums their gradients in a fixed order into one flat buffer. The
lanes meet once per pass, where torch's own threads would meet after every operation and stall whenever the
machine is busy and one of them is not scheduled (benchmarks/RESULTS.md). The rounding depends on the lane count
only, never on how many cores happen to be free.

:func:`fused_forward` is the network as an autograd function: the head on top of it (a loss written with torch
operations, however involved) stays with autograd, which hands the network's output gradient to the hand-written
backward. The distillation loops and learned-variance runs train through it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difflab.compute import cpu_threads
from difflab.models.mlp import ResMLP
from difflab.models.resmlp_fused import FusedResMLP, Tape, is_plain_resmlp


def row_blocks(rows: int, lanes: int) -> list[slice]:
    """``lanes`` consecutive blocks of ``rows`` rows, sizes differing by at most one."""
    edges = np.linspace(0, rows, lanes + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


class LanedResMLP:
    """``model`` (a plain ResMLP) computed in ``lanes`` row blocks. :attr:`grads` maps each parameter name to a
    view of the flat gradient buffer the last :meth:`backward` or :meth:`step` wrote (overwritten each time)."""

    def __init__(self, model: ResMLP, lanes: int = 1) -> None:
        self.net = FusedResMLP(model)
        self.lanes = max(1, int(lanes))
        named = list(model.named_parameters())
        size = sum(p.numel() for _, p in named)
        device = named[0][1].device
        self.flat = [torch.zeros(size, device=device) for _ in range(self.lanes)]
        self.lane_grads = [self._views(f, named) for f in self.flat]
        self.grads = self.lane_grads[0]
        self._pool: ThreadPoolExecutor | None = None

    @staticmethod
    def _views(flat: Tensor, named: list[tuple[str, Tensor]]) -> dict[str, Tensor]:
        out, start = {}, 0
        for n, p in named:
            out[n] = flat[start : start + p.numel()].view_as(p)
            start += p.numel()
        return out

    def _blocks(self, rows: int) -> list[slice]:
        return row_blocks(rows, min(self.lanes, rows))

    def _in_lanes(self, fn: Callable[[int, slice], Any], rows: int) -> list[Any]:
        """``fn(k, block)`` for every row block, lane 0 on this thread; one torch thread each (the rounding must
        not follow torch's thread setting)."""
        blocks = self._blocks(rows)
        with cpu_threads(1 if torch.get_num_threads() != 1 else None):
            if len(blocks) == 1:
                return [fn(0, blocks[0])]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.lanes - 1, thread_name_prefix="difflab-lane",
                                                initializer=torch.set_num_threads, initargs=(1,))
            others = [self._pool.submit(fn, k, b) for k, b in enumerate(blocks[1:], start=1)]
            return [fn(0, blocks[0])] + [f.result() for f in others]

    def _sum_grads(self, used: int) -> None:
        for k in range(1, used):
            self.flat[0].add_(self.flat[k])

    def step(self, x: Tensor, cond: Tensor, target: Tensor, weight: Tensor | None = None,
             labels: Tensor | None = None) -> Tensor:
        """The simple loss (:meth:`FusedResMLP.regression_grad`) of the batch and its gradients in :attr:`grads`:
        forward, loss and backward in each lane, one meeting."""
        B = len(x)

        def lane(k: int, r: slice) -> Tensor:
            y, tape = self.net.forward(x[r], cond[r], None if labels is None else labels[r], batch=B)
            loss, gy = FusedResMLP.regression_grad(y, target[r], None if weight is None else weight[r], B)
            self.net.backward(tape, gy, self.lane_grads[k])
            return loss

        losses = self._in_lanes(lane, B)
        self._sum_grads(len(losses))
        return losses[0] if len(losses) == 1 else torch.stack(losses).sum()

    def forward(self, x: Tensor, cond: Tensor, labels: Tensor | None = None) -> tuple[Tensor, list[Tape]]:
        """The output (B, out) and each lane's tape."""
        B = len(x)
        parts = self._in_lanes(lambda k, r: self.net.forward(x[r], cond[r], None if labels is None else labels[r],
                                                             batch=B), B)
        y = parts[0][0] if len(parts) == 1 else torch.cat([p[0] for p in parts])
        return y, [p[1] for p in parts]

    def backward(self, tapes: list[Tape], gy: Tensor) -> None:
        """Gradients into :attr:`grads` for the output gradient ``gy`` (B, out) of the :meth:`forward` that made
        ``tapes``."""
        gy = gy.contiguous()
        self._in_lanes(lambda k, r: self.net.backward(tapes[k], gy[r], self.lane_grads[k]), len(gy))
        self._sum_grads(len(tapes))

    def close(self) -> None:
        """Stop the lanes' threads (the next call starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class _Network(torch.autograd.Function):
    """y = network(x, cond, labels) with the parameters as inputs, so that autograd accumulates their gradients
    into ``.grad`` as it would for the module."""

    @staticmethod
    def forward(ctx: Any, laned: LanedResMLP, x: Tensor, cond: Tensor, labels: Tensor | None,
                *params: Tensor) -> Tensor:
        y, tapes = laned.forward(x, cond, labels)
        ctx.laned, ctx.tapes = laned, tapes
        return y

    @staticmethod
    def backward(ctx: Any, gy: Tensor) -> tuple[Tensor | None, ...]:
        laned = ctx.laned
        laned.backward(ctx.tapes, gy)
        ctx.tapes = None
        return (None, None, None, None, *(laned.grads[n].clone() for n in laned.net.names))


def fused_forward(laned: LanedResMLP) -> Callable[..., Tensor]:
    """``model(x, t, labels=None)`` of ``laned``'s ResMLP with the hand-written forward and backward: a drop-in
    for the module wherever autograd trains it (the input x takes no gradient)."""
    params = list(laned.net.model.parameters())

    def call(x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        return _Network.apply(laned, x.detach(), t, labels, *params)

    return call


def fused_or_module(model: torch.nn.Module, lanes: int = 1) -> Callable[..., Tensor]:
    """:func:`fused_forward` of ``model`` in ``lanes`` lanes where it applies (a plain ResMLP on the CPU), else the
    module itself: a callable with the module's signature either way."""
    from_cpu = all(p.device.type == "cpu" for p in model.parameters())
    return fused_forward(LanedResMLP(model, lanes)) if from_cpu and is_plain_resmlp(model) else model
