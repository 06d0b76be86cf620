"""Every GPU check and timing in one go, ending in one summary table (budget: under 6 minutes on one H100).

    .venv/bin/python benchmarks/gpu_all.py

1. the GPU tests (``tests/training/test_cuda_graph.py``: graphed training equals eager training, batched members
   equal single models on the GPU; a fallback to the eager path fails them);
2. the default GPU paths as a user meets them (``gpu_all.py --paths``): ``train_run`` of both recipes (CUDA graph)
   and of ``--preset onestep`` (MeanFlow's JVP with OT coupling, eager),
   ``train_many`` (batched trainer and its graph), ``sample_to_file`` with ``device="auto"`` and ``"cuda"``; every
   FallbackWarning is recorded;
3. ``train_step.py --device cuda``: ms/step of the tutorial's loop, the eager Trainer and the CUDA-graph Trainer,
   and whole 5000-step runs (goal: the tutorial's recipe in ≤ 1.5 s);
4. ``sweep.py --device cuda --M 16,64,256``: tutorial models × 5000 steps batched (goal: 256 in ≤ 15 s);
5. ``sampling.py --device cuda``: 1M points at T = 10 and T = 1000;
6. ``sweep.py --device cuda --preset recommended``: M = 16, 64 residual MLPs × 1000 steps, batched by torch.func.

Each step runs in a subprocess with a time limit taken from one overall deadline, so a hang costs its own slot only.
Any path that fell back (a ``FallbackWarning`` in a step's output: a CUDA graph, batched training or GPU sampling
that failed and was replaced by its slower equivalent) is listed under the summary table, with its cause.
Logs, each benchmark's JSON and ``summary.md`` go to ``$OUT`` when it is set (else a temporary folder, printed).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 340  # the steps' allowances sum to this; headroom under 6 minutes for start-up and summary
PY = sys.executable


def steps(out: Path) -> list[tuple[str, list[str], int]]:
    """(name, command, seconds allowed); the allowances sum to DEADLINE_S, most important first."""
    bench = ROOT / "benchmarks"
    return [
        ("tests", [PY, "-m", "pytest", str(ROOT / "tests/training/test_cuda_graph.py"), "-q", "-rs", "-p",
                   "no:cacheprovider"], 60),
        ("paths", [PY, str(Path(__file__).resolve()), "--paths", str(out / "paths.json")], 40),
        ("train_step", [PY, str(bench / "train_step.py"), "--device", "cuda", "--rounds", "5", "--json",
                        str(out / "train_step.json")], 65),
        # M = 1024 is left to a run with time to spare: the goal is stated at 256, and each M's row is saved as
        # soon as it is measured
        ("sweep", [PY, str(bench / "sweep.py"), "--device", "cuda", "--M", "16,64,256", "--json",
                   str(out / "sweep.json")], 80),
        ("sampling", [PY, str(bench / "sampling.py"), "--device", "cuda", "--rounds", "1", "--json",
                      str(out / "sampling.json")], 60),
        ("sweep-mlp", [PY, str(bench / "sweep.py"), "--device", "cuda", "--preset", "recommended", "--M", "16,64",
                       "--steps", "1000", "--seq", "2", "--json", str(out / "sweep_mlp.json")], 35),
    ]


def _text(x: bytes | str | None) -> str:
    return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")


def run_step(name: str, cmd: list[str], limit: float, out: Path) -> tuple[str, float]:
    """Run one step in its own process group (a timeout kills its children too: sampling.py runs cases in
    subprocesses that would otherwise hold the GPU); its stdout and stderr go to ``out/<name>.log``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=max(limit, 1))
        status = "ok" if proc.returncode == 0 else f"failed (rc {proc.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        status = f"timeout after {limit:.0f} s"
    text = _text(stdout) + _text(stderr)
    (out / f"{name}.log").write_text(text)
    print(f"\n===== {name}: {status} =====\n{text[-6000:]}", flush=True)
    return status, time.perf_counter() - start


def fallbacks(text: str) -> list[str]:
    """The FallbackWarning messages in a step's output (Python's warning lines, pytest's summary and errors, and
    the ``--paths`` step's own lines), each once."""
    found = re.findall(r"FallbackWarning: (.+)$", text, flags=re.M)
    return list(dict.fromkeys(m.strip() for m in found))


def default_paths(json_out: Path) -> None:
    """``--paths``: the GPU paths a user meets by default, run once each with their FallbackWarnings recorded;
    one line per path, and the rows as JSON in ``json_out``."""
    from difflab.config import resolve_config
    from difflab.pipeline import train_many, train_run
    from difflab.sample import sample_to_file

    def cfg(preset: str, **train: object):  # noqa: ANN202
        return resolve_config(preset, overrides={"train": {"device": "cuda", **train}})

    with tempfile.TemporaryDirectory(prefix="difflab-gpu-paths-") as tmp:
        runs = Path(tmp)
        cases = {
            "train_run seed, 2000 steps (CUDA graph)": lambda: train_run(cfg("seed", steps=2000), runs / "seed",
                                                                          progress=False),
            "train_run recommended, 1000 steps (CUDA graph)": lambda: train_run(
                cfg("recommended", steps=1000), runs / "rec", progress=False),
            "train_run onestep, 300 steps (MeanFlow's JVP, OT coupling; eager)": lambda: train_run(
                cfg("onestep", steps=300), runs / "one", progress=False),
            "train_many 8 x seed, 1000 steps (batched, CUDA graph)": lambda: train_many(
                [cfg("seed", steps=1000, seed=s) for s in range(8)], [runs / f"many{s}" for s in range(8)]),
            "sample_to_file 10^5 points, device=auto": lambda: sample_to_file(runs / "seed", runs / "auto.npy",
                                                                              n=100_000, device="auto"),
            "sample_to_file 10^5 points, device=cuda": lambda: sample_to_file(runs / "rec", runs / "cuda.npy",
                                                                              n=100_000, device="cuda"),
        }
        rows = []
        for name, run in cases.items():
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                try:
                    run()
                    status = "ok"
                except Exception as e:  # report and go on: the next path may still work
                    status = f"error ({type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e) else ''})"
            fell = [str(w.message) for w in record if type(w.message).__name__ == "FallbackWarning"]
            rows.append({"path": name, "status": status, "seconds": time.perf_counter() - start, "fallbacks": fell})
            print(f"{name}: {status}, {rows[-1]['seconds']:.1f} s", flush=True)
            for message in fell:
                print(f"FallbackWarning: {name}: {message}", flush=True)
    json_out.write_text(json.dumps(rows, indent=1))


def _load(path: Path):  # noqa: ANN202
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def key_results(name: str, out: Path) -> tuple[str, str]:
    """(measured, goal) for the summary table, from the step's JSON."""
    if name == "tests":
        text = (out / "tests.log").read_text() if (out / "tests.log").exists() else ""
        found = re.findall(r"^.*\d+ (?:passed|failed|error).*$", text, flags=re.M)
        return (found[-1].strip("= ") if found else "no pytest summary"), "all pass, none skipped"
    if name == "paths" and (rows := _load(out / "paths.json")):
        ok = sum(r["status"] == "ok" for r in rows)
        fell = [r["path"] for r in rows if r["fallbacks"]]
        return f"{ok} of {len(rows)} ok; fell back: {', '.join(fell) or 'none'}", "all ok, none fell back"
    if name == "train_step" and (r := _load(out / "train_step.json")):
        ms = r["ms_per_step"]
        whole = {row[0]: row[1] for row in r["whole_runs"]}
        fit = whole.get("difflab Trainer.fit, 5000 steps", float("nan"))
        tut = ms.get("tutorial loop | -", float("nan"))
        graph = ms.get("difflab Trainer, CUDA graph | -", float("nan"))
        return (f"5000-step fit {fit:.2f} s; {graph:.3f} ms/step graphed vs tutorial {tut:.3f} "
                f"({tut / graph:.1f}x)"), "fit ≤ 1.5 s"
    if name == "sweep-mlp" and (rows := _load(out / "sweep_mlp.json")):
        parts = [f"M={r['M']}: {r['batched_wall_s']:.1f} s ({r['speedup']:.0f}x)" for r in rows]
        return "; ".join(parts), "batched faster than in turn"
    if name == "sweep" and (rows := _load(out / "sweep.json")):
        parts = [f"M={r['M']}: {r['batched_wall_s']:.1f} s ({r['speedup']:.0f}x)" for r in rows]
        return "; ".join(parts), "M=256 × 5000 steps ≤ 15 s"
    if name == "sampling" and (rows := _load(out / "sampling.json")):
        parts = [f"T={r['T']} {r['sampler']}: {r['points_per_s']:.3g} pts/s ({r['x_tutorial']:.1f}x)"
                 for r in rows if r["sampler"] != "tutorial"]
        return "; ".join(parts), "faster than the tutorial"
    return "no results", ""


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--paths":
        default_paths(Path(sys.argv[2]))
        return
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(tempfile.mkdtemp(prefix="difflab-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_all.py: no CUDA device visible to torch")
    device = f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    print(f"device: {device}\nlogs: {out}", flush=True)
    deadline = time.perf_counter() + DEADLINE_S
    rows, fell = [], []
    for name, cmd, budget in steps(out):
        left = deadline - time.perf_counter()
        if left < 10:
            rows.append([name, "skipped (out of time)", "0", "", ""])
            continue
        status, seconds = run_step(name, cmd, min(budget, left), out)
        measured, goal = key_results(name, out)
        rows.append([name, status, f"{seconds:.0f}", measured, goal])
        fell += [f"- {name}: {m}" for m in fallbacks((out / f"{name}.log").read_text())]
    lines = [f"# GPU checks on {device}", "", "| step | status | s | result | goal |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "## Paths that fell back (FallbackWarning)", "", *(fell or ["none"])]
    summary = "\n".join(lines)
    (out / "summary.md").write_text(summary + "\n")
    print("\n" + summary)


if __name__ == "__main__":
    main()
