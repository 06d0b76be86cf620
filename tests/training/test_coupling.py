"""Minibatch optimal-transport coupling (training/coupling.py) against POT's own solver called here, on D = 1, 2, 10:
the pairing is a permutation equal to ot.emd's plan, per-class pairing stays inside each class and is the plan of
each class's own problem, Sinkhorn's plan is close to the exact one, the trainer's draw is reproducible and only
reorders its noise, a coupled straight-path model has straighter paths, and the refusals."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from difflab.assemble import check_config
from difflab.config import TrainConfig, resolve_config
from difflab.diffusion import ContinuousDiffusion, Denoiser
from difflab.errors import ConfigError
from difflab.evaluation.straightness import straight_velocity, straightness
from difflab.models import build_model
from difflab.training.coupling import (
    COUPLINGS,
    exact_plan,
    ot_indices,
    ot_pairing,
    plan_pairs,
    sinkhorn_plan,
)
from difflab.training.trainer import Trainer


def rows(n: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


def pot_permutation(x0: torch.Tensor, eps: torch.Tensor) -> np.ndarray:
    """POT's exact plan of the same problem, computed here with its own cost function, as a permutation."""
    a, b = x0.double().numpy(), eps.double().numpy()
    w = np.full(len(a), 1.0 / len(a))
    plan = ot.emd(w, w, ot.dist(a, b, metric="sqeuclidean"))
    assert np.allclose(plan.sum(1), w) and np.allclose(plan.max(1), w)  # one entry 1/n per row: a permutation
    return plan.argmax(1)


def test_the_pairing_is_pots_exact_plan_and_a_permutation(dim: int) -> None:
    x0, eps = rows(96, dim, 0, shift=1.5), rows(96, dim, 1)
    idx = ot_pairing(x0, eps, None, torch.Generator())
    assert sorted(idx.tolist()) == list(range(96))
    np.testing.assert_array_equal(idx.numpy(), pot_permutation(x0, eps))
    cost = lambda j: float((x0 - eps[j]).pow(2).sum())  # noqa: E731
    assert cost(idx) < cost(torch.arange(96))  # cheaper than the independent pairing


def test_per_class_pairing_stays_in_each_class(dim: int) -> None:
    """Rows of class c only meet noise drawn at positions of class c, matched by the exact plan of that class's
    problem alone."""
    n = 120
    labels = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(2))
    x0 = rows(n, dim, 3) + 3.0 * labels[:, None].float()
    eps = rows(n, dim, 4)
    idx = ot_pairing(x0, eps, labels, torch.Generator())
    assert torch.equal(labels[idx], labels)
    assert sorted(idx.tolist()) == list(range(n))
    for c in range(3):
        where = torch.nonzero(labels == c).squeeze(1)
        want = where[torch.from_numpy(pot_permutation(x0[where], eps[where]))]
        assert torch.equal(idx[where], want)


def test_sinkhorn_is_close_to_the_exact_plan(dim: int) -> None:
    """The entropic plan's transport cost approaches the optimum as the regularisation shrinks (within 3 % at
    reg = 0.01 on a small problem, 25 % at the default), and its sampled pairs (forced by exact_max = 0) cost far less
    than independent ones."""
    x0, eps = rows(64, dim, 5, shift=1.0), rows(64, dim, 6)
    a, b = x0.double().numpy(), eps.double().numpy()
    cost = ot.dist(a, b)
    best = (exact_plan(a, b) * cost).sum()
    close, soft = sinkhorn_plan(a, b, reg=0.01), sinkhorn_plan(a, b)
    np.testing.assert_allclose(soft.sum(0), 1 / 64, rtol=1e-3)
    assert best <= (close * cost).sum() <= 1.03 * best
    assert (close * cost).sum() < (soft * cost).sum() <= 1.25 * best
    idx = ot_indices(x0, eps, torch.Generator().manual_seed(0), exact_max=0)
    paired = float((x0 - eps[idx]).pow(2).sum(1).mean())
    independent = float((x0 - eps).pow(2).sum(1).mean())
    assert paired < 1.4 * best and best < 0.7 * independent and paired < 0.9 * independent


def test_plan_pairs_samples_a_soft_plan_with_the_generator() -> None:
    plan = np.array([[0.25, 0.25], [0.25, 0.25]])
    draws = [plan_pairs(plan, torch.Generator().manual_seed(s)).tolist() for s in range(40)]
    assert draws[0] == plan_pairs(plan, torch.Generator().manual_seed(0)).tolist()  # reproducible
    assert len({tuple(d) for d in draws}) > 1  # drawn, not argmax


@pytest.mark.parametrize("batch_size", [None, 32])
def test_the_trainer_reorders_its_own_noise(dim: int, batch_size: int | None) -> None:
    """draw() with coupling 'ot' returns the same x_0 and t as an uncoupled trainer of the same seed, and the same
    noise rows reordered by POT's plan; two coupled trainers of one seed draw the same."""
    d = ContinuousDiffusion("rectified")
    x = rows(64, dim, 7, shift=2.0)

    def trainer(coupling: str) -> Trainer:
        cfg = TrainConfig(steps=2, batch_size=batch_size, seed=3, coupling=coupling)
        return Trainer(build_model("mlp", dim, 0, width=8, depth=1), d, x, cfg, parameterization="velocity")

    plain, coupled, again = trainer("none"), trainer("ot"), trainer("ot")
    for _ in range(2):
        x0, t, eps = (v.clone() for v in plain.draw())
        cx0, ct, ceps = coupled.draw()
        assert torch.equal(cx0, x0) and torch.equal(ct, t)
        want = eps[torch.from_numpy(pot_permutation(x0, eps))]
        if batch_size is None:  # distinct rows: one optimal plan
            assert torch.equal(ceps, want)
        else:  # rows drawn with replacement: repeated rows may swap partners among equally optimal plans
            assert sorted(ceps.flatten().tolist()) == sorted(eps.flatten().tolist())
            assert float((cx0 - ceps).pow(2).sum()) == pytest.approx(float((x0 - want).pow(2).sum()), rel=1e-6)
        assert torch.equal(again.draw()[2], ceps)


def test_a_coupled_run_has_straighter_paths() -> None:
    """Two Gaussian modes at ±2 (D = 2): the same small velocity network trained with and without OT coupling; the
    coupled one's straightness S is well below the independent one's (Tong et al. 2023, Fig. 2)."""
    d = ContinuousDiffusion("rectified")
    g = torch.Generator().manual_seed(0)
    sign = torch.where(torch.rand(512, generator=g) < 0.5, -1.0, 1.0)
    x = 0.2 * torch.randn(512, 2, generator=g) + 2.0 * sign[:, None] * torch.tensor([1.0, 0.0])
    s = {}
    for coupling in ("none", "ot"):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = build_model("mlp", 2, 0, width=32, depth=1)
        cfg = TrainConfig(steps=120, batch_size=64, lr=1e-2, seed=0, coupling=coupling, threads=1)
        Trainer(model, d, x, cfg, parameterization="velocity").fit(progress=False)
        velocity = straight_velocity(Denoiser(model.eval(), d, "velocity"), d)
        s[coupling] = straightness(velocity, torch.randn(300, 2, generator=torch.Generator().manual_seed(1)),
                                   steps=10)[0]
    assert s["ot"] < 0.5 * s["none"], s


@pytest.mark.parametrize(("overrides", "match"), [
    ({"train": {"coupling": "sinkhorn"}}, "unknown coupling 'sinkhorn'"),
    ({"train": {"coupling": "ot"}}, "sampler 'ddpm' draws from the independent Gaussian"),
    ({"train": {"coupling": "ot"}, "sample": {"sampler": "ddim", "eta": 1.0}}, "ddim with eta 1"),
    ({"train": {"coupling": "ot"}, "sample": {"sampler": "heun-sde"}}, "sampler 'heun-sde'"),
    ({"train": {"coupling": "ot"}, "sample": {"sampler": "dpm++"}, "model": {"name": "oracle"},
      "diffusion": {"time": "discrete", "schedule": "linear", "parameterization": "eps"}}, "exact denoiser"),
    ({"train": {"coupling": "ot"}, "sample": {"sampler": "dpm++"},
      "diffusion": {"time": "discrete", "schedule": "linear", "parameterization": "eps", "variance": "learned-range"}},
     "learned variances"),
])
def test_refusals(overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        check_config(resolve_config(overrides=overrides))
    assert "\n" not in str(info.value)


def test_deterministic_samplers_are_accepted() -> None:
    for sampler in ("ddim", "dpm++", "heun", "ode"):
        check_config(resolve_config(overrides={"train": {"coupling": "ot"}, "sample": {"sampler": sampler}}))
    assert set(COUPLINGS) == {"none", "ot"}


def test_a_coupled_run_samples_deterministically_only(tmp_path) -> None:
    """A coupled run (EDM's process, tiny): its own ddim samples; --sampler ddpm, ddim with eta > 0 and the ELBO are
    one-line refusals; a bare budget of calls skips the measured SDE pair (dpm++-sde at 4 calls) for the next."""
    from difflab.evaluation.report import evaluate_run
    from difflab.pipeline import train_run
    from difflab.sample import sample_run, sampling_kwargs

    cfg = resolve_config(overrides={"train": {"coupling": "ot", "steps": 20, "batch_size": 64, "warmup": 0},
                                    "model": {"options": {"width": 16, "depth": 1}}, "data": {"n": 200},
                                    "sample": {"sampler": "ddim"}})
    run = train_run(cfg, tmp_path / "run", progress=False)
    x, _ = sample_run(run, 20, device="cpu", steps=3)
    assert np.isfinite(x).all()
    for over, match in [({"sampler": "ddpm"}, "sampler 'ddpm'"), ({"sampler": "ddim", "eta": 0.5}, "eta 0.5")]:
        with pytest.raises(ConfigError, match=match):
            sample_run(run, 5, device="cpu", **over)
    assert sampling_kwargs(run, steps=4)["sampler"] == "dpm++"
    with pytest.raises(ConfigError, match="--elbo: .* coupling 'ot'"):
        evaluate_run(run.path, n=10, repeats=1, metrics=["w1"], with_elbo=True)
