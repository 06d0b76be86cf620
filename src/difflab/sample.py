"""Sampling a run directory into a file, in the data's own units; a table run's samples decoded to its rows.

A conditional run (:mod:`difflab.conditional`) samples rows of one class (``where={column: value}``) or of classes
drawn from the training frequencies, with classifier-free guidance weight ``guidance``; its samples are whole rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from difflab.assemble import STOCHASTIC, check_coupled_sampler, check_jumps, denoiser
from difflab.compute import cpu_threads, default_threads
from difflab.conditional import check_guidance, labelled_chunks, where_code
from difflab.config import SampleConfig, merge_config
from difflab.data.coltypes import is_temporal
from difflab.data.table_files import TABLE_FORMATS, check_table_format, write_table
from difflab.diffusion import DenoiseFn
from difflab.errors import ConfigError, DifflabError
from difflab.io import atomic_open
from difflab.limits import check
from difflab.mixed import ViewDenoiser, mixed_chunks
from difflab.models.mixed import GaussianView
from difflab.protect import check_not_protected
from difflab.rundir import Run, load_run
from difflab.sampling import SAMPLERS, check_options, make_grid
from difflab.sampling.api import DEFAULT_BLOCK, DEFAULT_CHUNK, generate_chunks
from difflab.sampling.budgets import budget_choice, budget_family
from difflab.sampling.device import model_device, model_on, on_device
from difflab.sampling.guards import GUARDS, data_box
from difflab.sampling.joint import check_joint_sampler
from difflab.sampling.output import check_output_path, write_array, write_chunks

# The command-line option behind each sampling setting, to name it in error messages.
OPTION_LABELS = {f"sample.{k}": f"--{k}" for k in ("sampler", "steps", "grid", "eta", "variance", "guard", "guidance")}
OPTION_LABELS["sample.options"] = "--option"


def with_budget(run: Run, over: dict[str, Any]) -> dict[str, Any]:
    """``over`` with the few-step default when it gives ``steps`` alone (no sampler, no grid) and the run's config
    names no steps or sampler options of its own: ``--steps K`` is then K network calls, sampled with the pair
    measured best for that budget that makes a grid on the run's process (:func:`difflab.sampling.budgets.
    budget_choice`), or with the run's own sampler if none does."""
    own, steps = run.config.sample, over.get("steps")
    if (steps is None or steps < 1 or over.get("sampler") is not None or over.get("grid") is not None
            or own.steps is not None or own.options):
        return over
    coupled = run.config.train.coupling != "none"  # a coupled run takes deterministic samplers only
    pick = budget_choice(int(steps), lambda s, g, k: grid_fits(run, k, g) and not (coupled and s in STOCHASTIC),
                         family=budget_family(run.diffusion))
    if pick is None:  # no measured pair makes that many steps on this schedule: the run's own sampler
        return over
    return {**over, "sampler": pick[0], "grid": pick[1], "steps": pick[2]}


def grid_fits(run: Run, steps: int, grid: str) -> bool:
    """Whether the run's process has a ``grid`` of ``steps`` distinct times."""
    try:
        make_grid(run.diffusion, steps, grid)
    except ConfigError:
        return False
    return True


def sample_settings(run: Run, **over: Any) -> SampleConfig:
    """The run's saved sampling settings with any non-None ``over`` on top, validated against the run; ``steps``
    alone is a budget of network calls (:func:`with_budget`)."""
    over = with_budget(run, over)
    s = merge_config(run.config, {"sample": over}, labels=OPTION_LABELS).sample
    if s.sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{s.sampler}'; choose one of: {', '.join(SAMPLERS)}")
    check_options(s.sampler, s.options)
    if s.steps is not None:  # a continuous-time grid has no T to bound it
        check("T", s.steps, label="--steps")
    check_coupled_sampler(run.config.train.coupling, s.sampler, s.eta)
    check_jumps(s.sampler, run.config.model.name)
    try:  # --steps outside 1..T fails here, before any work
        make_grid(run.diffusion, s.steps, s.grid)
    except ConfigError as e:
        raise ConfigError(f"--steps {s.steps}: {e}") from None
    if s.variance == "learned" and run.config.diffusion.variance != "learned-range":
        raise ConfigError(f"--variance learned: {run.path} was trained with fixed variances")
    if over.get("eta") is not None and s.sampler != "ddim":
        warnings.warn(f"--eta applies to the ddim sampler only; ignored for {s.sampler}", stacklevel=2)
    check_guidance(run, s.guidance)
    if run.layout is not None:
        check_joint_sampler(s.sampler)
    return s


def sampling_kwargs(run: Run, **over: Any) -> dict[str, Any]:
    """The run's sampling settings, with any non-None ``over`` on top, as kwargs for ``generate``."""
    s = sample_settings(run, **over)
    options: dict[str, Any] = {"eta": s.eta} if s.sampler == "ddim" else {}
    if s.sampler == "ddpm" and s.variance is not None:
        options["variance"] = s.variance
    return {"sampler": s.sampler, "steps": s.steps, "grid": s.grid, "options": {**options, **s.options}}


def run_denoiser(run: Run, label: int | None = None, **over: Any) -> DenoiseFn:
    """The run's denoiser with the sampling settings' guard on x̂_0 (``guard``: none | clip | threshold), whose box
    is the training rows' range in the scaled space widened by ``guard_margin`` (:func:`difflab.sampling.guards.
    data_box`). A conditional run's is that of class ``label`` (None: no label) with the settings' ``guidance``."""
    s = sample_settings(run, **over)
    denoise = run.network_denoiser().given(label, guidance=s.guidance or 0.0) if run.condition else run.denoiser()
    return guarded(run, denoise, s)


def guarded(run: Run, denoise: DenoiseFn, s: SampleConfig) -> DenoiseFn:
    """``denoise`` with the settings' guard on x̂_0 of the features it predicts (a mixed run's: the Gaussian ones)."""
    if s.guard == "none":
        return denoise
    scaled = run.scaler.transform(run.train)
    if run.condition is not None:
        scaled = scaled[:, run.condition.model_columns(run.dim)]
    if run.layout is not None:
        scaled = scaled[:, list(run.layout.gaussian)]
    low, high = data_box(scaled, s.guard_margin)
    return GUARDS[s.guard](denoise, run.diffusion, low, high)


def view_denoisers(run: Run, **over: Any) -> ViewDenoiser:
    """For a run with discretely diffused columns: (class label, the network's Gaussian view) → the denoiser the
    joint sampler calls, with the settings' guidance and guard."""
    s = sample_settings(run, **over)

    def make(label: int | None, view: GaussianView) -> DenoiseFn:
        d = denoiser(run.config, view, run.diffusion)
        return guarded(run, d.given(label, guidance=s.guidance or 0.0) if run.condition else d, s)

    return make


def scaled_chunks(run: Run, n: int, *, code: int | None = None, seed: int = 0, chunk_size: int = DEFAULT_CHUNK,
                  trajectory: bool = False, device: torch.device | str = "cpu",
                  **over: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """``n`` samples of the run, whole feature rows (b, D) in the scaled space ``chunk_size`` at a time, with their
    trajectory (K+1, b, D) if asked; a conditional run's of class ``code`` (None: classes drawn)."""
    kwargs = {**sampling_kwargs(run, **over), "device": device}
    if run.layout is not None:
        return mixed_chunks(run, view_denoisers(run, **over), n, code=code, seed=seed, chunk_size=chunk_size,
                            trajectory=trajectory, guidance=sample_settings(run, **over).guidance or 0.0, **kwargs)
    if run.condition is None:
        return generate_chunks(run_denoiser(run, **over), run.diffusion, n, run.dim, seed=seed, chunk_size=chunk_size,
                               trajectory=trajectory, **kwargs)
    return labelled_chunks(run, lambda k: run_denoiser(run, k, **over), n, code=code, seed=seed, chunk_size=chunk_size,
                           trajectory=trajectory, **kwargs)


def joined(chunks: Iterator[tuple[torch.Tensor, torch.Tensor | None]]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The chunks of :func:`scaled_chunks` as one (n, D) tensor, and one (K+1, n, D) trajectory if they carry one."""
    parts = list(chunks)
    x = torch.cat([c for c, _ in parts])
    return x, (torch.cat([t for _, t in parts], dim=1) if parts[0][1] is not None else None)


def sampling_threads(run: Run, batch: int) -> contextlib.AbstractContextManager[None]:
    """The trainer's CPU thread rule for a network that sees ``batch`` rows per call (at most the sampler's block
    of DEFAULT_BLOCK rows on the CPU): a small network runs on one thread.

    Thread start-up and hand-off cost more than a small matrix product saves, and on a busy machine much more: the
    tutorial's network sampled 500 points 60x slower on 2 threads than on 1 while other processes ran.
    """
    n_params = sum(p.numel() for p in run.model.parameters())
    batch = min(batch, DEFAULT_BLOCK)
    device = next(itertools.chain(run.model.parameters(), run.model.buffers())).device  # oracles have only buffers
    return cpu_threads(default_threads(n_params, batch) if device.type == "cpu" else None)


def run_on(run: Run, device: torch.device) -> Run:
    """``run`` with its network on ``device`` (a copy there; the run's own model stays where it is)."""
    model = model_on(run.model, device)
    return run if model is run.model else dataclasses.replace(run, model=model)


def sample_run(
    run: Run, n: int, *, seed: int = 0, trajectory: bool = False, device: str = "auto",
    where: Mapping[str, Any] | None = None, **over: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` samples in data units, and the reverse trajectory (K+1, n, D) in the scaled space if asked.

    ``device``: auto | cpu | cuda. auto samples on CUDA when available and, if that fails, on the CPU with one
    warning; a named device that fails is a one-line error (:func:`difflab.sampling.device.on_device`). A seed's
    points depend on the device. A conditional run: ``where={column: value}`` draws rows of that class (default:
    classes drawn from the training frequencies), ``guidance=w`` guides them (Ho & Salimans 2022)."""
    check("samples", n, label="n =", memory=8.0 * n * run.dim)
    code = where_code(run, where)
    return on_device(device, lambda dev: _sample_run(run_on(run, dev), n, code=code, seed=seed, trajectory=trajectory,
                                                     **over))


def _sample_run(
    run: Run, n: int, *, code: int | None = None, seed: int = 0, trajectory: bool = False, **over: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    with sampling_threads(run, min(n, DEFAULT_CHUNK)):
        x, traj = joined(scaled_chunks(run, n, code=code, seed=seed, trajectory=trajectory,
                                       device=model_device(run.model), **over))
    data = run.scaler.inverse_transform(x.numpy().astype(np.float64))
    return data, (traj.numpy().astype(np.float64) if traj is not None else None)


def trajectory_times(run: Run, **over: Any) -> list[float]:
    """The time of each state of :func:`sample_run`'s trajectory, [t_max, ..., 0] (steps T..0 in discrete time):
    traj[k] is x at times[k]."""
    kwargs = sampling_kwargs(run, **over)
    return make_grid(run.diffusion, kwargs["steps"], kwargs["grid"])


def decode_rows(run: Run, x: np.ndarray) -> pd.DataFrame:
    """Samples (N, D) in data units as rows of the run's table: decoded by its spec (labels, whole numbers, dtypes)
    for a table run, else one float column per feature."""
    return run.table.decode(x) if run.table is not None else pd.DataFrame(x, columns=run.columns)


def sample_frame(run: Run, n: int, *, seed: int = 0, **over: Any) -> pd.DataFrame:
    """``n`` samples as a DataFrame of the run's columns (:func:`decode_rows` of :func:`sample_run`; ``where`` and
    ``guidance`` for a conditional run)."""
    return decode_rows(run, sample_run(run, n, seed=seed, **over)[0])


def sample_to_file(
    run_dir: str | Path,
    out: str | Path,
    *,
    n: int,
    seed: int = 0,
    trajectory: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    device: str = "auto",
    force: bool = False,
    **over: Any,
) -> Path:
    """:func:`_sample_to_file` on ``device`` (auto | cpu | cuda, as in :func:`sample_run`): if sampling on CUDA
    fails, the file is written on the CPU instead (auto) or nothing is written (cuda, a one-line error).
    ``force``: allow ``out`` (or ``trajectory``) to be one of a run's own files (:mod:`difflab.protect`)."""
    return on_device(device, lambda dev: _sample_to_file(run_dir, out, n=n, seed=seed, trajectory=trajectory,
                                                         chunk_size=chunk_size, device=dev, force=force, **over))


def _sample_to_file(
    run_dir: str | Path,
    out: str | Path,
    *,
    n: int,
    seed: int = 0,
    trajectory: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    device: torch.device,
    where: Mapping[str, Any] | None = None,
    force: bool = False,
    **over: Any,
) -> Path:
    """Stream ``n`` samples of the run to ``out`` (.csv/.npy/.parquet), in data units; optionally also the reverse
    trajectory (K+1, n, D), in data units, to the .npy ``trajectory``. Every input is checked before sampling starts.

    A table run's rows are decoded (category labels, whole numbers, the input's dtypes); they fit a .npy only when
    every column is a number. The trajectory stays in the model's features (data units, before decoding). A
    conditional run's rows are of the class ``where`` names ({column: value}), else of classes drawn from the
    training frequencies."""
    if n < 1:
        raise DifflabError(f"--n must be at least 1, got {n}")
    if chunk_size < 1:
        raise DifflabError(f"--chunk-size must be at least 1, got {chunk_size}")
    check("samples", n, label="--n", memory=8.0 * n)
    check_not_protected(out, force=force)  # before the writability probe touches its folder
    if trajectory is not None:
        check_not_protected(trajectory, force=force, option="--trajectory")
    out = check_output_path(out, formats=TABLE_FORMATS)
    if trajectory is not None:
        trajectory = check_output_path(trajectory, formats=(".npy",))
        if trajectory.resolve() == out.resolve():
            raise DifflabError(f"{trajectory}: the trajectory needs a file of its own, not the samples' --out")
    run = run_on(load_run(run_dir), device)
    code = where_code(run, where)
    kwargs = sampling_kwargs(run, **over)  # the settings, checked before any file is touched
    if trajectory is not None:  # held in memory whole: (K+1) states of n points
        states = (kwargs["steps"] or run.diffusion.T) + 1
        check("array_bytes", 8 * states * n * run.dim, label=f"--trajectory of {states} states × {n} points × "
              f"D = {run.dim}: bytes", memory=8.0 * states * n * run.dim)
    as_rows = run.table is not None or out.suffix.lower() == ".parquet"  # else the numeric writer, as always
    if run.table is not None:
        labelled = [c.name for c in run.table.columns if (not c.numeric and c.kind != "constant")
                    or is_temporal(c.dtype)]
        check_table_format(out, all_numbers=run.table.all_numbers, text_columns=labelled)
    if trajectory is None:
        with sampling_threads(run, min(n, chunk_size)):
            chunks = (in_data_units(run, finite(x.numpy().astype(np.float64), out), out) for x, _ in scaled_chunks(
                run, n, code=code, seed=seed, chunk_size=chunk_size, device=device, **over))
            if as_rows:
                return write_table(out, (decode_rows(run, c) for c in chunks), n=n)
            return write_chunks(out, chunks, n=n, columns=run.columns)
    with sampling_threads(run, min(n, chunk_size)):
        x, traj = joined(scaled_chunks(run, n, code=code, seed=seed, chunk_size=chunk_size, trajectory=True,
                                       device=device, **over))
    assert traj is not None
    data = in_data_units(run, finite(x.numpy().astype(np.float64), out), out)
    k1 = traj.shape[0]
    flat = run.scaler.inverse_transform(traj.reshape(-1, run.dim).numpy().astype(np.float64))
    path = write_table(out, [decode_rows(run, data)], n=n) if as_rows else write_array(out, data, run.columns)
    with atomic_open(trajectory, "wb") as f:
        np.save(f, flat.reshape(k1, n, run.dim), allow_pickle=False)
    return path


def in_data_units(run: Run, x: np.ndarray, out: Path) -> np.ndarray:
    """Scaled samples ``x`` unscaled to data units, where they must still be finite: a column whose range reaches
    float64's limit (±1.8e308) can overflow on the way back, a corrupt scaler can make NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        data = run.scaler.inverse_transform(x)
    bad = int((~np.isfinite(data)).any(axis=1).sum())
    if bad:
        raise DifflabError(f"{out}: not written: {bad} of {len(data)} samples in a chunk are not finite in the data's "
                           "units (the scaler overflows float64 there: values near ±1.8e308); rescale the data "
                           "before training")
    return data


def finite(x: np.ndarray, out: Path) -> np.ndarray:
    """``x`` if every value is finite, else a one-line error (the sampler diverged; nothing is written)."""
    bad = int((~np.isfinite(x)).any(axis=1).sum())
    if bad:
        raise DifflabError(f"{out}: not written: {bad} of {len(x)} samples in a chunk are not finite (the sampler "
                           "diverged); try --guard clip, another --sampler, or more --steps")
    return x


def eps_fn(run: Run):  # noqa: ANN201
    """ε̂(x, t) on numpy points in the scaled space, for vector-field plots. A conditional run's is the
    unconditional prediction of the features it generates, and 0 on the condition's features (which stay put)."""
    denoise = run.network_denoiser()
    cols = run.condition.model_columns(run.dim) if run.condition is not None else None

    def fn(x: np.ndarray, t: float) -> np.ndarray:
        x = torch.as_tensor(x, dtype=torch.float32)
        if cols is None:
            return denoise(x, t).eps.numpy()
        eps = torch.zeros_like(x)
        eps[:, cols] = denoise(x[:, cols], t).eps
        return eps.numpy()

    return fn
