"""A seed sweep: M models trained at once (``train_many``) against one after another (``train_run``).

``--preset seed`` (default): the tutorial's network and recipe, batched by its hand-written step.
``--preset recommended``: difflab's residual MLP, batched by torch.func (``difflab.training.stacked``).

Both write full run directories. Per-model seconds = wall seconds / M. On the CPU the sequential runs use the
Trainer's own thread choice, as ``difflab train`` does; on a GPU sequential runs of every M would take long, so
the sequential per-model time is measured on ``--seq`` runs and applies to every M (runs in turn do not interact).

    .venv/bin/python benchmarks/sweep.py                   # CPU: M = 4, 16 at 300 steps
    .venv/bin/python benchmarks/sweep.py --device cuda     # GPU: M = 16, 64, 256, 1024 at 5000 steps
    .venv/bin/python benchmarks/sweep.py --preset recommended --M 4 --steps 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import header, load, median, resolve, table  # noqa: E402
from difflab.config import resolve_config  # noqa: E402
from difflab.pipeline import (
    train_many,  # noqa: E402
    train_run,  # noqa: E402
)


def configs(preset: str, M: int, steps: int, device: str) -> list:
    return [resolve_config(preset, overrides={"train": {"seed": s, "steps": steps, "device": device}})
            for s in range(M)]


def batched(preset: str, M: int, steps: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_many(configs(preset, M, steps, device), [Path(tmp) / f"m{s}" for s in range(M)])
        return time.perf_counter() - start


def sequential(preset: str, M: int, steps: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for s, cfg in enumerate(configs(preset, M, steps, device)):
            train_run(cfg, Path(tmp) / f"s{s}", progress=False)
        return time.perf_counter() - start


def save_rows(path: Path, rows: list[list]) -> None:
    keys = ["M", "steps", "sequential_s_per_model", "batched_s_per_model", "speedup", "batched_wall_s"]
    path.write_text(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--M", default=None, help="model counts, comma-separated (default 4,16 CPU; 16,64,256,1024 GPU)")
    ap.add_argument("--steps", type=int, default=None, help="steps per model (default 300 CPU, 5000 GPU)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3 CPU, 1 GPU)")
    ap.add_argument("--seq", type=int, default=4, help="GPU: sequential runs timed for the per-model baseline")
    ap.add_argument("--preset", default="seed", choices=["seed", "recommended"])
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    device = resolve(args.device)
    gpu = device == "cuda"
    Ms = [int(m) for m in (args.M or ("16,64,256,1024" if gpu else "4,16")).split(",")]
    steps = args.steps or (5000 if gpu else 300)
    rounds = args.rounds or (1 if gpu else 3)
    print(header(f"Seed sweep, the {args.preset} recipe at {steps} steps", device))
    batched(args.preset, 2, 5, device)  # warm-ups (imports, allocator, kernels), excluded
    sequential(args.preset, 1, 5, device)
    start = time.perf_counter()
    rows = []
    seq_per_model = None
    if gpu:
        seq_per_model = median([sequential(args.preset, args.seq, steps, device) / args.seq for _ in range(rounds)])
    for M in Ms:
        b, s = [], []
        for r in range(rounds):
            order = [("b", batched), ("s", sequential)] if r % 2 == 0 or gpu else [("s", sequential), ("b", batched)]
            for kind, fn in order:
                if kind == "s" and gpu:
                    continue
                (b if kind == "b" else s).append(fn(args.preset, M, steps, device) / M)
        per_b = median(b)
        per_s = seq_per_model if gpu else median(s)
        rows.append([M, steps, per_s, per_b, per_s / per_b, per_b * M])
        if args.json:  # after every M, so that a run cut short keeps what it measured
            save_rows(args.json, rows)
    print(table(["M", "steps", "one after another, s/model", "batched, s/model", "speed-up", "batched wall s"], rows))
    note = f"sequential per-model time from {args.seq} runs" if gpu else f"median of {rounds} alternating rounds"
    print(f"\n{note}; {time.perf_counter() - start:.0f} s; {load()}")


if __name__ == "__main__":
    main()
