"""All of a run's figures, by name. Data and samples are drawn in the data's units; the forward process,
trajectories, vector field and animation in the scaled space where the diffusion runs (the tutorial's [-1, 1])."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab import viz
from difflab.data.mixture_conditional import density_1d, mixture_conditional
from difflab.diffusion import ContinuousDiffusion, GaussianDiffusion
from difflab.diffusion.continuous import CONTINUOUS
from difflab.diffusion.schedules import SCHEDULES, make_schedule
from difflab.errors import ConfigError
from difflab.given import given_frame, sample_given
from difflab.rundir import FILES, Run, load_run, read_loss
from difflab.sample import eps_fn, sample_run, sampling_kwargs, trajectory_times
from difflab.sampling.output import check_writable
from difflab.viz import levels


class Context:
    """What the figures of one run share: the run, its samples and trajectory (drawn once, lazily)."""

    def __init__(self, run: Run, out: Path, n: int, seed: int, field_ts: list[int] | None,
                 given: dict[str, str] | None = None) -> None:
        self.run, self.out, self.n, self.seed, self.given = run, out, n, seed, given
        self.field_ts = field_ts
        self._samples: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def scaled_train(self) -> np.ndarray:
        return self.run.scaler.transform(self.run.train)

    @property
    def scale(self) -> float:
        """The data's scale s in the scaled space: noise levels are chosen as multiples of it."""
        return levels.data_scale(self.scaled_train)

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        if self._samples is None:
            x, traj = sample_run(self.run, self.n, seed=self.seed, trajectory=True)
            assert traj is not None
            self._samples = (x, traj)
        return self._samples

    def ode_paths(self) -> np.ndarray | None:
        """For a stochastic sampler, the deterministic paths (DDIM with η = 0, the probability-flow ODE's first-order
        solver, on the same grid) from the same starts x_T; None for a deterministic sampler or a conditional run."""
        kwargs = sampling_kwargs(self.run)
        stochastic = kwargs["sampler"] in STOCHASTIC or kwargs["options"].get("eta", 0.0) > 0
        if not stochastic or self.run.condition is not None:
            return None
        _, ode = sample_run(self.run, self.n, seed=self.seed, trajectory=True, sampler="ddim", eta=0.0,
                            steps=kwargs["steps"], grid=kwargs["grid"])
        same_start = ode is not None and np.array_equal(ode[0], self.samples()[1][0])
        return ode if same_start else None


# Samplers that draw fresh noise on the way (ddim with η > 0 too): their paths scribble around the transport.
STOCHASTIC = {"ddpm", "dpm++-sde", "heun-sde", "consistency"}


def _data(c: Context) -> Path:
    return viz.plot_data(c.run.train, c.out / "data.png", columns=c.run.columns, title="training data")


def _forward(c: Context) -> Path:
    """x_t at the clean data, at σ = 0.1 s, 0.3 s and 1 s, and at t_max (:mod:`difflab.viz.levels`)."""
    process = c.run.diffusion
    like = torch.zeros((), dtype=torch.float64)
    steps = []
    for t in levels.noise_times(process, levels.FORWARD_LEVELS, c.scale):
        alpha, sigma = process.alpha_sigma(t, like) if t > 0 else (like + 1.0, like)
        steps.append((float(alpha), float(sigma), levels.level_label(process, t, tex=True)))
    return viz.plot_forward_levels(c.scaled_train, steps, c.out / "forward.png", seed=c.seed)


def _samples(c: Context) -> Path:
    x, _ = c.samples()
    return viz.plot_samples(x, c.run.train, c.out / "samples.png", columns=c.run.columns)


def _trajectories(c: Context) -> Path:
    times = trajectory_times(c.run)
    process = c.run.diffusion
    sampler = sampling_kwargs(c.run)["sampler"]
    return viz.plot_trajectories(c.samples()[1], c.out / "trajectories.png", ts=times, n_show=6,
                                 ode=c.ode_paths(), start=f"start $x_T$ ({levels.level_label(process, times[0], tex=True)})",
                                 title=f"reverse paths of {sampler} (scaled)")


def field_times(c: Context) -> tuple[list[float], list[str]]:
    """The field's times and titles: ``--t`` steps if given (k/T of t_max for a continuous process), else where
    σ = 0.1 s and 0.3 s (the data's structure) and t_max (:mod:`difflab.viz.levels`)."""
    process = c.run.diffusion
    if c.field_ts:
        ts = [int(k) if process.discrete else k / process.T * float(process.t_max) for k in c.field_ts]
    else:
        ts = levels.noise_times(process, levels.FIELD_LEVELS, c.scale, clean=False)
    return ts, [levels.level_label(process, t, tex=True) for t in ts]


def _field(c: Context) -> Path:
    ts, titles = field_times(c)
    return viz.plot_vector_field(eps_fn(c.run), ts, c.out / "vector_field.png", dim=c.run.dim, titles=titles,
                                 background=c.scaled_train)


def _log_snr_curve(process: Any) -> tuple[np.ndarray, np.ndarray]:
    """(t / t_max, λ(t)) at every step of a discrete process, at ~400 times of a continuous one; finite λ only."""
    t_max = float(process.t_max)
    if process.discrete:
        ts = np.arange(1, int(t_max) + 1, dtype=float)
    else:  # uniform in t, and geometric near 0, where λ of a VE-like schedule (EDM's σ = 80 t) climbs steeply
        ts = np.union1d(np.linspace(0.0, t_max, 201)[1:], np.geomspace(float(process.t_min), t_max, 200))
    lam = np.array([process.log_snr(float(t)) for t in ts])
    keep = np.isfinite(lam)
    return ts[keep] / t_max, lam[keep]


def _schedules(c: Context) -> Path:
    """The run's schedule among the others of its kind, on a log-SNR axis, with the forward figure's levels."""
    process = c.run.diffusion
    T = process.T
    if process.discrete:
        others = {f"{name} (T={T})": GaussianDiffusion(make_schedule(name, T, warn=False)) for name in SCHEDULES}
    else:
        others = {f"{name} (continuous)": ContinuousDiffusion(name, T) for name in CONTINUOUS}
    own = f"this run: {c.run.config.diffusion.schedule}"
    curves = {name: _log_snr_curve(p) for name, p in others.items() if p.to_dict() != process.to_dict()}
    curves[own] = _log_snr_curve(process)
    marks = [(t / float(process.t_max), process.log_snr(t), levels.level_label(process, t))
             for t in levels.noise_times(process, levels.FORWARD_LEVELS, c.scale, clean=False, end=False)]
    kwargs = sampling_kwargs(c.run)
    grid = [process.log_snr(t) for t in trajectory_times(c.run)[:-1]]  # the last time, 0, has λ = ∞
    return viz.plot_log_snr(curves, c.out / "schedules.png", highlight=own, marks=marks,
                            steps=(np.array(grid), f"{kwargs['sampler']} on the {kwargs['grid']} grid"))


def _loss(c: Context) -> Path:
    steps, losses = read_loss(c.run.path / FILES["loss"])
    return viz.plot_loss(steps, losses, c.out / "loss.png")


def _animation(c: Context) -> Path:
    return viz.animate_reverse(c.samples()[1], c.out / "reverse.gif", data=c.scaled_train)


def check_conditional(run: Run, given: dict[str, str] | None) -> None:
    """The conditional figure needs one given coordinate of a 2-D run (checked before any figure is drawn)."""
    if not given or len(given) != 1:
        raise ConfigError("--kind conditional needs one --given COLUMN=VALUE, e.g. --given x=0.5")
    given_frame(run, given, 1)  # an unknown column or a value that is not a number: one line, before drawing


def _conditional(c: Context) -> Path:
    """p(y | x = v) by imputation, with the exact conditional where the toy is a Gaussian mixture."""
    ((name, text),) = (c.given or {}).items()
    draws = sample_given(c.run, {name: text}, c.n, seed=c.seed).to_numpy(dtype=np.float64)
    k, value = c.run.columns.index(name), float(text)
    mixture = c.run.toy.mixture if c.run.toy is not None else None
    exact = (lambda y: density_1d(mixture_conditional(mixture, [k], [value]), y)) if mixture is not None else None
    return viz.plot_conditional(draws, c.run.train, k, value, c.out / f"conditional-{name}.png",
                                columns=c.run.columns, exact=exact)


FIGURES: dict[str, Callable[[Context], Path]] = {
    "data": _data,
    "forward": _forward,
    "samples": _samples,
    "trajectories": _trajectories,
    "field": _field,
    "schedules": _schedules,
    "loss": _loss,
    "animation": _animation,
    "conditional": _conditional,
}


# Figures that only exist for some widths D, and why.
NEEDS_2D = {"field": "the vector field is drawn on the plane", "conditional": "p(y | x) is drawn for a 2-D run"}
# Figures drawn only when asked for with what they need.
NEEDS_GIVEN = {"conditional"}


def make_figures(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    kinds: list[str] | None = None,
    field_ts: list[int] | None = None,
    n: int = 1000,
    seed: int = 0,
    given: dict[str, str] | None = None,
) -> list[Path]:
    """Draw the figures ``kinds`` of a run into ``out`` (default ``run_dir/figures``).

    By default every figure that applies to the run's width is drawn (``field`` only for D = 2; ``conditional``,
    p(y | x = v), only with ``given`` = {x: v}); asking for one that does not apply is an error. All names and the
    run are checked before the first figure is drawn.
    """
    unknown = [k for k in kinds or [] if k not in FIGURES]
    if unknown:
        raise ConfigError(f"unknown figure kind '{unknown[0]}'; choose from: {', '.join(FIGURES)}")
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    run = load_run(run_dir)
    out = Path(out) if out is not None else Path(run_dir) / "figures"
    check_writable(out)
    if kinds:
        for k in kinds:
            if k in NEEDS_2D and run.dim != 2:
                raise ConfigError(f"--kind {k}: {NEEDS_2D[k]}, so it needs D = 2 columns; this run has D = {run.dim}")
            if k in NEEDS_2D and run.layout is not None:
                raise ConfigError(f"--kind {k}: {NEEDS_2D[k]} of a Gaussian run; this run diffuses "
                                  f"{', '.join(run.layout.names)} by {run.layout.process} diffusion")
        kinds = list(dict.fromkeys(kinds))  # each figure once, in the order asked
    else:
        kinds = [k for k in FIGURES if (k not in NEEDS_2D or (run.dim == 2 and run.layout is None)) and (k not in NEEDS_GIVEN or given)]
    if "conditional" in kinds:
        check_conditional(run, given)
    elif given:
        raise ConfigError("--given goes with --kind conditional")
    bad_t = [t for t in field_ts or [] if not 1 <= t <= run.diffusion.T]
    if bad_t:
        raise ConfigError(f"--t {bad_t[0]} is outside 1..T={run.diffusion.T}")
    c = Context(run, out, n, seed, field_ts, given)
    return [FIGURES[k](c) for k in kinds]
