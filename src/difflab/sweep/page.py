"""A Markdown page from a sweep: the grid's ``[report]`` table turned into pivots, sentences and figures.

``[report]`` has ``title``, ``command`` (how to regenerate), ``intro``, and ``[[report.table]]`` entries, each a
pivot of one ``metric`` column of results.csv (``w1_ratio``, ``elbo``, ``train_seconds``, ...) with ``rows`` keys
down and the ``cols`` key across, over the cells that match ``where`` (key → value or list of values), with a
``title``, a ``text``, and a figure unless ``figure = false``. Each pivot gets a sentence computed from it: for two
columns, in how many rows the first is lower; for more, the lowest column per row. Text between
``<!-- notes:start -->`` and ``<!-- notes:end -->`` in an existing page is kept when the page is regenerated.
A page from a sweep whose grid was changed on the command line says so at the top (a reduced run). The
``[report]`` table is read from the grid file as it is now, else as it was when the sweep ran.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from difflab.errors import DifflabError
from difflab.escape import markdown_text
from difflab.io import atomic_open
from difflab.sweep.grid import short_names
from difflab.sweep.report import (
    DONE_STATES,
    RATIO_NOTE,
    aggregate,
    display_range,
    load_results,
    md_table,
    mean_sd,
    status_counts,
    summary_table,
    write_figure,
)

NOTES = re.compile(r"<!-- notes:start -->\n(.*?)<!-- notes:end -->", re.S)


def _filter(df: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    for key, allowed in where.items():
        if key not in df.columns:
            raise DifflabError(f"[report] where: '{key}' is not a varied key of the sweep")
        allowed = allowed if isinstance(allowed, list) else [allowed]
        df = df[df[key].isin(allowed)]
    return df


def pivot(df: pd.DataFrame, rows: list[str], col: str, metric: str) -> pd.DataFrame:
    """mean and sd of ``metric`` per ``rows`` combination (index) and ``col`` value (columns), as two levels."""
    agg = aggregate(df, [*rows, col], [metric])
    return agg.pivot_table(index=rows, columns=col, values=[f"{metric}_mean", f"{metric}_sd"], sort=False,
                           dropna=False)


def _pivot_markdown(table: pd.DataFrame, rows: list[str], col: str, metric: str, names: dict[str, str]) -> str:
    means, sds = table[f"{metric}_mean"], table[f"{metric}_sd"]
    body = []
    for idx in means.index:
        idx_t = idx if isinstance(idx, tuple) else (idx,)
        m, s = means.loc[idx].to_numpy(float), sds.loc[idx].to_numpy(float)
        best = np.nanargmin(np.where(np.isnan(m), np.inf, m)) if np.isfinite(m).any() else -1
        cells = [markdown_text(mean_sd(a, b)) for a, b in zip(m, s)]
        cells = [f"**{c}**" if j == best else c for j, c in enumerate(cells)]
        body.append([markdown_text(v) for v in idx_t] + cells)
    header = [names.get(r, r) for r in rows] + [f"{names.get(col, col)}={c}" for c in means.columns]
    return md_table([markdown_text(h) for h in header], body, escaped=True)


def _pivot_sentence(df: pd.DataFrame, table: pd.DataFrame, rows: list[str], col: str, metric: str) -> str:
    means = table[f"{metric}_mean"]
    cols = list(means.columns)
    if len(cols) == 2:
        a, b = cols
        agg = aggregate(df, [*rows, col], [metric]).set_index([*rows, col])
        better = clear = total = 0
        log_ratios: list[float] = []
        finite_pairs = 0
        for idx in means.index:
            idx_t = idx if isinstance(idx, tuple) else (idx,)
            ra, rb = agg.loc[(*idx_t, a)], agg.loc[(*idx_t, b)]
            ma, mb = ra[f"{metric}_mean"], rb[f"{metric}_mean"]
            if math.isnan(ma) or math.isnan(mb):
                continue
            total += 1
            better += ma < mb
            if not (math.isfinite(ma) and math.isfinite(mb)):
                clear += ma != mb  # one diverged and the other did not
                continue
            se = math.sqrt(np.nan_to_num(ra[f"{metric}_sd"]) ** 2 / max(ra[f"{metric}_n"], 1)
                           + np.nan_to_num(rb[f"{metric}_sd"]) ** 2 / max(rb[f"{metric}_n"], 1))
            clear += abs(ma - mb) > 2 * se and se > 0
            finite_pairs += 1
            if ma > 0 and mb > 0:
                log_ratios.append(math.log(mb / ma))
        # a ratio of means only makes sense for a positive metric (not for the ELBO, which can be negative)
        positive = bool(log_ratios) and len(log_ratios) == finite_pairs
        gm = f"; geometric mean of {b}/{a}: {math.exp(np.mean(log_ratios)):.3g}" if positive else ""
        return (f"`{a}` has the lower {metric} in {better} of {total} rows ({clear} of the {total} differences exceed "
                f"twice their standard error){gm}.")
    lines = []
    for idx in means.index:
        m = means.loc[idx].to_numpy(float)
        if np.isfinite(m).any():
            j = int(np.nanargmin(np.where(np.isnan(m), np.inf, m)))
            label = " · ".join(map(str, idx if isinstance(idx, tuple) else (idx,)))
            lines.append(f"{label}: {col.rsplit('.', 1)[-1]}={cols[j]} ({m[j]:.3g})")
    return f"Lowest {metric} per row: " + "; ".join(lines) + "."


def _paired_panel(ax: Any, means: pd.DataFrame, cols: list[Any], rows: list[str], metric: str, prefix: str) -> None:
    """One dot per row, column a against column b, coloured by the first row key. Values far above the rest (a
    sampler that blew up) would squash the plot, so anything above ``cap`` is drawn on the edge as a triangle."""
    x, y = means[cols[0]].to_numpy(float), means[cols[1]].to_numpy(float)
    both = np.r_[x, y]
    lo, hi, cap = display_range(both)
    keys = [i[0] if isinstance(i, tuple) else i for i in means.index]
    for n, key in enumerate(dict.fromkeys(keys)):
        sel = np.array([k == key for k in keys])
        off = sel & ((x > cap) | (y > cap))
        ax.plot(x[sel & ~off], y[sel & ~off], "o", ms=5, color=f"C{n}", label=str(key))
        if off.any():  # (an empty unclipped line breaks matplotlib's constrained layout)
            ax.plot(np.minimum(x[off], hi), np.minimum(y[off], hi), "^", ms=7, color=f"C{n}", clip_on=False)
    ax.plot([lo, hi], [lo, hi], "--", color="0.4", lw=0.8)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel=f"{metric} with {prefix}{cols[0]}", ylabel=f"{metric} with {prefix}{cols[1]}")
    ax.legend(fontsize=8, title=rows[0].rsplit(".", 1)[-1] + ("  (▲ off scale)" if (both > cap).any() else ""),
              title_fontsize=8)


def _lines_panel(ax: Any, xs: np.ndarray, ys: np.ndarray, labels: list[str]) -> None:
    """A line per row across the columns; on a log axis (positive values) anything above the cap (or infinite)
    is drawn on the top edge as a triangle."""
    if np.all(ys[np.isfinite(ys)] > 0):
        lo, hi, cap = display_range(ys)
        ax.set(yscale="log", ylim=(lo, hi))
        ax.axhline(1.0, color="0.4", ls="--", lw=0.8)
    else:
        hi = cap = np.inf
    for n, (row, label) in enumerate(zip(ys, labels)):
        shown = np.where(row > cap, hi, row)
        ax.plot(xs, shown, marker="o", ms=4, color=f"C{n}", label=label)
        if np.any(row > cap):  # (an empty unclipped line breaks matplotlib's constrained layout)
            ax.plot(xs[row > cap], shown[row > cap], "^", ms=8, color=f"C{n}", clip_on=False)
    ax.legend(fontsize=8, title="▲ off scale" if np.any(ys > cap) else None, title_fontsize=8)


def _pivot_figure(table: pd.DataFrame, rows: list[str], col: str, metric: str, names: dict[str, str],
                  path: Path) -> Path:
    """Means over seeds (the spread is in the table). Two columns: one against the other, a dot per row (log-log,
    diagonal = equal). More: lines across the columns, one panel per value of the first row key when there are
    several row keys."""
    from difflab.viz.style import figure, save, styled

    means = table[f"{metric}_mean"]
    cols = list(means.columns)
    with styled():
        if len(cols) == 2:
            fig, axes = figure(1, 1, size=(4.8, 4.5))
            _paired_panel(axes[0, 0], means, cols, rows, metric, f"{names.get(col, col)}=")
        else:
            panel_key = len(rows) > 1
            groups = list(dict.fromkeys(i[0] for i in means.index)) if panel_key else [None]
            fig, axes = figure(1, len(groups), size=(4.5 * len(groups), 4.0))
            numeric = all(isinstance(c, int | float) for c in cols)
            xs = np.asarray(cols, dtype=float) if numeric else np.arange(len(cols))
            for ax, g in zip(axes[0], groups):
                sub = [i for i in means.index if not panel_key or i[0] == g]
                labels = [" · ".join(map(str, (i if isinstance(i, tuple) else (i,))[1 if panel_key else 0:]))
                          for i in sub]
                _lines_panel(ax, xs, means.loc[sub].to_numpy(float), labels)
                ax.set(xlabel=names.get(col, col), ylabel=metric,
                       title=f"{names.get(rows[0], rows[0])}={g}" if panel_key else "")
                if numeric and xs.max() / max(xs.min(), 1e-12) > 10:
                    ax.set_xscale("log")
                if not numeric:
                    ax.set_xticks(xs, [str(c) for c in cols])
    return save(fig, path)


def _report_section(spec: dict[str, Any]) -> dict[str, Any]:
    """The grid file's ``[report]`` table as it is now (so the page's text can be edited without re-running the
    sweep), or as it was when the sweep ran if the file is gone or unreadable."""
    import tomllib

    try:
        current = tomllib.loads(Path(spec["source"]).read_text(encoding="utf-8")).get("report")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        current = None
    return current if isinstance(current, dict) else spec.get("report") or {}


def write_page(out: str | Path, page: str | Path) -> Path:
    """The Markdown page described by the grid's ``[report]`` table, with figures under ``<page dir>/figures``."""
    out, page = Path(out), Path(page)
    plan, df = load_results(out)
    spec, keys = plan["spec"], plan["keys"]
    rep, names = _report_section(spec), short_names(keys)
    figdir = page.parent / "figures"
    stem = page.stem
    rel = os.path.relpath(figdir, page.parent)
    old = page.read_text(encoding="utf-8") if page.exists() else ""
    found = NOTES.search(old)
    notes = found.group(1) if found else "_No notes yet._\n"
    text = [f"# {rep.get('title', 'Sweep results')}", "",
            "<!-- Generated by difflab.sweep.page; edit only between the notes markers. -->", ""]
    if rep.get("command"):
        text += ["Regenerate this page (all cells; finished ones are skipped):", "", "```sh", rep["command"], "```", ""]
    if spec.get("changes"):
        text += [f"> **Reduced run.** The numbers below come from {markdown_text(spec.get('command') or 'difflab sweep')}, "
                 f"which changes the grid file: {markdown_text('; '.join(spec['changes']))}. The full grid has not been run for this "
                 "page yet; read the conclusions as provisional.", ""]
    text += [rep.get("intro", "").strip(), "",
             f"Evaluation: n = {spec['evaluate']['n']} points per sample, {spec['evaluate']['repeats']} repeats; "
             f"{RATIO_NOTE}. Cells: {len(df)} ({status_counts(df)}). Values are mean ± sd over seeds; bold = lowest "
             "in its row.", ""]
    for i, t in enumerate(rep.get("table", []), start=1):
        sub = _filter(df, t.get("where", {}))
        rows, col, metric = list(t["rows"]), t["cols"], t.get("metric", "w1_ratio")
        text += [f"## {t.get('title', f'Table {i}')}", "", t.get("text", "").strip(), ""]
        if sub.empty or metric not in sub.columns:
            text += ["_No finished cells for this table._", ""]
            continue
        table = pivot(sub, rows, col, metric)
        text += [_pivot_markdown(table, rows, col, metric, names), "",
                 _pivot_sentence(sub, table, rows, col, metric), ""]
        if t.get("figure", True) and table[f"{metric}_mean"].notna().to_numpy().any():
            fig = _pivot_figure(table, rows, col, metric, names, figdir / f"{stem}-{i}.png")
            text += [f"![{t.get('title', '')}]({rel}/{fig.name})", ""]
    text += ["## Notes and conclusions", "", "<!-- notes:start -->", notes.rstrip("\n"), "<!-- notes:end -->", "",
             "## All cells", "", summary_table(plan, df), ""]
    if df["status"].str.split(":").str[0].isin(DONE_STATES).any():
        fig = write_figure(out, figdir / f"{stem}-all.png")
        text += [f"![every combination]({rel}/{fig.name})", ""]
    failed = df[df["status"].str.startswith("failed")]
    if len(failed):
        text += ["Failed cells:", ""] + [f"- `{r['cell']}`: {markdown_text(r['status'])}"
                                         for _, r in failed.iterrows()] + [""]
    refused = df[df["status"].str.startswith("refused")].drop_duplicates("status")
    if len(refused):
        text += ["Refused before training (the configuration cannot work; one line per reason):", ""]
        text += [f"- `{r['cell']}` and the cells like it: {markdown_text(r['status'].removeprefix('refused: '))}"
                 for _, r in refused.iterrows()] + [""]
    with atomic_open(page, "w", encoding="utf-8") as f:
        f.write("\n".join(text))
    return page
