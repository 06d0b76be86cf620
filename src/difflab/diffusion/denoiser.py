"""A trained network as a denoiser: ``denoiser(x_t, t) -> Prediction(ε̂, x̂_0[, v])`` for any time of its process.

Samplers hand it the variance-preserving x_t; the network sees the process's own path's x_t (the same on a vp path,
(1 − t) x_0 + t ε on the straight one), times ``c_in`` (1 except with EDM's preconditioning), and ``process.net_time(t)`` (the step for a
discrete process, the noise level for a continuous one); its output is read through the parameterization. A network
with learned variances (Nichol & Dhariwal 2021) has 2D outputs: the parameterization's D, then v. Networks that take
only whole steps (the tutorial's one-hot time input) get the nearest step when a solver asks for a time between two.
Exact denoisers (the oracles, :mod:`difflab.models.oracles`) are asked directly for E[ε | x_t] and E[x_0 | x_t] at
the process's ᾱ_t, so they serve every process and time.

A conditional network (one built with classes) takes a class label beside x_t; ``denoiser(x_t, t)`` asks it with no
label (the unconditional prediction), :meth:`Denoiser.given` fixes a class and a classifier-free guidance weight w
and returns a ``denoise(x_t, t)`` for the samplers. Guidance mixes the conditional and unconditional predictions,
ε̂ = (1 + w) ε̂(x_t, c) − w ε̂(x_t, ∅) (Ho & Salimans 2022, eq. 6), and x̂_0 alike. Every parameterization reads
(ε̂, x̂_0) = A_t · output + B_t · x_t, so this mix (weights 1 + w and −w, summing to one) of the predictions is the
prediction of the same mix of the outputs, whatever the network predicts, and α x̂_0 + σ ε̂ = x_t still holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from difflab.diffusion.parameterization import DenoiseFn, Parameterization, Prediction, get_parameterization
from difflab.diffusion.process import Process, Time

Label = int | None  # a class code 0..K-1, or None: no label


def guide(cond: Prediction, free: Prediction, w: float) -> Prediction:
    """Classifier-free guidance: (1 + w) · conditional − w · unconditional, for ε̂ and x̂_0 (Ho & Salimans 2022,
    eq. 6); learned variances v are the conditional prediction's."""
    return Prediction(eps=cond.eps + w * (cond.eps - free.eps), x0=cond.x0 + w * (cond.x0 - free.x0), v=cond.v)


class Denoiser:
    """``model`` with its ``process`` and ``parameterization`` (name, or a :class:`Parameterization`)."""

    def __init__(
        self,
        model: nn.Module,
        process: Process,
        parameterization: str | Parameterization = "eps",
        *,
        learned_variance: bool = False,
        **options: Any,
    ) -> None:
        self.model = model
        self.diffusion = process
        self.param = (parameterization if isinstance(parameterization, Parameterization)
                      else get_parameterization(parameterization, **options))
        self.learned_variance = learned_variance
        self._steps: dict[tuple[Time, Label], tuple[tuple[tuple[int, int], ...], Callable[[Tensor], Tensor]]] = {}

    def _net_time(self, t: Time) -> Time:
        if getattr(self.model, "integer_time", False) and not float(t).is_integer():
            t = round(float(t))
        return self.diffusion.net_time(t)

    def _at_step(self, t: Time, label: Label = None) -> Callable[[Tensor], Tensor]:
        """The network's function for time t and class ``label`` (``model.at_step``), built once per (t, label) and
        rebuilt when a weight has changed or been replaced since (every in-place update bumps a tensor's version
        counter)."""
        versions = tuple((id(p), p._version) for p in self.model.parameters())
        hit = self._steps.get((t, label))
        if hit is None or hit[0] != versions:
            nt = self._net_time(t)
            fn = self.model.at_step(nt) if label is None else self.model.at_step(nt, label)
            hit = self._steps[(t, label)] = (versions, fn)
        return hit[1]

    def _read(self, xt: Tensor, t: Time, out: Tensor) -> Prediction:
        """(ε̂, x̂_0) from the output for the path's x_t (ε and x_0 are the same on every scale of x_t)."""
        a, s = self.diffusion.path_coefs(t, xt)
        post = self.diffusion.posterior_coefs(round(t), xt) if self.param.needs_posterior else None
        if self.learned_variance:
            out, v = out.chunk(2, dim=-1)
            p = self.param.predict(xt, out, a, s, post)
            return Prediction(eps=p.eps, x0=p.x0, v=v)
        return self.param.predict(xt, out, a, s, post)

    def _path(self, xt: Tensor, t: Time) -> Tensor:
        """The samplers' (variance-preserving) x_t on the scale of the process's path, which the network knows."""
        k = self.diffusion.path_scale(t, xt)
        return xt if isinstance(k, float) and k == 1.0 else xt * k

    def _input(self, xt: Tensor, t: Time) -> Tensor:
        """The network's input for the path's x_t: c_in · x_t."""
        if self.param.c_in is None:
            return xt
        return xt * self.param.c_in(*self.diffusion.path_coefs(t, xt))

    def predict(self, xt: Tensor, t: Time, *, labels: Tensor | int | None = None) -> Prediction:
        """The prediction with autograd on (for Jacobians: the probability-flow likelihood); ``labels``: class codes
        (B,) or one for all rows, for a conditional model (None: no label)."""
        extra = {} if labels is None else {"labels": labels}
        if hasattr(self.model, "posterior"):  # an oracle: exact at any ᾱ
            ab = torch.full((xt.shape[0], 1), self.diffusion.alpha_bar(t), dtype=torch.float64, device=xt.device)
            eps, x0 = self.model.posterior(xt.to(torch.float64), ab, **extra)
            return Prediction(eps=eps.to(xt.dtype), x0=x0.to(xt.dtype))
        nt = self._net_time(t)
        xp = self._path(xt, t)
        out = self.model(self._input(xp, t), torch.full((xt.shape[0],), nt, device=xt.device,
                                                        dtype=torch.long if isinstance(nt, int) else torch.float32),
                         *extra.values())
        return self._read(xp, t, out)

    @torch.no_grad()
    def __call__(self, xt: Tensor, t: Time) -> Prediction:
        return self._call(xt, t, None)

    def _call(self, xt: Tensor, t: Time, label: Label) -> Prediction:
        if hasattr(self.model, "at_step"):  # the network's own path for one t shared by all rows
            xp = self._path(xt, t)
            return self._read(xp, t, self._at_step(t, label)(self._input(xp, t)))
        return self.predict(xt, t, labels=label)

    @torch.no_grad()
    def guided(self, xt: Tensor, t: Time, label: Label, guidance: float = 0.0) -> Prediction:
        """The prediction for class ``label`` with guidance weight w = ``guidance`` (0: the conditional model
        alone, one network call; w > 0: two calls, :func:`guide`)."""
        cond = self._call(xt, t, label)
        return guide(cond, self._call(xt, t, None), guidance) if guidance else cond

    def given(self, label: Label, *, guidance: float = 0.0) -> DenoiseFn:
        """``denoise(x_t, t)`` for class ``label`` with guidance weight ``guidance``, as samplers call it."""
        return lambda xt, t: self.guided(xt, t, label, guidance)
