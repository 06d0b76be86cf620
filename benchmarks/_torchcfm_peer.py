"""torchcfm's OT-CFM (Tong et al. 2023), trained and sampled as its authors' 2-D example does, for
benchmarks/few_calls.py. Runs in its own virtual environment (torch 2.13.0 CPU, POT, torchcfm; not difflab's):

    /work/venvs/torchcfm/bin/python benchmarks/_torchcfm_peer.py --train rows.npy --out samples.npz \
        --cpu-seconds 20 --seed 0 --calls 1,2,4,10,20,100 --n 10000

Training: ``ExactOptimalTransportConditionalFlowMatcher(sigma=0.1)`` (its README's example) on minibatches of 256 of the given (already scaled) rows,
torchcfm's ``MLP(dim, w=64, time_varying=True)``, Adam at a constant learning rate, until this process has spent
``--cpu-seconds`` of CPU time (the budget difflab's default recipe spent on the same rows). Sampling: Euler (one
network call per step) and the explicit midpoint rule (two per step) on the uniform grid from noise (t = 0) to data
(t = 1), for each number of calls; the samples are saved in the rows' scaled space.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher
from torchcfm.models.models import MLP


def train(rows: np.ndarray, cpu_seconds: float, seed: int, *, batch: int = 256, lr: float = 1e-3, sigma: float = 0.1,
          width: int = 64) -> tuple[torch.nn.Module, int, float]:
    torch.manual_seed(seed)
    np.random.seed(seed)  # torchcfm's OT sampler draws its pairs with numpy
    x = torch.as_tensor(rows, dtype=torch.float32)
    model = MLP(dim=x.shape[1], w=width, time_varying=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    fm = ExactOptimalTransportConditionalFlowMatcher(sigma=sigma)
    g = torch.Generator().manual_seed(seed)
    start, steps = time.process_time(), 0
    while time.process_time() - start < cpu_seconds:
        x1 = x[torch.randint(0, len(x), (batch,), generator=g)]
        x0 = torch.randn(x1.shape, generator=g)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = ((vt - ut) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    return model.eval(), steps, time.process_time() - start


@torch.no_grad()
def sample(model: torch.nn.Module, n: int, dim: int, calls: int, method: str, seed: int) -> np.ndarray:
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(1000 + seed))
    v = lambda x, t: model(torch.cat([x, torch.full((len(x), 1), t)], dim=-1))  # noqa: E731
    steps = calls if method == "euler" else max(1, calls // 2)
    dt = 1.0 / steps
    for k in range(steps):
        t = k * dt
        x = x + dt * v(x, t) if method == "euler" else x + dt * v(x + 0.5 * dt * v(x, t), t + 0.5 * dt)
    return x.numpy().astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cpu-seconds", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calls", default="1,2,4,10,20,100")
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    torch.set_num_threads(1)  # a small network: one thread (difflab's trainer picks the same for its MLP)
    rows = np.load(args.train)
    model, steps, cpu = train(rows, args.cpu_seconds, args.seed)
    out = {}
    for calls in (int(c) for c in args.calls.split(",")):
        for method in ("euler", "midpoint"):
            if method == "midpoint" and calls < 2:
                continue
            out[f"{method}-{calls}"] = sample(model, args.n, rows.shape[1], calls, method, args.seed)
    np.savez(args.out, **out)
    print(json.dumps({"steps": steps, "train_cpu_s": cpu}))


if __name__ == "__main__":
    main()
