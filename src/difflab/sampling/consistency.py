"""Multistep consistency sampling (Song et al. 2023, Alg. 1), the sampler of consistency-distilled runs
(:mod:`difflab.distill.consistency`).

The denoiser's x̂_0 is the consistency function f(x_t, t): one call at t_max gives a sample; each later time τ of
the grid puts noise back, x_τ = α_τ x̂_0 + σ_τ z (the paper's x̂ + √(τ² − ε²) z in variance-preserving form, with its
ε at σ̄ = 0), and asks f again. K grid times cost K network calls. With a denoiser that is not a consistency model
it still runs (denoise, re-noise, denoise), but only a consistency model makes x̂_0(x_T) a sample in one call.
A grid that ends at t_min (karras, linspace) spends its last call there, where f(x, σ_min) = x by the boundary
condition (it adds σ_min's noise and nothing else); students sample on karras-trailing, whose K times all lie
above σ_min.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from difflab.diffusion.parameterization import DenoiseFn
from difflab.diffusion.process import Process, Time
from difflab.sampling.registry import Callback, noise_like, register


@register("consistency", "multistep consistency sampling (Song et al. 2023, Alg. 1): x̂_0 at t_max, then re-noise to "
          "each later grid time and denoise again; for runs made by `difflab distill --method consistency`")
@torch.no_grad()
def sample_consistency(
    denoise: DenoiseFn,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    generator: torch.Generator | None = None,
    callback: Callback = None,
) -> Tensor:
    """x̂_0 ← f(x_T, t_max); for τ in ts[1:-1]: x_τ = α_τ x̂_0 + σ_τ z, x̂_0 ← f(x_τ, τ). The callback sees each x_τ
    and, last, x̂_0 at t = 0."""
    x0 = denoise(x, ts[0]).x0
    for i, t in enumerate(ts[1:-1], start=1):
        a, s = diffusion.alpha_sigma(t, x0)
        x = a * x0 + s * noise_like(x0, generator)
        if callback is not None:
            callback(i, t, x)
        x0 = denoise(x, t).x0
    if callback is not None:
        callback(len(ts) - 1, ts[-1], x0)
    return x0
