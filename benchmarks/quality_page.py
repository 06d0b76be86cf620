"""docs/quality.md: the default recipe, the previous default (the baseline) and ``--preset best`` on all 10 toys,
3 seeds each, on the reverse-process issue's yardstick (benchmarks/quality.py), with the targets met or missed; and
the adaptive probability-flow ODE against the ancestral sampler on moons. One command regenerates the page:

    .venv/bin/python benchmarks/quality_page.py --page docs/quality.md [--seeds 0,1,2] [--toys ...] [--json rows.json]
        [--work runs/quality] [--no-best]

``--from-json rows.json`` redraws the page from saved rows without running anything. The page's few-step section
(between ``<!-- few-step:start -->`` and ``<!-- few-step:end -->``, written by benchmarks/few_step.py) is kept.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import load, machine  # noqa: E402
from difflab.config import PRESETS  # noqa: E402
from difflab.io import atomic_open  # noqa: E402
from quality import BASELINE, METRICS, N_EVAL, N_SAMPLES, REPEATS, TOYS, run_recipe  # noqa: E402

FEW_STEP = re.compile(r"<!-- few-step:start -->.*?<!-- few-step:end -->", re.S)
TARGET, GOAL, ODE_TARGET, TIME_TARGET, BEST_TIME = 1.5, 1.2, 1.3, 30.0, 120.0
COMMAND = ".venv/bin/python benchmarks/quality_page.py --page docs/quality.md"


def _ms(vals: list[float]) -> str:
    return f"{vals[0]:.2f}" if len(vals) < 2 else f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"


def _rows(rows: list[dict[str, Any]], recipe: str, sampling: str | None = None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["recipe"] == recipe and (sampling is None or r["sampling"] == sampling):
            out.setdefault(r["toy"], []).append(r)
    return out


def recipe_table(rows: list[dict[str, Any]], recipe: str) -> list[str]:
    lines = ["| toy | W1 / floor | energy / floor | C2ST / floor | C2ST accuracy (floor) | train s (CPU s) |",
             "|---|---|---|---|---|---|"]
    for toy, rs in _rows(rows, recipe, "the recipe's sampler").items():
        lines.append(f"| {toy} | {_ms([r['w1'] for r in rs])} | {_ms([r['energy'] for r in rs])} | "
                     f"{_ms([r['c2st'] for r in rs])} | {statistics.mean(r['c2st_acc'] for r in rs):.3f} "
                     f"({statistics.mean(r['c2st_floor'] for r in rs):.3f}) | "
                     f"{statistics.mean(r['train_s'] for r in rs):.1f} ({statistics.mean(r['train_cpu_s'] for r in rs):.1f})"
                     " |")
    return lines


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    per_toy = {t: statistics.mean(r["w1"] for r in rs) for t, rs in _rows(rows, "recommended", "the recipe's sampler"
                                                                          ).items()}
    base = {t: statistics.mean(r["w1"] for r in rs) for t, rs in _rows(rows, "baseline").items()}
    if per_toy:
        worst = max(per_toy, key=per_toy.__getitem__)
        met = per_toy[worst] <= TARGET
        out.append(f"- **W1 / floor ≤ {TARGET} on every toy (goal {GOAL}):** "
                   f"{'met' if met else 'missed'}; the worst toy is {worst} at {per_toy[worst]:.2f} "
                   f"(baseline: {base.get(worst, float('nan')):.2f}); "
                   f"{sum(v <= GOAL for v in per_toy.values())} of {len(per_toy)} toys reach the goal of {GOAL}.")
        secs = [r["train_s"] for r in rows if r["recipe"] == "recommended" and r["sampling"] == "the recipe's sampler"]
        cpus = [r["train_cpu_s"] for r in rows if r["recipe"] == "recommended" and r["sampling"] == "the recipe's sampler"]
        out.append(f"- **Training ≤ {TIME_TARGET:.0f} s on 2 cores:** median {statistics.median(secs):.1f} s wall, "
                   f"{statistics.median(cpus):.1f} s CPU (max {max(secs):.1f} s wall), "
                   f"{'met' if statistics.median(secs) <= TIME_TARGET else 'missed'} (see the load note).")
    best = [r["train_s"] for r in rows if r["recipe"] == "best"]
    if best:
        out.append(f"- **`--preset best` ≤ {BEST_TIME:.0f} s:** median {statistics.median(best):.1f} s wall "
                   f"({'met' if statistics.median(best) <= BEST_TIME else 'missed'}).")
    anc = _rows(rows, "recommended", "the recipe's sampler").get("moons", [])
    ode = _rows(rows, "recommended", "sampler=ode").get("moons", [])
    if anc and ode:
        ratio = statistics.mean(r["w1"] for r in ode) / statistics.mean(r["w1"] for r in anc)
        out.append(f"- **Adaptive PF-ODE within {ODE_TARGET}× of the ancestral sampler's W1 on moons:** "
                   f"{statistics.mean(r['w1'] for r in ode):.2f} against {statistics.mean(r['w1'] for r in anc):.2f}, "
                   f"{ratio:.2f}× ({'met' if ratio <= ODE_TARGET else 'missed'}).")
    return out


def page(rows: list[dict[str, Any]], old: str, seeds: list[int]) -> str:
    rec = PRESETS["recommended"]
    text = ["# Sample quality: the default recipe on every toy", "",
            "<!-- Generated by benchmarks/quality_page.py; edit the script, not this page. -->", "",
            f"Regenerate: `{COMMAND}`", "",
            f"Yardstick (the reverse-process issue's): W1 between {N_SAMPLES} samples and i.i.d. truth, columns "
            "standardised by the true distribution's mean and sd, exact W1 on "
            f"{N_EVAL}-point subsets, mean of {REPEATS} draws, divided by the same W1 between two independent true "
            "samples (the noise floor; 1 = as close as the data allows). Energy distance and the classifier two-sample "
            "test (C2ST, extremely randomised trees) are next to their floors the same way; C2ST's ratio is of "
            "accuracies above chance, so its accuracy is shown too. Values are mean ± sd over seeds "
            f"{', '.join(map(str, seeds))}; training seconds are wall (and CPU) seconds of `train_run`.", "",
            f"Machine: {machine()}; {load()} when the page was written (a busy machine inflates wall seconds; CPU "
            "seconds are the steadier figure).", "", "## Targets", "", *verdicts(rows), "",
            "## The default recipe (`--preset recommended`)", "",
            f"`{json.dumps(rec['diffusion'])}`, `{json.dumps(rec['model'])}`, `{json.dumps(rec['train'])}`, "
            f"`{json.dumps(rec['sample'])}`.", "", *recipe_table(rows, "recommended"), "",
            "## The baseline: the previous default", "",
            "Discrete linear schedule, T = 100, ε-prediction, residual MLP 128 × 3, 5000 steps, ancestral sampling with "
            "all 100 steps (benchmarks/quality.py `BASELINE`).", "", *recipe_table(rows, "baseline"), ""]
    if any(r["recipe"] == "best" for r in rows):
        best = PRESETS["best"]
        text += ["## `--preset best`", "", f"`{json.dumps(best['diffusion'])}`, `{json.dumps(best['model'])}`, "
                 f"`{json.dumps(best['train'])}`, `{json.dumps(best['sample'])}`.", "", *recipe_table(rows, "best"), ""]
    few = FEW_STEP.search(old)
    text += [few.group(0) if few else "<!-- few-step:start -->\n<!-- few-step:end -->", ""]
    return "\n".join(text)


def jobs(toys: list[str], seeds: list[int], best: bool) -> list[tuple[str, str, dict[str, Any], str, int, list]]:
    """(name, preset, overrides, toy, seed, samplings) of every run on the page; the recommended moons runs are also
    sampled by the adaptive PF-ODE."""
    out = []
    for name, recipe, over in [("baseline", "recommended", BASELINE), ("recommended", "recommended", {}),
                               *([("best", "best", {})] if best and "best" in PRESETS else [])]:
        for toy in toys:
            for seed in seeds:
                ode = name == "recommended" and toy == "moons"
                out.append((name, recipe, over, toy, seed, [{}, {"sampler": "ode"}] if ode else [{}]))
    return out


def measure_all(toys: list[str], seeds: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    done = {(r["recipe"], r["toy"], r["seed"]) for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name, recipe, over, toy, seed, samplings in jobs(toys, seeds, not args.no_best):
            if (name, toy, seed) in done:
                continue
            shutil.rmtree(work / f"{name}-{toy}-{seed}", ignore_errors=True)  # a run whose rows were not saved
            rows += run_recipe(name, recipe, over, [toy], [seed], samplings, work)
            if args.json:
                with atomic_open(args.json, "w", encoding="utf-8") as f:
                    f.write(json.dumps(rows, indent=1))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--page", type=Path, default=Path("docs/quality.md"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--toys", default=",".join(TOYS))
    ap.add_argument("--json", type=Path, help="also save the rows, after each run; rows already there are kept and "
                    "not measured again (an interrupted page continues)")
    ap.add_argument("--work", type=Path, help="keep the trained runs here (default: a temporary folder); "
                    "benchmarks/few_step.py can take the recommended seed-0 runs as its teachers")
    ap.add_argument("--from-json", type=Path, help="redraw the page from saved rows")
    ap.add_argument("--no-best", action="store_true", help="leave out --preset best")
    args = ap.parse_args()
    seeds, toys = [int(s) for s in args.seeds.split(",")], args.toys.split(",")
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
    else:
        rows = measure_all(toys, seeds, args)
    old = args.page.read_text(encoding="utf-8") if args.page.exists() else ""
    with atomic_open(args.page, "w", encoding="utf-8") as f:
        f.write(page(rows, old, seeds))
    print(f"wrote {args.page}; {', '.join(METRICS)} over {len(rows)} rows")


if __name__ == "__main__":
    main()
