"""Tables, figures and a Markdown page from a sweep directory (see :mod:`difflab.sweep.runner` for its layout).

``results.csv`` has one row per cell: the varied keys, seed, cell, status, ``<metric>_value/_floor/_ratio/_ratio_se``,
``elbo`` and ``elbo_stderr`` (nats/dim, when asked), ``train_seconds``, ``sample_seconds``, ``eval_seconds`` and
``batched`` (cells trained together with it). ``results.md`` has one row per combination of the varied keys with
mean ± sd over the seeds (sample standard deviation, ddof = 1), and ``results.png`` shows each metric's ratio per
combination. Everything is rebuilt from the cells' files, so it can be redrawn at any time with
``python -m difflab.sweep.redraw DIR`` (:mod:`difflab.sweep.redraw`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from difflab.errors import DifflabError
from difflab.escape import html_text, markdown_table, markdown_text
from difflab.evaluation.uncertainty import format_ratio
from difflab.io import atomic_open, read_json
from difflab.sweep.grid import short_names

RATIO_NOTE = "ratio = metric / noise floor (the same metric between two independent true samples); 1 = at the floor"
DONE_STATES = ("ok", "diverged")


# --- loading and aggregating ---------------------------------------------------------------------------------------


def _cell(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v


def load_results(out: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """The sweep's plan (sweep.json) and one row per cell: done, failed (failed.json) or pending."""
    out = Path(out)
    if not (out / "sweep.json").exists():
        raise DifflabError(f"{out}: no sweep.json; not a sweep directory (run `difflab sweep` first)")
    plan = read_json(out / "sweep.json")
    metrics = plan["spec"]["evaluate"]["metrics"]
    rows = []
    for cell in plan["cells"]:
        path = out / "cells" / cell["id"]
        row: dict[str, Any] = {k: _cell(v) for k, v in cell["values"].items()}
        row.update(seed=cell["seed"], cell=cell["id"], status=f"refused: {cell['refused']}" if cell.get("refused")
                   else "pending")
        for m in metrics:
            row.update({f"{m}_value": math.nan, f"{m}_floor": math.nan, f"{m}_ratio": math.nan,
                        f"{m}_ratio_se": math.nan})
        row.update(elbo=math.nan, elbo_stderr=math.nan, train_seconds=math.nan, sample_seconds=math.nan,
                   eval_seconds=math.nan, batched=math.nan)
        if cell.get("refused"):
            pass
        elif (path / "result.json").exists():
            rec = read_json(path / "result.json")
            row["status"] = rec["status"]
            for m in metrics:
                for part in ("value", "floor", "ratio", "ratio_se"):
                    row[f"{m}_{part}"] = rec["metrics"].get(m, {}).get(part, math.nan)
            if rec.get("elbo"):
                row.update(elbo=rec["elbo"]["nats_per_dim"], elbo_stderr=rec["elbo"]["stderr"])
            for k in ("train_seconds", "sample_seconds", "eval_seconds", "batched"):
                row[k] = rec.get(k, math.nan)
        elif (path / "failed.json").exists():
            row["status"] = f"failed: {read_json(path / 'failed.json').get('error', '?')}"
        rows.append(row)
    return plan, pd.DataFrame(rows)


def value_columns(df: pd.DataFrame) -> list[str]:
    """The columns worth averaging over seeds: ratios, ELBO (when any), training time."""
    cols = [c for c in df.columns if c.endswith("_ratio")]
    if df["elbo"].notna().any():
        cols.append("elbo")
    return [*cols, "train_seconds"]


def aggregate(df: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Per combination of ``keys``: ``seeds`` (done / all), then ``<col>_mean``, ``<col>_sd`` (ddof = 1; NaN for a
    single seed) and ``<col>_n`` over the done cells (ok or diverged; failed and pending cells are left out)."""
    done = df["status"].str.split(":").str[0].isin(DONE_STATES)
    out = []
    for combo, group in df.groupby(keys, sort=False, dropna=False) if keys else [((), df)]:
        combo = combo if isinstance(combo, tuple) else (combo,)
        row: dict[str, Any] = dict(zip(keys, combo))
        g = group[done.loc[group.index]]
        row["seeds"] = f"{len(g)}/{len(group)}"
        for c in columns:
            vals = g[c].to_numpy(dtype=float)
            vals = vals[~np.isnan(vals)]
            with np.errstate(invalid="ignore"):
                row[f"{c}_mean"] = float(np.mean(vals)) if len(vals) else math.nan
                row[f"{c}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
            row[f"{c}_n"] = len(vals)
        out.append(row)
    return pd.DataFrame(out)


def mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """``1.23 ± 0.04``; a single value without ±; ``inf`` for a diverged mean; ``—`` for none."""
    if math.isnan(mean):
        return "—"
    if math.isinf(mean):
        return "inf"
    text = f"{mean:.{digits}g}"
    return text if math.isnan(sd) else f"{text} ± {sd:.2g}"


# --- tables and figures ----------------------------------------------------------------------------------------------


def md_table(header: list[str], rows: list[list[str]], *, escaped: bool = False) -> str:
    """A Markdown table; cells are grid values, labels and numbers, escaped (:func:`difflab.escape.markdown_text`)
    unless ``escaped`` (the caller did, and added its own markup)."""
    return markdown_table(header, rows, escaped=escaped)


def _label(col: str) -> str:
    if col == "elbo":
        return "−ELBO (nats/dim)"
    if col == "train_seconds":
        return "train s"
    return col.replace("_", " ")


def evaluation_se(df: pd.DataFrame, agg: pd.DataFrame, keys: list[str], col: str) -> list[float]:
    """Per row of ``agg``, the typical standard error of one cell's ratio ``col`` (the root mean square of its done
    cells' ``col``_se): how precisely each seed's ratio is measured, next to how much the seeds differ."""
    out = []
    for ses in _per_seed(df, agg, keys, f"{col}_se"):
        ses = ses[np.isfinite(ses)]
        out.append(float(np.sqrt(np.mean(ses**2))) if len(ses) else math.nan)
    return out


def summary_rows(plan: dict[str, Any], df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table of mean ± sd over seeds, one row per combination; after each ratio, the
    standard error of one seed's ratio (:func:`evaluation_se`). A combination of one seed shows its ratio ± se."""
    keys = plan["keys"]
    names = short_names(keys)
    cols = value_columns(df)
    agg = aggregate(df, keys, cols)
    header = [names[k] for k in keys] + ["seeds"]
    cells: list[list[str]] = [[str(r[k]) for k in keys] + [r["seeds"]] for _, r in agg.iterrows()]
    for c in cols:
        header.append(_label(c))
        if not c.endswith("_ratio") or f"{c}_se" not in df.columns:
            for row, (_, r) in zip(cells, agg.iterrows()):
                row.append(mean_sd(r[f"{c}_mean"], r[f"{c}_sd"]))
            continue
        header.append(f"{c.removesuffix('_ratio')} ± (one seed)")
        for row, (_, r), se in zip(cells, agg.iterrows(), evaluation_se(df, agg, keys, c)):
            single = r[f"{c}_n"] == 1 and math.isfinite(r[f"{c}_mean"])
            row.append(format_ratio(r[f"{c}_mean"], se) if single else mean_sd(r[f"{c}_mean"], r[f"{c}_sd"]))
            row.append("—" if math.isnan(se) else f"{se:.2g}")
    return header, cells


def summary_table(plan: dict[str, Any], df: pd.DataFrame) -> str:
    """The Markdown table of mean ± sd over seeds, one row per combination."""
    return md_table(*summary_rows(plan, df))


def status_counts(df: pd.DataFrame) -> str:
    kinds = df["status"].str.split(":").str[0]
    return ", ".join(f"{int((kinds == k).sum())} {k}" for k in ("ok", "diverged", "failed", "refused", "pending"))


def _intro(plan: dict[str, Any], df: pd.DataFrame, text: Callable[[Any], str] = str) -> list[str]:
    """The lines above the table: the grid, the evaluation settings and how many cells are done; the grid's path
    and the command line's changes go through ``text`` (:func:`difflab.escape.markdown_text` for Markdown)."""
    ev = plan["spec"]["evaluate"]
    changes = plan["spec"].get("changes") or []
    changed = f"; changed on the command line: {text('; '.join(changes))}" if changes else ""
    return [f"Grid: {text(plan['spec']['source'])}{changed}",
            f"Evaluation: n = {ev['n']} points per sample, {ev['repeats']} repeats; {RATIO_NOTE}.",
            f"Cells: {len(df)} ({status_counts(df)}). Values are mean ± sd over seeds (one seed: its ratio ± "
            "standard error); 'W ± (one seed)' is the standard error of one seed's ratio (delta method over its "
            "sample draws and floor pairs), to set beside the spread of the seeds."]


def write_tables(out: str | Path) -> None:
    """results.csv and results.md from the cells on disk."""
    out = Path(out)
    plan, df = load_results(out)
    with atomic_open(out / "results.csv", "w", encoding="utf-8", newline="") as f:
        df.to_csv(f, index=False)
    text = ["# Sweep results", "", *_intro(plan, df, markdown_text), "", summary_table(plan, df), ""]
    with atomic_open(out / "results.md", "w", encoding="utf-8") as f:
        f.write("\n".join(text))


def _combo_label(row: pd.Series, keys: list[str], names: dict[str, str]) -> str:
    return " · ".join(f"{names[k]}={row[k]}" for k in keys)


def display_range(values: np.ndarray) -> tuple[float, float, float]:
    """(low, high, cap) of a log axis for positive ratios: it always shows 1 (the floor) and stops at
    cap = max(10, 5 × median), so one blown-up value does not squash the rest (callers mark what lies above)."""
    v = np.asarray(values, dtype=float)
    v = np.r_[v[np.isfinite(v) & (v > 0)], 1.0]
    cap = max(10.0, 5.0 * float(np.median(v)))
    return min(v.min(), 1.0) * 0.8, min(v.max(), cap) * 1.25, cap


def _range_panel(ax: Any, labels: list[str], means: np.ndarray, per_seed: list[np.ndarray], xlabel: str) -> None:
    """Mean over seeds (blue dot) with the range of the seeds (bar, always positive on a log axis). A few blown-up
    values would squash the rest, so values above ``cap`` are drawn on the right edge as triangles."""
    y = np.arange(len(labels))[::-1]
    lo, hi, cap = display_range(np.concatenate([*per_seed, means]))
    for yi, vals, m in zip(y, per_seed, means):
        vals = np.minimum(vals[np.isfinite(vals)], hi)
        ax.plot(vals, np.full(len(vals), yi), "o", ms=3, color="0.6", zorder=1)
        if len(vals) and np.isfinite(m):
            ax.plot([vals.min(), vals.max()], [yi, yi], "-", color="C0", lw=1.2, zorder=2)
    shown = np.isfinite(means) & (means <= cap)
    ax.plot(means[shown], y[shown], "o", color="C0", ms=5, zorder=3)
    off = ~np.isnan(means) & ~shown
    if off.any():  # (an empty unclipped line breaks matplotlib's constrained layout)
        ax.plot(np.full(off.sum(), hi), y[off], ">", color="C3", ms=6, zorder=3, clip_on=False)

    tags = ["  (no result)" if np.isnan(m) else "  (diverged)" if np.isinf(m) else "" for m in means]
    ax.set_yticks(y, [lab + t for lab, t in zip(labels, tags)], fontsize=8)
    ax.axvline(1.0, color="0.3", ls="--", lw=0.8)
    ax.set(xscale="log", xlim=(lo, hi), ylim=(-0.7, len(labels) - 0.3), xlabel=xlabel)


def _per_seed(df: pd.DataFrame, agg: pd.DataFrame, keys: list[str], col: str) -> list[np.ndarray]:
    """Per row of ``agg``, the values of ``col`` in its done cells (one per seed)."""
    done = df["status"].str.split(":").str[0].isin(DONE_STATES)
    return [df[done & (df[keys] == r[keys]).all(axis=1)][col].to_numpy(float) if keys
            else df[done][col].to_numpy(float) for _, r in agg.iterrows()]


def write_figure(out: str | Path, path: str | Path | None = None) -> Path:
    """Each metric's ratio per combination: mean over seeds (blue) and their range, single seeds (grey); the dashed
    line is the noise floor."""
    from difflab.viz.style import figure, save, styled

    out = Path(out)
    plan, df = load_results(out)
    keys, names = plan["keys"], short_names(plan["keys"])
    ratios = [c for c in df.columns if c.endswith("_ratio")]
    agg = aggregate(df, keys, ratios)
    labels = [_combo_label(r, keys, names) for _, r in agg.iterrows()]
    with styled():
        fig, axes = figure(1, len(ratios), size=(5.0 * len(ratios), 1.2 + 0.22 * len(labels)))
        for ax, col in zip(axes[0], ratios):
            per_seed = _per_seed(df, agg, keys, col)
            _range_panel(ax, labels, agg[f"{col}_mean"].to_numpy(float), per_seed,
                         f"{col.removesuffix('_ratio')} / noise floor")
            if ax is not axes[0][0]:
                ax.set_yticks(ax.get_yticks(), [])
    return save(fig, path or out / "results.png")


def write_html(out: str | Path, path: str | Path | None = None) -> Path:
    """results.html, an interactive page (:mod:`difflab.report.results`): each metric's ratio per combination,
    mean ± sd over seeds and every seed's value, one metric at a time from a selector; and the table."""
    from difflab.report.results import MetricSeries, write_results_page  # plotly only when a page is written

    out = Path(out)
    plan, df = load_results(out)
    keys, names = plan["keys"], short_names(plan["keys"])
    ratios = [c for c in df.columns if c.endswith("_ratio")]
    agg = aggregate(df, keys, ratios)
    series = {col.removesuffix("_ratio"): MetricSeries(agg[f"{col}_mean"].to_numpy(float),
                                                       agg[f"{col}_sd"].to_numpy(float), _per_seed(df, agg, keys, col),
                                                       _per_seed(df, agg, keys, f"{col}_se"))
              for col in ratios}
    header, rows = summary_rows(plan, df)
    # Plotly draws the combinations' labels (the grid's values) as HTML: escaped here, once (difflab.escape).
    return write_results_page(path or out / "results.html", title="Sweep results", intro=_intro(plan, df),
                              labels=[html_text(_combo_label(r, keys, names)) for _, r in agg.iterrows()],
                              series=series,
                              header=header, rows=rows)


def write_results(out: str | Path) -> None:
    """results.csv, results.md, results.png and results.html."""
    write_tables(out)
    _, df = load_results(out)
    if df["status"].str.split(":").str[0].isin(DONE_STATES).any():
        write_figure(out)
        write_html(out)
