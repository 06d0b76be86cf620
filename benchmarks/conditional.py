"""Conditional generation with classifier-free guidance, per class: the section "Conditional generation" of
docs/tables.md.

Each set is trained with ``--condition`` on its class column (the table preset, seeds of the 20 % held-out split and
of training), then for every class c and guidance weight w (ε̂ = (1 + w) ε̂(x, c) − w ε̂(x, ∅), Ho & Salimans 2022)
rows of class c are drawn and scored:

- W1 / floor against the real rows of that class, on the feature columns standardised by the whole set's mean and
  sd: n = half the class's rows, the floor W1 between the two halves of the real rows (``evaluate_samples``,
  averaged over repeats). All of the class's rows are the reference (a held-out fifth of iris is 10 rows per class),
  so rows copied from the training set would score well here: the tables benchmark measures copying.
- class accuracy: a random forest trained on the real training rows (features → class) labels the generated rows;
  the share it puts in class c, next to its accuracy on the held-out real rows of class c (what real rows score).

Sets: sklearn:iris and sklearn:wine conditioned on ``target``, and 8gaussians with each point's mixture component as
a column (2000 points, 8 classes).

    .venv/bin/python benchmarks/conditional.py --page docs/tables.md     # all sets, seeds 0,1,2 (a few minutes)
    .venv/bin/python benchmarks/conditional.py --sets iris --seeds 0      # a quick look
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import load, machine, write_section  # noqa: E402
from difflab.config import resolve_config  # noqa: E402
from difflab.data import DATASETS  # noqa: E402
from difflab.evaluation import evaluate_samples  # noqa: E402
from difflab.evaluation.tables import Standardiser  # noqa: E402
from difflab.pipeline import train_run  # noqa: E402
from difflab.sample import sample_frame  # noqa: E402

START, END = "<!-- conditional.py: start -->", "<!-- conditional.py: end -->"
WEIGHTS = (0.0, 1.0, 3.0)


def eight_gaussians(path: Path, n: int = 2000, seed: int = 0) -> Path:
    """8gaussians with the component each point was drawn from, as a .csv (x, y, component)."""
    mix = DATASETS["8gaussians"].mixture
    rng = np.random.default_rng(seed)
    k = rng.choice(len(mix.weights), size=n, p=mix.weights)
    x = mix.means[k] + np.einsum("nij,nj->ni", np.linalg.cholesky(mix.covs)[k], rng.standard_normal((n, 2)))
    pd.DataFrame({"x": x[:, 0], "y": x[:, 1], "component": k}).to_csv(path, index=False)
    return path


def sets(tmp: Path) -> dict[str, tuple[str, str, int | None]]:
    """name → (source, condition column, training steps (None: the preset's))."""
    return {"iris": ("sklearn:iris", "target", None), "wine": ("sklearn:wine", "target", None),
            "8gaussians": (str(eight_gaussians(tmp / "8gaussians.csv")), "component", 2000)}


def run_set(name: str, source: str, column: str, steps: int | None, seed: int, args: argparse.Namespace,
            tmp: Path) -> list[dict[str, Any]]:
    from sklearn.ensemble import RandomForestClassifier

    cfg = resolve_config("table", overrides={"data": {"source": source, "condition": column, "seed": seed},
                                             "train": {"seed": seed, "steps": steps}})
    start = time.perf_counter()
    run = train_run(cfg, tmp / f"{name}-{seed}", progress=False)
    seconds = time.perf_counter() - start
    train, held = run.table.decode(run.train), run.table.decode(run.heldout)
    real = pd.concat([train, held], ignore_index=True)
    features = [c for c in real.columns if c != column]
    scale = Standardiser(real[features].to_numpy(dtype=np.float64))
    clf = RandomForestClassifier(n_estimators=200, random_state=seed).fit(train[features], train[column])
    out = []
    for level in run.condition.levels:
        rows = scale(real.loc[real[column] == level, features].to_numpy(dtype=np.float64))
        held_rows = held.loc[held[column] == level, features]
        real_acc = float((clf.predict(held_rows) == level).mean()) if len(held_rows) else float("nan")
        n = len(rows) // 2
        for w in WEIGHTS:
            gen = sample_frame(run, max(args.n, n), seed=seed + 1, where={column: level}, guidance=w)
            w1 = evaluate_samples(scale(gen[features].to_numpy(dtype=np.float64)), rows, n=n, repeats=args.repeats,
                                  metrics=["w1"], seed=seed)["w1"]
            out.append({"set": name, "seed": seed, "class": level, "w": w, "w1": w1["ratio"], "n": n,
                        "accuracy": float((clf.predict(gen[features]) == level).mean()), "real_accuracy": real_acc,
                        "seconds": seconds})
        print(f"{name} seed {seed} class {level}: " + ", ".join(
            f"w={r['w']:g} W1/floor {r['w1']:.2f} acc {r['accuracy']:.2f}" for r in out[-len(WEIGHTS):])
            + f" (real held-out acc {real_acc:.2f})", flush=True)
    return out


def markdown(results: list[dict[str, Any]], args: argparse.Namespace, where: str) -> str:
    df = pd.DataFrame(results)
    lines = [START, "## Conditional generation (classifier-free guidance)", "",
             "Generated by `.venv/bin/python benchmarks/conditional.py --page docs/tables.md` (preset `table` with "
             f"`--condition`, seeds {args.seeds}; 8gaussians trained 2000 steps).", "", f"Machine: {where}.", "",
             __doc__.split("\n\n", 1)[1].split("\n\nSets:")[0].strip(), "",
             "Means over the classes and seeds (W1 / floor: 1 is as close as another sample of real rows of the class; "
             "accuracy: the share of generated rows the classifier puts in the asked class):", "",
             "| set | classes | W1 / floor, w = 0 | w = 1 | w = 3 | accuracy, w = 0 | w = 1 | w = 3 | real held-out rows "
             "| fit time |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, g in df.groupby("set", sort=False):
        by_w = g.groupby("w")
        w1, acc = by_w["w1"].mean(), by_w["accuracy"].mean()
        lines.append(f"| {name} | {g['class'].nunique()} | " + " | ".join(f"{w1[w]:.2f}" for w in WEIGHTS) + " | "
                     + " | ".join(f"{acc[w]:.3f}" for w in WEIGHTS)
                     + f" | {g['real_accuracy'].mean():.3f} | {g['seconds'].mean():.1f} s |")
    w1, acc = df.groupby("w")["w1"].mean(), df.groupby("w")["accuracy"].mean()
    lines += ["", f"Over all sets and classes, w = 1 moves the class accuracy from {acc[0.0]:.3f} (w = 0) to "
              f"{acc[1.0]:.3f} and W1 / floor from {w1[0.0]:.2f} to {w1[1.0]:.2f}; w = 3 gives {acc[3.0]:.3f} and "
              f"{w1[3.0]:.2f}. Guidance makes the rows more typical of their class and less like the class's real "
              "rows as a whole: the trade of diversity for fidelity that Ho & Salimans (2022) describe. w = 0, the "
              "conditional model itself, is the one whose rows should match the real rows."]
    lines += ["", "Per class (means over the seeds):", "", "| set | class | n | W1 / floor, w = 0 | w = 1 | w = 3 | "
              "accuracy, w = 0 | w = 1 | w = 3 |", "|---|---|---|---|---|---|---|---|---|"]
    for (name, level), g in df.groupby(["set", "class"], sort=False):
        w1, acc = g.groupby("w")["w1"].mean(), g.groupby("w")["accuracy"].mean()
        lines.append(f"| {name} | {level} | {int(g['n'].iloc[0])} | " + " | ".join(f"{w1[w]:.2f}" for w in WEIGHTS)
                     + " | " + " | ".join(f"{acc[w]:.3f}" for w in WEIGHTS) + " |")
    return "\n".join(lines) + "\n" + END + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="iris,wine,8gaussians")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the held-out split and of training")
    ap.add_argument("--n", type=int, default=200, help="rows generated per class and weight (at least the W1 n)")
    ap.add_argument("--repeats", type=int, default=20, help="W1 repeats (the classes are small)")
    ap.add_argument("--page", type=Path, default=None, help="write the section into this markdown page")
    args = ap.parse_args()
    where = f"{machine()}; {load()} at the start"
    print(where, flush=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        known = sets(Path(tmp))
        for name in args.sets.split(","):
            source, column, steps = known[name]
            for seed in (int(s) for s in args.seeds.split(",") if s):
                results += run_set(name, source, column, steps, seed, args, Path(tmp))
    section = markdown(results, args, f"{where}; {load()} at the end")
    print(section)
    if args.page is not None:
        write_section(args.page, section, START, END)
        print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
