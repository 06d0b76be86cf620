"""Milliseconds per training step: the tutorial's loop, as the tutorial writes it, against difflab's Trainer on the
same recipe (moons, N = 1000 full batch, T = 10, AdamW lr 1e-2 wd 1e-4, the 3→100→100→100→20→2 LeakyReLU net).

    .venv/bin/python benchmarks/train_step.py                  # CPU, 1 and 2 threads
    .venv/bin/python benchmarks/train_step.py --device cuda    # GPU: eager vs CUDA graph, and a whole 5000-step run
    .venv/bin/python benchmarks/train_step.py --full           # also one whole 5000-step run each on the CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _common import alternate, header, load, median, resolve, sync, table  # noqa: E402
from difflab.assemble import build_process as build_diffusion  # noqa: E402
from difflab.compute import cpu_threads  # noqa: E402
from difflab.config import resolve_config  # noqa: E402
from difflab.data.prepare import prepare_data  # noqa: E402
from difflab.models import build_model  # noqa: E402
from difflab.training.trainer import Trainer  # noqa: E402


# --- the tutorial (Elflein 2022), as written there; only `device=` added so that it can also run on a GPU -----
class ForwardProcess:
    def __init__(self, betas: torch.Tensor):
        self.beta = betas
        self.alphas = 1.0 - betas
        self.alpha_bar = torch.cumprod(self.alphas, dim=-1)

    def get_x_t(self, x_0: torch.Tensor, t: torch.LongTensor):
        eps_0 = torch.randn_like(x_0).to(x_0)
        alpha_bar = self.alpha_bar[t, None]
        mean = (alpha_bar**0.5) * x_0
        std = (1.0 - alpha_bar) ** 0.5
        return (eps_0, mean + std * eps_0)


class NoisePredictor(nn.Module):
    def __init__(self, T):
        super().__init__()
        self.T = T
        self.t_encoder = nn.Linear(T, 1)
        self.model = nn.Sequential(
            nn.Linear(2 + 1, 100), nn.LeakyReLU(),
            nn.Linear(100, 100), nn.LeakyReLU(),
            nn.Linear(100, 100), nn.LeakyReLU(),
            nn.Linear(100, 20), nn.LeakyReLU(),
            nn.Linear(20, 2),
        )

    def forward(self, x_t, t):
        t_embedding = self.t_encoder(nn.functional.one_hot(t - 1, num_classes=self.T).to(torch.float))
        inp = torch.cat([x_t, t_embedding], dim=1)
        return self.model(inp)


class TutorialLoop:
    """The tutorial's training loop; ``run(n)`` takes n more steps (tqdm's trange left out)."""

    def __init__(self, X: torch.Tensor, T: int, device: str) -> None:
        self.X, self.T, self.device = X.to(device), T, device
        self.fp = ForwardProcess(torch.linspace(0, 0.99, T + 1, device=device) ** 4)
        self.model = NoisePredictor(T=T).to(device)
        self.optimizer = torch.optim.AdamW(params=self.model.parameters(), lr=1e-2, betas=(0.9, 0.999),
                                           weight_decay=1e-4)

    def run(self, steps: int) -> None:
        X, T, N = self.X, self.T, self.X.shape[0]
        for _ in range(steps):
            with torch.no_grad():
                t = torch.randint(low=1, high=T + 1, size=(N,), device=self.device)
                eps_0, x_t = self.fp.get_x_t(X, t=t)
            pred_eps = self.model(x_t, t)
            loss = torch.nn.functional.mse_loss(pred_eps, eps_0)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()


# --- difflab ------------------------------------------------------------------------------------------------
def difflab_trainer(device: str, *, fused: bool = True, steps: int = 5000) -> Trainer:
    cfg = resolve_config("seed", overrides={"train": {"device": device, "steps": steps}})
    data = prepare_data(cfg.data)
    torch.manual_seed(0)
    model = build_model("seed", 2, cfg.diffusion.T)
    return Trainer(model, build_diffusion(cfg), data.scaled, cfg.train, fused=fused)


def steps_of(tr: Trainer, n: int) -> None:
    for _ in range(n):
        tr.step()


def at_threads(n: int, fn):  # noqa: ANN001, ANN201
    def run() -> None:
        with cpu_threads(n):
            fn()

    return run


def cpu_cases(threads: list[int], n: int, X: torch.Tensor) -> dict[str, object]:
    """Per thread count th: the tutorial, difflab's Trainer and difflab's autograd step, each with th torch threads
    (difflab's own default for this network is 1, see ``default_threads``)."""
    cases = {}
    for th in threads:
        tut, fast, auto = TutorialLoop(X, 10, "cpu"), difflab_trainer("cpu"), difflab_trainer("cpu", fused=False)
        cases[f"tutorial loop | {th}"] = at_threads(th, lambda tut=tut: tut.run(n))
        cases[f"difflab Trainer | {th}"] = at_threads(th, lambda tr=fast: steps_of(tr, n))
        cases[f"difflab Trainer, autograd step | {th}"] = at_threads(th, lambda tr=auto: steps_of(tr, n))
    return cases


def cuda_cases(n: int, X: torch.Tensor) -> dict[str, object]:
    from difflab.training.cuda_graph import GraphedTrainer

    tut, eager, graphed = TutorialLoop(X, 10, "cuda"), difflab_trainer("cuda"), difflab_trainer("cuda", steps=10**7)
    runner = GraphedTrainer(graphed)

    def replay() -> None:
        for _ in range(n):
            runner.replay()

    return {"tutorial loop | -": lambda: tut.run(n), "difflab Trainer, eager | -": lambda: steps_of(eager, n),
            "difflab Trainer, CUDA graph | -": replay}


def whole_runs(device: str, X: torch.Tensor, rounds: int) -> list[list[object]]:
    """One full 5000-step run each (the Trainer's includes CUDA-graph capture), alternating, median of rounds;
    each with its default threads (the tutorial: torch's; difflab: its own rule)."""

    def tutorial() -> None:
        TutorialLoop(X, 10, device).run(5000)

    def trainer() -> None:
        difflab_trainer(device).fit(progress=False)

    times = alternate({"tutorial": tutorial, "difflab": trainer}, rounds=rounds, warmup=0, device=device)
    t, d = median(times["tutorial"]), median(times["difflab"])
    return [["tutorial loop, 5000 steps", t, 1.0], ["difflab Trainer.fit, 5000 steps", d, t / d]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--threads", default="1,2", help="CPU thread counts to compare (comma-separated)")
    ap.add_argument("--steps", type=int, default=None, help="steps per timed round (default 100 CPU, 500 GPU)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--full", action="store_true", help="also time whole 5000-step runs (always on CUDA)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    device = resolve(args.device)
    X = prepare_data(resolve_config("seed").data).scaled
    n = args.steps or (500 if device == "cuda" else 100)
    print(header("Training step, the tutorial's recipe", device))
    if device == "cpu":
        cases = cpu_cases([int(s) for s in args.threads.split(",")], n, X)
    else:
        cases = cuda_cases(n, X)
    start = time.perf_counter()
    times = alternate(cases, rounds=args.rounds, device=device)
    ms = {k: median(v) / n * 1e3 for k, v in times.items()}
    base_default = ms.get(f"tutorial loop | {torch.get_num_threads()}", ms[next(iter(ms))])
    rows = []
    for k, v in ms.items():
        name, th = k.split(" | ")
        same = ms[f"tutorial loop | {th}"]
        best = min(times[k]) / n * 1e3
        rows.append([name, th, v, best, same / v, base_default / v])
    print(table(["case", "threads", "ms/step (median)", "ms/step (best)", "× tutorial (same threads)",
                 f"× tutorial ({torch.get_num_threads()} threads, torch's default)"], rows))
    print(f"\n{args.rounds} rounds of {n} steps after 1 warm-up round, {time.perf_counter() - start:.0f} s; {load()}")
    whole = []
    if args.full or device == "cuda":
        whole = whole_runs(device, X, 3 if device == "cuda" else 1)
        print("\nWhole runs (seconds):\n")
        print(table(["run", "seconds (median)", "× tutorial"], whole))
    sync(device)
    if args.json:
        args.json.write_text(json.dumps({"device": device, "ms_per_step": ms, "whole_runs": whole}, indent=1))


if __name__ == "__main__":
    main()
