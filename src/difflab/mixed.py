"""Sampling a run whose table has discretely diffused columns (``--encoding multinomial|masked``), chunk by chunk.

Each chunk starts from x_T ~ N(0, I) for the Gaussian features and the discrete prior for the categorical cells
(uniform levels, or all masked), runs the joint sampler (:func:`difflab.sampling.joint.sample_joint`) and gives back
whole scaled feature rows: numbers as sampled, each categorical column ±1 one-hot (what the table scaler makes of a
level), and for a conditional run the condition's features of each row's class. A conditional run's rows are drawn
class by class (seeds :func:`difflab.conditional.seed_for`), with guidance on both parts: ε̂ and x̂_0 as for
Gaussian runs, the categorical x̂_0 as (1 + w) log x̂_0(c) − w log x̂_0(∅).
"""

from __future__ import annotations

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
