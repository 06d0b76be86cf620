"""The residual MLP's hand-written forward and backward are autograd's: outputs and every parameter's gradient, for
continuous times, whole steps (gathered from a table or embedded row by row), class labels and learned-variance
outputs, on D = 1, 2, 10."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from difflab.compute import cpu_threads
from difflab.models import ResMLP, SeedMLP
from difflab.models.resmlp_fused import FusedResMLP, is_plain_resmlp


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny problems: one thread, so other processes on the machine do not stall OpenMP hand-offs."""
    with cpu_threads(1):
        yield


CASES = {  # (T, time input, classes, out = 2D)
    "continuous": (0, "float", 0, False),
    "steps-table": (10, "long", 0, False),  # T < rows: ResMLP gathers a table of the T embeddings
    "steps-rows": (100, "long", 0, False),  # T ≥ rows: one embedding per row
    "labels": (0, "float", 3, False),
    "learned-variance": (20, "long", 2, True),
}


def _case(name: str, dim: int, rows: int = 40):
    T, kind, classes, wide = CASES[name]
    torch.manual_seed(dim)
    model = ResMLP(dim, T, width=24, depth=2, emb_dim=8, out_dim=2 * dim if wide else None, n_classes=classes)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(rows, dim, generator=g)
    t = torch.randn(rows, generator=g) if kind == "float" else torch.randint(1, T + 1, (rows,), generator=g)
    labels = torch.randint(0, classes + 1, (rows,), generator=g) if classes else None
    return model, x, t, labels, g


@pytest.mark.parametrize("name", list(CASES))
def test_forward_and_gradients_equal_autograd(dim: int, name: str) -> None:
    model, x, t, labels, g = _case(name, dim)
    y_ref = model(x, t) if labels is None else model(x, t, labels)
    gy = torch.randn(y_ref.shape, generator=g)
    (y_ref * gy).sum().backward()
    net = FusedResMLP(model)
    y, tape = net.forward(x, t, labels)
    torch.testing.assert_close(y, y_ref.detach(), rtol=1e-5, atol=1e-6)
    grads = {n: torch.full_like(p, float("nan")) for n, p in model.named_parameters()}  # every one overwritten
    net.backward(tape, gy, grads)
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_row_blocks_of_a_batch_sum_to_the_batch(dim: int) -> None:
    """Two blocks of rows, each told the batch's size (the table rule follows the batch), give the batch's
    regression loss and gradients when summed: what the lanes rely on."""
    model, x, t, _, g = _case("steps-table", dim, rows=24)
    target, weight = torch.randn(x.shape, generator=g), torch.rand(len(x), generator=g)
    net = FusedResMLP(model)
    names = [n for n, _ in model.named_parameters()]
    whole = {n: torch.empty_like(p) for n, p in model.named_parameters()}
    y, tape = net.forward(x, t, batch=24)
    loss, gy = FusedResMLP.regression_grad(y, target, weight, 24)
    net.backward(tape, gy, whole)
    total, parts = 0.0, {n: torch.zeros_like(whole[n]) for n in names}
    for r in (slice(0, 5), slice(5, 24)):  # 5 rows < T = 10: still gathered, as for the batch of 24
        part = {n: torch.empty_like(whole[n]) for n in names}
        y, tape = net.forward(x[r], t[r], batch=24)
        assert tape.rows is not None
        share, gy = FusedResMLP.regression_grad(y, target[r], weight[r], 24)
        net.backward(tape, gy, part)
        total += float(share)
        for n in names:
            parts[n] += part[n]
    with torch.no_grad():
        ref = (weight * (model(x, t) - target).pow(2).mean(dim=1)).mean()  # the objective's weighted simple loss
    assert float(loss) == pytest.approx(float(ref), rel=1e-5) and total == pytest.approx(float(ref), rel=1e-5)
    for n in names:
        torch.testing.assert_close(parts[n], whole[n], rtol=1e-4, atol=1e-6)


def test_only_the_plain_network_is_fused() -> None:
    plain = ResMLP(2, 0, width=8, depth=1)
    assert is_plain_resmlp(plain)
    assert not is_plain_resmlp(SeedMLP(2, 10))

    class Changed(ResMLP):
        pass

    assert not is_plain_resmlp(Changed(2, 0, width=8, depth=1))
    gelu = ResMLP(2, 0, width=8, depth=1)
    gelu.blocks[0].act = nn.GELU()
    assert not is_plain_resmlp(gelu)
    with pytest.raises(TypeError, match="unmodified ResMLP, not SeedMLP"):
        FusedResMLP(SeedMLP(2, 10))
