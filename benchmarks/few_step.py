"""Few network calls: sample quality and wall time against the number of network calls (1, 2, 4, 10, 20, 100) on
every toy, for every sampler × grid without distillation, progressive distillation and consistency distillation.

The model of every toy is difflab's default recipe (``resolve_config("recommended")``, read when the script runs);
its training time is the budget distillation is measured against. Quality is the yardstick of benchmarks/quality.py
(W1, energy and C2ST ratios to the noise floor; 10 000 samples, standardised columns, 2000-point subsets, 6 draws,
i.i.d. truth), each ratio with its standard error, the floors of a toy computed once and cached (they depend on the
seed, not on the samples). A budget of c
calls means: c jumps for one-call samplers, ⌈c/2⌉ for Heun's method (2 calls per jump, 1 into t = 0), the
largest distilled student with at most c steps. Runs and results are kept in ``--work`` so an interrupted run
continues; ``--page docs/quality.md`` rewrites this benchmark's section of that page (between its markers).

    .venv/bin/python benchmarks/few_step.py [--toys moons,circles] [--seeds 0] [--methods samplers,progressive,
        consistency] [--samplers ddim,dpm++] [--grids logsnr,karras] [--teachers runs/quality]
        [--work runs/few-step] [--page docs/quality.md]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import alternate, load, machine, median  # noqa: E402
from _few_step_page import write_page  # noqa: E402
from difflab.config import resolve_config  # noqa: E402
from difflab.data import DATASETS  # noqa: E402
from difflab.distill import distill_run, make_settings  # noqa: E402
from difflab.errors import ConfigError  # noqa: E402
from difflab.io import read_json, write_json  # noqa: E402
from difflab.pipeline import train_run  # noqa: E402
from difflab.rundir import Run, load_run  # noqa: E402
from difflab.sample import sample_run  # noqa: E402
from difflab.sampling import GRIDS as ALL_GRIDS  # noqa: E402
from difflab.sampling import make_grid  # noqa: E402
from difflab.sampling.budgets import calls_for_steps, steps_for_calls  # noqa: E402
from quality import METRICS, N_SAMPLES, score  # noqa: E402

CALLS = [1, 2, 4, 10, 20, 100]
SAMPLERS = ["ddpm", "ddim", "dpm++", "dpm++-sde", "heun", "heun-sde"]  # all but the adaptive ode and consistency
GRIDS = list(ALL_GRIDS)
METHODS = ["samplers", "progressive", "consistency"]
THROUGHPUT_N = 100_000


class Scorer:
    """quality.score's numbers (each ratio with its standard error; the floors are cached per toy, n and seed),
    computed once per distinct sample."""

    def __init__(self, toy: Any, seed: int) -> None:
        self.toy, self.seed, self.cache = toy, seed, {}

    def __call__(self, samples: np.ndarray) -> dict[str, float]:
        key = hashlib.sha1(np.ascontiguousarray(samples).tobytes()).hexdigest()
        if key not in self.cache:
            if not np.isfinite(samples).all():
                self.cache[key] = {**{m: float("inf") for m in METRICS}, **{f"{m}_se": float("nan") for m in METRICS},
                                   "c2st_acc": 1.0}
                return self.cache[key]
            r = score(samples, self.toy, self.seed)
            self.cache[key] = {**{m: r[m] for m in METRICS}, **{f"{m}_se": r[f"{m}_se"] for m in METRICS},
                               "c2st_acc": r["c2st_acc"]}
        return self.cache[key]


def teacher(toy: str, seed: int, work: Path, teachers: Path | None = None) -> Run:
    out = work / f"{toy}-{seed}" / "teacher"
    if (out / "model.safetensors").exists():
        return load_run(out)
    if teachers and (teachers / f"recommended-{toy}-{seed}" / "model.safetensors").exists():
        return load_run(teachers / f"recommended-{toy}-{seed}")
    cfg = resolve_config("recommended", overrides={"data": {"source": toy}, "train": {"seed": seed}})
    return train_run(cfg, out, progress=False)


def measure(run: Run, scorer: Scorer, seed: int, **sampling: Any) -> dict[str, Any]:
    start = time.perf_counter()
    x, _ = sample_run(run, N_SAMPLES, seed=1000 + seed, device="cpu", **sampling)
    return {"sample_s": time.perf_counter() - start, **scorer(x)}


def sampler_rows(run: Run, scorer: Scorer, seed: int, done: set[str], samplers: list[str], grids: list[str]
                 ) -> Iterator[list[dict[str, Any]]]:
    """The rows of each sampler × grid not in ``done`` (methods already measured), one pair at a time."""
    for sampler in samplers:
        for grid in grids:
            if f"{sampler} · {grid}" in done:
                continue
            rows = []
            for calls in CALLS:
                steps = steps_for_calls(sampler, calls)
                try:
                    make_grid(run.diffusion, steps, grid)
                except ConfigError:  # repeated steps, or more than T
                    continue
                r = measure(run, scorer, seed, sampler=sampler, grid=grid, steps=steps)
                rows.append({"method": f"{sampler} · {grid}", "calls": calls,
                             "used": calls_for_steps(sampler, steps), **r})
            yield rows


PD_STEPS = [1, 2, 4, 8]  # a progressive student per K (each its own chain from 64 teacher steps)


def progressive_rows(run: Run, scorer: Scorer, seed: int, folder: Path) -> tuple[list[dict[str, Any]], dict]:
    """Rows of the students of `difflab distill --steps K` for K = 1, 2, 4, 8 (at c calls: the largest K ≤ c), and
    each one's distillation seconds."""
    students, seconds = {}, {}
    for k in PD_STEPS:
        out = folder / f"student-{k}"
        if not (out / "model.safetensors").exists():
            distill_run(run.path, out, make_settings({"method": "progressive", "steps": k, "seed": seed}),
                        progress=False)
        students[k] = load_run(out)
        seconds[k] = float(read_json(out / "distill.json")["seconds"])
    rows = []
    for calls in CALLS:
        k = max(level for level in students if level <= calls)
        s = students[k].config.sample
        rows.append({"method": f"progressive ({s.sampler} · {s.grid})", "calls": calls, "used": k,
                     **measure(students[k], scorer, seed)})
    return rows, seconds


def consistency_rows(run: Run, scorer: Scorer, seed: int, folder: Path, done: set[str], grids: list[str]
                     ) -> tuple[list[dict[str, Any]], float]:
    """Rows of one consistency student sampled with 1..100 calls on every grid not in ``done``."""
    out = folder / "student"
    if not (out / "model.safetensors").exists():
        distill_run(run.path, out, make_settings({"method": "consistency", "steps": 1, "seed": seed}), progress=False)
    student = load_run(out)
    rows = []
    for grid in grids:
        if f"consistency · {grid}" in done:
            continue
        for calls in CALLS:
            try:
                make_grid(run.diffusion, calls, grid)
            except ConfigError:
                continue
            rows.append({"method": f"consistency · {grid}", "calls": calls, "used": calls,
                         **measure(student, scorer, seed, steps=calls, grid=grid)})
    return rows, float(read_json(out / "distill.json")["seconds"])


def throughput(run: Run, folder: Path) -> dict[str, float]:
    """Points per second of 100 000 samples: the recipe's sampler (all its calls, and 100) against 4 calls of each
    method."""
    own = run.config.sample
    runs = {"recipe": (run, {}), "recipe's sampler at 100 calls": (run, {"sampler": own.sampler, "grid": own.grid,
                                                                          "steps": 100}),
            "few-step default (4 calls)": (run, {"steps": 4})}
    if (folder / "progressive" / "student-4").exists():
        runs["progressive (4 calls)"] = (load_run(folder / "progressive" / "student-4"), {})
    if (folder / "consistency" / "student").exists():
        runs["consistency (4 calls)"] = (load_run(folder / "consistency" / "student"), {"steps": 4})
    times = alternate({name: (lambda r=r, kw=kw: sample_run(r, THROUGHPUT_N, device="cpu", **kw))
                       for name, (r, kw) in runs.items()}, rounds=3)
    calls = calls_for_steps(run.config.sample.sampler, run.config.sample.steps or run.diffusion.T)
    return {"recipe_calls": calls, **{name: THROUGHPUT_N / median(ts) for name, ts in times.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--toys", default=",".join(DATASETS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--samplers", default=",".join(SAMPLERS), help="the samplers crossed with --grids")
    ap.add_argument("--grids", default=",".join(GRIDS), help="the grids of the samplers and the consistency student")
    ap.add_argument("--teachers", type=Path, help="take the teacher of TOY, seed S from DIR/recommended-TOY-S when it "
                    "is there (benchmarks/quality_page.py --work DIR trains the same recipe)")
    ap.add_argument("--work", type=Path, default=Path("runs/few-step"), help="runs and results (kept for reruns)")
    ap.add_argument("--page", type=Path, help="rewrite this benchmark's section of this Markdown page")
    args = ap.parse_args()
    toys, seeds, methods = args.toys.split(","), [int(s) for s in args.seeds.split(",")], args.methods.split(",")
    samplers, grids = args.samplers.split(","), args.grids.split(",")
    unknown = ([m for m in methods if m not in METHODS] + [t for t in toys if t not in DATASETS] +
               [x for x in samplers if x not in SAMPLERS] + [g for g in grids if g not in GRIDS])
    if unknown:
        ap.error(f"unknown method, toy, sampler or grid: {', '.join(unknown)}")
    args.work.mkdir(parents=True, exist_ok=True)
    store = args.work / "results.json"
    results = read_json(store) if store.exists() else {"rows": [], "times": {}, "throughput": {}}
    print(f"## Few network calls\n\n{machine('cpu')}; {load()} at start\n", flush=True)
    for toy in toys:
        for seed in seeds:
            folder = args.work / f"{toy}-{seed}"
            run = teacher(toy, seed, args.work, args.teachers)
            scorer = Scorer(run.toy, seed)
            timing = results["times"].setdefault(f"{toy}-{seed}", {"toy": toy, "seed": seed})
            timing["teacher_s"] = run.seconds
            for method in methods:
                done = {r["method"] for r in results["rows"]
                        if r["toy"] == toy and r["seed"] == seed and r["family"] == method}
                if method == "samplers":
                    parts: Iterable[list[dict[str, Any]]] = sampler_rows(run, scorer, seed, done, samplers, grids)
                elif method == "progressive":
                    if done:
                        continue
                    rows, timing["progressive_s"] = progressive_rows(run, scorer, seed, folder / method)
                    parts = [rows]
                else:
                    rows, timing["consistency_s"] = consistency_rows(run, scorer, seed, folder / method, done, grids)
                    parts = [rows]
                for rows in parts:  # saved as they come: an interrupted run loses one pair at most
                    results["rows"] += [{"toy": toy, "seed": seed, "family": method, **r} for r in rows]
                    for r in rows:
                        print(f"  {toy} s{seed} {r['method']} {r['calls']} calls: " +
                              ", ".join(f"{m} {r[m]:.2f}" for m in METRICS), flush=True)
                    write_json(store, results)
            if toy == toys[0] and seed == seeds[0] and not results["throughput"]:
                results["throughput"] = {"toy": toy, **throughput(run, folder)}
                write_json(store, results)
    results["machine"] = f"{machine('cpu')}; {load()} at the end"
    write_json(store, results)
    if args.page:
        write_page(args.page, results)
        print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
