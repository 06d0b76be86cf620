"""Sampling a one-step model (MeanFlow, Geng et al. 2025; shortcut models, Frans et al. 2024) by jumps along its grid.

A two-time denoiser (:class:`~difflab.diffusion.jump_denoiser.JumpDenoiser`) answers ``denoise(x_t, t, s)`` for the
whole jump t → s: its prediction is the point from which DDIM's deterministic step (Song et al. 2021, eq. 12, η = 0)
lands at x_s = z − (t − s) ū, ū the network's average velocity over [s, t]. One jump from t_max = 1 to 0 is a
sample in one network call (Geng et al. 2025, Alg. 2: x_0 = ε − u(ε, 0, 1)); K jumps on any grid cost K calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from difflab.diffusion.process import Process, Time
from difflab.sampling.registry import Callback, register
from difflab.sampling.samplers import ddim_step


@register("jumps", "jump t → s along the grid with a two-time model's average velocity, x_s = x_t − (t − s) ū "
          "(MeanFlow, Geng et al. 2025; shortcut models, Frans et al. 2024): one call per jump; for runs trained "
          "with objective meanflow or shortcut", jumps=True)
@torch.no_grad()
def sample_jumps(
    denoise: object,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
) -> Tensor:
    """For each (t, s) of the grid: the prediction for the jump, ``denoise(x, t, s)``, then DDIM's η = 0 step."""
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
        x = ddim_step(diffusion, x, t, s, denoise(x, t, s))  # type: ignore[operator]
        if callback is not None:
            callback(i, s, x)
    return x
