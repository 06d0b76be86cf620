"""The recommended recipe's training step (residual MLP 128 × 3 blocks, batch 256, continuous EDM with log-normal
noise levels, AdamW with cosine LR and warm-up, EMA): the autograd step against the fast step, and the whole
`difflab train --data moons` against the tutorial's script.

Per step: ``Trainer.step()`` of the recipe on moons with ``fused=False`` (autograd: the step the recipe ran before
issue 19) and with the fast step (hand-written forward/backward on the objective's rows, lanes), for 1 and 2
threads, alternately in one process (cases in rotating order, a warm-up round dropped, medians); the ratio of each
to autograd on the same threads and to autograd on 2 threads (the recipe's old default on an idle 2-core machine);
the matrix-product floor (``floor.py``) and each step's share of it.

``--whole N``: N alternating rounds of whole processes: ``difflab train --data moons`` (the recipe as a user types
it: 10 000 steps, the run directory written) and the tutorial's script (``startup.py``'s: its imports, data, network,
AdamW and 5000 full-batch steps), wall and CPU seconds, medians and their ratio.

``--compile``: the recipe's autograd step under ``torch.compile`` (inductor): seconds to compile (first three
steps) and ms per step after, against the same process's eager steps.

    .venv/bin/python benchmarks/recipe_step.py [--rounds 7] [--whole 3] [--compile] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import alternate, header, load, median, table  # noqa: E402
from difflab.compute import cpu_threads  # noqa: E402
from floor import recipe_trainer, resmlp_floor  # noqa: E402
from startup import TUTORIAL  # noqa: E402


def per_step(rounds: int, n: int) -> dict[str, float]:
    """ms per step (median over rounds) of each case, name 'autograd | th' or 'fast | th'."""
    cases = {}
    for th in (1, 2):
        auto, fast = recipe_trainer(fused=False, threads=th), recipe_trainer(fused=True, threads=th)
        assert auto.fast is None and fast.fast is not None and fast.fast.lanes == th

        def run_auto(tr=auto, th=th) -> None:  # noqa: ANN001
            with cpu_threads(th):
                for _ in range(n):
                    tr.step()

        def run_fast(tr=fast) -> None:  # noqa: ANN001
            with cpu_threads(1):  # as Trainer.fit runs it: the lanes have one torch thread each
                for _ in range(n):
                    tr.step()

        cases[f"autograd | {th}"], cases[f"fast | {th}"] = run_auto, run_fast
    cpu: dict[str, list[float]] = {k: [] for k in cases}

    def with_cpu(name: str):  # noqa: ANN202
        def run() -> None:
            start = time.process_time()
            cases[name]()
            cpu[name].append(time.process_time() - start)
        return run

    times = alternate({k: with_cpu(k) for k in cases}, rounds=rounds)
    # CPU time of the whole process (all threads; a spinning OpenMP barrier counts): on a busy machine the
    # 1-thread figures are the steadier ones, since waiting for a core is not counted
    return {k: median(v) / n * 1e3 for k, v in times.items()} | {
        f"best {k}": min(v) / n * 1e3 for k, v in times.items()} | {
        f"cpu {k}": median(v[1:]) / n * 1e3 for k, v in cpu.items()}


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"recipe_step.py: {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def whole(rounds: int) -> list[list[object]]:
    with tempfile.TemporaryDirectory(prefix="difflab-recipe-") as tmp:
        work = Path(tmp)
        (work / "tutorial.py").write_text(TUTORIAL)
        counter = iter(range(10**6))
        cases = {
            "difflab train --data moons": lambda: [sys.executable, "-m", "difflab", "train", "--data", "moons", "-q",
                                                   "--out", str(work / f"run{next(counter)}")],
            "tutorial script (5000 steps)": lambda: [sys.executable, str(work / "tutorial.py"), "5000"],
        }
        got: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
        names = list(cases)
        for r in range(rounds):
            for name in names[r % 2 :] + names[: r % 2]:
                got[name].append(timed(cases[name]()))
                print(f"  {name}: {got[name][-1][0]:.1f} s wall, {got[name][-1][1]:.1f} s CPU; {load()}", flush=True)
    tut_wall = median([w for w, _ in got[names[1]]])
    rows = []
    for name in names:
        wall, cpu = median([w for w, _ in got[name]]), median([c for _, c in got[name]])
        rows.append([name, wall, min(w for w, _ in got[name]), cpu, wall / tut_wall])
    return rows


def compiled(n: int = 200) -> list[list[object]]:
    """Seconds to compile the autograd loss (torch.compile, inductor) and ms per step after, beside eager."""
    tr = recipe_trainer(fused=False, threads=1)
    eager = recipe_trainer(fused=False, threads=1)
    objective = tr.objective
    loss_fn = torch.compile(lambda x0, eps, t: objective.loss(tr.model, x0, eps, t))

    def step(t: object = tr) -> None:  # noqa: ANN001
        x0, times, eps = t.draw()
        t.opt.zero_grad(set_to_none=True)
        loss_fn(x0, eps, times).backward()
        t.apply_update()

    with cpu_threads(1):
        start = time.perf_counter()
        for _ in range(3):
            step()
        compile_s = time.perf_counter() - start
        times = alternate({"compiled": lambda: [step() for _ in range(n)],
                           "eager": lambda: [eager.step() for _ in range(n)]}, rounds=5)
    return [["torch.compile (first 3 steps)", compile_s, median(times["compiled"]) / n * 1e3,
             median(times["eager"]) / n * 1e3]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=100, help="steps per timed round")
    ap.add_argument("--whole", type=int, default=0, help="rounds of whole processes (0: none)")
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd step (slow to compile)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    print(header("Training step of the recommended recipe (recipe_step.py)", "cpu"))
    ms = per_step(args.rounds, args.steps)
    floor = resmlp_floor()
    floors = {1: floor["one"] * 1e3, 2: floor["floor2"] * 1e3}
    base = ms["autograd | 2"]
    rows = []
    for case in ("autograd", "fast"):
        for th in (1, 2):
            k = f"{case} | {th}"
            rows.append([case, th, ms[k], ms[f"best {k}"], ms[f"cpu {k}"], ms[f"autograd | {th}"] / ms[k],
                         base / ms[k], floors[th] / ms[k]])
    print(table(["step", "threads", "ms/step (median)", "ms/step (best)", "CPU ms/step (median)",
                 "× autograd (same threads)", "× autograd on 2 threads", "share of the floor"], rows))
    print(f"\nFloor (matrix products alone): {floors[1]:.3f} ms on 1 thread, {floors[2]:.3f} ms on 2 (best of "
          f"{floor['two'] * 1e3:.3f} on two torch threads and {floor['lanes'] * 1e3:.3f} as two lanes).")
    print(f"{args.rounds} rounds of {args.steps} steps after 1 warm-up round; {load()} at end")
    result = {"ms_per_step": ms, "floor_ms": floors, "floor_detail_ms": {k: v * 1e3 for k, v in floor.items()}}
    if args.compile:
        rows = compiled()
        print("\n" + table(["case", "compile s", "ms/step compiled", "ms/step eager autograd (1 thread)"], rows))
        result["compile"] = rows
    if args.whole:
        print(f"\nWhole processes, {args.whole} alternating rounds:")
        rows = whole(args.whole)
        print("\n" + table(["command", "wall s (median)", "wall s (best)", "CPU s (median)", "× tutorial script"],
                           rows))
        print(f"\n{load()} at end")
        result["whole"] = rows
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
