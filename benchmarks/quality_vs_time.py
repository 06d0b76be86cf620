"""Sample quality against training time: W1 / noise floor for the seed preset (the tutorial's recipe) and the
recommended recipe, each trained to a few step counts.

Each point: ``train_run`` of the preset with ``train.steps`` (and ``train.seed``) overridden, 4000 samples from
the run's own sampler, W1 against independent draws of the toy (``evaluate_samples(samples, toy.iid, n=2000,
metrics=["w1"])``; 1.0 = as close as two true samples of 2000 points). Seconds are the Trainer's wall seconds.

    .venv/bin/python benchmarks/quality_vs_time.py [--seeds 3] [--steps 250,1000,2500,5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import header, load, median, table  # noqa: E402
from difflab.config import resolve_config  # noqa: E402
from difflab.evaluation import evaluate_samples  # noqa: E402
from difflab.pipeline import train_run  # noqa: E402
from difflab.sample import sample_run  # noqa: E402


def point(preset: str, steps: int, seed: int, device: str, tmp: Path) -> dict[str, float]:
    cfg = resolve_config(preset, overrides={"train": {"steps": steps, "seed": seed, "device": device}})
    run = train_run(cfg, tmp / f"{preset}-{steps}-{seed}", progress=False)
    samples, _ = sample_run(run, 4000, seed=10_000 + seed)
    w1 = evaluate_samples(samples, run.toy.iid, n=2000, metrics=["w1"], seed=seed)["w1"]
    return {"seconds": run.seconds, **w1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="seed,recommended")
    ap.add_argument("--steps", default="250,1000,2500,5000")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    print(header("Quality against training time (moons)", args.device))
    start = time.perf_counter()
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            for steps in [int(s) for s in args.steps.split(",")]:
                pts = [point(preset, steps, s, args.device, Path(tmp)) for s in range(args.seeds)]
                rec = {k: median([p[k] for p in pts]) for k in ("seconds", "value", "floor", "ratio")}
                records.append({"preset": preset, "steps": steps, "seeds": args.seeds, **rec})
                rows.append([preset, steps, rec["seconds"], rec["value"], rec["floor"], rec["ratio"]])
                print(f"  {preset} {steps} steps: {rec['seconds']:.1f} s, W1/floor {rec['ratio']:.2f}", flush=True)
    print()
    print(table(["preset", "steps", "train seconds", "W1", "W1 floor", "W1 / floor"], rows))
    print(f"\nmedian over {args.seeds} seed(s); {time.perf_counter() - start:.0f} s; {load()}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
