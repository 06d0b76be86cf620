"""The sampler registry: every sampler is a function with one signature (after k-diffusion's sampling.py),

``sampler(denoise, x, diffusion, ts, *, generator=None, callback=None, **options) -> x_0``

- ``denoise(x_t, t) -> Prediction(eps, x0[, v])``: a trained network or an oracle (see ``difflab.diffusion``).
- ``x``: the start x_T, shape (B, D), usually N(0, I).
- ``diffusion``: the process (discrete or continuous, :class:`difflab.diffusion.Process`).
- ``ts``: descending times ``[t_max, ..., 0]`` from :func:`difflab.sampling.grids.make_grid`.
- ``callback(i, t, x)`` is called with the state after each jump (i = 1..K), e.g. to keep a trajectory.

A sampler registered with ``jumps=True`` asks ``denoise(x_t, t, s)`` for a whole jump t → s instead: it needs a
two-time denoiser (:class:`~difflab.diffusion.jump_denoiser.JumpDenoiser`, the one-step models).

The modules that define samplers register them here; importing :mod:`difflab.sampling` loads them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from difflab.errors import ConfigError

Callback = Callable[[int, Any, Tensor], None] | None
SamplerFn = Callable[..., Tensor]
SAMPLERS: dict[str, SamplerFn] = {}
DESCRIPTIONS: dict[str, str] = {}
# Network calls per jump where it is not one (Heun's method evaluates twice, except into t = 0).
CALLS_PER_STEP: dict[str, int] = {}
# Samplers that ask a two-time denoiser for whole jumps, ``denoise(x_t, t, s)`` (one-step models,
# difflab.sampling.jumps); the others call ``denoise(x_t, t)``, which every denoiser answers.
JUMP_SAMPLERS: set[str] = set()


def register(name: str, description: str, calls_per_step: int = 1, *, jumps: bool = False
             ) -> Callable[[SamplerFn], SamplerFn]:
    def deco(fn: SamplerFn) -> SamplerFn:
        SAMPLERS[name] = fn
        DESCRIPTIONS[name] = description
        CALLS_PER_STEP[name] = calls_per_step
        if jumps:
            JUMP_SAMPLERS.add(name)
        return fn

    return deco


def get_sampler(name: str) -> SamplerFn:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{name}'; choose one of: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def sampler_options(name: str) -> dict[str, Any]:
    """The options a sampler takes beyond the shared signature, with their defaults."""
    skip = {"denoise", "x", "diffusion", "ts", "generator", "callback"}
    params = inspect.signature(get_sampler(name)).parameters.values()
    return {p.name: p.default for p in params if p.name not in skip and p.kind == p.KEYWORD_ONLY}


def check_options(name: str, options: dict[str, Any]) -> None:
    """A one-line ConfigError for an option the sampler does not take."""
    known = sampler_options(name)
    for key in options:
        if key not in known:
            raise ConfigError(f"sampler '{name}' has no option '{key}'; its options: {', '.join(known) or 'none'}")


def noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
