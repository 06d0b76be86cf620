"""A sweep's interactive results page (results.html): each metric's ratio to its noise floor per combination of
the varied options, mean ± sd over seeds with every seed's value, one metric at a time from a selector; and the
table of results.md. It takes plain arrays, so it knows nothing of the sweep directory (see
:func:`difflab.sweep.report.write_html`, which fills it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from difflab.errors import DifflabError
from difflab.evaluation.uncertainty import format_ratio
from difflab.report.html import Section, figure_html, render_page, table_html, write_page


@dataclass
class MetricSeries:
    """One metric's ratio per combination: mean and sample sd (ddof = 1) over seeds, every seed's value and the
    standard error of each seed's value (NaN where unknown)."""

    means: Sequence[float]
    sds: Sequence[float]
    per_seed: list[np.ndarray] = field(default_factory=list)
    per_seed_se: list[np.ndarray] = field(default_factory=list)


def error_bars(means: np.ndarray, sds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(plus, minus) bar lengths of mean ± sd on a log axis: a missing sd (one seed) draws no bar, and the lower
    bar stops at mean / 10 when mean − sd would not be positive (the hover text gives the true sd)."""
    sd = np.where(np.isfinite(sds), sds, 0.0)
    return sd, np.minimum(sd, 0.9 * means)


def results_figure(labels: Sequence[str], series: dict[str, MetricSeries]) -> go.Figure:
    """Per metric, two traces (seeds in grey, mean ± sd in blue), combinations down the y axis; a dropdown shows
    one metric at a time. The dashed line at 1 is the noise floor; the x axis is logarithmic."""
    if not series:
        raise DifflabError("results page: no metric to show")
    y = list(labels)
    traces: list[go.Scatter] = []
    for i, (name, s) in enumerate(series.items()):
        means, sds = np.asarray(s.means, dtype=float), np.asarray(s.sds, dtype=float)
        if len(means) != len(y) or len(sds) != len(y):
            raise DifflabError(f"results page: {name} has {len(means)} means for {len(y)} combinations")
        shown = np.isfinite(means) & (means > 0)  # a diverged (inf) or missing mean has no place on a log axis
        plus, minus = error_bars(means, sds)
        ses = s.per_seed_se or [np.full(len(vals), np.nan) for vals in s.per_seed]
        seeds = [(lab, v, e) for lab, vals, errs in zip(y, s.per_seed, ses) for v, e in zip(vals, errs)
                 if np.isfinite(v) and v > 0]
        seeds_se = np.array([e if np.isfinite(e) else 0.0 for _, _, e in seeds])
        traces.append(go.Scatter(
            x=[v for _, v, _ in seeds], y=[lab for lab, _, _ in seeds], mode="markers", name="single seeds ± se",
            visible=i == 0, marker={"size": 6, "color": "rgba(120,120,120,0.6)"},
            text=[format_ratio(v, e) for _, v, e in seeds], hovertemplate="%{y}<br>seed: %{text}<extra></extra>",
            error_x={"type": "data", "array": seeds_se, "color": "rgba(120,120,120,0.6)", "thickness": 1}))
        text = [f"{m:.3g} ± {sd:.2g}" if np.isfinite(sd) else f"{m:.3g} (one seed)" for m, sd in zip(means, sds)]
        traces.append(go.Scatter(
            x=means[shown], y=[lab for lab, k in zip(y, shown) if k], mode="markers", name="mean ± sd over seeds",
            visible=i == 0, marker={"size": 10, "color": "#1f77b4"}, text=[t for t, k in zip(text, shown) if k],
            hovertemplate="%{y}<br>" + name + " / floor: %{text}<extra></extra>",
            error_x={"type": "data", "symmetric": False, "array": plus[shown], "arrayminus": minus[shown],
                     "color": "#1f77b4", "thickness": 1.5}))
    names = list(series)
    buttons = [{"label": name, "method": "update",
                "args": [{"visible": [j // 2 == i for j in range(len(traces))]},
                         {"xaxis.title.text": f"{name} / noise floor"}]} for i, name in enumerate(names)]
    fig = go.Figure(traces)
    fig.add_vline(x=1.0, line={"dash": "dash", "color": "#444", "width": 1})
    fig.update_xaxes(type="log", title_text=f"{names[0]} / noise floor")
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=y)
    fig.update_layout(
        height=160 + 28 * len(y), margin={"l": 20, "t": 70, "b": 50},
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 0, "y": 1.02, "xanchor": "left",
                      "yanchor": "bottom", "active": 0, "showactive": True}])
    return fig


def write_results_page(path: str | os.PathLike[str], *, title: str, intro: Sequence[str], labels: Sequence[str],
                       series: dict[str, MetricSeries], header: Sequence[str],
                       rows: Sequence[Sequence[object]]) -> Path:
    """Write the page: ``intro`` lines, the figure of ``series`` over the combinations ``labels``, and the table
    ``header``/``rows`` (mean ± sd per combination, as in results.md)."""
    sections = [
        Section("Ratio to the noise floor", figure_html(results_figure(labels, series), "results"),
                note="Pick the metric above the figure. Blue: mean over seeds ± sd; grey: each seed; dashed: the "
                     "noise floor (ratio 1, as close as two independent true samples)."),
        Section("Table", table_html(header, rows, table_id="summary"), note="Mean ± sd over seeds."),
    ]
    return write_page(path, render_page(title, sections, intro=intro))
