"""Exact log-likelihood of the probability-flow ODE (Song et al. 2021, §4.3 and App. D.2).

The PF-ODE maps data to noise deterministically, so the instantaneous change of variables (Chen et al. 2018) gives
the log-density of a point: integrating dz/du = f(z, u) from the data end u_0 to the noise end u_1,

    log p_0(z(u_0)) = log p_1(z(u_1)) + ∫_{u_0}^{u_1} tr(∂f/∂z) du.

We integrate in the variance-exploding variables of :mod:`difflab.sampling.ode`: z = x̄ = x/α, u = log σ̄, where
f = σ̄ ε̂(α x̄, t(σ̄)) and tr(∂f/∂x̄) = σ̄ α tr(∂ε̂/∂x). At the data end x̄ = x_0 (the density there is that of
x_0 + σ̄(t_ε) ε, t_ε = the process's t_min, as Song et al. take ε > 0); at the noise end x_T = α_T x̄ has the
prior N(0, I), so log p_1(x̄) = log N(α_T x̄; 0, I) + D log α_T. The trace is exact (D backward passes) for D ≤ 16
and Hutchinson's estimate zᵀ (∂ε̂/∂x) z with one Rademacher z per point above (Grathwohl et al. 2019). Where
ᾱ(t_max) = 0 (zero terminal SNR, the straight path) the ODE is integrated on the process's own path in t instead
(:mod:`difflab.sampling.pf_ode`), from a_{t_min} x_0 to x_1 ~ N(0, I), with the same change of variables. scipy's
``solve_ivp`` solves all points of a chunk together to ``rtol``/``atol``.

Units: nats per dimension in the data's own units, −(log p_scaled + log|det J_scaler|)/D, as the ELBO reports.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from difflab.diffusion.denoiser import Denoiser
from difflab.diffusion.parameterization import Prediction
from difflab.diffusion.process import Process
from difflab.errors import ConfigError, DataError, DifflabError
from difflab.sampling.pf_ode import pf_ode_form

EXACT_TRACE_MAX_DIM = 16
DEFAULT_CHUNK = 1024


def _trace(eps: Tensor, x: Tensor, z: Tensor | None) -> Tensor:
    """tr(∂ε̂/∂x) per row: exact (one backward pass per dimension), or zᵀ (∂ε̂/∂x) z with z given."""
    if z is not None:
        (g,) = torch.autograd.grad((eps * z).sum(), x)
        return (g * z).sum(dim=1)
    D = x.shape[1]
    out = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(D):
        (g,) = torch.autograd.grad(eps[:, i].sum(), x, retain_graph=i < D - 1)
        out = out + g[:, i]
    return out


def _chunk_log_p(denoiser: Denoiser, d: Process, x0: Tensor, *, dtype: torch.dtype, rtol: float, atol: float,
                 hutchinson: bool, generator: torch.Generator | None) -> tuple[Tensor, int]:
    """log p (scaled space, summed over dimensions) of the rows ``x0`` (float64), and the network calls made."""
    n, D = x0.shape
    form = pf_ode_form(d)
    t0, t1 = d.t_min, d.t_max
    u0, u1 = form.u_of(t0), form.u_of(t1)
    z = None
    if hutchinson:
        z = (torch.randint(0, 2, (n, D), generator=generator) * 2 - 1).to(torch.float64)
    calls = [0]

    def predict(x: Tensor, t: float) -> Prediction:
        pred = denoiser.predict(x.to(dtype), t)
        return Prediction(eps=pred.eps.to(torch.float64), x0=pred.x0.to(torch.float64))

    def rhs(u: float, y: np.ndarray) -> np.ndarray:
        state = torch.as_tensor(y[: n * D], dtype=torch.float64).reshape(n, D)
        with torch.enable_grad():
            state = state.requires_grad_(True)
            f = form.drift(predict, state, u)
            tr = _trace(f, state, z)
        calls[0] += 1
        return torch.cat([f.detach().reshape(-1), tr.detach()]).numpy()

    # the data end: x_{t_min} ≈ α x_0 (x̄ = x_0 in the ve form), whose density is that of x_0 times |det ∂y/∂x_0|
    start = form.to_state(math.sqrt(d.alpha_bar(t0)) * x0, t0)
    y0 = np.concatenate([start.reshape(-1).numpy(), np.zeros(n)])
    sol = solve_ivp(rhs, (u0, u1), y0, method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise DifflabError(f"probability-flow likelihood: the ODE solver stopped: {sol.message}")
    end = torch.as_tensor(sol.y[:, -1])
    y1, integral = end[: n * D].reshape(n, D), end[n * D :]
    # the noise end: x_{t_max} ~ N(0, I) in the samplers' (variance-preserving) scale
    x1 = form.from_state(y1, t1)
    prior = -0.5 * x1.pow(2).sum(dim=1) - 0.5 * D * math.log(2.0 * math.pi) - form.log_det_to_x(t1, D)
    return prior + integral + form.log_det_to_x(t0, D) + 0.5 * D * d.log_alpha_bar(t0), calls[0]


def ode_nll(
    denoiser: Denoiser,
    x0_scaled: Tensor,
    *,
    scaler_logdet: float = 0.0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    hutchinson: bool | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> dict[str, Any]:
    """−log p(x) under the probability-flow ODE of ``denoiser`` (its process and network), in nats per dimension.

    Args:
        denoiser: a :class:`~difflab.diffusion.denoiser.Denoiser` (its ``predict`` keeps autograd on).
        x0_scaled: points (N, D) in the scaled space the model works in.
        scaler_logdet: log|det ∂s/∂x| of the scaler (data → scaled); 0 reports scaled units.
        rtol, atol: the ODE solver's tolerances.
        hutchinson: estimate the trace (default: only for D > 16); ``generator`` seeds its probes.
        chunk_size: points solved together.

    Returns:
        ``nats_per_dim`` (data units), ``bits_per_dim``, ``stderr`` (over points), ``nats_per_dim_scaled``,
        ``jacobian`` (= −scaler_logdet / D), ``n``, ``dim``, ``trace`` ("exact" | "hutchinson"), ``calls``
        (network evaluations per chunk, mean).
    """
    if x0_scaled.ndim != 2 or x0_scaled.shape[0] < 1:
        raise DataError(f"likelihood points must be a non-empty 2-D array (rows, D); got {tuple(x0_scaled.shape)}")
    if not torch.isfinite(x0_scaled).all():
        raise DataError("likelihood points contain non-finite values (NaN or inf)")
    if not (rtol > 0 and atol > 0):
        raise ConfigError(f"rtol and atol must be positive, got {rtol}, {atol}")
    d = denoiser.diffusion
    pf_ode_form(d)  # a one-line ConfigError where the ODE has no form (a discrete process with ᾱ_T = 0)
    n, D = x0_scaled.shape
    hutch = D > EXACT_TRACE_MAX_DIM if hutchinson is None else hutchinson
    params = list(getattr(denoiser.model, "parameters", lambda: [])())
    dtype = params[0].dtype if params else torch.float64
    x = x0_scaled.detach().to(torch.float64).cpu()
    parts, calls = [], []
    for lo in range(0, n, chunk_size):
        lp, c = _chunk_log_p(denoiser, d, x[lo : lo + chunk_size], dtype=dtype, rtol=rtol, atol=atol,
                             hutchinson=hutch, generator=generator)
        parts.append(lp)
        calls.append(c)
    log_p = torch.cat(parts)
    scaled = -float(log_p.mean()) / D
    jacobian = -float(scaler_logdet) / D
    nats = scaled + jacobian
    return {
        "nats_per_dim": nats,
        "bits_per_dim": nats / math.log(2.0),
        "stderr": float(log_p.std(unbiased=True)) / math.sqrt(n) / D if n > 1 else math.nan,
        "nats_per_dim_scaled": scaled,
        "jacobian": jacobian,
        "n": int(n),
        "dim": int(D),
        "trace": "hutchinson" if hutch else "exact",
        "calls": float(np.mean(calls)),
    }
