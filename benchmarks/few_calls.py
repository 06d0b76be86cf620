"""One training, few calls (issue 15): every family of benchmarks/_few_calls_families.py (the default recipe with its
few-step budgets, the straight path with and without OT coupling under two time samplings, reflow 1 and 2 rounds,
progressive and consistency distillation, and any family registered later) × calls {1, 2, 4, 10, 20, 100} × toys ×
seeds, against torchcfm's OT-CFM trained on the same training rows for the same CPU seconds (a peer run in its own
virtual environment: benchmarks/_torchcfm_peer.py).

Yardstick: benchmarks/quality.py's (W1 / energy / C2ST against their noise floors; 10 000 samples, columns
standardised by the truth, 2000-point subsets, 6 draws, i.i.d. truth), through few_step.Scorer. For each budget of
c calls a family lists the (sampler, grid, steps) it may use (at most c calls); the one with the lowest W1 on a
cheap proxy (1000-point subsets, 2 draws, other seeds than the yardstick's) is scored on the full yardstick and
reported, with the proxy values of the others kept in the results. Training and distillation CPU seconds are those
of this process (time.process_time), which load from other processes inflates less than wall time.

Resumable: runs and results are kept in ``--work``, per (family, toy, seed); ``--toys``, ``--families`` and ``--seeds``
pick a subset, and ``--page docs/few_calls.md`` writes the page and its figures from all results kept so far.

    nice -n 10 .venv/bin/python benchmarks/few_calls.py --toys moons,8gaussians --seeds 0 \
        [--families edm,reflow 1] [--peer-python /work/venvs/torchcfm/bin/python] [--page docs/few_calls.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import load, machine  # noqa: E402
from _few_calls_families import FAMILIES, Built, Context  # noqa: E402
from _few_calls_page import write_page  # noqa: E402
from difflab.data import DATASETS  # noqa: E402
from difflab.evaluation.metrics import METRICS as METRIC_FNS  # noqa: E402
from difflab.io import read_json, write_json  # noqa: E402
from difflab.rundir import load_run  # noqa: E402
from difflab.sample import sample_run  # noqa: E402
from few_step import Scorer  # noqa: E402
from quality import METRICS, N_SAMPLES, standardiser  # noqa: E402

CALLS = [1, 2, 4, 10, 20, 100]
PEER = "torchcfm OT-CFM"
PROXY_N, PROXY_DRAWS = 1000, 2


class Proxy:
    """W1 of 1000-point subsets against i.i.d. truth, 2 draws (seeds apart from the yardstick's): for choosing."""

    def __init__(self, toy: Any, seed: int) -> None:
        self.std = standardiser(toy)
        self.truth = [self.std(toy.iid(PROXY_N, 777_000 + 10 * seed + k)) for k in range(PROXY_DRAWS)]

    def __call__(self, x: np.ndarray) -> float:
        if not np.isfinite(x).all():
            return float("inf")
        z, rng = self.std(x), np.random.default_rng(0)
        return float(np.mean([METRIC_FNS["w1"](z[rng.choice(len(z), PROXY_N, replace=False)], t, rng=rng)
                              for t in self.truth]))


def label(options: dict[str, Any]) -> str:
    return " · ".join(str(options[k]) for k in ("sampler", "grid", "steps") if k in options) or "its own sampler"


def best_rows(family: str, toy: str, seed: int, samples_of: Any, candidates: Any, scorer: Scorer, proxy: Proxy,
              calls_list: list[int]) -> list[dict[str, Any]]:
    """Per budget: the candidates' proxy W1, then the best one on the full yardstick."""
    rows = []
    for calls in calls_list:
        tried = {}
        for key, options in candidates(calls):
            x = samples_of(key, options)
            tried[f"{key}: {label(options)}" if key not in ("run",) else label(options)] = (proxy(x), x)
        if not tried:
            continue
        name = min(tried, key=lambda k: tried[k][0])
        full = scorer(tried[name][1])
        rows.append({"family": family, "toy": toy, "seed": seed, "calls": calls, "sampling": name, **full,
                     "proxy": {k: v[0] for k, v in tried.items()}})
        print(f"  {family} {toy} s{seed} {calls} calls [{name}]: " + ", ".join(f"{m} {full[m]:.2f}" for m in METRICS),
              flush=True)
    return rows


def run_family(name: str, toy: str, seed: int, work: Path, results: dict[str, Any], scorer: Scorer, proxy: Proxy,
               calls: list[int]) -> None:
    calls = unscored(results, name, toy, seed, calls)
    if not calls:
        return
    built = build(name, toy, seed, work, results)
    runs = {k: load_run(p) for k, p in built.runs.items()}

    def samples_of(run_key: str, options: dict[str, Any]) -> np.ndarray:
        return sample_run(runs[run_key], N_SAMPLES, seed=1000 + seed, device="cpu", **options)[0]

    fam = FAMILIES[name]
    results["rows"] += best_rows(name, toy, seed, samples_of, lambda c: fam.candidates(built, c), scorer, proxy, calls)
    write_json(work / "results.json", results)


def unscored(results: dict[str, Any], family: str, toy: str, seed: int, calls: list[int]) -> list[int]:
    """The budgets of ``calls`` that ``family`` has no row for on (toy, seed) yet: a rerun scores only those."""
    done = {r["calls"] for r in results["rows"] if (r["family"], r["toy"], r["seed"]) == (family, toy, seed)}
    return [c for c in calls if c not in done]


def build(name: str, toy: str, seed: int, work: Path, results: dict[str, Any]) -> Built:
    """The family's runs (built once, kept in results['built'])."""
    key = f"{name}|{toy}|{seed}"
    if key in results["built"]:
        return Built(**results["built"][key])
    budget = None if name == "edm" else build("edm", toy, seed, work, results).train_cpu_s
    ctx = Context(toy, seed, work / toy / str(seed) / name.replace(" ", "_"), budget,
                  lambda other: build(other, toy, seed, work, results))
    start = time.perf_counter()
    built = FAMILIES[name].build(ctx)
    print(f"  built {name} on {toy} s{seed}: train {built.train_cpu_s:.1f} CPU s, distill {built.distill_cpu_s:.1f} "
          f"s ({time.perf_counter() - start:.0f} s wall)", flush=True)
    results["built"][key] = built.__dict__
    write_json(work / "results.json", results)
    return built


def run_peer(toy: str, seed: int, work: Path, results: dict[str, Any], scorer: Scorer, proxy: Proxy,
             python: str, calls: list[int]) -> None:
    """torchcfm's OT-CFM on the edm run's training rows (scaled as difflab scales them), for its CPU seconds."""
    calls = unscored(results, PEER, toy, seed, calls)
    if not calls:
        return
    edm = build("edm", toy, seed, work, results)
    run = load_run(edm.runs["run"])
    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "rows.npy"
        np.save(rows, run.scaler.transform(run.train).astype(np.float32))
        out = Path(tmp) / "samples.npz"
        done = subprocess.run([python, str(Path(__file__).parent / "_torchcfm_peer.py"), "--train", str(rows),
                               "--out", str(out), "--cpu-seconds", str(edm.train_cpu_s), "--seed", str(seed),
                               "--calls", ",".join(map(str, calls)), "--n", str(N_SAMPLES)],
                              capture_output=True, text=True, check=True)
        info = json.loads(done.stdout.strip().splitlines()[-1])
        samples = {k: run.scaler.inverse_transform(v) for k, v in np.load(out).items()}
    results["built"][f"{PEER}|{toy}|{seed}"] = {"runs": {}, "train_cpu_s": info["train_cpu_s"], "distill_cpu_s": 0.0,
                                                "info": {"steps": info["steps"]}}

    def candidates(c: int) -> list[tuple[str, dict[str, Any]]]:
        return [(k, {}) for k in samples if int(k.split("-")[1]) == c]

    results["rows"] += best_rows(PEER, toy, seed, lambda k, _: samples[k], candidates, scorer, proxy, calls)
    write_json(work / "results.json", results)


FIRST_TIMES = (1.0, 0.98, 0.95, 0.9)


def probe_first_time(results: dict[str, Any]) -> None:
    """Proxy W1 of one Euler call from pure noise taken at t_0 < 1 instead of t_max = 1, for every kept straight-path
    run: the diagnosis of the network at t = 1, whose noise code (λ = −∞ clamped at ±30) no training time reached,
    behind the straight path's code floor (diffusion/continuous.py)."""
    from difflab.compute import cpu_threads
    from difflab.sampling import SAMPLERS

    for key, built in results["built"].items():
        for path in built["runs"].values():
            run = load_run(path)
            if run.diffusion.path != "straight":
                continue
            proxy, den, out = Proxy(run.toy, 0), run.denoiser(), []
            for t0 in FIRST_TIMES:
                x = torch.randn(N_SAMPLES, run.dim, generator=torch.Generator().manual_seed(5))
                with cpu_threads(1):
                    z = SAMPLERS["ddim"](den, x, run.diffusion, [t0, 0.0]).numpy().astype(np.float64)
                out.append(f"t0 {t0}: {proxy(run.scaler.inverse_transform(z)):.3f}")
            print(f"  {key}: 1 call, proxy W1 " + ", ".join(out), flush=True)


def merge(results: dict[str, Any], other: dict[str, Any]) -> None:
    """Join ``other``'s runs and rows into ``results`` (a row already there for the same family, toy, seed and calls
    is kept)."""
    seen = {(r["family"], r["toy"], r["seed"], r["calls"]) for r in results["rows"]}
    results["rows"] += [r for r in other["rows"] if (r["family"], r["toy"], r["seed"], r["calls"]) not in seen]
    for key, built in other["built"].items():
        results["built"].setdefault(key, built)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--toys", default=",".join(DATASETS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--calls", default=",".join(map(str, CALLS)), help="budgets of network calls to score")
    ap.add_argument("--peer-only", action="store_true", help="run only the peer (for toys whose edm run is kept)")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated names (see --list)")
    ap.add_argument("--list", action="store_true", help="list the families and exit")
    ap.add_argument("--peer-python", default="/work/venvs/torchcfm/bin/python",
                    help="python of a venv with torchcfm (empty: no peer)")
    ap.add_argument("--work", type=Path, default=Path("runs/few-calls"))
    ap.add_argument("--page", type=Path, help="write this Markdown page (and its figures) from the results kept")
    ap.add_argument("--probe-first-time", action="store_true", help="diagnose 1-call sampling of the kept straight "
                    "runs from t_0 < 1 (see probe_first_time)")
    ap.add_argument("--merge", type=Path, nargs="*", default=[], help="work folders of parallel runs (other toys or "
                    "families) whose results join --work's before the page is written")
    args = ap.parse_args()
    if args.list:
        for f in FAMILIES.values():
            print(f"{f.name}: {f.about}")
        return
    toys, seeds = args.toys.split(","), [int(s) for s in args.seeds.split(",")]
    calls = [int(c) for c in args.calls.split(",")]
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES] + [t for t in toys if t not in DATASETS]
    if unknown:
        ap.error(f"unknown family or toy: {', '.join(unknown)}; families: {', '.join(FAMILIES)}")
    args.work.mkdir(parents=True, exist_ok=True)
    store = args.work / "results.json"
    results = read_json(store) if store.exists() else {"rows": [], "built": {}}
    for other in args.merge:
        merge(results, read_json(other / "results.json"))
    print(f"## One training, few calls\n\n{machine('cpu')}; {load()} at start\n", flush=True)
    peer = args.peer_python if args.peer_python and Path(args.peer_python).exists() else None
    for toy in toys if (families and not args.peer_only) or peer else []:  # --families "" --peer-python "": page only
        for seed in seeds:
            scorer, proxy = Scorer(DATASETS[toy], seed), Proxy(DATASETS[toy], seed)
            for name in [] if args.peer_only else families:
                run_family(name, toy, seed, args.work, results, scorer, proxy, calls)
            if peer:
                run_peer(toy, seed, args.work, results, scorer, proxy, peer, calls)
    results["machine"] = f"{machine('cpu')}; {load()} at the end"
    write_json(store, results)
    if args.probe_first_time:
        probe_first_time(results)
    if args.page:
        write_page(args.page, results)
        print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
