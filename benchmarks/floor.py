"""The arithmetic floor: how long a network's matrix products alone take on this CPU.

A training step or a sampling step cannot be faster than its matrix products, so the ratios the other benchmarks
report are bounded by (the tutorial's time) / (these products' time). Printed per layer, one thread, best of
several rounds (no other work in the loop):

- sampling: forward products per point and step for row blocks of 512 … 4096 (bias folded in, as difflab's
  fixed-step path runs them);
- training: forward and backward products of one full-batch step at N = 1000 (the tutorial's recipe);
- two cores: the same products on two threads at once, each on its own matrices (how much the cores slow each
  other when both compute);
- the residual MLP of the recommended recipe (width 128, 3 blocks, time embedding 32 → 128 → 128, batch 256, D = 2):
  the forward, weight-gradient and input-gradient products of one training step on one thread, on two torch
  threads, and split into two lanes of 128 rows computed at once (the fast step's split); the floor on two cores is
  the faster of the two. Beside it, the fast training step (``Trainer.step()``, hand-written forward/backward,
  fused AdamW, EMA) timed the same way, and its share of the floor (floor / step time).

    .venv/bin/python benchmarks/floor.py [--only resmlp]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import header, load, table  # noqa: E402
from difflab.compute import cpu_threads  # noqa: E402

WIDTHS = [2, 100, 100, 100, 20, 2]  # the tutorial's network for D = 2 (time code folded into the first bias)


def best_seconds(fn, n: int = 200, rounds: int = 5) -> float:  # noqa: ANN001
    for _ in range(10):
        fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def forward_products(rows: int) -> list:
    """One closure per layer computing bias + H Wᵀ for ``rows`` rows."""
    calls = []
    for n_in, n_out in zip(WIDTHS[:-1], WIDTHS[1:], strict=True):
        h, w, b = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(n_out)
        calls.append(lambda h=h, w=w, b=b: torch.addmm(b, h, w.t()))
    return calls


def train_products(rows: int = 1000) -> list:
    """Forward, weight-gradient and input-gradient products of one step (the first layer's input needs none)."""
    calls = []
    widths = [3, *WIDTHS[1:]]
    for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        h, w, b, g = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(n_out), torch.randn(rows, n_out)
        calls.append(lambda h=h, w=w, b=b: torch.addmm(b, h, w.t()))
        calls.append(lambda h=h, g=g: torch.mm(g.t(), h))
        if k > 0:
            calls.append(lambda w=w, g=g: torch.mm(g, w))
    return calls


def resmlp_products(rows: int, dim: int = 2, width: int = 128, depth: int = 3, emb: int = 32) -> list:
    """The products of one training step of the residual MLP on ``rows`` rows: every layer's forward (bias folded
    in) and weight gradient, and the input gradient of every layer whose input needs one (all but the time MLP's
    first layer, which reads fixed sinusoidal features, and the input layer, which reads the data)."""
    layers = [(emb, width, False), (width, width, True), (dim, width, False)]  # time MLP (2), input layer
    layers += [(width, width, True)] * (2 * depth) + [(width, dim, True)]  # the blocks' two Linears, output layer
    calls = []
    for n_in, n_out, needs_input_grad in layers:
        h, w, b, g = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(n_out), torch.randn(rows, n_out)
        calls.append(lambda h=h, w=w, b=b: torch.addmm(b, h, w.t()))
        calls.append(lambda h=h, g=g: torch.mm(g.t(), h))
        if needs_input_grad:
            calls.append(lambda w=w, g=g: torch.mm(g, w))
    return calls


def resmlp_floor(batch: int = 256, rounds: int = 5) -> dict[str, float]:
    """Seconds per step of the residual MLP's products: ``one`` (one thread), ``two`` (two torch threads),
    ``lanes`` (two threads at once, each the products of half the rows, one torch thread each) and ``floor2`` (the
    faster of the last two)."""
    calls, halves = resmlp_products(batch), [resmlp_products(batch // 2), resmlp_products(batch - batch // 2)]

    def run(cs: list, n: int = 20) -> None:
        for _ in range(n):
            for c in cs:
                c()

    out = {}
    for name, th in (("one", 1), ("two", 2)):
        with cpu_threads(th):
            out[name] = best_seconds(lambda: run(calls), n=1, rounds=rounds) / 20
    with cpu_threads(1), ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        def both() -> None:
            f = pool.submit(run, halves[1])
            run(halves[0])
            f.result()

        out["lanes"] = best_seconds(both, n=1, rounds=rounds) / 20
    out["floor2"] = min(out["two"], out["lanes"])
    return out


def recipe_trainer(*, fused: bool, threads: int):  # noqa: ANN201
    """A Trainer of the recommended recipe on moons (CPU, ``threads`` threads: the fast step's lanes)."""
    from difflab.assemble import build_process
    from difflab.config import resolve_config
    from difflab.data.prepare import prepare_data
    from difflab.diffusion import get_parameterization
    from difflab.pipeline.single import initial_model
    from difflab.training.trainer import Trainer

    cfg = resolve_config("recommended", overrides={"train": {"device": "cpu", "threads": threads}})
    process, data, d = build_process(cfg), prepare_data(cfg.data), cfg.diffusion
    param = get_parameterization(d.parameterization, sigma_data=d.sigma_data)
    # fused=False: the same Trainer on autograd, the step the recipe ran before the fast step
    return Trainer(initial_model(cfg, process, data.model_dim), process, data.model_input, cfg.train,
                   parameterization=param, fused=fused)


def resmlp_section(rounds: int = 5) -> None:
    print(header("Matrix products of the residual MLP (recommended recipe), one training step at B = 256", "cpu"))
    floor = resmlp_floor(rounds=rounds)
    rows = []
    for th, key in ((1, "one"), (2, "floor2")):
        tr = recipe_trainer(fused=True, threads=th)
        with cpu_threads(1):  # the fast step's lanes set their own threads
            step = best_seconds(tr.step, n=50, rounds=rounds)
        rows.append([th, floor[key] * 1e3, step * 1e3, floor[key] / step])
    print(f"\nProducts per step: {floor['one'] * 1e3:.3f} ms on one thread; {floor['two'] * 1e3:.3f} ms on two torch "
          f"threads; {floor['lanes'] * 1e3:.3f} ms as two lanes of 128 rows at once.\n")
    print(table(["threads", "floor ms/step", "fast step ms/step (best)", "fast step's share of the floor"], rows))
    print(f"\nbest of {rounds} rounds; {load()} at end")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["seed", "resmlp"], help="one network's section only")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.only != "resmlp":
        seed_section()
    if args.only != "seed":
        resmlp_section(args.rounds)


def seed_section() -> None:
    torch.set_num_threads(1)
    print(header("Matrix products of the tutorial's network, one thread", "cpu"))
    rows_out = []
    for rows in (512, 1024, 2048, 4096):
        calls = forward_products(rows)
        secs = [best_seconds(c) for c in calls]
        flops = sum(2 * rows * a * b for a, b in zip(WIDTHS[:-1], WIDTHS[1:], strict=True))
        rows_out.append([rows, sum(secs) * 1e6, sum(secs) / rows * 1e9, flops / sum(secs) / 1e9])
    print("\nSampling: forward products per block\n")
    print(table(["rows", "µs per block", "ns per point-step", "GFLOPS"], rows_out))

    calls = train_products()
    step = sum(best_seconds(c) for c in calls)
    print(f"\nTraining: the products of one step at N = 1000 take {step * 1e3:.2f} ms on one thread.")

    def all_products(n: int = 50) -> None:
        for _ in range(n):
            for c in calls:
                c()

    other = train_products()

    def all_other(n: int = 50) -> None:
        for _ in range(n):
            for c in other:
                c()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(torch.set_num_threads, 1).result()
        alone = best_seconds(all_products, n=1, rounds=5) / 50
        start = time.perf_counter()
        f = pool.submit(lambda: [all_other() for _ in range(5)])
        for _ in range(5):
            all_products()
        f.result()
        together = (time.perf_counter() - start) / (5 * 50)
    print(f"Two threads, each with its own step's products: {together * 1e3:.2f} ms per step each, against "
          f"{alone * 1e3:.2f} ms alone ({together / alone:.2f}x).")


if __name__ == "__main__":
    main()
