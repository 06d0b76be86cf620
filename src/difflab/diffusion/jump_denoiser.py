"""A two-time network as a denoiser: ``denoise(x_t, t, s)`` for a jump t → s on the straight path.

The network (:class:`~difflab.models.jump_mlp.JumpMLP`) predicts ū, the average velocity of the probability-flow ODE
over [s, t] (MeanFlow's u(z, s, t), Geng et al. 2025, eq. 3; a shortcut model's s(z, t, t − s), Frans et al. 2024), so
that x_s = z − (t − s) ū exactly, z = (1 − t) x_0 + t ε the path's x_t. The shared ``Prediction`` reads ū as the
``velocity`` parameterization reads an instantaneous velocity:

    x̂_0 = z − t ū,    ε̂ = z + (1 − t) ū    (so (1 − t) x̂_0 + t ε̂ = z),

and a deterministic DDIM step from t to s (Song et al. 2021, eq. 12, η = 0) taken from that prediction lands at
(1 − s) x̂_0 + s ε̂ = z − t ū + s ū = z − (t − s) ū on the path's scale: the jump itself. Asked without s (s = t) the
network gives the instantaneous velocity v(z, t) = u(z, t, t), so every other sampler, the likelihoods and the plots
treat the run as the flow-matching model it also is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from difflab.diffusion.denoiser import Denoiser, Label, guide
from difflab.diffusion.parameterization import Parameterization, Prediction
from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError


class JumpDenoiser(Denoiser):
    """``model(x, t, h[, labels])``, h = t − s, read as the average velocity over [s, t] (parameterization
    ``velocity``, straight path). ``denoise(x_t, t, s=None)``: s = None is s = t, the instantaneous velocity."""

    def __init__(self, model: nn.Module, process: Process, parameterization: str | Parameterization = "velocity",
                 **options: Any) -> None:
        super().__init__(model, process, parameterization, **options)
        if self.param.path != "straight" or self.diffusion.path != "straight":
            raise ConfigError("a two-time network predicts an average velocity on the straight path: it needs "
                              "--schedule rectified and --parameterization velocity")
        self._jumps: dict[tuple[Time, Time, Label], tuple[tuple[tuple[int, int], ...], Callable[[Tensor], Tensor]]] = {}

    @staticmethod
    def jump(t: Time, s: Time | None) -> float:
        """h = t − s, the network's second time (0 without s); a jump must go down in time, 0 ≤ s ≤ t."""
        if s is None:
            return 0.0
        if not 0 <= s <= t:
            raise ValueError(f"a jump goes from t down to s in [0, t], got t={t}, s={s}")
        return float(t) - float(s)

    def _at_jump(self, t: Time, s: Time | None, label: Label) -> Callable[[Tensor], Tensor]:
        """``model.at_step(t, h, label)``, built once per (t, s, label) and rebuilt when a weight has changed."""
        versions = tuple((id(p), p._version) for p in self.model.parameters())
        hit = self._jumps.get((t, s, label))
        if hit is None or hit[0] != versions:
            fn = self.model.at_step(float(t), self.jump(t, s), label)
            hit = self._jumps[(t, s, label)] = (versions, fn)
        return hit[1]

    def predict(self, xt: Tensor, t: Time, *, labels: Tensor | int | None = None, s: Time | None = None
                ) -> Prediction:
        """The prediction for the jump t → s with autograd on (s = None: the instantaneous velocity)."""
        extra = {} if labels is None else {"labels": labels}
        xp = self._path(xt, t)
        rows = lambda v: torch.full((xt.shape[0],), v, device=xt.device, dtype=torch.float32)  # noqa: E731
        out = self.model(xp, rows(float(t)), rows(self.jump(t, s)), *extra.values())
        return self._read(xp, t, out)

    @torch.no_grad()
    def __call__(self, xt: Tensor, t: Time, s: Time | None = None) -> Prediction:
        return self._call(xt, t, None, s)

    def _call(self, xt: Tensor, t: Time, label: Label, s: Time | None = None) -> Prediction:
        if not hasattr(self.model, "at_step"):
            return self.predict(xt, t, labels=label, s=s)
        xp = self._path(xt, t)
        return self._read(xp, t, self._at_jump(t, s, label)(xp))

    @torch.no_grad()
    def guided(self, xt: Tensor, t: Time, label: Label, guidance: float = 0.0, s: Time | None = None) -> Prediction:
        """The jump's prediction for class ``label`` with classifier-free guidance weight ``guidance``."""
        cond = self._call(xt, t, label, s)
        return guide(cond, self._call(xt, t, None, s), guidance) if guidance else cond

    def given(self, label: Label, *, guidance: float = 0.0) -> Callable[..., Prediction]:
        """``denoise(x_t, t, s=None)`` for class ``label`` with guidance weight ``guidance``."""
        return lambda xt, t, s=None: self.guided(xt, t, label, guidance, s)
