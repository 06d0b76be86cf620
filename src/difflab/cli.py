"""The ``difflab`` command line: train, sample, plot, evaluate, sweep, datasets, demo.

Every user error is one line on stderr (``error: …``) and exit status 2, with nothing half-written.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from difflab.errors import DifflabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Diffusion models on low-dimensional data, measured against a noise floor.",
)

Opt = typer.Option


@app.command()
def train(
    out: Annotated[Path, Opt("--out", "-o", help="run directory to create (or continue with --resume)")],
    preset: Annotated[str | None, Opt(help="'seed' = the tutorial's recipe exactly; default 'recommended'")] = None,
    config: Annotated[Path | None, Opt("--config", help="TOML config file (sections data, diffusion, model, ...)")] = None,
    data: Annotated[str | None, Opt(help="toy dataset name (see `difflab datasets`) or .csv/.parquet/.npy file")] = None,
    columns: Annotated[str | None, Opt(help="comma-separated columns of a file to use")] = None,
    n: Annotated[int | None, Opt(help="number of toy points to draw")] = None,
    scaler: Annotated[str | None, Opt(help="minmax | standard | none")] = None,
    schedule: Annotated[str | None, Opt(help="seed-linear | poly | linear | cosine | sigmoid")] = None,
    T: Annotated[int | None, Opt("--T", help="number of diffusion steps")] = None,
    parameterization: Annotated[str | None, Opt(help="eps | x0 | v")] = None,
    model: Annotated[str | None, Opt(help="seed | mlp")] = None,
    steps: Annotated[int | None, Opt(help="optimizer steps")] = None,
    batch_size: Annotated[int | None, Opt(help="mini-batch size (default of the seed preset: full batch)")] = None,
    lr: Annotated[float | None, Opt(help="learning rate")] = None,
    ema: Annotated[float | None, Opt(help="EMA decay of the weights, e.g. 0.999")] = None,
    seed: Annotated[int | None, Opt(help="seed of the weights, batches and noise")] = None,
    device: Annotated[str | None, Opt(help="auto | cpu | cuda")] = None,
    resume: Annotated[bool, Opt("--resume", help="continue the checkpoint in --out")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Train a diffusion model and write a run directory."""
    from difflab.config import load_saved_config, resolve_config
    from difflab.io import read_json
    from difflab.run import FILES, train_run

    overrides: dict[str, Any] = {
        "data": {"source": data, "columns": columns.split(",") if columns else None, "n": n, "scaler": scaler},
        "diffusion": {"schedule": schedule, "T": T, "parameterization": parameterization},
        "model": {"name": model},
        "train": {"steps": steps, "batch_size": batch_size, "lr": lr, "ema": ema, "seed": seed, "device": device},
    }
    if model is not None:
        overrides["model"]["options"] = {}
    if resume and (out / FILES["config"]).exists() and config is None and preset is None:
        saved = load_saved_config(read_json(out / FILES["config"]), str(out / FILES["config"]))
        cfg = resolve_config(saved.preset, overrides=_merge(saved.model_dump(mode="json"), overrides))
    else:
        if resume and not (out / FILES["checkpoint"]).exists():
            raise DifflabError(f"{out}: no checkpoint to resume from")
        cfg = resolve_config(preset, config, overrides)
    run = train_run(cfg, out, resume=resume, progress=not quiet)
    typer.echo(f"trained {cfg.model.name} on {cfg.data.source} ({run.train.shape[0]} rows, D={run.dim}) "
               f"for {cfg.train.steps} steps in {run.seconds:.1f} s -> {out}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict):
            out[k] = _merge(out.get(k) or {}, v)
        elif v is not None:
            out[k] = v
    return out


@app.command()
def sample(
    run_dir: Annotated[Path, typer.Argument(help="a trained run directory")],
    out: Annotated[Path, Opt("--out", "-o", help="output file: .csv or .npy (data units)")],
    n: Annotated[int, Opt(help="number of samples", min=1)] = 1000,
    sampler: Annotated[str | None, Opt(help="ddpm | ddim | dpm++ (default: the run's)")] = None,
    steps: Annotated[int | None, Opt(help="model calls K ≤ T (default T)")] = None,
    grid: Annotated[str | None, Opt(help="trailing | linspace")] = None,
    eta: Annotated[float | None, Opt(help="DDIM noise scale (0 = deterministic)")] = None,
    seed: Annotated[int, Opt(help="seed of x_T and the sampler's noise")] = 0,
    trajectory: Annotated[Path | None, Opt(help="also write the reverse trajectory (K+1, n, D) to this .npy")] = None,
    chunk_size: Annotated[int, Opt(help="points sampled at once (memory bound)", min=1)] = 262_144,
) -> None:
    """Draw samples from a trained run, in the data's own units."""
    from difflab.sample import sample_to_file

    path = sample_to_file(run_dir, out, n=n, sampler=sampler, steps=steps, grid=grid, eta=eta, seed=seed,
                          trajectory=trajectory, chunk_size=chunk_size)
    typer.echo(f"wrote {n} samples to {path}")


@app.command()
def plot(
    run_dir: Annotated[Path, typer.Argument(help="a trained run directory")],
    kind: Annotated[list[str] | None, Opt(help="figure(s) to draw; default all (see --help)")] = None,
    out: Annotated[Path | None, Opt("--out", "-o", help="folder for the figures (default RUN_DIR/figures)")] = None,
    t: Annotated[list[int] | None, Opt("--t", help="steps for the vector field (default 3 and T)")] = None,
    n: Annotated[int, Opt(help="samples to draw for the figures")] = 1000,
    seed: Annotated[int, Opt(help="seed of the samples")] = 0,
) -> None:
    """Draw a run's figures: data, forward, samples, trajectories, field, schedules, loss, animation."""
    from difflab.figures import FIGURES, make_figures

    kinds = kind or list(FIGURES)
    paths = make_figures(run_dir, out, kinds=kinds, field_ts=t, n=n, seed=seed)
    for p in paths:
        typer.echo(str(p))


@app.command()
def datasets() -> None:
    """List the built-in toy datasets."""
    from difflab.data import list_datasets

    rows = list_datasets()
    width = max(len(name) for name, _ in rows)
    for name, desc in rows:
        typer.echo(f"{name.ljust(width)}  {desc}")


@app.command()
def demo(
    out: Annotated[Path, Opt("--out", "-o", help="output folder")] = Path("demo-out"),
    quiet: Annotated[bool, Opt("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Train the tutorial's recipe and the recommended one on moons; write all figures and compare them."""
    from difflab.demo import run_demo

    run_demo(out, progress=not quiet, echo=typer.echo)


def _register_optional_commands() -> None:
    """evaluate and sweep live in their own modules (difflab.evaluation.cli, difflab.sweep)."""
    import importlib

    for mod in ("difflab.evaluation.cli", "difflab.sweep.cli"):
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        module.register(app)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"warning: {message}\n"


def main() -> None:
    warnings.formatwarning = _one_line_warning
    _register_optional_commands()
    try:
        app()
    except DifflabError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
