"""Exponential moving average of the weights: θ̄ ← θ̄ + (1 − decay)(θ − θ̄), one fused foreach call per step."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """Shadow copies of a model's floating-point parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.names = [n for n, p in model.state_dict().items() if p.is_floating_point()]
        state = model.state_dict()
        self.shadow: list[Tensor] = [state[n].detach().clone() for n in self.names]
        # state_dict() tensors share storage with the live weights, which are updated in place: keep them, so a
        # step costs one foreach call and no state_dict() walk.
        self._model = model
        self._live: list[Tensor] = [state[n] for n in self.names]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        live = self._live if model is self._model else [model.state_dict()[n] for n in self.names]
        torch._foreach_lerp_(self.shadow, live, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Tensor]:
        return dict(zip(self.names, self.shadow, strict=True))

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for buf, n in zip(self.shadow, self.names, strict=True):
            buf.copy_(state[n])

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.state_dict(), strict=False)
