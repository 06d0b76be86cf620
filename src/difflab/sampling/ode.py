"""The probability-flow ODE solved adaptively to a tolerance (scipy's ``solve_ivp``): the reference "exact ODE"
sample that fixed-step solvers approximate.

In the variance-exploding variables x̄ = x/α and u = log σ̄ (σ̄ = σ/α, Karras et al. 2022) the ODE is
dx̄/du = σ̄ ε̂(α x̄, t(σ̄)) (Song et al. 2021, eq. 13, rewritten), smooth in u over the whole range of noise levels;
where ᾱ(t_max) = 0 (zero terminal SNR, the straight path) σ̄ starts at ∞ and the ODE is solved on the process's own
path in t instead (:mod:`difflab.sampling.pf_ode`). It runs from t_max down to t_min of the grid and the last jump
returns the denoised point at t_min, as every sampler's last jump into t = 0 does. One error control covers all
rows (they share the step sizes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from difflab.diffusion.parameterization import DenoiseFn, Prediction
from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError, DifflabError
from difflab.sampling.pf_ode import pf_ode_form
from difflab.sampling.registry import Callback, register

METHODS = ("RK45", "RK23", "DOP853")


@register("ode", "adaptive probability-flow ODE solve to a tolerance (scipy solve_ivp, RK45 by default; Song et al. "
          "2021): the reference ODE sample; the grid only sets where the trajectory is recorded", calls_per_step=0)
@torch.no_grad()
def sample_ode(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "RK45",
) -> Tensor:
    """``rtol``/``atol``: solve_ivp's tolerances on x̄; ``method``: RK45 | RK23 | DOP853. Deterministic."""
    if method not in METHODS:
        raise ConfigError(f"ode: unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    if not (rtol > 0 and atol > 0):
        raise ConfigError(f"ode: rtol and atol must be positive, got {rtol}, {atol}")
    d = diffusion
    form = pf_ode_form(d)
    shape, dtype = x.shape, x.dtype
    inner = [t for t in ts[:-1]]  # the grid's times where the network is asked; the last is t_min of this grid
    us = [form.u_of(t) for t in inner]

    def rhs(u: float, y: np.ndarray) -> np.ndarray:
        state = torch.as_tensor(y, dtype=torch.float64).reshape(shape)
        return form.drift(lambda xt, t: _float64(denoise(xt.to(dtype), t)), state, u).reshape(-1).numpy()

    y0 = form.to_state(x.to(torch.float64), inner[0]).reshape(-1).numpy()
    if len(us) > 1:
        from scipy.integrate import solve_ivp  # on use: scipy.integrate costs ~0.25 s of every command's start-up

        sol = solve_ivp(rhs, (us[0], us[-1]), y0, method=method, rtol=rtol, atol=atol, t_eval=us)
        if not sol.success:
            raise DifflabError(f"ode: the solver stopped: {sol.message}")
        states = [torch.as_tensor(sol.y[:, k]).reshape(shape) for k in range(len(us))]
    else:
        states = [torch.as_tensor(y0).reshape(shape)]
    for i, (t, y) in enumerate(zip(inner[1:], states[1:], strict=True), start=1):
        if callback is not None:
            callback(i, t, form.from_state(y, t).to(dtype))
    t_last = inner[-1]
    x = denoise(form.from_state(states[-1], t_last).to(dtype), t_last).x0
    if callback is not None:
        callback(len(inner), 0, x)
    return x


def _float64(pred: Prediction) -> Prediction:
    return Prediction(eps=pred.eps.to(torch.float64), x0=pred.x0.to(torch.float64))
