"""Sampling a run whose table has discretely diffused columns (``--encoding multinomial|masked``), chunk by chunk.

Each chunk starts from x_T ~ N(0, I) for the Gaussian features and the discrete prior for the categorical cells
(uniform levels, or all masked), runs the joint sampler (:func:`difflab.sampling.joint.sample_joint`) and gives back
whole scaled feature rows: numbers as sampled, each categorical column ±1 one-hot (what the table scaler makes of a
level), and for a conditional run the condition's features of each row's class. A conditional run's rows are drawn
class by class (seeds :func:`difflab.conditional.seed_for`), with guidance on both parts: ε̂ and x̂_0 as for
Gaussian runs, the categorical x̂_0 as (1 + w) log x̂_0(c) − w log x̂_0(∅).

:func:`inpaint_mixed` is RePaint (Lugmayr et al. 2022) on such a run: the loop of
:func:`difflab.sampling.inpaint.sample_inpaint` with the joint step as its reverse jump, and hooks that redraw the
observed cells of both parts from their own forward processes (numbers: q(x_s | x_0) of the Gaussian process;
a label: q(x_s | x_0) of its column's discrete process) and send both parts back up (q(x_t | x_s) of each).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difflab.conditional import draw_labels, seed_for, with_condition
from difflab.diffusion import DenoiseFn
from difflab.diffusion.categorical import Chains, make_categorical
from difflab.models.mixed import GaussianView
from difflab.rundir import Run
from difflab.sampling.grids import make_grid
from difflab.sampling.inpaint import GaussianKernel, sample_inpaint
from difflab.sampling.joint import Replace, sample_joint

ViewDenoiser = Callable[[int | None, GaussianView], DenoiseFn]  # (class label, view) → the denoiser to sample with


def generate_mixed(
    run: Run, denoiser_for: ViewDenoiser, n: int, *, label: int | None = None, guidance: float = 0.0,
    generator: torch.Generator, sampler: str = "ddpm", steps: int | None = None, grid: str = "trailing",
    options: dict[str, Any] | None = None, device: torch.device | str = "cpu", trajectory: bool = False,
    replace: Replace | None = None,
) -> tuple[Tensor, Tensor | None]:
    """``n`` rows of the generated features (n, model D) in the scaled space, of class ``label`` (None: no label),
    and their trajectory (K+1, n, model D) if asked (a masked cell is 0 there)."""
    layout = run.layout
    assert layout is not None
    ts = make_grid(run.diffusion, steps, grid)
    chains = Chains.start(make_categorical(layout.process, run.diffusion), layout.levels, n, generator, device,
                          ts[0])
    chains.guidance = (label, guidance)
    view = GaussianView(run.model, chains)
    x = torch.randn(n, len(layout.gaussian), generator=generator, device=device)
    states: list[Tensor] = [layout.join(x, chains.codes).cpu()] if trajectory else []
    keep = (lambda i, s, xs: states.append(layout.join(xs, chains.codes).cpu())) if trajectory else None
    x = sample_joint(denoiser_for(label, view), chains, x, run.diffusion, ts, sampler=sampler, generator=generator,
                     callback=keep, replace=replace, options=options)
    return layout.join(x, chains.codes).cpu(), (torch.stack(states) if trajectory else None)


def mixed_chunks(
    run: Run, denoiser_for: ViewDenoiser, n: int, *, code: int | None = None, seed: int = 0, chunk_size: int,
    trajectory: bool = False, guidance: float = 0.0, **kwargs: Any,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Whole scaled feature rows (b, D) of ``n`` samples ``chunk_size`` at a time (and trajectories if asked); a
    conditional run's of class ``code``, or of classes drawn from the training frequencies."""
    cond = run.condition
    gen = torch.Generator(device=kwargs.get("device", "cpu")).manual_seed(seed)
    rng = np.random.default_rng(seed % 2**63)
    for i, lo in enumerate(range(0, n, chunk_size)):
        b = min(chunk_size, n - lo)
        if cond is None:
            yield generate_mixed(run, denoiser_for, b, generator=gen, trajectory=trajectory, **kwargs)
            continue
        labels = np.full(b, code) if code is not None else draw_labels(cond, b, rng)
        x, traj = torch.empty(b, run.model_dim), None
        for k in np.unique(labels):
            rows = torch.as_tensor(np.flatnonzero(labels == k))
            g = torch.Generator(device=kwargs.get("device", "cpu")).manual_seed(seed_for(seed, i, int(k)))
            xk, tk = generate_mixed(run, denoiser_for, len(rows), label=int(k), guidance=guidance, generator=g,
                                    trajectory=trajectory, **kwargs)
            x[rows] = xk
            if tk is not None:
                traj = torch.empty(tk.shape[0], b, run.model_dim) if traj is None else traj
                traj[:, rows] = tk
        yield with_condition(run, x, labels), (with_condition(run, traj, labels) if traj is not None else None)


def inpaint_mixed(
    run: Run, denoiser_for: ViewDenoiser, x0: Tensor, known: Tensor, *, generator: torch.Generator,
    sampler: str = "ddpm", steps: int | None = None, grid: str = "trailing", resample: int = 1, jump: int = 1,
    options: dict[str, Any] | None = None, never: dict[int, int] | None = None,
) -> Tensor:
    """Scaled feature rows (B, D) with the features where ``known`` (B, D) is False drawn given the others, by
    RePaint over the joint process (an unconditional run). A label column is known or unknown as a whole (the first
    feature of its block says which). ``never`` {column: level}: a level the network's x̂_0 is denied (a column's
    "missing" level: a cell is filled with a value), so the last jump, to x_0 = x̂_0's draw, never lands on it."""
    layout = run.layout
    assert layout is not None
    ts = make_grid(run.diffusion, steps, grid)
    chains = Chains.start(make_categorical(layout.process, run.diffusion), layout.levels, len(x0), generator,
                          x0.device, ts[0])
    network = denoiser_for(None, GaussianView(run.model, chains))

    def denied(x: Tensor, t: float) -> Tensor:  # the network's call, with the ``never`` levels' logits at −∞
        out = network(x, t)
        for logits in chains.logits.values():
            for c, level in (never or {}).items():
                logits[c] = logits[c].index_fill(1, torch.tensor([level], device=logits[c].device), -math.inf)
        return out

    denoise = denied if never else network

    g_idx = list(layout.gaussian)
    g0, codes0 = layout.split(x0)
    g_known = known[:, g_idx]
    c_known = torch.stack([known[:, a] for a, _ in layout.groups], 1)
    process, gauss = chains.process, GaussianKernel(run.diffusion)

    def replace(x: Tensor, s: float) -> Tensor:
        if s == 0:
            g, c = g0, codes0
        else:
            g = gauss.marginal(g0, s, generator) if g0.shape[1] else g0
            c = torch.stack([process.q_sample(codes0[:, j], s, generator, k) for j, k in enumerate(layout.levels)], 1)
        chains.codes = torch.where(c_known, c, chains.codes)
        return torch.where(g_known, g.to(x.dtype), x)

    def renoise(x: Tensor, s: float, t: float) -> Tensor:
        chains.codes = torch.stack([process.q_forward(chains.codes[:, j], s, t, generator, k)
                                    for j, k in enumerate(layout.levels)], 1)
        chains.t = t
        return gauss.transition(x, s, t, generator) if x.shape[1] else x

    def joint_step(fn: DenoiseFn, x: Tensor, diffusion: Any, grid: list, **kw: Any) -> Tensor:
        return sample_joint(fn, chains, x, diffusion, grid, sampler=sampler, generator=kw.get("generator"),
                            options={k: v for k, v in kw.items() if k != "generator"})

    x = torch.randn(g0.shape, generator=generator, dtype=x0.dtype)
    cycle = {"variance": "large"} if sampler == "ddpm" else {}
    g = sample_inpaint(denoise, x, run.diffusion, ts, replace=replace, renoise=renoise, sampler=joint_step,
                       resample=resample, jump=jump, generator=generator, options=options, cycle_options=cycle)
    return layout.join(g, chains.codes)
