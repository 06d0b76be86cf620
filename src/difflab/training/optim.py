"""The optimizer and its learning-rate schedule, and a direct call of torch's fused AdamW kernel."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from difflab.config import TrainConfig


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up over ``cfg.warmup`` steps, then constant or a cosine decay to 0 at ``cfg.steps``."""

    def factor(step: int) -> float:
        if cfg.warmup and step < cfg.warmup:
            return (step + 1) / cfg.warmup
        if cfg.lr_schedule == "constant":
            return 1.0
        span = max(cfg.steps - cfg.warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - cfg.warmup, span) / span))

    return factor


def _without_dynamo_guard(method: Callable) -> Callable:
    """The function under a ``torch._disable_dynamo`` wrapper (which keeps it as ``__wrapped__``)."""
    return getattr(method, "__wrapped__", method)


class AdamW(torch.optim.AdamW):
    """torch's AdamW, minus the first-call import of torch's compiler stack.

    ``Optimizer.add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` are wrapped in
    ``torch._disable_dynamo``, which imports ``torch._dynamo`` (sympy, the FX tracer, ...) the first time one is
    called: about 1 s, a third of the training command's start-up (benchmarks/startup.py), for a guard that does
    nothing outside ``torch.compile``, which difflab never applies to an optimizer. Here they are the functions
    under the guard. ``step`` of a plain fused AdamW (:func:`plain_fused_adamw`, the trainer's) is the kernel call
    of :func:`fused_adamw_step`, after creating the state as torch does; other settings use torch's own step."""

    add_param_group = _without_dynamo_guard(torch.optim.Optimizer.add_param_group)
    zero_grad = _without_dynamo_guard(torch.optim.Optimizer.zero_grad)
    state_dict = _without_dynamo_guard(torch.optim.Optimizer.state_dict)
    load_state_dict = _without_dynamo_guard(torch.optim.Optimizer.load_state_dict)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        if closure is not None or not plain_fused_adamw(self) or torch.compiler.is_compiling():
            return super().step(closure)
        if all(p.grad is None for p in self.param_groups[0]["params"]):
            return None
        with torch.no_grad():
            for p in self.param_groups[0]["params"]:
                if p.grad is not None and not self.state[p]:  # torch's lazy state of a fused AdamW
                    self.state[p].update(step=torch.zeros((), dtype=torch.float32, device=p.device),
                                         exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                                         exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
            fused_adamw_step(self)
        return None


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    # fused AdamW runs on CPU and CUDA in torch ≥ 2.4 and is one kernel for all parameters.
    return AdamW(model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay, fused=True)


def plain_fused_adamw(opt: torch.optim.Optimizer) -> bool:
    """True for a one-group fused AdamW with float LR and no amsgrad/maximize/grad scaling: the settings under
    which :func:`fused_adamw_step` does exactly what ``opt.step()`` does."""
    if not isinstance(opt, torch.optim.AdamW) or len(opt.param_groups) != 1 or not hasattr(torch, "_fused_adamw_"):
        return False
    g = opt.param_groups[0]
    return bool(g["fused"]) and not (g["amsgrad"] or g["maximize"] or g["capturable"]) and isinstance(g["lr"], float)


def fused_adamw_step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()`` of a plain fused AdamW (see :func:`plain_fused_adamw`) as the one kernel call it makes.

    ``Optimizer.step`` spends ~0.2 ms per call on hooks, grouping tensors by device and dtype and state checks,
    a fifth of a whole step for the tutorial's network; the arithmetic is the same kernel either way. The
    parameters' step counters are made views of one tensor (once, and again whenever the state was replaced, e.g.
    by ``load_state_dict``), so that counting costs one addition instead of a ``_foreach_add_`` over 0-d tensors
    (~50 µs)."""
    g = opt.param_groups[0]
    params = [p for p in g["params"] if p.grad is not None]
    states = [opt.state[p] for p in params]
    steps = [s["step"] for s in states]
    base = steps[0]._base
    if base is None or base.dim() != 1 or len(base) != len(steps) or any(x._base is not base for x in steps):
        base = torch.stack(steps)
        steps = list(base.unbind(0))
        for st, view in zip(states, steps, strict=True):
            st["step"] = view
    base.add_(1)
    beta1, beta2 = g["betas"]
    torch._fused_adamw_(
        params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
        steps, lr=g["lr"], beta1=beta1, beta2=beta2, weight_decay=g["weight_decay"], eps=g["eps"],
        amsgrad=False, maximize=False, grad_scale=None, found_inf=None,
    )
