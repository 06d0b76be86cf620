"""``difflab report``: registered on the main command line by ``difflab.cli`` (``register(app)``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option


def report(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory.", show_default=False)],
    out: Annotated[Path | None, Opt("--out", "-o", help="The page to write, .html (default: "
                                    "RUN_DIR/report.html).")] = None,
    n: Annotated[int, Opt(help="Samples drawn for the figures (with their reverse trajectories).")] = 1000,
    seed: Annotated[int, Opt(help="Seed of the samples, the forward-process noise and the evaluation.", min=0,
                             max=2**63 - 1)] = 0,
    eval_n: Annotated[int, Opt("--eval-n", help="Points per sample in each metric (as `difflab evaluate "
                               "--n`).")] = 2000,
    repeats: Annotated[int | None, Opt(help="Sample draws averaged in each metric (default: as many as make the W1 "
                                       "ratio's standard error at most 3 % of it, 5 to 64).",
                                       show_default=False)] = None,
    floor_pairs: Annotated[int | None, Opt(help="Pairs of true samples each noise floor averages (as `difflab "
                                           "evaluate --floor-pairs`; default: 20 to 300, cached).",
                                           show_default=False)] = None,
    no_data: Annotated[bool, Opt("--no-data", help="Put no training row on the page (by default it holds up to "
                                 "2000 of them, in its figures); the figures show generated samples instead.")] = False,
    force: Annotated[bool, Opt("--force", help="Allow --out to replace a run's or a sweep's own file.")] = False,
) -> None:
    """Write one self-contained interactive HTML page of a run (opens with no network): the forward and reverse
    process and the learned field under t sliders, samples against data, metrics with noise floors, loss and
    schedule. The page holds up to 2000 of the run's real training rows unless --no-data."""
    from difflab.report.run_page import write_report

    path = write_report(run_dir, out, n=n, seed=seed, eval_n=eval_n, repeats=repeats, floor_pairs=floor_pairs,
                        no_data=no_data, force=force)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
