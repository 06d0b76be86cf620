"""All of a run's figures, by name. Data and samples are drawn in the data's units; the forward process,
trajectories, vector field and animation in the scaled space where the diffusion runs (the tutorial's [-1, 1])."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from difflab import viz
from difflab.data.mixture_conditional import density_1d, mixture_conditional
from difflab.diffusion.schedules import SCHEDULES, make_schedule
from difflab.errors import ConfigError
from difflab.given import given_frame, sample_given
from difflab.rundir import FILES, Run, load_run, read_loss
from difflab.sample import eps_fn, sample_run, trajectory_times
from difflab.sampling.output import check_writable


class Context:
    """What the figures of one run share: the run, its samples and trajectory (drawn once, lazily)."""

    def __init__(self, run: Run, out: Path, n: int, seed: int, field_ts: list[int] | None,
                 given: dict[str, str] | None = None) -> None:
        self.run, self.out, self.n, self.seed, self.given = run, out, n, seed, given
        T = run.diffusion.T
        self.field_ts = field_ts or sorted({max(1, round(0.3 * T)), T})
        self._samples: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def scaled_train(self) -> np.ndarray:
        return self.run.scaler.transform(self.run.train)

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        if self._samples is None:
            x, traj = sample_run(self.run, self.n, seed=self.seed, trajectory=True)
            assert traj is not None
            self._samples = (x, traj)
        return self._samples


def _data(c: Context) -> Path:
    return viz.plot_data(c.run.train, c.out / "data.png", columns=c.run.columns, title="training data")


def _forward(c: Context) -> Path:
    T = c.run.diffusion.T
    ts = sorted({0, max(1, round(0.2 * T)), T})  # the tutorial's 0, 2, T at T = 10
    return viz.plot_forward(c.scaled_train, c.run.diffusion.alpha_bars.numpy(), ts, c.out / "forward.png",
                            seed=c.seed)


def _samples(c: Context) -> Path:
    x, _ = c.samples()
    return viz.plot_samples(x, c.run.train, c.out / "samples.png", columns=c.run.columns)


def _trajectories(c: Context) -> Path:
    return viz.plot_trajectories(c.samples()[1], c.out / "trajectories.png", ts=trajectory_times(c.run),
                                 title="reverse trajectories (scaled)")


def _field(c: Context) -> Path:
    traj = c.samples()[1][:, 0, :] if c.run.dim == 2 else None
    return viz.plot_vector_field(eps_fn(c.run), c.field_ts, c.out / "vector_field.png", trajectory=traj,
                                 T=c.run.diffusion.T, dim=c.run.dim)


def _schedules(c: Context) -> Path:
    T = c.run.diffusion.T
    curves = {f"{name} (T={T})": make_schedule(name, T, warn=False).betas for name in SCHEDULES}
    # either kind of process: β of its T steps (continuous time: the jumps between the T + 1 uniform times k/T)
    curves[f"this run: {c.run.config.diffusion.schedule}"] = c.run.diffusion.betas.numpy()
    return viz.plot_schedules(curves, c.out / "schedules.png")


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
        kinds = list(dict.fromkeys(kinds))  # each figure once, in the order asked
    else:
        kinds = [k for k in FIGURES if (k not in NEEDS_2D or run.dim == 2) and (k not in NEEDS_GIVEN or given)]
    if "conditional" in kinds:
        check_conditional(run, given)
    elif given:
        raise ConfigError("--given goes with --kind conditional")
    bad_t = [t for t in field_ts or [] if not 1 <= t <= run.diffusion.T]
    if bad_t:
        raise ConfigError(f"--t {bad_t[0]} is outside 1..T={run.diffusion.T}")
    c = Context(run, out, n, seed, field_ts, given)
    return [FIGURES[k](c) for k in kinds]
