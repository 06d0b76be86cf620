"""The two-time network: its written-out forward-mode derivative against torch.func.jvp, its one-jump fast path
against its forward, classes, and bad input."""

from __future__ import annotations

import pytest
import torch
from torch.func import jvp

from difflab.models import build_model
from difflab.models.jump_mlp import JumpMLP

pytestmark = pytest.mark.usefixtures("one_thread")


def inputs(n: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g)
    return torch.randn(n, dim, generator=g), t, t * torch.rand(n, generator=g), torch.randn(n, dim, generator=g)


@pytest.mark.parametrize("classes,max_period", [(0, 1000), (3, 8)])
def test_forward_jvp_is_torch_func_jvp(dim: int, classes: int, max_period: int) -> None:
    """forward_jvp(x, t, h, dx, dt, dh) = torch.func.jvp of forward at (x, t, h) along (dx, dt, dh), with any tangent
    of the times (the two are independent directions: (1, 0) and (0, 1) each checked), trained-like weights (the
    LayerNorm's γ, β away from 1, 0), and class labels as constants."""
    torch.manual_seed(dim)
    m = JumpMLP(dim, 0, width=24, depth=2, max_period=max_period, n_classes=classes)
    with torch.no_grad():
        for norm in [b.norm for b in m.blocks] + [m.out_norm]:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0, 0.3)
    x, t, h, dx = inputs(64, dim)
    labels = torch.randint(0, classes + 1, (64,)) if classes else None
    extra = () if labels is None else (labels,)
    for dt, dh in [(1.0, 1.0), (1.0, 0.0), (0.0, 1.0)]:
        tangents = (dx, torch.full_like(t, dt), torch.full_like(h, dh))
        with torch.no_grad():
            ref_y, ref_dy = jvp(lambda a, b, c: m(a, b, c, *extra), (x, t, h), tangents)
            y, dy = m.forward_jvp(x, t, h, *tangents, *extra)
        torch.testing.assert_close(y, ref_y, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(dy, ref_dy, rtol=1e-4, atol=1e-4 * float(ref_dy.abs().mean()))
        assert float(ref_dy.abs().mean()) > 1e-3  # a real derivative, not zero against zero


def test_at_step_is_forward_for_one_jump(dim: int) -> None:
    torch.manual_seed(0)
    m = JumpMLP(dim, 0, width=16, depth=2, n_classes=2).eval()
    x = torch.randn(50, dim)
    full = lambda v: torch.full((50,), v)  # noqa: E731
    for label in (None, 0, 1):
        with torch.no_grad():
            ref = m(x, full(0.7), full(0.45), label)
        torch.testing.assert_close(m.at_step(0.7, 0.45, label)(x), ref, rtol=1e-6, atol=1e-6)


def test_the_jump_changes_the_output() -> None:
    """h enters the network: the same (x, t) with another jump gives another output (a network that dropped h would
    be a one-time model)."""
    torch.manual_seed(0)
    m = JumpMLP(2, 0, width=16, depth=1)
    x, t = torch.randn(10, 2), torch.full((10,), 0.9)
    with torch.no_grad():
        assert not torch.allclose(m(x, t, torch.zeros(10)), m(x, t, torch.full((10,), 0.9)))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="continuous time"):
        JumpMLP(2, 10)
    with pytest.raises(ValueError, match="max_period"):
        JumpMLP(2, 0, max_period=1)
    with pytest.raises(ValueError, match="without classes"):
        JumpMLP(2, 0)(torch.zeros(3, 2), torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        JumpMLP(2, 0, n_classes=2).at_step(0.5, 0.1, 5)
    assert isinstance(build_model("jump-mlp", 3, 0, width=8, depth=1), JumpMLP)
