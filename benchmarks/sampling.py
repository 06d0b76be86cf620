"""Points per second and peak memory for drawing many samples: the tutorial's sampler against difflab's.

The tutorial's sampler (Elflein 2022): all points at once, a ``torch.full`` t vector and a one-hot time code per
step, ``eps *= ...``, mean, then σ_t·randn; trajectory off. difflab: ``generate_chunks`` (ancestral DDPM, chunks of
262144 points whose network calls go in cache-sized blocks), either kept in memory or streamed to a .npy file.
Both use the tutorial's network (random weights: speed does not depend on them) and the polynomial schedule.
The tutorial's sampler runs with torch's threads (default: all cores); difflab with its own rule (one thread for
small batches, else one per core, each on its own blocks).

Each case runs in a subprocess of its own, so that its peak resident memory (``ru_maxrss``) is its own; cases
alternate over rounds and the median is reported.

    .venv/bin/python benchmarks/sampling.py                 # CPU: 1M points at T=10, 20k points at T=1000
    .venv/bin/python benchmarks/sampling.py --device cuda   # 1M points at both T
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _common import header, load, median, resolve, sync, table  # noqa: E402

CASES = ["tutorial", "difflab", "difflab, streamed to .npy"]


def tutorial_sampler(model: nn.Module, T: int, n: int, device: str) -> torch.Tensor:
    """The tutorial's ReverseProcess.sample(n) with full_trajectory=False."""
    betas = torch.linspace(0, 0.99, T + 1, device=device) ** 4
    alphas = 1.0 - betas
    alpha_bar = torch.cumprod(alphas, dim=-1)
    sigma = ((1 - alphas) * (1 - torch.roll(alpha_bar, 1)) / (1 - alpha_bar)) ** 0.5
    sigma[1] = 0.0
    x_t = torch.randn(n, 2, device=device)
    for t in range(T, 0, -1):
        with torch.no_grad():
            t_vector = torch.full(size=(len(x_t),), fill_value=t, dtype=torch.long, device=device)
            t_embedding = model.t_encoder(nn.functional.one_hot(t_vector - 1, num_classes=T).to(torch.float))
            eps = model.model(torch.cat([x_t, t_embedding], dim=1))
            eps *= (1 - alphas[t]) / ((1 - alpha_bar[t]) ** 0.5)
            mean = 1 / (alphas[t] ** 0.5) * (x_t - eps)
            x_t = mean + sigma[t] * torch.randn_like(x_t)
    return x_t


def run_case(case: str, T: int, n: int, device: str, threads: int) -> dict[str, float]:
    """One timed case in this (child) process: seconds and peak RSS above the post-setup baseline."""
    from difflab.compute import cpu_threads, default_threads
    from difflab.diffusion import Denoiser, GaussianDiffusion, make_schedule
    from difflab.models import build_model
    from difflab.sampling.api import DEFAULT_CHUNK, generate_chunks
    from difflab.sampling.output import write_chunks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("seed", 2, T).to(device).eval()
    d = GaussianDiffusion(make_schedule("poly", T))
    denoise = Denoiser(model, d)

    def difflab(m: int, out: Path | None) -> None:
        # difflab's thread rule for sampling (as `difflab sample` applies it): one thread for small batches
        n_params = sum(p.numel() for p in model.parameters())
        with cpu_threads(default_threads(n_params, min(m, DEFAULT_CHUNK)) if device == "cpu" else None):
            chunks = generate_chunks(denoise, d, m, 2, seed=0, device=device)
            if out is None:
                for _ in chunks:
                    pass
            else:
                write_chunks(out, (x.numpy() for x, _ in chunks), n=m, columns=["x", "y"])

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "samples.npy" if case.endswith(".npy") else None
        fn = (lambda m: tutorial_sampler(model, T, m, device)) if case == "tutorial" else (lambda m: difflab(m, out))
        fn(min(n, 4096))  # warm-up, excluded
        sync(device)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        fn(n)
        sync(device)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
    return {"seconds": seconds, "peak_mib": max(peak - base, 0) / 1024, "gpu_peak_mib": gpu_peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads of the process (the tutorial's sampler runs with these; difflab chooses its own "
                         "within them)")
    ap.add_argument("--n10", type=int, default=1_000_000, help="points at T = 10")
    ap.add_argument("--n1000", type=int, default=None, help="points at T = 1000 (default 20000 CPU, 1M GPU)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--T", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = resolve(args.device)
    if args.case:  # child process
        print(json.dumps(run_case(args.case, args.T, args.n, device, args.threads)))
        return
    n1000 = args.n1000 or (1_000_000 if device == "cuda" else 20_000)
    print(header("Sampling (ancestral DDPM, the tutorial's network)", device))
    rows = []
    for T, n in [(10, args.n10), (1000, n1000)]:
        results: dict[str, list[dict[str, float]]] = {c: [] for c in CASES}
        for r in range(args.rounds):
            for case in CASES[r % 3:] + CASES[: r % 3]:
                cmd = [sys.executable, __file__, "--case", case, "--T", str(T), "--n", str(n), "--device", device,
                       "--threads", str(args.threads)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                results[case].append(json.loads(out.strip().splitlines()[-1]))
        base = median([r["seconds"] for r in results["tutorial"]])
        for case, rs in results.items():
            s = median([r["seconds"] for r in rs])
            mem = median([r["gpu_peak_mib" if device == "cuda" else "peak_mib"] for r in rs])
            rows.append([T, n, case, s, n / s, base / s, mem])
    mem_col = "GPU peak MiB" if device == "cuda" else "peak RSS above baseline, MiB"
    print(table(["T", "points", "sampler", "seconds (median)", "points/s", "× tutorial", mem_col], rows))
    print(f"\n{args.rounds} rounds, {args.threads} threads, each case in its own process; {load()}")
    if args.json:
        keys = ["T", "points", "sampler", "seconds", "points_per_s", "x_tutorial", "peak_mib"]
        args.json.write_text(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=1))


if __name__ == "__main__":
    main()
