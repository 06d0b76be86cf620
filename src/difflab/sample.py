"""Sampling a run directory into a file, in the data's own units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.errors import DifflabError
from difflab.run import Run, load_run
from difflab.sampling.api import DEFAULT_CHUNK, generate, generate_chunks
from difflab.sampling.output import check_output_path, write_array, write_chunks


def sampling_kwargs(run: Run, **over: Any) -> dict[str, Any]:
    """The run's saved sampling settings, with any non-None ``over`` on top, as kwargs for ``generate``."""
    s = run.config.sample.model_copy(update={k: v for k, v in over.items() if v is not None})
    options: dict[str, Any] = {"eta": s.eta} if s.sampler == "ddim" else {}
    if s.sampler == "ddpm":
        options["variance"] = s.variance
    return {"sampler": s.sampler, "steps": s.steps, "grid": s.grid, "options": options}


def sample_run(
    run: Run, n: int, *, seed: int = 0, trajectory: bool = False, **over: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` samples in data units, and the reverse trajectory (K+1, n, D) in the scaled space if asked."""
    x, traj = generate(run.denoiser(), run.diffusion, n, run.dim, seed=seed, trajectory=trajectory,
                       **sampling_kwargs(run, **over))
    data = run.scaler.inverse_transform(x.numpy().astype(np.float64))
    return data, (traj.numpy().astype(np.float64) if traj is not None else None)


def sample_to_file(
    run_dir: str | Path,
    out: str | Path,
    *,
    n: int,
    seed: int = 0,
    trajectory: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    **over: Any,
) -> Path:
    """Stream ``n`` samples of the run to ``out`` (.csv/.npy); optionally the trajectory (data units) to a .npy."""
    if n < 1:
        raise DifflabError(f"--n must be at least 1, got {n}")
    out = check_output_path(out)
    if trajectory is not None and Path(trajectory).suffix.lower() != ".npy":
        raise DifflabError(f"{trajectory}: trajectories are written as .npy")
    run = load_run(run_dir)
    kwargs = sampling_kwargs(run, **over)
    if trajectory is None:
        chunks = (x.numpy().astype(np.float64) for x, _ in generate_chunks(
            run.denoiser(), run.diffusion, n, run.dim, seed=seed, chunk_size=chunk_size, **kwargs))
        return write_chunks(out, chunks, n=n, columns=run.columns, transform=run.scaler.inverse_transform)
    x, traj = generate(run.denoiser(), run.diffusion, n, run.dim, seed=seed, chunk_size=chunk_size,
                       trajectory=True, **kwargs)
    assert traj is not None
    k1 = traj.shape[0]
    flat = run.scaler.inverse_transform(traj.reshape(-1, run.dim).numpy().astype(np.float64))
    from difflab.io import atomic_open

    with atomic_open(trajectory, "wb") as f:
        np.save(f, flat.reshape(k1, n, run.dim), allow_pickle=False)
    return write_array(out, run.scaler.inverse_transform(x.numpy().astype(np.float64)), run.columns)


def eps_fn(run: Run):  # noqa: ANN201
    """ε̂(x, t) on numpy points in the scaled space, for vector-field plots."""
    denoise = run.denoiser()

    def fn(x: np.ndarray, t: int) -> np.ndarray:
        return denoise(torch.as_tensor(x, dtype=torch.float32), int(t)).eps.numpy()

    return fn
