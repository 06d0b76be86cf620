"""The ± of `difflab evaluate`: how precise the W1 ratio is at the defaults, what it costs, and whether the ± tells
the truth about the spread of the ratio from one evaluation to the next.

On a file of samples (default: 10 000 points of a trained run, or any .npy/.csv) against the toy's i.i.d. sampler:

1. `difflab evaluate FILE --reference TOY` with every default (all metrics, n = 2000, automatic repeats), timed
   with an empty floor cache (cold: the floors are estimated) and again with the cache filled (warm);
2. the W1 ratio alone with ``--seeds`` other seeds (other sample draws, other floor pairs), cold each time: the sd
   of those ratios against the mean reported ±.

    .venv/bin/python benchmarks/evaluate_se.py --samples samples.npy [--reference moons] [--seeds 8]
    .venv/bin/python benchmarks/evaluate_se.py --run runs/moons     # samples 10 000 points of the run first
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import header, load  # noqa: E402
from difflab.evaluation.floor_cache import ENV_DIR  # noqa: E402
from difflab.evaluation.report import evaluate_file  # noqa: E402

N_FILE = 10_000


def timed_cli(samples: Path, reference: str, cache: Path) -> float:
    """Wall seconds of the whole command (start-up included), as a user would time it."""
    env = {**os.environ, ENV_DIR: str(cache)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "difflab", "evaluate", str(samples), "--reference", reference],
                         env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    print(out.stdout)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=Path, help="a .npy/.csv file of samples")
    ap.add_argument("--run", type=Path, help="a run directory: sample 10 000 points of it first (seed 1)")
    ap.add_argument("--reference", default="moons")
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    print(header("The ± of difflab evaluate: precision, cost, honesty", "cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        samples = args.samples
        if samples is None:
            from difflab.rundir import load_run
            from difflab.sample import sample_run

            x, _ = sample_run(load_run(args.run), N_FILE, seed=1)
            samples = Path(tmp) / "samples.npy"
            np.save(samples, x)
        print(f"{load()} before the cold run")
        cold = timed_cli(samples, args.reference, Path(tmp) / "cold")
        warm = timed_cli(samples, args.reference, Path(tmp) / "cold")
        print(f"evaluate, every default: {cold:.1f} s with an empty floor cache, {warm:.1f} s with it filled "
              f"({load()})")
        ratios, ses = [], []
        for seed in range(1, args.seeds + 1):
            os.environ[ENV_DIR] = str(Path(tmp) / f"seed{seed}")
            r = evaluate_file(samples, reference=args.reference, metrics=["w1"], seed=seed)["w1"]
            ratios.append(r["ratio"])
            ses.append(r["ratio_se"])
            print(f"  seed {seed}: W1 ratio {r['ratio']:.3f} ± {r['ratio_se']:.3f} ({r['repeats']} draws, "
                  f"{r['floor_pairs']} floor pairs; relative se {r['ratio_se'] / r['ratio']:.1%})", flush=True)
        print(f"W1 ratio over {len(ratios)} seeds: mean {statistics.mean(ratios):.3f}, sd {statistics.stdev(ratios):.3f}; "
              f"mean reported ± {statistics.mean(ses):.3f} (rms {np.sqrt(np.mean(np.square(ses))):.3f}); {load()}")


if __name__ == "__main__":
    main()
