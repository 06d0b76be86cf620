"""``difflab report RUN_DIR``: one self-contained interactive HTML page per run, with every figure and number.

The page samples the run once (``n`` points with their reverse trajectory, seed ``seed``) for the figures, and
evaluates it with :func:`difflab.evaluation.report.evaluate_run` (every metric next to its noise floor, on
``eval_n`` points × ``repeats``) for the table. All inputs are checked before any sampling starts; the page is
written atomically.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

from difflab.errors import ConfigError
from difflab.escape import html_text
from difflab.evaluation.metrics import METRICS
from difflab.evaluation.report import evaluate_run
from difflab.evaluation.uncertainty import format_ratio
from difflab.limits import check
from difflab.protect import check_not_protected
from difflab.report import points, process
from difflab.report.html import Section, figure_html, render_page, table_html, write_page
from difflab.rundir import FILES, Run, load_run, read_loss
from difflab.sample import eps_fn, sample_run, trajectory_times
from difflab.sampling.output import check_writable

DEFAULT_NAME = "report.html"


def report_path(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None) -> Path:
    """``out``, or RUN_DIR/report.html; it must end in .html and be writable."""
    path = Path(out) if out is not None else Path(run_dir) / DEFAULT_NAME
    if path.is_dir():
        raise ConfigError(f"--out {path}: is a folder; give a file name ending in .html")
    if path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {path}: expected an .html file")
    return check_writable(path)


def _fmt(v: float, digits: int = 4) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def metrics_section(run: Run, *, n: int, repeats: int | None, seed: int, floor_pairs: int | None = None,
                    evaluation: dict[str, Any] | None = None) -> Section:
    """The metric table with noise floors (and memorisation) from :func:`evaluate_run`; a note when the run keeps
    no true points to compare with. A file's held-out rows limit n to half their number (two disjoint samples)."""
    title = "Metrics against the noise floor"
    if run.toy is None and run.heldout is None:
        return Section(title, "", note="This run keeps no true points (a data file trained with holdout = 0), so "
                       "there is nothing to compare samples with; `difflab evaluate RUN --reference FILE` can.")
    note = ""
    if run.toy is None and run.heldout is not None and len(run.heldout) < 2 * n:
        n = len(run.heldout) // 2
        note = f"n lowered to {n}: the run keeps {len(run.heldout)} held-out rows and each comparison needs 2 n. "
        if n < 2:
            return Section(title, "", note=f"Only {len(run.heldout)} held-out rows: too few to measure.")
    rep = evaluation or evaluate_run(run.path, n=n, repeats=repeats, floor_pairs=floor_pairs, seed=seed)
    rows = [[m, METRICS[m].description, _fmt(rep[m]["value"]), _fmt(rep[m]["floor"]),
             format_ratio(rep[m]["ratio"], rep[m]["ratio_se"]), str(rep[m]["repeats"]), str(rep[m]["floor_pairs"])]
            for m in METRICS if m in rep]
    body = table_html(["metric", "what it measures", "samples vs truth", "noise floor", "ratio ± se",
                       "sample draws", "floor pairs"], rows, table_id="metrics", text_columns=(1, 4))
    mem = rep["memorisation"]
    s = rep["sampling"]
    body += "<p>" + html.escape(
        f"Memorisation: median distance to the nearest training point {_fmt(mem['generated_to_train'])} for samples "
        f"vs {_fmt(mem['heldout_to_train'])} for true points, ratio {_fmt(mem['ratio'], 3)} (1 = like new data, "
        "much below 1 = copies training points).") + "</p>"
    note += (f"Truth: {rep['reference']}; n = {rep['n']} points per sample; sampler "
             f"{s['sampler']}, {s['steps']} steps. Floor = the same metric between two independent true samples "
             "of the same size, averaged over the pairs shown; ratio 1 = as close as the data allow; ± = standard "
             "error of the ratio from the spread of both the sample draws and the floor pairs (delta method).")
    return Section(title, body, note=note)


# How many training rows the page carries at most: the samples figure's data (2000), the forward process (400) and
# the field's background (1000) are drawn from the same rows.
EMBEDDED_ROWS = 2000


def _intro(run: Run, n: int, seed: int, times: list[int], *, no_data: bool) -> list[str]:
    c = run.config
    seconds = f", trained in {run.seconds:.3g} s" if math.isfinite(run.seconds) else ""
    rows = min(len(run.train), EMBEDDED_ROWS)
    privacy = ("This page holds no training rows (--no-data): the forward process and the field's background show "
               "generated samples instead." if no_data else
               f"This page holds up to {rows} of the run's real training rows (in the figures' data, as numbers "
               "anyone with the file can read); share it with care, or write it with --no-data.")
    return [
        f"Run {run.path}: {c.data.source} ({len(run.train)} training rows, D = {run.dim}: {', '.join(run.columns)}).",
        f"Model {c.model.name} ({c.diffusion.parameterization}-prediction), schedule {run.config.diffusion.schedule} "
        f"with T = {run.diffusion.T}, {c.train.steps} training steps{seconds}; sampler {c.sample.sampler} with "
        f"{len(times) - 1} steps.",
        f"Figures from {n} samples drawn with seed {seed}. The sliders move through the noise level σ (x_t / α_t = "
        "x_0 + σ ε), their positions spread evenly in log σ and labelled with σ and the time t; drag to zoom, "
        "double-click to reset, click a legend entry to hide it.",
        privacy,
    ]


def _relabel(fig: Any, old: str, new: str) -> Any:
    """``fig`` with ``old`` replaced by ``new`` in its trace names (frames too) and subplot titles."""
    for trace in [*fig.data, *(t for f in fig.frames or () for t in f.data)]:
        if isinstance(getattr(trace, "name", None), str):
            trace.name = trace.name.replace(old, new)
    for note in fig.layout.annotations or ():
        if isinstance(note.text, str):
            note.text = note.text.replace(old, new)
    return fig


def build_report(run_dir: str | os.PathLike[str], *, n: int = 1000, seed: int = 0, eval_n: int = 2000,
                 repeats: int | None = None, floor_pairs: int | None = None, no_data: bool = False,
                 evaluation: dict[str, Any] | None = None) -> str:
    """The page of the run at ``run_dir`` as HTML text (see the module docstring); ``repeats`` None: as many
    sample draws as make the W1 ratio 3 % precise (:func:`difflab.evaluation.evaluate_samples`). ``no_data``: no
    training row on the page (the figures that show them show generated samples instead). ``evaluation``: the
    result of :func:`evaluate_run` on this run, when the caller has it already (then not evaluated again)."""
    for name, value, low in (("--n", n, 1), ("--eval-n", eval_n, 2), ("--repeats", repeats, 1),
                             ("--floor-pairs", floor_pairs, 2)):
        if value is not None and value < low:
            raise ConfigError(f"{name} must be at least {low}, got {value}")
    check("points", n, label="--n")
    check("eval_n", eval_n, label="--eval-n")
    if repeats is not None:
        check("repeats", repeats, label="--repeats")
    run = load_run(run_dir)
    steps, losses = read_loss(run.path / FILES["loss"])  # a run without a readable loss log fails before sampling
    times = trajectory_times(run)
    samples, traj = sample_run(run, n, seed=seed, trajectory=True)
    assert traj is not None
    shown = run.scaler.transform(samples) if no_data else run.scaler.transform(run.train)
    columns = [html_text(c) for c in run.columns]  # Plotly draws strings as HTML (difflab.escape)
    figure = (lambda fig: _relabel(fig, "training data", "generated samples")) if no_data else (lambda fig: fig)
    d = run.dim
    process_note = {1: "D = 1: the density of x_t, as histograms.", 2: ""}.get(
        d, f"D = {d}: the first two of {d} columns of x_t.")
    sections = [Section(
        "Forward and reverse process",
        figure_html(figure(process.process_figure(shown, traj, times, run.diffusion, seed=seed,
                                                  columns=columns)), "process"),
        note=f"In the scaled space, where the diffusion runs. {process_note}".strip())]
    if d == 2 and run.layout is None:
        sections.append(Section("The learned field −ε̂(x, t)", figure_html(
            figure(process.field_figure(eps_fn(run), traj, times, shown, diffusion=run.diffusion)), "field"),
            note="Arrows: minus the predicted noise, the direction the reverse step moves x_t; one arrow scale "
                 "for every t. Red: reverse trajectories from x_T down to t."))
    else:
        why = (f"D = 2 only; this run has D = {d}" if d != 2 else
               "D = 2 only, of Gaussian runs; this run diffuses categorical columns by a discrete process")
        sections.append(Section("The learned field −ε̂(x, t)", "", note=f"The vector field is drawn for {why}. "
                                "The reverse process is in the figure above."))
    figs = points.samples_figures(None if no_data else run.train, samples, columns, seed=seed,
                                  max_points=EMBEDDED_ROWS)
    sections.append(Section("Samples" if no_data else "Samples against data", "".join(
        figure_html(f, f"samples-{i}") for i, f in enumerate(figs)),
        note=f"In the data's units. {points.what_is_shown(d)}"))
    sections.append(metrics_section(run, n=eval_n, repeats=repeats, seed=seed, floor_pairs=floor_pairs,
                                    evaluation=evaluation))
    sections.append(Section("Training loss", figure_html(points.loss_figure(steps, losses), "loss")))
    sections.append(Section("Noise schedule", figure_html(
        process.schedule_figure(run.diffusion, f"{run.config.diffusion.schedule}, T = {run.diffusion.T}"),
        "schedule")))
    return render_page(f"difflab report: {run.path.name}", sections,
                       intro=_intro(run, n, seed, times, no_data=no_data))


def write_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
                 force: bool = False, **options: Any) -> Path:
    """Write the page of ``run_dir`` to ``out`` (default RUN_DIR/report.html); ``options`` as for
    :func:`build_report`. ``force``: allow ``out`` to be a run's or a sweep's own file. Returns the path."""
    check_not_protected(Path(out) if out is not None else Path(run_dir) / DEFAULT_NAME, force=force)
    path = report_path(run_dir, out)
    return write_page(path, build_report(run_dir, **options))
