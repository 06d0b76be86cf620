"""Sampling a conditional run: rows of a chosen class, or of classes drawn from the training frequencies.

A conditional run's network generates every feature but the condition column's, given a class label
(:mod:`difflab.data.condition`). Every sampler calls ``denoise(x_t, t)`` with no room for a label, so rows are
generated class by class: the rows of one class share one denoiser (:meth:`difflab.diffusion.denoiser.Denoiser.given`,
with the guidance weight), and the condition's features, which the network does not generate, are put back beside
them. Without a chosen class each row's class is drawn from the training rows' class frequencies (seeded), so that
unconditional samples are whole rows too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difflab.data.condition import Condition, parse_where
from difflab.diffusion import DenoiseFn, Process
from difflab.errors import ConfigError
from difflab.rundir import Run
from difflab.sampling.api import generate

DenoiserFor = Callable[[int], DenoiseFn]  # class code → the denoiser of that class's rows


def where_code(run: Run, where: Mapping[str, Any] | None) -> int | None:
    """The class code that ``where`` ({column: value}) asks of ``run``, or None (classes drawn); a bad column or
    value, or a condition on a run trained without one, is a one-line error."""
    return parse_where(where, run.condition, str(run.path))


def check_guidance(run: Run, guidance: float | None) -> None:
    """Refuse a guidance weight where there is no unconditional prediction to guide away from."""
    if not guidance:
        return
    if run.condition is None:
        raise ConfigError(f"--guidance {guidance:g}: {run.path} was trained without a condition column; "
                          "classifier-free guidance needs a run trained with --condition COLUMN")
    if run.config.train.label_dropout == 0:
        raise ConfigError(f"--guidance {guidance:g}: {run.path} was trained with label_dropout = 0, so its network "
                          "never learned the unconditional prediction that guidance needs")


def seed_for(seed: int, *keys: int) -> int:
    """An independent seed for the part ``keys`` (chunk, class) of a draw seeded with ``seed``."""
    return int(np.random.SeedSequence([seed % 2**63, *keys]).generate_state(1)[0])


def draw_labels(condition: Condition, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` class codes drawn i.i.d. from the training rows' class frequencies."""
    return rng.choice(condition.n_classes, size=n, p=condition.frequencies)


def generate_labelled(
    denoiser_for: DenoiserFor, diffusion: Process, labels: np.ndarray, dim: int, *, seed: int = 0,
    trajectory: bool = False, **kwargs: Any,
) -> tuple[Tensor, Tensor | None]:
    """One point (D = ``dim``) per entry of ``labels`` (class codes), each drawn with its class's denoiser; the
    rows of each class are generated together (seed :func:`seed_for` (seed, class)) and put in the labels' order.
    ``kwargs`` go to :func:`difflab.sampling.api.generate` (sampler, steps, grid, options, device)."""
    labels = np.asarray(labels)
    x = torch.empty(len(labels), dim)
    traj: Tensor | None = None
    for k in np.unique(labels):
        rows = torch.as_tensor(np.flatnonzero(labels == k))
        xk, tk = generate(denoiser_for(int(k)), diffusion, len(rows), dim, seed=seed_for(seed, int(k)),
                          chunk_size=len(rows), trajectory=trajectory, **kwargs)
        x[rows] = xk
        if tk is not None:
            if traj is None:
                traj = torch.empty(tk.shape[0], len(labels), dim)
            traj[:, rows] = tk
    return x, traj


def with_condition(run: Run, x: Tensor, labels: np.ndarray) -> Tensor:
    """Generated features (..., B, model D) in the scaled space as whole feature rows (..., B, D): the condition's
    features of each row's class put in their place, scaled as the run's scaler scales them."""
    cond = run.condition
    assert cond is not None
    codes = np.zeros((cond.n_classes, run.dim))  # one row per class; the other columns do not matter (per column)
    codes[:, cond.start : cond.stop] = cond.features_of(np.arange(cond.n_classes))
    block = torch.as_tensor(run.scaler.transform(codes)[:, cond.start : cond.stop], dtype=x.dtype)
    full = torch.empty(*x.shape[:-1], run.dim, dtype=x.dtype)
    full[..., cond.model_columns(run.dim)] = x
    full[..., cond.start : cond.stop] = block[torch.as_tensor(labels, dtype=torch.long)]
    return full


def labelled_chunks(
    run: Run, denoiser_for: DenoiserFor, n: int, *, code: int | None = None, seed: int = 0,
    chunk_size: int, trajectory: bool = False, **kwargs: Any,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield whole scaled feature rows (b, D) (and the trajectory (K+1, b, D) if asked) of ``n`` samples of a
    conditional run, ``chunk_size`` at a time: all of class ``code``, or with classes drawn from the training
    frequencies (seeded by ``seed``)."""
    cond = run.condition
    assert cond is not None
    rng = np.random.default_rng(seed % 2**63)
    for i, lo in enumerate(range(0, n, chunk_size)):
        b = min(chunk_size, n - lo)
        labels = np.full(b, code) if code is not None else draw_labels(cond, b, rng)
        x, traj = generate_labelled(denoiser_for, run.diffusion, labels, run.model_dim, seed=seed_for(seed, i),
                                    trajectory=trajectory, **kwargs)
        yield with_condition(run, x, labels), (with_condition(run, traj, labels) if traj is not None else None)
