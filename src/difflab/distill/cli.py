"""The ``difflab distill`` command (picked up by :mod:`difflab.cli` through :func:`register`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from difflab.errors import DifflabError

Opt = typer.Option


def distill(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory: the teacher.", show_default=False)],
    out: Annotated[Path, Opt("--out", "-o", help="The student's run directory to create (new or empty), or to "
                             "continue with --resume.")],
    steps: Annotated[int | None, Opt(help="Network calls K of the student's sampler (progressive: 1, 2, 4, 8, …; at "
                                     "most the teacher's steps; default 4).")] = None,
    method: Annotated[str | None, Opt(help="progressive (Salimans & Ho 2022: halve the steps each round; the "
                                      "default) | consistency (Song et al. 2023: one call maps noise to data) | reflow "
                                      "(Liu et al. 2022: a straight-path velocity model on the teacher's ODE pairs)."
                                      )] = None,
    teacher_steps: Annotated[int | None, Opt(help="progressive: the teacher's DDIM steps N = K·2^r to start from "
                                             "(default: the largest at most its steps and 64); reflow: the jumps of "
                                             "the ODE sampler that draws the pairs (default 32).")] = None,
    rounds: Annotated[int | None, Opt(help="reflow: rounds k of k-rectified flow (default 1).")] = None,
    pairs: Annotated[int | None, Opt(help="reflow: (noise, sample) pairs drawn from the teacher per round (default "
                                     "10000).")] = None,
    round_steps: Annotated[int | None, Opt(help="Optimizer steps per round (default: 250 progressive, 1500 "
                                           "consistency, 2000 reflow).")] = None,
    batch_size: Annotated[int | None, Opt(help="Training rows per step (default 256).")] = None,
    lr: Annotated[float | None, Opt(help="AdamW learning rate, decayed linearly to 0 in each round (default "
                                    "2e-3).")] = None,
    intervals: Annotated[int | None, Opt(help="consistency: jumps N of the teacher's ODE discretisation (default "
                                         "18).")] = None,
    solver: Annotated[str | None, Opt(help="consistency: the teacher's ODE step, heun | ddim; reflow: the sampler "
                                      "of the pairs on the teacher's grid, heun | ddim | ode (default heun).")] = None,
    ema: Annotated[float | None, Opt(help="consistency: EMA decay μ of the target network (default 0.95).")] = None,
    seed: Annotated[int | None, Opt(help="Seed of the batches, times and noise (default 0).")] = None,
    checkpoint_every: Annotated[int | None, Opt(help="Steps between checkpoints (default 500; one per round "
                                                "too).")] = None,
    device: Annotated[str, Opt(help="auto | cpu | cuda.")] = "cpu",
    resume: Annotated[bool, Opt("--resume", help="Continue the distillation checkpoint in --out (same teacher and "
                                "options).")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Distil a trained run into a student run that samples in a few network calls.

    The student's run directory works with sample, evaluate, plot and report; its config holds its own sampler and
    its distill.json the teacher, the method and the settings.
    """
    from difflab.distill.settings import DEVICES

    if device not in DEVICES:
        raise DifflabError(f"--device {device!r}: choose one of: {' | '.join(DEVICES)}")
    values = {"method": method, "steps": steps, "teacher_steps": teacher_steps, "round_steps": round_steps,
              "batch_size": batch_size, "lr": lr, "intervals": intervals, "solver": solver, "ema": ema, "seed": seed,
              "checkpoint_every": checkpoint_every, "rounds": rounds, "pairs": pairs}
    from difflab.distill.run import distill_run, settings_for

    settings = settings_for(out, values, resume=resume)
    run = distill_run(run_dir, out, settings, resume=resume, progress=not quiet, device=device)
    s = run.config.sample
    typer.echo(f"distilled {run_dir} ({settings.method}) into a {s.steps}-call {s.sampler} student in "
               f"{run.seconds:.1f} s -> {out}")
    if settings.method == "reflow":
        from difflab.io import read_json

        straight = read_json(out / "distill.json")["straightness"]
        rounds_s = ", ".join(f"round {i} {v:.4f}" for i, v in enumerate(straight["rounds"], start=1))
        typer.echo(f"straightness S (Liu et al. 2022; 0 = straight): teacher {straight['teacher']:.4f}, {rounds_s}")


def register(app: typer.Typer) -> None:
    """Add ``distill`` to ``app`` (once, however often it is called)."""
    if any(c.callback is distill for c in app.registered_commands):
        return
    app.command("distill")(distill)
