"""``difflab sweep``: registered on the main command line by ``difflab.cli`` (``register(app)``)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from difflab.errors import DifflabError

Opt = typer.Option


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise DifflabError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def sweep(
    grid: Annotated[Path, typer.Argument(help="Grid file (TOML): a base config, a grid table of KEY = lists of "
                                         "values, seeds, evaluation settings.", show_default=False)],
    out: Annotated[Path, Opt("--out", "-o", help="Sweep directory; cells already finished there are skipped.")],
    backend: Annotated[str, Opt(help="Where the cells run: local (a process pool on this machine) | ray (Ray "
                                "tasks on a local Ray or a cluster; pip install 'difflab\\[ray]').")] = "local",
    workers: Annotated[int | None, Opt(help="local: worker processes (default: the number of CPU cores); 1 runs "
                                       "the cells in this process.", min=1)] = None,
    address: Annotated[str | None, Opt(help="ray: the cluster to join, e.g. auto or HOST:6379 (default: the local "
                                       "Ray if one runs, else a new one for this sweep). --out must be on a file "
                                       "system every node sees.")] = None,
    cpus_per_task: Annotated[float | None, Opt(help="ray: CPUs reserved per task (a cell or a batched group), "
                                               "also its torch threads (default: 1).", min=0.01)] = None,
    gpus_per_task: Annotated[float | None, Opt(help="ray: GPUs reserved per task, fractions allowed (default: 1 "
                                               "for train.device cuda, or auto on a cluster with GPUs; else 0).",
                                               min=0)] = None,
    seeds: Annotated[str | None, Opt(help="Comma-separated seeds, replacing the grid file's, e.g. 0,1,2.")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="KEY=VALUE (repeatable): replace a grid axis "
                                          "(diffusion.T=[10,100]; [] drops the grids that vary KEY), change the base "
                                          "config (train.steps=1000) or the evaluation (evaluate.n=1000).")] = None,
    batch: Annotated[bool, Opt("--batch/--no-batch", help="Train compatible cells together when batched "
                               "training is available (their train seconds are then shared).")] = True,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No line per finished cell.")] = False,
    force: Annotated[bool, Opt("--force", help="Write into an --out that holds something else, or a sweep of "
                               "another grid, replacing its results (and retraining cells finished with another "
                               "config).")] = False,
) -> None:
    """Train and evaluate every cell of a grid (options × seeds) in parallel, in local processes or on a Ray
    cluster; write results.csv, results.md (mean ± sd over seeds) and results.png. Exit status 1 if any cell
    failed."""
    from difflab.sweep.grid import apply_changes, load_grid
    from difflab.sweep.runner import run_sweep

    spec = apply_changes(load_grid(grid), list(set_ or []), _seeds(seeds))
    spec.command = shlex.join(["difflab", *sys.argv[1:]]) if sys.argv[1:2] == ["sweep"] else ""
    summary = run_sweep(spec, out, backend=backend, workers=workers, address=address, cpus_per_task=cpus_per_task,
                        gpus_per_task=gpus_per_task, batch=batch, force=force,
                        echo=(lambda s: None) if quiet else typer.echo,
                        echo_err=lambda s: typer.echo(s, err=True))
    typer.echo(summary.line())
    if summary.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
