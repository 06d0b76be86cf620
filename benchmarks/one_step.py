"""One-step models trained from scratch (MeanFlow, shortcut models) at 1, 2 and 4 network calls, on the yardstick of
benchmarks/quality.py (W1 / noise floor of 10 000 samples, columns standardised by the truth, 2000-point subsets, mean
of 6 draws, i.i.d. truth), with each training's CPU seconds next to the default recipe's measured in the same process.

A variant is a recipe (a preset) with overrides, ``NAME:key=value,key=value`` (JSON values); each is trained once per
toy and seed and sampled with its own sampler at each budget of calls (``--steps K`` as `difflab sample` reads it).
``--baseline`` also trains the default recipe (``recommended``) on the first toy and first seed, first, so that its CPU
seconds (time.process_time around train_run, as quality.py measures) are the budget the variants are held to.

    .venv/bin/python benchmarks/one_step.py --variant meanflow:preset=meanflow [--variant ...] [--baseline]
        [--toys moons,8gaussians,checkerboard,pinwheel] [--seeds 0] [--calls 1,2,4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import header, load  # noqa: E402
from difflab.config import resolve_config  # noqa: E402
from difflab.evaluation import evaluate_samples  # noqa: E402
from difflab.pipeline import train_run  # noqa: E402
from difflab.sample import sample_run  # noqa: E402
from quality import N_EVAL, N_SAMPLES, REPEATS, dotted, standardiser  # noqa: E402

TOYS = ["moons", "8gaussians", "checkerboard", "pinwheel"]


def parse_variant(text: str) -> tuple[str, str, dict[str, Any]]:
    """``NAME:preset=P,key=value,...`` → (name, preset, nested overrides)."""
    name, _, rest = text.partition(":")
    items = [i for i in rest.split(",") if i]
    preset = next((i.split("=", 1)[1] for i in items if i.startswith("preset=")), "meanflow")
    return name, preset, dotted([i for i in items if not i.startswith("preset=")])


def train_timed(preset: str, over: dict[str, Any], toy: str, seed: int, out: Path) -> tuple[Any, float, float]:
    cfg = resolve_config(preset, overrides={**over, "data": {"source": toy},
                                            "train": {**over.get("train", {}), "seed": seed}})
    start, cpu = time.perf_counter(), time.process_time()
    run = train_run(cfg, out, progress=False)
    return run, time.perf_counter() - start, time.process_time() - cpu


def scored(run: Any, seed: int, calls: int, metrics: list[str], repeats: int = REPEATS) -> dict[str, float]:
    """The yardstick's ratios (quality.py's: standardised columns, N_EVAL-point subsets, i.i.d. truth) of the run's
    N_SAMPLES samples at ``calls`` calls, for ``metrics`` over ``repeats`` draws."""
    x, _ = sample_run(run, N_SAMPLES, seed=1000 + seed, steps=calls)
    if not np.isfinite(x).all():
        return {m: float("inf") for m in metrics}
    std = standardiser(run.toy)
    r = evaluate_samples(std(x), lambda n, s: std(run.toy.iid(n, s)), n=N_EVAL, repeats=repeats, metrics=metrics,
                         seed=seed)
    return {m: r[m]["ratio"] for m in metrics}


def summary(rows: list[dict[str, Any]], calls: list[int], budget: float | None) -> str:
    names = list(dict.fromkeys(r["variant"] for r in rows))
    head = " | ".join(f"{c} call{'s' if c > 1 else ''}" for c in calls)
    lines = [f"| variant | {head} | train CPU s (mean) |", "|---" * (len(calls) + 2) + "|"]
    for name in names:
        cells = []
        for c in calls:
            w = [r["w1"] for r in rows if r["variant"] == name and r["calls"] == c]
            cells.append(f"{statistics.mean(w):.2f} ({max(w):.2f})" if w else "–")
        cpu = statistics.mean(r["train_cpu_s"] for r in rows if r["variant"] == name)
        lines.append(f"| {name} | {' | '.join(cells)} | {cpu:.1f} |")
    if budget is not None:
        lines.append(f"\nbudget: the default recipe's training took {budget:.1f} CPU s (same process)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", default=[], help="NAME:preset=P,key=value,... (repeatable)")
    ap.add_argument("--baseline", action="store_true", help="train the default recipe first, for its CPU seconds")
    ap.add_argument("--toys", default=",".join(TOYS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--calls", default="1,2,4")
    ap.add_argument("--metrics", default="w1,energy", help="comma-separated (quality.py's: w1, energy, c2st)")
    ap.add_argument("--quick", action="store_true", help="W1 alone, 3 draws (for screening)")
    ap.add_argument("--json", type=Path, help="append every row here as it comes (JSON lines)")
    args = ap.parse_args()
    toys, seeds = args.toys.split(","), [int(s) for s in args.seeds.split(",")]
    calls = [int(c) for c in args.calls.split(",")]
    variants = [parse_variant(v) for v in args.variant] or [("meanflow", "meanflow", {})]
    print(header(f"One-step models on {len(toys)} toys at {calls} calls: W1 / noise floor", "cpu"), flush=True)
    rows: list[dict[str, Any]] = []
    budget = None

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        if args.json:
            with args.json.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            _, wall, budget = train_timed("recommended", {}, toys[0], seeds[0], Path(tmp) / "baseline")
            print(f"  default recipe on {toys[0]}: train {wall:.1f} s wall, {budget:.1f} CPU s; {load()}", flush=True)
            keep({"variant": "default recipe (training only)", "toy": toys[0], "seed": seeds[0], "calls": 0,
                  "w1": float("nan"), "train_s": wall, "train_cpu_s": budget})
        for name, preset, over in variants:
            for toy in toys:
                for seed in seeds:
                    run, wall, cpu = train_timed(preset, over, toy, seed, Path(tmp) / f"{name}-{toy}-{seed}")
                    for c in calls:
                        r = (scored(run, seed, c, ["w1"], repeats=3) if args.quick else
                             scored(run, seed, c, args.metrics.split(",")))
                        keep({"variant": name, "toy": toy, "seed": seed, "calls": c, "train_s": wall,
                              "train_cpu_s": cpu, **r})
                        ratios = ", ".join(f"{m} {v:.2f}" for m, v in r.items())
                        print(f"  {name} {toy} seed {seed} {c} calls: {ratios} (/ floor); train {wall:.1f} s, "
                              f"{cpu:.1f} CPU s", flush=True)
    print()
    print(summary([r for r in rows if r["calls"]], calls, budget))
    print(f"\n{load()} at the end")


if __name__ == "__main__":
    main()
