"""Training with class labels: each step's rows carry their labels, dropped to "no label" at rate p_uncond (Ho &
Salimans 2022, Alg. 1), measured by simulation; the labels reach the network's loss; a CUDA graph of the step (run
eagerly on a CPU, captured on a GPU when there is one) trains the same weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from difflab.compute import cpu_threads
from difflab.config import DEFAULT_LABEL_DROPOUT, TrainConfig
from difflab.errors import ConfigError
from difflab.models import ResMLP
from difflab.training.trainer import Trainer
from helpers import diffusion as make_diffusion

K = 3


@pytest.fixture(autouse=True)
def _one_thread():
    with cpu_threads(1):
        yield


def conditional_trainer(dim: int, *, device: str = "cpu", **train) -> Trainer:
    cfg = TrainConfig(**{"steps": 20, "batch_size": 64, "lr": 1e-3, "seed": 2, "device": device, **train})
    g = torch.Generator().manual_seed(dim)
    x = torch.randn(300, dim, generator=g)
    labels = torch.randint(0, K, (300,), generator=g)
    torch.manual_seed(0)
    model = ResMLP(dim, 10, width=16, depth=1, n_classes=K)
    nn.init.normal_(model.label_emb.weight, std=0.5)
    return Trainer(model, make_diffusion("linear", 10), x, cfg, labels=labels, n_classes=K)


@pytest.mark.parametrize("p", [None, 0.0, 0.25])
@pytest.mark.parametrize("full", [False, True])
def test_labels_follow_rows_and_drop_at_rate_p(p: float | None, full: bool) -> None:
    tr = conditional_trainer(2, label_dropout=p, batch_size=None if full else 64)
    rate = DEFAULT_LABEL_DROPOUT if p is None else p
    dropped = total = 0
    for _ in range(300):
        tr.draw()
        y = tr.draw_labels().clone()
        rows = tr.labels.labels if full else tr.labels.labels[tr._idx]
        kept = y != K
        assert torch.equal(y[kept], rows[kept])  # a label that is not dropped is its row's
        dropped += int((~kept).sum())
        total += len(y)
    sd = math.sqrt(rate * (1 - rate) / total)
    assert abs(dropped / total - rate) <= 4 * sd + 1e-12, (dropped / total, rate)


def test_the_loss_sees_the_labels(dim: int) -> None:
    """The step's loss is ‖ε̂(x_t, t, y) − ε‖² with the drawn labels y (dropped ones as K), computed by hand."""
    tr = conditional_trainer(dim, label_dropout=0.5)
    x0, t, eps = tr.draw()
    x0, t, eps = x0.clone(), t.clone(), eps.clone()
    y = tr.draw_labels().clone()
    assert (y == K).any() and (y != K).any()
    ab = tr.diffusion.alpha_bars.float()[t].unsqueeze(1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    want = (tr.model(xt, t, y) - eps).pow(2).mean()
    torch.testing.assert_close(tr.loss(x0, t, eps, y), want)
    assert not torch.allclose(tr.loss(x0, t, eps, torch.full_like(y, K)), want)


def test_graphed_step_trains_the_eager_weights(dim: int) -> None:
    """The step a CUDA graph would capture (run eagerly here, with its warm-up undone) equals plain steps."""
    eager, graphed = conditional_trainer(dim), conditional_trainer(dim)
    eager.fit(progress=False, graph=False)
    graphed.fit(progress=False, graph=True)
    for a, b in zip(eager.model.parameters(), graphed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(eager.loss_log, graphed.loss_log)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.filterwarnings("error::difflab.errors.FallbackWarning")
def test_captured_graph_trains_the_eager_weights_on_cuda() -> None:
    eager, graphed = conditional_trainer(10, device="cuda"), conditional_trainer(10, device="cuda")
    eager.fit(progress=False, graph=False)
    graphed.fit(progress=False, graph=True)
    for a, b in zip(eager.model.parameters(), graphed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(eager.loss_log, graphed.loss_log, rtol=1e-5, atol=1e-6)


def test_labels_must_fit_the_rows() -> None:
    cfg = TrainConfig(steps=2, batch_size=8)
    x = torch.randn(10, 2)
    model = ResMLP(2, 10, width=8, depth=1, n_classes=2)
    with pytest.raises(ConfigError, match="9 class codes for 10 rows"):
        Trainer(model, make_diffusion("linear", 10), x, cfg, labels=torch.zeros(9, dtype=torch.long), n_classes=2)
    with pytest.raises(ConfigError, match="class codes in 0..1"):
        Trainer(model, make_diffusion("linear", 10), x, cfg, labels=torch.full((10,), 2), n_classes=2)
