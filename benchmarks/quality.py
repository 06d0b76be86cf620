"""Sample quality of a recipe on every toy, on the yardstick of the reverse-process issue: W1 / noise floor of 10 000
samples, columns standardised by the true distribution's mean and sd, exact W1 on 2000-point subsets, mean of 6
draws, against i.i.d. truth; energy distance and the C2ST accuracy next to their floors too.

A recipe is a preset with overrides; ``--baseline`` runs difflab's previous default (linear schedule, T = 100,
ε-prediction, ancestral sampling; the recommended recipe before the reverse-process issue) in the same process.
Sampling settings can be varied per run without retraining (``--sample`` several times: each is a comma-separated
list of key=value for the sample section, e.g. ``sampler=heun,steps=20,grid=karras``).

    .venv/bin/python benchmarks/quality.py [--recipe recommended] [--set train.steps=8000] [--baseline]
        [--toys moons,circles] [--seeds 0,1,2] [--sample sampler=ode] [--json out.json]
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
from difflab.data import DATASETS  # noqa: E402
from difflab.evaluation import evaluate_samples  # noqa: E402
from difflab.pipeline import train_run  # noqa: E402
from difflab.sample import sample_run  # noqa: E402

TOYS = list(DATASETS)
METRICS = ["w1", "energy", "c2st"]
N_SAMPLES, N_EVAL, REPEATS = 10_000, 2000, 6
# difflab's recommended recipe before the reverse-process issue, spelled out (the baseline every target is set
# against): discrete linear schedule, T = 100, ε-prediction, ancestral sampling with all 100 steps.
BASELINE: dict[str, Any] = {
    "diffusion": {"time": "discrete", "schedule": "linear", "T": 100, "parameterization": "eps",
                  "variance": "fixed", "zero_terminal_snr": False},
    "model": {"name": "mlp", "options": {"width": 128, "depth": 3}},
    "train": {"steps": 5000, "batch_size": 256, "lr": 3e-3, "weight_decay": 1e-4, "lr_schedule": "cosine",
              "warmup": 100, "ema": 0.995, "noise_sampling": "uniform"},
    "sample": {"sampler": "ddpm", "steps": None, "grid": "trailing", "variance": "small", "guard": "none",
               "options": {}},
}


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def dotted(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        node = out
        *path, leaf = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = parse_value(value)
    return out


def standardiser(toy: Any) -> Any:
    """x ↦ (x − mean)/sd with the true distribution's moments (from 200 000 i.i.d. draws)."""
    big = toy.iid(200_000, 12345)
    mean, sd = big.mean(0), big.std(0)
    return lambda x: (x - mean) / sd


def score(samples: np.ndarray, toy: Any, seed: int) -> dict[str, float]:
    """Each metric's ratio and its standard error (``<metric>_se``; the floors are cached per toy, n and seed)."""
    std = standardiser(toy)
    r = evaluate_samples(std(samples), lambda n, s: std(toy.iid(n, s)), n=N_EVAL, repeats=REPEATS,
                         metrics=METRICS, seed=seed, reference_key=f"quality:{toy.name}:standardised-200k")
    # C2ST's ratio is of excess accuracies over chance, which is unstable near the floor: keep the accuracy too
    return {**{m: r[m]["ratio"] for m in METRICS}, **{f"{m}_se": r[m]["ratio_se"] for m in METRICS},
            "c2st_acc": r["c2st"]["value"], "c2st_floor": r["c2st"]["floor"]}


def run_recipe(name: str, recipe: str, over: dict[str, Any], toys: list[str], seeds: list[int],
               samplings: list[dict[str, Any]], tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for toy in toys:
        for seed in seeds:
            cfg = resolve_config(recipe, overrides={**over, "data": {"source": toy},
                                                    "train": {**over.get("train", {}), "seed": seed}})
            start, cpu = time.perf_counter(), time.process_time()
            run = train_run(cfg, tmp / f"{name}-{toy}-{seed}", progress=False)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            rows += sampling_rows(run, name, toy, seed, samplings, seconds, cpu)
    return rows


def label(sampling: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sampling.items()) or "the recipe's sampler"


def sampling_rows(run: Any, name: str, toy: str, seed: int, samplings: list[dict[str, Any]], seconds: float,
                  cpu: float) -> list[dict[str, Any]]:
    """One row per sampling of a trained run: the ratios of its N_SAMPLES samples (sampling seed 1000 + seed)."""
    rows = []
    for sampling in samplings:
        t0 = time.perf_counter()
        x, _ = sample_run(run, N_SAMPLES, seed=1000 + seed, **sampling)
        sample_s = time.perf_counter() - t0
        ratios = (score(x, run.toy, seed) if np.isfinite(x).all() else
                  {**{m: float("inf") for m in METRICS}, **{f"{m}_se": float("nan") for m in METRICS},
                   "c2st_acc": 1.0, "c2st_floor": 0.5})
        rows.append({"recipe": name, "toy": toy, "seed": seed, "sampling": label(sampling), "train_s": seconds,
                     "train_cpu_s": cpu, "sample_s": sample_s, **ratios})
        print(f"  {name} {toy} seed {seed} [{label(sampling)}]: train {seconds:.1f} s, "
              + ", ".join(f"{m} {ratios[m]:.2f} ± {ratios[f'{m}_se']:.2f}" for m in METRICS), flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["recipe"], r["sampling"], r["toy"]), []).append(r)
    lines = ["| recipe | sampling | toy | W1/floor | energy/floor | C2ST/floor | C2ST acc (floor) | train s (CPU s) |",
             "|---|---|---|---|---|---|---|---|"]

    def ms(vals: list[float]) -> str:
        if len(vals) < 2:
            return f"{vals[0]:.2f}"
        return f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"

    for (recipe, sampling, toy), rs in groups.items():
        lines.append(f"| {recipe} | {sampling} | {toy} | {ms([r['w1'] for r in rs])} | "
                     f"{ms([r['energy'] for r in rs])} | {ms([r['c2st'] for r in rs])} | "
                     f"{statistics.mean(r['c2st_acc'] for r in rs):.3f} ({statistics.mean(r['c2st_floor'] for r in rs):.3f})"
                     f" | {statistics.mean(r['train_s'] for r in rs):.1f} ({statistics.mean(r['train_cpu_s'] for r in rs):.1f}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recommended", help="preset of the recipe under test")
    ap.add_argument("--set", action="append", default=[], help="override, e.g. train.steps=8000 (JSON values)")
    ap.add_argument("--baseline", action="store_true", help="also run the previous default in the same process")
    ap.add_argument("--toys", default=",".join(TOYS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--sample", action="append", default=[], help="sampling settings to score, e.g. sampler=ode")
    ap.add_argument("--json", type=Path, help="also write every row here")
    args = ap.parse_args()
    toys, seeds = args.toys.split(","), [int(s) for s in args.seeds.split(",")]
    samplings = [dotted(s.split(",")) for s in args.sample] or [{}]
    print(header(f"Quality on {len(toys)} toys: ratio to the noise floor (yardstick: {N_SAMPLES} samples, "
                 f"{N_EVAL}-point subsets, {REPEATS} draws)", "cpu"))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            rows += run_recipe("baseline", "recommended", BASELINE, toys, seeds, [{}], Path(tmp))
        rows += run_recipe(args.recipe, args.recipe, dotted(args.set), toys, seeds, samplings, Path(tmp))
    print()
    print(summary(rows))
    print(f"\n{load()} at the end")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
