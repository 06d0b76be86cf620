"""Minibatch OT coupling (src/difflab/training/coupling.py): CPU milliseconds of one pairing by the exact solver
(POT's ot.emd) and by Sinkhorn (ot.sinkhorn at the module's regularisation) for batch sizes 64..4096, D = 2 and 10,
their transport cost against the exact optimum and against independent pairs, and the size from which Sinkhorn is
the faster (which sets EXACT_MAX); then the training step's CPU time with and without coupling, for the default
batch of 256 rows, measured alternately in this process.

    nice -n 10 .venv/bin/python benchmarks/coupling.py [--sizes 64,128,256,512,1024,2048,4096] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import header, load, table  # noqa: E402
from difflab.assemble import build_process  # noqa: E402
from difflab.compute import cpu_threads  # noqa: E402
from difflab.config import resolve_config  # noqa: E402
from difflab.data.prepare import prepare_data  # noqa: E402
from difflab.pipeline.single import initial_model, make_trainer  # noqa: E402
from difflab.training.coupling import EXACT_MAX, SINKHORN_REG, exact_plan, sinkhorn_plan, squared_costs  # noqa: E402


def cpu_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(1e3 * (time.process_time() - start))
    return statistics.median(times)


def solvers(sizes: list[int], rounds: int) -> tuple[str, dict[int, int | None]]:
    rng = np.random.default_rng(0)
    rows, crossover = [], {}
    for dim in (2, 10):
        crossover[dim] = None
        for n in sizes:
            x0, eps = rng.normal(size=(n, dim)) + 1.0, rng.normal(size=(n, dim))
            cost = squared_costs(x0, eps)
            exact_ms = cpu_ms(lambda: exact_plan(x0, eps), rounds)  # noqa: B023
            sink_ms = cpu_ms(lambda: sinkhorn_plan(x0, eps), rounds)  # noqa: B023
            best = float((exact_plan(x0, eps) * cost).sum())
            soft = float((sinkhorn_plan(x0, eps) * cost).sum())
            rows.append([dim, n, exact_ms, sink_ms, soft / best, float(np.trace(cost)) / n / best])
            if sink_ms < exact_ms and crossover[dim] is None:
                crossover[dim] = n
    text = table(["D", "rows", "exact ms", f"Sinkhorn ms (reg {SINKHORN_REG})", "Sinkhorn cost / exact",
                  "independent cost / exact"], rows)
    return text, crossover


def step_cost(rounds: int, steps: int = 200) -> str:
    """CPU seconds per training step of the straight-path velocity recipe on moons, coupling none vs ot."""
    rows = []
    trainers = {}
    for coupling in ("none", "ot"):
        cfg = resolve_config("recommended", overrides={
            "diffusion": {"schedule": "rectified", "parameterization": "velocity"},
            "train": {"coupling": coupling, "steps": steps * (rounds + 1)}, "sample": {"sampler": "ddim"}})
        data = prepare_data(cfg.data)
        process = build_process(cfg)
        trainers[coupling] = make_trainer(cfg, initial_model(cfg, process, data.model_dim), process, data.model_input)
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for r in range(rounds + 1):
        for name in (list(trainers) if r % 2 == 0 else list(trainers)[::-1]):
            tr = trainers[name]
            start = time.process_time()
            with cpu_threads(tr.threads):  # the trainer's own thread count, as fit() runs it
                for _ in range(steps):
                    tr.step()
            if r > 0:
                times[name].append(1e3 * (time.process_time() - start) / steps)
    base = statistics.median(times["none"])
    for name, ts in times.items():
        rows.append([name, statistics.median(ts), statistics.median(ts) / base])
    return table(["coupling", "CPU ms per step (batch 256)", "ratio"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,128,256,512,1024,2048,4096")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--step-only", action="store_true", help="only the training step's cost")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(header("Minibatch OT coupling: exact vs Sinkhorn, and the training step", "cpu"))
    if not args.step_only:
        text, crossover = solvers(sizes, args.rounds)
        print(text)
        print(f"\nSinkhorn first faster at: D = 2: {crossover[2]} rows, D = 10: {crossover[10]} rows "
              f"(EXACT_MAX now {EXACT_MAX})\n")
    print(step_cost(args.rounds))
    print(f"\n{load()} at the end")


if __name__ == "__main__":
    main()
