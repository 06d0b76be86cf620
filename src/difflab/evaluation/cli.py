"""The ``difflab evaluate`` command (picked up by :mod:`difflab.cli` through :func:`register`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option


def evaluate(
    target: Annotated[Path, typer.Argument(help="A trained run directory, or a .csv/.npy/.parquet file of samples "
                                           "(then --reference is required).", show_default=False)],
    reference: Annotated[str | None, Opt(help="True points: a toy dataset name (its i.i.d. sampler) or a data "
                                         "file (default for a run: its toy's i.i.d. sampler or its held-out "
                                         "rows).")] = None,
    n: Annotated[int | None, Opt(help="Points per sample in every comparison (the floor depends on n; default: "
                                 "2000, or the most a small reference allows).", show_default=False)] = None,
    repeats: Annotated[int | None, Opt(help="Independent sample draws averaged (default: at least 5, then more "
                                       "until the W1 ratio's standard error is at most 3 % of it, at most 64; the other metrics: the first 10).",
                                       show_default=False)] = None,
    floor_pairs: Annotated[int | None, Opt(help="Pairs of independent true samples each noise floor averages "
                                           "(default: at least 20, more until its standard error is at most 1.5 % "
                                           "of it, at most 300; floors are cached).", show_default=False)] = None,
    seed: Annotated[int, Opt(help="Seed of the samples, the true samples and the metrics.", min=0,
                             max=2**63 - 1)] = 0,
    metrics: Annotated[str | None, Opt(help="Comma-separated: w1, energy, mmd, swd, c2st (default: all).")] = None,
    sampler: Annotated[str | None, Opt(help="ddpm | ddim | dpm++ (default: the run's).")] = None,
    steps: Annotated[int | None, Opt(help="Model calls K, 1 ≤ K ≤ T (default: T).")] = None,
    grid: Annotated[str | None, Opt(help="Time grid for K < T: trailing | linspace.")] = None,
    eta: Annotated[float | None, Opt(help="DDIM noise scale.")] = None,
    json_out: Annotated[Path | None, Opt("--json", help="Also write the results to this .json file.")] = None,
    elbo: Annotated[bool, Opt("--elbo", help="Also report the ELBO (nats/dim, data units) of n held-out points, "
                              "and their true NLL where the density is known.")] = False,
    elbo_variance: Annotated[str, Opt(help="Reverse variance of the ELBO's model: large (β_t, the tighter bound) "
                                      "| small (β̃_t) | learned (a run trained with learned variances).")] = "large",
    nll: Annotated[bool, Opt("--nll", help="Also report the exact NLL of n held-out points under the "
                             "probability-flow ODE (nats/dim, data units; JSON key nll_ode).")] = False,
    raw_units: Annotated[bool, Opt("--raw-units", help="Distances in data units instead of columns standardised by "
                                   "the reference's mean and sd.")] = False,
    target_column: Annotated[str | None, Opt("--target", help="Column that ML efficacy predicts (default: a column named 'target', "
                                      "if the table has one).")] = None,
    force: Annotated[bool, Opt("--force", help="Allow --json to replace one of a run's own files.")] = False,
) -> None:
    """Compare a run's samples (or a sample file) with true points: every metric next to its noise floor, plus
    memorisation (distance to closest record), against real rows per-column KS/TV, correlations, piling at range
    ends and ML efficacy, and optionally the held-out ELBO."""
    from difflab.errors import ConfigError, DifflabError

    if not target.exists():
        raise DifflabError(f"{target}: no such run directory or sample file")
    from difflab.evaluation.report import evaluate_file, evaluate_run, format_report, parse_metrics, to_json
    from difflab.io import write_json
    from difflab.limits import check
    from difflab.protect import check_not_protected
    from difflab.sampling.output import check_output_path

    names = parse_metrics(metrics)
    if n is not None:
        check("eval_n", n, label="--n")
    if repeats is not None:
        check("repeats", repeats, label="--repeats")
    if json_out is not None:
        check_not_protected(json_out, force=force, option="--json")
        check_output_path(json_out, formats=(".json",))
    if target.is_dir():
        report = evaluate_run(target, n=n, repeats=repeats, floor_pairs=floor_pairs, seed=seed, metrics=names,
                              reference=reference,
                              with_elbo=elbo, with_nll=nll, elbo_variance=elbo_variance, sampler=sampler, steps=steps, grid=grid,
                              eta=eta, raw_units=raw_units, target=target_column)
    else:
        run_only = {"--elbo": elbo, "--nll": nll, "--sampler": sampler, "--steps": steps, "--grid": grid, "--eta": eta}
        given = [k for k, v in run_only.items() if v not in (None, False)]
        if given:
            raise ConfigError(f"{given[0]} applies to a run directory; {target} is a sample file")
        report = evaluate_file(target, reference=reference, n=n, repeats=repeats, floor_pairs=floor_pairs, seed=seed,
                               metrics=names,
                               raw_units=raw_units, target=target_column)
    typer.echo(format_report(report))
    if json_out is not None:
        write_json(json_out, to_json(report))
        typer.echo(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to ``app`` (once, however often it is called)."""
    if any(c.callback is evaluate for c in app.registered_commands):
        return
    app.command("evaluate")(evaluate)
