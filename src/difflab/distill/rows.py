"""Denoisers evaluated at one time per row, and the teacher's ODE steps on such rows.

Samplers ask a denoiser about one time t for a whole batch; distillation draws a time per row. A :data:`RowFn`
``(x_t (B, D), t (B,)) -> Prediction`` (t: whole steps as integers for a discrete process, float64 times for a
continuous one) does that: :func:`network_rows` runs a network once for the whole batch
(differentiably, for the student), :func:`grouped_rows` wraps any :data:`~difflab.diffusion.DenoiseFn` (an oracle, a
closed-form test denoiser) by calling it once per distinct time. The steps below are the samplers' DDIM and Heun
jumps (:mod:`difflab.sampling.samplers`, :mod:`difflab.sampling.solvers`) written for a time pair per row.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from difflab.diffusion import DenoiseFn, Parameterization, Prediction, Process
from difflab.sampling.solvers import heun_trapezoid

RowFn = Callable[[Tensor, Tensor], Prediction]


def network_rows(model: nn.Module, process: Process, param: Parameterization, *,
                 learned_variance: bool = False) -> RowFn:
    """``model`` read through ``param`` at per-row times, as :class:`~difflab.diffusion.Denoiser` reads it at one
    time (input scaled by c_in, the network given ``process.net_time(t)``). Autograd stays on."""
    integer_time = getattr(model, "integer_time", False)

    def fn(xt: Tensor, t: Tensor) -> Prediction:
        # the network knows the path's own x_t = a x_0 + s ε (the straight path's, or the vp one itself): the
        # samplers' variance-preserving x_t times k(t), as the Denoiser hands it over
        a, s = process.path_coefs(t, xt)
        xp = xt if process.path == "vp" else xt * process.path_scale(t, xt)
        net_t = process.net_time(t)
        if integer_time and net_t.is_floating_point():  # a one-hot code knows whole steps (the Denoiser rounds)
            net_t = net_t.round().long()
        c_in = param.input_scale(a, s)
        out = model(xp if c_in is None else xp * c_in, net_t)
        if learned_variance:  # the second D outputs are the variance interpolation, not the mean's
            out = out[:, : xt.shape[1]]
        post = (process.posterior_coefs(t if not t.is_floating_point() else t.round().long(), xt)
                if param.needs_posterior else None)
        return param.predict(xp, out, a, s, post)

    return fn


def grouped_rows(denoise: DenoiseFn, process: Process) -> RowFn:
    """A one-time denoiser asked once per distinct time among the rows (whole steps as ints for a discrete
    process, as the samplers ask)."""

    def fn(xt: Tensor, t: Tensor) -> Prediction:
        eps, x0 = torch.empty_like(xt), torch.empty_like(xt)
        for value in torch.unique(t).tolist():
            rows = t == value
            when = int(value) if process.discrete and float(value).is_integer() else float(value)
            pred = denoise(xt[rows], when)
            eps[rows], x0[rows] = pred.eps.to(xt.dtype), pred.x0.to(xt.dtype)
        return Prediction(eps=eps, x0=x0)

    return fn


def ddim_rows(pred: Prediction, process: Process, s: Tensor, like: Tensor) -> Tensor:
    """DDIM with η = 0 to times ``s`` (Song et al. 2021, eq. 12): x_s = α_s x̂_0 + σ_s ε̂ (s = 0 gives x̂_0)."""
    a_s, sig_s = process.alpha_sigma(s, like)
    return a_s * pred.x0 + sig_s * pred.eps


def sigma_bar(process: Process, t: Tensor, like: Tensor) -> Tensor:
    """σ̄_t = σ_t/α_t per row, the variance-exploding noise level (0 at t = 0)."""
    a, s = process.alpha_sigma(t, like)
    return s / a


@torch.no_grad()
def heun_rows(teacher: RowFn, process: Process, x: Tensor, t: Tensor, s: Tensor) -> Tensor:
    """One Heun step of the probability-flow ODE from t to s per row (Karras et al. 2022, Alg. 1, lines 4-8) in
    x̄ = x/α, where dx̄/dσ̄ = ε̂. Its Euler step is DDIM's x_s = α_s x̂_0 + σ_s ε̂, which is the whole step for rows
    with s = 0 (it returns x̂_0) and for rows where α_t = 0 (zero terminal SNR: x̄ is not defined there)."""
    pred = teacher(x, t)
    out = ddim_rows(pred, process, s, x)
    a_t, _ = process.alpha_sigma(t, x)
    a_s, _ = process.alpha_sigma(s, x)
    heun = (s > 0) & (a_t.reshape(-1) > 0)
    if bool(heun.any()):  # the samplers' corrector, trapezoid of dx̄/dσ̄ = ε̂ (x_0 form on long jumps)
        sig_t, sig_s = sigma_bar(process, t, x)[heun], sigma_bar(process, s, x)[heun]
        first = Prediction(eps=pred.eps[heun], x0=pred.x0[heun])
        out[heun] = a_s[heun] * heun_trapezoid(x[heun] / a_t[heun], sig_t, sig_s, first, teacher(out[heun], s[heun]))
    return out


@torch.no_grad()
def ddim_step(teacher: RowFn, process: Process, x: Tensor, t: Tensor, s: Tensor) -> Tensor:
    """One DDIM (η = 0) step from t to s per row: the Euler step of the same ODE in x̄."""
    return ddim_rows(teacher(x, t), process, s, x)


SOLVERS: dict[str, Callable[[RowFn, Process, Tensor, Tensor, Tensor], Tensor]] = {"heun": heun_rows,
                                                                                  "ddim": ddim_step}
