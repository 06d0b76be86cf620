"""Every GPU check and timing in one go, ending in one summary table (budget: under 6 minutes on one H100).

    .venv/bin/python benchmarks/gpu_all.py

1. the GPU tests (``tests/training/test_cuda_graph.py``: graphed training equals eager training, batched members
   equal single models on the GPU);
2. ``train_step.py --device cuda``: ms/step of the tutorial's loop, the eager Trainer and the CUDA-graph Trainer,
   and whole 5000-step runs (goal: the tutorial's recipe in ≤ 1.5 s);
3. ``sweep.py --device cuda``: M = 16, 64, 256, 1024 tutorial models × 5000 steps batched (goal: 256 in ≤ 15 s);
4. ``sampling.py --device cuda``: 1M points at T = 10 and T = 1000;
5. ``sweep.py --device cuda --preset recommended``: M = 16, 64 residual MLPs × 1000 steps, batched by torch.func.

Each step runs in a subprocess with a time limit taken from one overall deadline, so a hang costs its own slot only.
Logs, each benchmark's JSON and ``summary.md`` go to ``$OUT`` when it is set (else a temporary folder, printed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 340  # leaves headroom under the 6-minute budget for start-up and the summary
PY = sys.executable


def steps(out: Path) -> list[tuple[str, list[str], int]]:
    bench = ROOT / "benchmarks"
    return [
        ("tests", [PY, "-m", "pytest", str(ROOT / "tests/training/test_cuda_graph.py"), "-q", "-rs", "-p",
                   "no:cacheprovider"], 70),
        ("train_step", [PY, str(bench / "train_step.py"), "--device", "cuda", "--rounds", "5", "--json",
                        str(out / "train_step.json")], 80),
        ("sweep", [PY, str(bench / "sweep.py"), "--device", "cuda", "--json", str(out / "sweep.json")], 140),
        ("sampling", [PY, str(bench / "sampling.py"), "--device", "cuda", "--rounds", "1", "--json",
                      str(out / "sampling.json")], 90),
        ("sweep-mlp", [PY, str(bench / "sweep.py"), "--device", "cuda", "--preset", "recommended", "--M", "16,64",
                       "--steps", "1000", "--seq", "2", "--json", str(out / "sweep_mlp.json")], 45),
    ]


def run_step(name: str, cmd: list[str], limit: float, out: Path) -> tuple[str, float]:
    start = time.perf_counter()
    log = out / f"{name}.log"
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(limit, 1))
        text, status = proc.stdout + proc.stderr, "ok" if proc.returncode == 0 else f"failed (rc {proc.returncode})"
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        status = f"timeout after {limit:.0f} s"
    log.write_text(text)
    print(f"\n===== {name}: {status} =====\n{text[-6000:]}", flush=True)
    return status, time.perf_counter() - start


def _load(path: Path):  # noqa: ANN202
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def key_results(name: str, out: Path) -> tuple[str, str]:
    """(measured, goal) for the summary table, from the step's JSON."""
    if name == "tests":
        lines = (out / "tests.log").read_text().strip().splitlines() if (out / "tests.log").exists() else []
        return (lines[-1] if lines else "no output"), "all pass, none skipped"
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
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(tempfile.mkdtemp(prefix="difflab-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_all.py: no CUDA device visible to torch")
    device = f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    print(f"device: {device}\nlogs: {out}", flush=True)
    deadline = time.perf_counter() + DEADLINE_S
    rows = []
    for name, cmd, budget in steps(out):
        left = deadline - time.perf_counter()
        if left < 10:
            rows.append([name, "skipped (out of time)", "0", "", ""])
            continue
        status, seconds = run_step(name, cmd, min(budget, left), out)
        measured, goal = key_results(name, out)
        rows.append([name, status, f"{seconds:.0f}", measured, goal])
    lines = [f"# GPU checks on {device}", "", "| step | status | s | result | goal |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    summary = "\n".join(lines)
    (out / "summary.md").write_text(summary + "\n")
    print("\n" + summary)


if __name__ == "__main__":
    main()
