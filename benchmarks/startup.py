"""Start-up overhead of the training command: whole-process wall time outside the training steps.

    .venv/bin/python benchmarks/startup.py [--rounds 5] [--steps 1,201] [--explain]

Each case runs as a fresh process for two step counts N1 < N2, rounds alternating (order rotating), medians. The
steps' own time is the slope (t(N2) − t(N1)) / (N2 − N1); the overhead is t(N1) − N1 · slope: interpreter start-up,
imports, data, model, optimizer, writing the run directory, exit. The cases:

- ``difflab train --preset seed --steps N -q`` (the tutorial's recipe, as a user types it);
- the tutorial's script: the same imports the tutorial uses (torch, sklearn's ``make_moons``), its network and
  AdamW, a loop of N steps, nothing written.

``--explain`` also prints the slowest top-level imports of the difflab command (``python -X importtime``).
Goal (issue 10): overhead below 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import header, load, median, table  # noqa: E402

GOAL_S = 1.5

# The tutorial's script (Elflein 2022), as a user would run it: its imports, data, network, optimizer and loop.
TUTORIAL = '''
import sys
import torch
from torch import nn
from sklearn.datasets import make_moons

steps = int(sys.argv[1])
X, _ = make_moons(n_samples=1000, noise=None)
X = torch.tensor(X, dtype=torch.float32)
X = 2 * (X - X.min(0).values) / (X.max(0).values - X.min(0).values) - 1
T = 10
beta = torch.linspace(0, 0.99, T + 1) ** 4
alpha_bar = torch.cumprod(1.0 - beta, dim=-1)


class NoisePredictor(nn.Module):
    def __init__(self, T):
        super().__init__()
        self.T = T
        self.t_encoder = nn.Linear(T, 1)
        self.model = nn.Sequential(nn.Linear(3, 100), nn.LeakyReLU(), nn.Linear(100, 100), nn.LeakyReLU(),
                                   nn.Linear(100, 100), nn.LeakyReLU(), nn.Linear(100, 20), nn.LeakyReLU(),
                                   nn.Linear(20, 2))

    def forward(self, x_t, t):
        t_embedding = self.t_encoder(nn.functional.one_hot(t - 1, num_classes=self.T).to(torch.float))
        return self.model(torch.cat([x_t, t_embedding], dim=1))


model = NoisePredictor(T)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.999), weight_decay=1e-4)
for _ in range(steps):
    with torch.no_grad():
        t = torch.randint(low=1, high=T + 1, size=(len(X),))
        eps = torch.randn_like(X)
        x_t = alpha_bar[t, None] ** 0.5 * X + (1 - alpha_bar[t, None]) ** 0.5 * eps
    loss = nn.functional.mse_loss(model(x_t, t), eps)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
'''


def commands(work: Path, compare: Path | None = None) -> dict[str, Callable[[int], list[str]]]:
    """Case name -> (steps -> argv), each run writing into a fresh folder under ``work``; ``compare``: also the
    difflab package under that ``src`` folder (another checkout, e.g. an earlier commit)."""
    script = work / "tutorial.py"
    script.write_text(TUTORIAL)
    counter = iter(range(10**9))

    def difflab(steps: int) -> list[str]:
        return [sys.executable, "-m", "difflab", "train", "--preset", "seed", "--steps", str(steps), "-q",
                "--out", str(work / f"run{next(counter)}")]

    def tutorial(steps: int) -> list[str]:
        return [sys.executable, str(script), str(steps)]

    cases = {"difflab train --preset seed": difflab, "tutorial script": tutorial}
    if compare is not None:
        def other(steps: int) -> list[str]:
            code = f"import sys; sys.path.insert(0, {str(compare)!r}); from difflab.cli import main; main()"
            return [sys.executable, "-c", code, *difflab(steps)[3:]]

        cases[f"difflab train --preset seed ({compare})"] = other
    return cases


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``. CPU time (user + system, the process and its threads)
    is the steadier figure on a machine that other processes share: it does not count the time spent waiting
    for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"startup.py: {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def explain(work: Path, top: int = 12) -> str:
    """The slowest imports (cumulative ms) of ``difflab train --preset seed --steps 1``: each package's first import,
    and any import made at run time rather than under another (e.g. a module a function imports on first call)."""
    argv = [sys.executable, "-X", "importtime", "-m", "difflab", "train", "--preset", "seed", "--steps", "1", "-q",
            "--out", str(work / "explain")]
    err = subprocess.run(argv, capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        top_level = not name[1:].startswith(" ")  # not nested under another import
        if top_level or "." not in name:
            rows.append((int(cumulative) / 1000, name.strip()))
    rows.sort(reverse=True)
    return table(["top-level import", "ms (cumulative)"], [[n, f"{ms:.0f}"] for ms, n in rows[:top]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", default="1,201", help="the two step counts N1,N2")
    ap.add_argument("--explain", action="store_true", help="also list the slowest imports")
    ap.add_argument("--json", type=Path, help="write the results here too")
    ap.add_argument("--compare", type=Path, help="also time the difflab under this src folder (another checkout)")
    args = ap.parse_args()
    n1, n2 = (int(s) for s in args.steps.split(","))
    print(header("Start-up overhead of the training command (startup.py)", "cpu"))
    with tempfile.TemporaryDirectory(prefix="difflab-startup-") as tmp:
        work = Path(tmp)
        cases = commands(work, args.compare.resolve() if args.compare else None)
        runs = [(name, n) for name in cases for n in (n1, n2)]
        times: dict[tuple[str, int], list[tuple[float, float]]] = {r: [] for r in runs}
        env_note = f"{os.cpu_count()} cores"
        for r in range(args.rounds + 1):  # round 0 warms the file cache and is dropped
            k = r % len(runs)
            for name, n in runs[k:] + runs[:k]:
                measured = timed(cases[name](n))
                if r:
                    times[(name, n)].append(measured)
        rows, results = [], {}
        for name in cases:
            res = {}
            for i, kind in enumerate(("wall", "cpu")):
                t1 = median([m[i] for m in times[(name, n1)]])
                t2 = median([m[i] for m in times[(name, n2)]])
                per_step = (t2 - t1) / (n2 - n1)
                res[kind] = {"t_n1": t1, "t_n2": t2, "ms_per_step": 1000 * per_step,
                             "overhead_s": t1 - n1 * per_step,
                             "overhead_best_s": min(m[i] for m in times[(name, n1)]) - n1 * per_step}
            results[name] = res
            w, c = res["wall"], res["cpu"]
            rows.append([name, w["t_n1"], w["t_n2"], w["ms_per_step"], w["overhead_s"], w["overhead_best_s"],
                         c["overhead_s"]])
        base = results["tutorial script"]["wall"]["overhead_s"]
        for row, name in zip(rows, cases, strict=True):
            row.append(f"{base / results[name]['wall']['overhead_s']:.2f}x")
        print(table(["case", f"wall s, N={n1}", f"wall s, N={n2}", "ms/step", "overhead s (median)",
                     "overhead s (best)", "overhead CPU s (median)", "tutorial overhead / this"], rows))
        ours = results["difflab train --preset seed"]["wall"]["overhead_s"]
        print(f"\n{args.rounds} rounds, {env_note}; {load()} at end. Goal: overhead < {GOAL_S} s: "
              f"{'met' if ours < GOAL_S else 'NOT met'} ({ours:.2f} s).")
        if args.explain:
            print("\n" + explain(work))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
