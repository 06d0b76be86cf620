"""Front end for drawing many samples: chunked, seeded, optionally with the full trajectory.

Memory stays bounded by ``chunk_size`` rows however many points are asked for; :func:`generate_chunks` yields
chunks so callers can stream them to a file (:mod:`difflab.sampling.output`). A single ``torch.Generator`` seeded once
draws x_T and the sampler's noise chunk after chunk, so a seed gives the same points for the same ``chunk_size``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from difflab.diffusion.parameterization import DenoiseFn
from difflab.diffusion.process import GaussianDiffusion
from difflab.sampling.grids import make_grid
from difflab.sampling.samplers import get_sampler

DEFAULT_CHUNK = 262_144


def generate_chunks(
    denoise: DenoiseFn,
    diffusion: GaussianDiffusion,
    n: int,
    dim: int,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    grid: str = "trailing",
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    trajectory: bool = False,
    device: torch.device | str = "cpu",
    options: dict[str, Any] | None = None,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(x_0 chunk (b, D), trajectory (K+1, b, D) or None)`` for ``n`` points in chunks of ``chunk_size``.

    ``sampler`` names a function in :data:`difflab.sampling.SAMPLERS`; ``steps`` is the number K ≤ T of model calls
    on a ``grid`` that starts at t = T; ``options`` go to the sampler (``eta`` for ddim, ``variance`` for ddpm).
    """
    fn = get_sampler(sampler)
    ts = make_grid(diffusion.T, steps, grid)
    gen = torch.Generator(device=device).manual_seed(seed)
    done = 0
    while done < n:
        b = min(chunk_size, n - done)
        x = torch.randn(b, dim, generator=gen, device=device)
        states: list[Tensor] = [x.cpu()] if trajectory else []
        callback = (lambda i, t, xs, keep=states: keep.append(xs.cpu())) if trajectory else None
        x = fn(denoise, x, diffusion, ts, generator=gen, callback=callback, **(options or {}))
        yield x.cpu(), (torch.stack(states) if trajectory else None)
        done += b


def generate(
    denoise: DenoiseFn, diffusion: GaussianDiffusion, n: int, dim: int, **kwargs: Any
) -> tuple[Tensor, Tensor | None]:
    """All ``n`` samples at once (and the trajectory, shape (K+1, n, D), if ``trajectory=True``)."""
    xs, trajs = [], []
    for x, traj in generate_chunks(denoise, diffusion, n, dim, **kwargs):
        xs.append(x)
        if traj is not None:
            trajs.append(traj)
    return torch.cat(xs), (torch.cat(trajs, dim=1) if trajs else None)
