"""The Markdown section and figure of benchmarks/few_step.py: tables of ratio against network calls, the targets,
timings, and the few-step defaults the measurements choose (for src/difflab/sampling/budgets.py)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from difflab.io import atomic_open, atomic_path  # noqa: E402

START, END = "<!-- few-step:start -->", "<!-- few-step:end -->"
CALLS = [1, 2, 4, 10, 20, 100]
BUDGETS = [1, 2, 4, 10, 20]
def _pm(r: dict[str, Any], key: str) -> str:
    """A row's ratio with its standard error, where the row has one (rows measured before it was kept do not)."""
    se = r.get(f"{key}_se", math.nan)
    return f"{r[key]:.2f} ± {se:.2f}" if math.isfinite(se) else f"{r[key]:.2f}"


METRIC_NAMES = {"w1": "W1 / floor", "energy": "energy / floor", "c2st": "C2ST / floor"}
FIGURE = "figures/few_step.png"


def cells(rows: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Rows grouped by (method, calls), one row per toy (seeds averaged)."""
    out: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        out.setdefault((r["method"], r["calls"]), {}).setdefault(r["toy"], []).append(r)
    return {k: [{m: statistics.mean(x[m] for x in rs) if isinstance(rs[0][m], float | int) else rs[0][m]
                 for m in rs[0]} for rs in by_toy.values()] for k, by_toy in out.items()}


def longest(seconds: float | dict[str, float]) -> float:
    """The longest of a method's distillations (progressive: one per K)."""
    return max(seconds.values()) if isinstance(seconds, dict) else seconds


def mean(rs: list[dict[str, Any]], key: str) -> float:
    return statistics.mean(r[key] for r in rs)


def fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.3g}" if v < 100 else f"{v:.0f}"


def methods_in(groups: dict[tuple[str, int], list[dict[str, Any]]], n_toys: int) -> list[str]:
    """Methods measured on every toy at 4 calls, best mean W1 first."""
    names = {m for m, _ in groups}
    full = [m for m in names if len(groups.get((m, 4), [])) == n_toys]
    return sorted(full, key=lambda m: mean(groups[(m, 4)], "w1"))


def best_pairs(groups: dict[tuple[str, int], list[dict[str, Any]]], n_toys: int) -> dict[int, list[tuple[str, float]]]:
    """Per budget, the non-distilled (sampler, grid) pairs measured on every toy, by mean W1 ratio."""
    out = {}
    for b in BUDGETS:
        pairs = [(m, mean(rs, "w1")) for (m, c), rs in groups.items()
                 if c == b and rs[0]["family"] == "samplers" and len(rs) == n_toys]
        out[b] = sorted(pairs, key=lambda p: p[1])
    return out


def metric_table(groups: dict[tuple[str, int], list[dict[str, Any]]], order: list[str], key: str) -> list[str]:
    lines = [f"| method | {' | '.join(f'{c} call' + ('s' if c > 1 else '') for c in CALLS)} |",
             "|---" * (len(CALLS) + 1) + "|"]
    for m in order:
        row = []
        for c in CALLS:
            rs = groups.get((m, c))
            row.append(f"{fmt(mean(rs, key))} ({fmt(max(r[key] for r in rs))})" if rs else "—")
        lines.append(f"| {m} | {' | '.join(row)} |")
    return lines


def figure(groups: dict[tuple[str, int], list[dict[str, Any]]], order: list[str], path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    family = {m: groups[(m, 4)][0]["family"] for m in order}
    samplers = sorted({m.split(" · ")[0] for m in order if family[m] == "samplers"})
    colours = dict(zip(samplers, plt.cm.tab10.colors, strict=False))
    styles = {"trailing": "-", "linspace": ":", "logsnr": "--", "karras": "-.", "karras-trailing": (0, (5, 1, 1, 1, 1, 1))}
    for ax, (key, label) in zip(axes, METRIC_NAMES.items(), strict=True):
        for m in order:
            pts = [(c, mean(groups[(m, c)], key)) for c in CALLS if (m, c) in groups]
            xs, ys = zip(*pts, strict=True)
            if family[m] == "samplers":
                sampler, grid = m.split(" · ")
                ax.plot(xs, ys, ls=styles[grid], color=colours[sampler], lw=1, alpha=0.55, label=m)
            elif family[m] == "progressive":
                ax.plot(xs, ys, "o-", color="black", lw=2.5, label=m)
            else:
                ax.plot(xs, ys, marker="s", ls=styles[m.split(" · ")[1]], color="crimson", lw=2.2, label=m)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", lw=0.8)
        if key == "w1":
            ax.axhline(1.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(CALLS, [str(c) for c in CALLS])
        ax.set_xlabel("network calls")
        ax.set_title(f"{label}, mean over toys")
    axes[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def section(results: dict[str, Any], figure_path: str) -> str:
    rows = results["rows"]
    toys = sorted({r["toy"] for r in rows})
    groups = cells(rows)
    order = methods_in(groups, len(toys))
    best = best_pairs(groups, len(toys))
    by_toy_4 = {t: min((r["w1"], r["method"]) for (m, c), rs in groups.items() if c <= 4 for r in rs if r["toy"] == t)
                for t in toys}
    out = [START, "## Few network calls (issue 9)", "",
           f"Regenerated by `.venv/bin/python benchmarks/few_step.py --page docs/quality.md` on {results.get('machine', 'an unnamed machine')}. "
           f"Toys: {', '.join(toys)}; seeds {sorted({r['seed'] for r in rows})}. Each toy's model is difflab's default "
           "recipe (`resolve_config(\"recommended\")` as it was when the script ran), trained once; the distilled "
           "students are made from it with `difflab distill`'s defaults. Yardstick of benchmarks/quality.py: 10 000 "
           "samples, columns standardised by the truth, 2000-point subsets, 6 draws, i.i.d. truth; each cell is the "
           "mean over toys and, in brackets, the worst toy. A budget of c calls is c jumps of a one-call sampler, "
           "⌈c/2⌉ jumps of heun/heun-sde (2 calls per jump, 1 into t = 0), the largest progressive student of at "
           "most c steps (`difflab distill --steps K` for K = 1, 2, 4, 8, each its own chain from 64 teacher steps; "
           "the 8-step student at 10, 20 and 100 calls), and the consistency student with c calls on each grid.", "",
           *([f"Methods measured on some toys only ({len(set(m for m, _ in groups) - set(order))}: a wider "
              "sampler × grid screen, `--samplers`/`--grids`) are left out of the means and shown in the per-toy "
              "tables below.", ""] if set(m for m, _ in groups) - set(order) else []),
           "### Targets", ""]
    ok = [t for t, (w, _) in by_toy_4.items() if w <= 1.5]
    out.append(f"- **W1/floor ≤ 1.5 at ≤ 4 calls on every toy**: {'met' if len(ok) == len(toys) else 'missed'}: ≤ 1.5 on "
               f"{len(ok)} of {len(toys)} toys; best at ≤ 4 calls per toy: " +
               ", ".join(f"{t} {w:.2f} ({m})" for t, (w, m) in by_toy_4.items()) + ".")
    moons = [r["w1"] for (m, c), rs in groups.items() if c == 4 for r in rs if r["toy"] == "moons"]
    if moons:
        out.append(f"- **Moonshot, ≤ 1.2 at 4 calls on moons**: best {min(moons):.2f} "
                   f"({'met' if min(moons) <= 1.2 else 'missed'}).")
    times = list(results["times"].values())
    for method in ("progressive", "consistency"):
        ratios = [longest(t[f"{method}_s"]) / t["teacher_s"] for t in times if f"{method}_s" in t and t.get("teacher_s")]
        if ratios:
            out.append(f"- **{method} distillation ≤ the teacher's training time** ({'the longest chain, to 1 step' if method == 'progressive' else 'one model for every K'}): distillation / training time "
                       f"{min(ratios):.2f}–{max(ratios):.2f} (mean {statistics.mean(ratios):.2f}) over the toys "
                       f"({'met' if max(ratios) <= 1.0 else 'missed'}; same machine, same load conditions).")
    tp = results.get("throughput") or {}
    if tp:
        base, hundred = tp["recipe"], tp.get("recipe's sampler at 100 calls", math.nan)
        fast = {k: v for k, v in tp.items() if "(4 calls)" in k}
        met = all(v / hundred >= 20 for v in fast.values())
        out.append(f"- **≥ 20× the points per second of the default 100-call sampler at 4 calls** ({tp['toy']}, "
                   f"100 000 points, median of 3 alternating rounds): {'met' if met else 'missed'}; against the "
                   f"recipe's sampler at 100 calls ({hundred:,.0f} points/s): " +
                   ", ".join(f"{k} {v / hundred:.1f}×" for k, v in fast.items()) +
                   f"; against the recipe as it samples now ({tp['recipe_calls']} calls, {base:,.0f} points/s): " +
                   ", ".join(f"{k} {v / base:.1f}×" for k, v in fast.items()) + ".")
    for key, label in METRIC_NAMES.items():
        out += ["", f"### {label} against network calls (mean over toys, worst toy in brackets)", ""]
        out += metric_table(groups, order, key)
        if key == "w1":
            out += ["", f"![ratio against network calls]({figure_path})"]
    best_of = {f: next(m for m in order if groups[(m, 4)][0]["family"] == f) for f in ("samplers", "progressive",
                                                                                      "consistency")
               if any(groups[(m, 4)][0]["family"] == f for m in order)}
    shown = list(best_of.values())
    out += ["", "### At 4 network calls, per toy: W1 (± its standard error) / energy / C2ST ratios (C2ST accuracy), "
            "the best of each family",
            "",
            "| toy | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for t in toys:
        row = []
        for m in shown:
            r = next((r for r in groups.get((m, 4), []) if r["toy"] == t), None)
            row.append(f"{_pm(r, 'w1')} / {r['energy']:.2f} / {r['c2st']:.1f} ({r['c2st_acc']:.3f})" if r else "—")
        out.append(f"| {t} | {' | '.join(row)} |")
    partial = sorted({m for m, _ in groups} - set(order))
    for t in toys:  # pairs measured on some toys only (the full cross product on one toy, a subset on the rest)
        here = [m for m in partial if any(r["toy"] == t for r in groups.get((m, 4), []))]
        if not here:
            continue
        out += ["", f"### {t}: every method measured there, W1 / floor against network calls", "",
                f"| method | {' | '.join(str(c) for c in CALLS)} |", "|---" * (len(CALLS) + 1) + "|"]
        mine = {m: {c: next((r["w1"] for r in groups.get((m, c), []) if r["toy"] == t), None) for c in CALLS}
                for m in [*order, *here]}
        for m in sorted(mine, key=lambda m: mine[m][4] if mine[m][4] is not None else math.inf):
            out.append(f"| {m} | " + " | ".join("—" if v is None else fmt(v) for v in mine[m].values()) + " |")
    out += ["", "### Time", "", "| toy | teacher training s | progressive s, K = 1 / 2 / 4 / 8 | consistency s |",
            "|---|---|---|---|"]
    for t in times:
        pd = t.get("progressive_s", {})
        out.append(f"| {t['toy']} | {t.get('teacher_s', math.nan):.1f} | "
                   f"{' / '.join(f'{v:.1f}' for v in pd.values()) or '—'} | {t.get('consistency_s', math.nan):.1f} |")
    out += ["", "Seconds to draw 10 000 points (mean over toys): " + "; ".join(
        f"{m} " + ", ".join(f"{c}: {mean(groups[(m, c)], 'sample_s'):.2f}" for c in CALLS if (m, c) in groups)
        for m in shown if (m, 4) in groups) + "."]
    out += ["", "### The few-step defaults this chooses", "",
            "`difflab sample RUN --steps K` with no `--sampler`/`--grid` samples with the best pair of the largest "
            "budget ≤ K (src/difflab/sampling/budgets.py, set from these rows):", "",
            "| budget (calls) | best | 2nd | 3rd |", "|---|---|---|---|"]
    for b, pairs in best.items():
        out.append(f"| {b} | " + " | ".join(f"{m} ({w:.2f})" for m, w in pairs[:3]) + " |")
    out.append(END)
    return "\n".join(out) + "\n"


def write_page(page: Path, results: dict[str, Any]) -> None:
    """Rewrite the section between the markers of ``page`` (appended if absent; the page created if missing)."""
    groups = cells(results["rows"])
    toys = {r["toy"] for r in results["rows"]}
    figure(groups, methods_in(groups, len(toys)), page.parent / FIGURE)
    text = page.read_text(encoding="utf-8") if page.exists() else "# Sample quality\n\n"
    new = section(results, FIGURE)
    if START in text and END in text:
        text = text[: text.index(START)] + new.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + new
    with atomic_open(page, "w", encoding="utf-8") as f:
        f.write(text)
