"""difflab's AdamW is torch's AdamW without the compiler-stack import, and the training command stays light.

``difflab.training.optim.AdamW`` calls the functions under torch's ``_disable_dynamo`` guards and, for a plain
fused AdamW, the fused kernel directly: checked here against ``torch.optim.AdamW(fused=True)`` bit for bit. A
fresh process running ``difflab train --preset seed`` must not import torch._dynamo, sklearn or scipy (together
about 1.5 s of start-up on a 2-core machine, benchmarks/startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from difflab.training.optim import AdamW

SETTINGS = [
    {"lr": 1e-2, "weight_decay": 1e-4},
    {"lr": 3e-3, "betas": (0.8, 0.99), "weight_decay": 0.0, "eps": 1e-6},
    {"lr": 1e-3, "amsgrad": True},  # not plain: torch's own step
    {"lr": 1e-3, "maximize": True},  # not plain: torch's own step
]


def _pair(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    a = nn.Sequential(nn.Linear(3, 7), nn.LeakyReLU(), nn.Linear(7, 2))
    b = nn.Sequential(nn.Linear(3, 7), nn.LeakyReLU(), nn.Linear(7, 2))
    b.load_state_dict(a.state_dict())
    return a, b


def _grads(a: nn.Module, b: nn.Module, g: torch.Generator, *, skip_last: bool = False) -> None:
    params = list(zip(a.parameters(), b.parameters(), strict=True))
    for i, (pa, pb) in enumerate(params):
        if skip_last and i == len(params) - 1:
            pa.grad = pb.grad = None
            continue
        pa.grad = torch.randn(pa.shape, generator=g)
        pb.grad = pa.grad.clone()


@pytest.mark.parametrize("settings", SETTINGS, ids=["tutorial", "betas-eps", "amsgrad", "maximize"])
def test_adamw_equals_torch_fused_adamw(settings: dict) -> None:
    """Same weights and state after several steps, a parameter without gradient on the first (its state is made
    later, as torch makes it); then a state_dict round trip into a fresh optimizer continues identically."""
    ours_m, ref_m = _pair()
    ours, ref = AdamW(ours_m.parameters(), fused=True, **settings), torch.optim.AdamW(ref_m.parameters(),
                                                                                       fused=True, **settings)
    g = torch.Generator().manual_seed(1)
    for step in range(6):
        _grads(ours_m, ref_m, g, skip_last=step == 0)
        ours.step()
        ref.step()
    for p, q in zip(ours_m.parameters(), ref_m.parameters(), strict=True):
        assert p.equal(q)
    sd_ours, sd_ref = ours.state_dict(), ref.state_dict()
    assert sd_ours["param_groups"] == sd_ref["param_groups"] and sd_ours["state"].keys() == sd_ref["state"].keys()
    for i, state in sd_ref["state"].items():
        for k, v in state.items():
            assert sd_ours["state"][i][k].equal(v), (i, k)
    again = AdamW(ours_m.parameters(), fused=True, **settings)
    again.load_state_dict(sd_ours)
    _grads(ours_m, ref_m, g)
    again.step()
    ref.step()
    for p, q in zip(ours_m.parameters(), ref_m.parameters(), strict=True):
        assert p.equal(q)
    again.zero_grad()
    assert all(p.grad is None for p in ours_m.parameters())


def test_step_without_any_gradient_changes_nothing() -> None:
    m, _ = _pair()
    opt = AdamW(m.parameters(), lr=1e-2, fused=True)
    before = [p.clone() for p in m.parameters()]
    opt.step()
    assert not opt.state and all(p.equal(q) for p, q in zip(m.parameters(), before, strict=True))


HEAVY = ["torch._dynamo", "sklearn", "scipy"]
PROBE = """
import json, sys
from difflab.cli import main
try:
    main(["train", "--preset", "seed", "--steps", "3", "--device", "cpu", "-q", "--out", sys.argv[1]])
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps([m for m in {heavy} if m in sys.modules]))
"""


def test_training_command_imports_no_compiler_sklearn_or_scipy(tmp_path) -> None:
    """Each of these costs 0.15-1 s of every `difflab train`; they belong to other commands (sklearn's tables,
    metrics) or to torch.compile, which training does not use."""
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    assert heavy == [], (f"`difflab train` imported {heavy}: each costs 0.15-1 s of its start-up "
                         "(benchmarks/startup.py); import them inside the function that needs them")
