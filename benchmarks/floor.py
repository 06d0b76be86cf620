"""The arithmetic floor: how long the tutorial's network's matrix products alone take on this CPU.

A training step or a sampling step cannot be faster than its matrix products, so the ratios the other benchmarks
report are bounded by (the tutorial's time) / (these products' time). Printed per layer, one thread, best of
several rounds (no other work in the loop):

- sampling: forward products per point and step for row blocks of 512 … 4096 (bias folded in, as difflab's
  fixed-step path runs them);
- training: forward and backward products of one full-batch step at N = 1000 (the tutorial's recipe);
- two cores: the same products on two threads at once, each on its own matrices (how much the cores slow each
  other when both compute).

    .venv/bin/python benchmarks/floor.py
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import header, table  # noqa: E402

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


def main() -> None:
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
