"""Front end for drawing many samples: chunked, seeded, optionally with the full trajectory.

Memory stays bounded by ``chunk_size`` rows however many points are asked for; :func:`generate_chunks` yields
chunks so callers can stream them to a file (:mod:`difflab.sampling.output`). A single ``torch.Generator`` seeded once
draws x_T and the sampler's noise chunk after chunk, so a seed gives the same points for the same ``chunk_size``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor

from difflab.compute import cpu_threads
from difflab.diffusion.parameterization import DenoiseFn, Prediction
from difflab.diffusion.process import Process, Time
from difflab.sampling.grids import make_grid
from difflab.sampling.registry import check_options, get_sampler

DEFAULT_CHUNK = 262_144
# Rows the network sees at once. A chunk's draws are made chunk-wide (so a seed's points do not depend on this),
# but its activations (rows × width floats per layer) are computed block by block so that they stay in the CPU's
# cache: on a 2-core AMD EPYC (512 KiB L2 per core), 2048 rows of the tutorial's 100-wide network took half the CPU
# time per point of 8192 rows or of a whole 262144-row chunk (benchmarks/sampling.py, benchmarks/RESULTS.md).
DEFAULT_BLOCK = 2048
# Fewest rows worth handing to another thread: a hand-off (submit, wake, wait) took ~0.3 ms on the 2-core machine,
# about what 1000 rows of the tutorial's network take.
MIN_PART = 1024


def blocked(denoise: DenoiseFn, block: int, workers: int = 1) -> DenoiseFn:
    """``denoise`` evaluated on at most ``block`` rows at a time; rows are independent, so the result is the same.

    ``workers`` > 1 splits the rows into that many contiguous parts, one per thread with one torch thread each,
    each part evaluated block by block: parts need no hand-off between them, where torch's own threads would meet
    after every matrix product, and a call costs one hand-off per worker, not one per block."""
    pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="difflab-block") if workers > 1 else None

    learned: list[bool] = []  # whether predictions carry v (learned variances): found out on the first call

    def part(xt: Tensor, t: Time, outs: list[Tensor], lo: int, hi: int, *jump: Time) -> None:
        rows = hi - lo
        size = math.ceil(rows / math.ceil(rows / block))  # blocks of equal size, at most `block` rows
        with torch.no_grad():  # grad mode is per thread
            for i in range(lo, hi, size):
                j = min(i + size, hi)
                p = denoise(xt[i:j], t, *jump)
                for out, value in zip(outs, (p.eps, p.x0, p.v), strict=False):
                    out[i:j] = value

    def call(xt: Tensor, t: Time, *jump: Time) -> Prediction:
        """``jump``: the end s of a jump t → s, for a two-time denoiser (difflab.sampling.jumps)."""
        n = len(xt)
        # equal parts, one per worker, of at least MIN_PART rows: a hand-off to a thread cost ~0.3 ms here
        parts = min(workers, max(1, n // MIN_PART))
        if n <= block and parts == 1:
            return denoise(xt, t, *jump)
        if not learned:
            learned.append(denoise(xt[:1], t, *jump).v is not None)
        outs = [torch.empty_like(xt) for _ in range(3 if learned[0] else 2)]
        if parts == 1:
            part(xt, t, outs, 0, n, *jump)
        else:
            bounds = [n * k // parts for k in range(parts + 1)]
            with cpu_threads(1):
                others = [pool.submit(part, xt, t, outs, lo, hi, *jump) for lo, hi in zip(bounds[1:-1], bounds[2:])]
                part(xt, t, outs, bounds[0], bounds[1], *jump)
                for f in others:
                    f.result()
        return Prediction(*outs)

    return call


def generate_chunks(
    denoise: DenoiseFn,
    diffusion: Process,
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
    block: int | None = DEFAULT_BLOCK,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(x_0 chunk (b, D), trajectory (K+1, b, D) or None)`` for ``n`` points in chunks of ``chunk_size``.

    ``sampler`` names a function in :data:`difflab.sampling.SAMPLERS`; ``steps`` is the number K of jumps on a
    ``grid`` that starts at t_max; ``options`` go to the sampler (``eta`` for ddim, ``variance`` for ddpm, …).
    ``block`` caps the rows per network call on the CPU (None: the whole chunk); it changes speed, not the points.
    Blocks run on as many threads as torch may use here (``torch.get_num_threads()``). A GPU gets whole chunks:
    there the cost is per launch, not per cache miss.
    """
    fn = get_sampler(sampler)
    check_options(sampler, options or {})
    if block is not None and block < chunk_size and torch.device(device).type == "cpu":
        denoise = blocked(denoise, block, workers=torch.get_num_threads())
    ts = make_grid(diffusion, steps, grid)
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
    denoise: DenoiseFn, diffusion: Process, n: int, dim: int, **kwargs: Any
) -> tuple[Tensor, Tensor | None]:
    """All ``n`` samples at once (and the trajectory, shape (K+1, n, D), if ``trajectory=True``)."""
    xs, trajs = [], []
    for x, traj in generate_chunks(denoise, diffusion, n, dim, **kwargs):
        xs.append(x)
        if traj is not None:
            trajs.append(traj)
    return torch.cat(xs), (torch.cat(trajs, dim=1) if trajs else None)
