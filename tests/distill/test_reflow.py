"""Reflow (distill/reflow.py, Liu et al. 2022): the pairs are the exact ODE map of a Gaussian under its exact
denoiser (on the straight path and on a discrete Gaussian process; D = 1, 2, 10), straightness S of a straight field
is 0 and of a curved one is not, a reflowed student is straighter than its teacher (a straight-path velocity model
and an EDM one), the student is an ordinary run that records S, an interrupted reflow resumes to the same weights,
and bad input is one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from difflab.cli import app
from difflab.compute import cpu_threads
from difflab.config import resolve_config
from difflab.diffusion import ContinuousDiffusion, Denoiser, GaussianDiffusion, make_schedule
from difflab.distill import distill_run, make_settings
from difflab.distill.reflow import Reflow, ode_pairs, pair_plan
from difflab.distill.run import CHECKPOINT, DISTILL_FILE
from difflab.evaluation.straightness import straight_velocity, straightness
from difflab.models.oracles import MixtureOracle
from difflab.pipeline import train_run
from difflab.rundir import FILES, load_run
from difflab.sample import sample_run
from helpers import GaussianOracle

RUNNER = CliRunner()
TINY = {"model": {"name": "mlp", "options": {"width": 16, "depth": 1}}, "data": {"n": 300},
        "train": {"steps": 150, "batch_size": 64, "warmup": 0, "threads": 1}}
STRAIGHT = {"diffusion": {"schedule": "rectified", "parameterization": "velocity", "T": 16},
            "sample": {"sampler": "ddim"}}
QUICK = {"method": "reflow", "round_steps": 60, "batch_size": 64, "pairs": 400, "teacher_steps": 8, "steps": 2}


def cli(*args: object, code: int = 0) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def gaussian(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(dim)
    return torch.randn(dim, generator=g, dtype=torch.float64) * 0.5, 0.2 + torch.rand(dim, generator=g).double()


def test_pairs_follow_the_exact_ode_map(dim: int) -> None:
    """For x_0 ~ N(μ, diag s²) the probability-flow ODE keeps each standardised coordinate: from x_T it reaches
    x̄_t = μ + (x̄_T − μ) √(s² + σ̄_t²)/√(s² + σ̄_T²) (x̄ = x/α, σ̄ = σ/α), and the samplers' last jump returns
    E[x_0 | x_{t_min}] = μ + s²/(s² + σ̄_min²) (x̄_min − μ). The pairs of the exact denoiser follow that map on the
    straight path (σ̄_T = ∞: μ + s ε, up to the last jump) and on a discrete process (models/oracles.py's mixture
    oracle): Heun converges to it at second order, the adaptive solver meets it."""
    mu, s = gaussian(dim)
    noise = torch.randn(200, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def exact(process, x_T: torch.Tensor) -> torch.Tensor:
        ab, sb_min = process.alpha_bar(process.t_max), process.sigma(process.t_min)
        return mu + (x_T - math.sqrt(ab) * mu) / torch.sqrt(ab * s**2 + 1 - ab) * s**2 / torch.sqrt(s**2 + sb_min**2)

    d = ContinuousDiffusion("rectified")
    errors = [float((ode_pairs(GaussianOracle(d, mu, s), d, noise, pair_plan(d, "heun", k, "karras"))
                     - exact(d, noise)).abs().max()) for k in (16, 64)]
    assert errors[1] < 0.02 and errors[1] < errors[0] / 8, errors  # 4x the jumps, ~1/16 the error
    adaptive = ode_pairs(GaussianOracle(d, mu, s), d, noise, pair_plan(d, "ode", 4, "karras"))
    torch.testing.assert_close(adaptive, exact(d, noise), rtol=0, atol=1e-4)
    disc = GaussianDiffusion(make_schedule("linear", 200))  # whole steps only: Karras's grid rounded to them
    oracle = MixtureOracle.of([1.0], mu[None].numpy(), np.diag(s.numpy() ** 2)[None], disc)
    with cpu_threads(1):  # the oracle's small einsums: one thread (several ran 30x slower on the busy machine)
        x0 = ode_pairs(Denoiser(oracle, disc, "eps"), disc, noise, pair_plan(disc, "heun", 64, "karras"))
    torch.testing.assert_close(x0, exact(disc, noise), rtol=0, atol=0.02)


def test_straightness_of_a_straight_and_a_curved_field(dim: int) -> None:
    """S = 0 for a constant velocity and for a point mass at μ (every path x_t = (1 − t) μ + t ε a straight line
    walked at constant speed); for N(μ, s²) the ODE's paths x_t = (1 − t) μ + √((1 − t)² s² + t²) z change speed, and
    S = E‖z‖² ∫ (1 − s − c'(t))² dt per coordinate, c(t) = √((1 − t)² s² + t²) (closed form, a quadrature here); a
    mixture of two far modes bends more."""
    x1 = torch.randn(400, dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert straightness(lambda x, t: torch.ones_like(x), x1, steps=5)[0] == pytest.approx(0.0, abs=1e-12)
    d = ContinuousDiffusion("rectified")
    mu, s = gaussian(dim)
    s_point, end = straightness(straight_velocity(GaussianOracle(d, mu, torch.zeros(dim)), d), x1, steps=50)
    assert s_point < 1e-8
    torch.testing.assert_close(end, mu.expand_as(x1), rtol=0, atol=1e-6)
    s_gauss = straightness(straight_velocity(GaussianOracle(d, mu, s), d), x1, steps=50)[0]
    t = torch.linspace(0.0, 1.0, 2001, dtype=torch.float64)[:, None]
    speed = ((1 - t) * s**2 * -1 + t) / torch.sqrt((1 - t) ** 2 * s**2 + t**2)  # d/dt √((1 − t)² s² + t²)
    closed = float((((1 - s) - speed) ** 2).sum(1).mean()) * float(x1.pow(2).mean())
    assert s_gauss == pytest.approx(closed, rel=0.15)
    disc = GaussianDiffusion(make_schedule("linear", 200))
    means = np.stack([np.full(dim, -2.0), np.full(dim, 2.0)])
    mixture = MixtureOracle.of([0.5, 0.5], means, np.stack([0.01 * np.eye(dim)] * 2), disc)
    with cpu_threads(1):
        bent = straightness(straight_velocity(Denoiser(mixture, disc, "eps"), disc), x1, steps=50)[0]
    assert bent > max(s_gauss, 0.3 * dim)


@pytest.fixture(scope="module")
def straight_teacher(tmp_path_factory) -> Path:
    cfg = resolve_config("recommended", overrides={**TINY, **STRAIGHT})
    return train_run(cfg, tmp_path_factory.mktemp("reflow") / "teacher", progress=False).path


def test_reflow_straightens_a_straight_teacher(straight_teacher, tmp_path) -> None:
    """1-rectified flow from the teacher's weights: S drops, and the command line and distill.json say so; the
    student is a straight-path velocity run sampled with its own steps."""
    out = tmp_path / "student"
    text = cli("distill", straight_teacher, "--out", out, "--method", "reflow", "--round-steps", 60, "--pairs", 400,
               "--teacher-steps", 8, "--steps", 1, "--batch-size", 64, "-q")
    assert "1-call ddim student" in text and "straightness S" in text and "round 1" in text
    record = json.loads((out / DISTILL_FILE).read_text())
    s = record["straightness"]
    assert len(s["rounds"]) == 1 and s["rounds"][0] < 0.5 * s["teacher"], s
    assert record["pairs"]["sampler"] == "heun" and len(record["pairs"]["rms_error"]) == 1
    run = load_run(out)
    assert (run.config.diffusion.schedule, run.config.diffusion.parameterization) == ("rectified", "velocity")
    assert (run.config.sample.sampler, run.config.sample.steps) == ("ddim", 1)
    x, _ = sample_run(run, 50, device="cpu")
    assert np.isfinite(x).all()


def test_reflow_of_an_edm_teacher_starts_a_fresh_straight_student(tmp_path) -> None:
    """An EDM teacher (the default recipe, tiny): the student is a new velocity network on the straight path,
    trained on the teacher's pairs, two rounds, each one's S recorded."""
    teacher = train_run(resolve_config("recommended", overrides=TINY), tmp_path / "t", progress=False)
    student = distill_run(teacher.path, tmp_path / "s", make_settings({**QUICK, "rounds": 2, "round_steps": 40}),
                          progress=False)
    assert student.diffusion.path == "straight" and student.config.model.options == TINY["model"]["options"]
    assert json.loads((tmp_path / "s" / FILES["schedule"]).read_text())["name"] == "rectified"
    s = json.loads((tmp_path / "s" / DISTILL_FILE).read_text())["straightness"]
    assert len(s["rounds"]) == 2 and all(math.isfinite(v) for v in [s["teacher"], *s["rounds"]])
    assert s["rounds"][0] < s["teacher"]


def test_resume_gives_the_uninterrupted_weights(straight_teacher, tmp_path, monkeypatch) -> None:
    """Two rounds of 30 steps, checkpoints every 10 steps of a round and at its end: stopping in round 2's step 16
    resumes from its step 10, with round 2's pairs (drawn from round 1's student) and S so far from the checkpoint."""
    settings = make_settings({**QUICK, "rounds": 2, "round_steps": 30, "checkpoint_every": 10})
    straight = distill_run(straight_teacher, tmp_path / "straight", settings, progress=False)
    stop = 45
    own, calls = Reflow.batch, []

    def interrupted(self):
        calls.append(1)
        if len(calls) == stop + 1:
            raise KeyboardInterrupt
        return own(self)

    monkeypatch.setattr(Reflow, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        distill_run(straight_teacher, tmp_path / "resumed", settings, progress=False)
    assert (tmp_path / "resumed" / CHECKPOINT).exists() and not (tmp_path / "resumed" / FILES["model"]).exists()
    monkeypatch.setattr(Reflow, "batch", own)
    resumed = distill_run(straight_teacher, tmp_path / "resumed", settings, resume=True, progress=False)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert (tmp_path / "straight" / FILES["loss"]).read_text() == (tmp_path / "resumed" / FILES["loss"]).read_text()
    read = lambda p: json.loads((p / DISTILL_FILE).read_text())["straightness"]  # noqa: E731
    assert read(tmp_path / "straight") == read(tmp_path / "resumed")


def test_bad_input_is_one_line_and_writes_nothing(straight_teacher, tmp_path) -> None:
    out = tmp_path / "out"
    for args, message in [(["--rounds", 0], "--rounds"), (["--pairs", 1], "--pairs"),
                          (["--solver", "rk4"], "--solver"), (["--teacher-steps", 0], "--teacher-steps")]:
        text = cli("distill", straight_teacher, "--out", out, "--method", "reflow", *args, code=2)
        assert text.startswith("error:") and text.count("\n") == 1 and message in text, text
    assert not out.exists()


def test_network_rows_read_a_straight_path_network_on_its_own_scale(dim: int) -> None:
    """distill/rows.network_rows (per-row times, the students' and teachers' reader) agrees with the Denoiser (one
    time, the samplers' reader) on a straight-path velocity network: both hand it the path's x_t, not the
    variance-preserving one (they differed by 1/√((1 − t)² + t²) before)."""
    from difflab.diffusion import get_parameterization
    from difflab.distill.rows import network_rows
    from difflab.models import build_model

    d = ContinuousDiffusion("rectified")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_model("mlp", dim, 0, width=16, depth=1).eval()
    rows = network_rows(net, d, get_parameterization("velocity"))
    den = Denoiser(net, d, "velocity")
    x = torch.randn(6, dim, generator=torch.Generator().manual_seed(3))
    for t in (0.1, 0.5, 0.9):
        got = rows(x, torch.full((6,), t, dtype=torch.float64))
        want = den(x, t)
        torch.testing.assert_close(got.x0, want.x0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got.eps, want.eps, rtol=1e-5, atol=1e-5)
