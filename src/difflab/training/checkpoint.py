"""A trainer's state as named tensors for a checkpoint (saved by :mod:`difflab.weights`): weights, EMA, optimizer
moments, RNG state, loss log."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, Tensor]:
    """AdamW's per-parameter state (step, exp_avg, exp_avg_sq) keyed ``optim.{index}.{name}``."""
    out: dict[str, Tensor] = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            # a copy of a view (the direct AdamW call keeps the step counters as views of one tensor): safetensors
            # stores only tensors that own their memory
            out[f"optim.{i}.{k}"] = (v.clone() if v._base is not None else v) if torch.is_tensor(v) else torch.tensor(v)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def model_tensors(model: nn.Module, prefix: str = "") -> dict[str, Tensor]:
    return {prefix + k: v for k, v in model.state_dict().items()}


def strip(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
