"""Progressive distillation (Salimans & Ho 2022, Alg. 2) against independent computations: the target lands one
DDIM step of the samplers on the teacher's two, the levels and grids nest, and a student of the exact Gaussian
denoiser reproduces the teacher's two-step (and four-step) DDIM map on fresh points (D = 1, 2, 10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difflab.diffusion import Denoiser, Prediction, get_parameterization
from difflab.distill.loop import LoopSettings
from difflab.distill.progressive import Progressive, ddim_target, default_teacher_steps, levels, student_grid
from difflab.distill.rows import grouped_rows
from difflab.errors import ConfigError
from difflab.models import ResMLP
from difflab.sampling import make_grid, sample_ddim
from difflab.sampling.grids import KARRAS_RHO
from helpers import GaussianOracle, continuous, diffusion


@pytest.mark.parametrize("process", [continuous("linear"), diffusion("linear", 100)], ids=["continuous", "discrete"])
@pytest.mark.parametrize(("t", "t_end"), [(0.9, 0.6), (0.4, 0.0)])
def test_target_lands_one_ddim_step_on_the_teachers_point(process, dim, t, t_end) -> None:
    if process.discrete:
        t, t_end = round(t * process.T), round(t_end * process.T)
    g = torch.Generator().manual_seed(dim)
    z, z_end = torch.randn(64, dim, generator=g, dtype=torch.float64), torch.randn(64, dim, generator=g,
                                                                                   dtype=torch.float64)
    rows = lambda v: torch.full((64,), float(v), dtype=torch.float64)  # noqa: E731
    x_tilde = ddim_target(process, z, rows(t), z_end, rows(t_end))
    a, s = process.alpha_sigma(t, z)

    def denoise(xt: torch.Tensor, when: float) -> Prediction:  # a denoiser that predicts x̃
        return Prediction(eps=(xt - a * x_tilde) / s, x0=x_tilde)

    out = sample_ddim(denoise, z, process, [t, t_end])  # the sampler's own DDIM jump
    torch.testing.assert_close(out, z_end, atol=1e-8, rtol=1e-8)


def test_levels_halve_to_the_students_steps() -> None:
    assert levels(64, 1) == [64, 32, 16, 8, 4, 2, 1]
    assert levels(16, 8) == [16, 8]
    assert default_teacher_steps(100, 4) == 64 and default_teacher_steps(10, 1) == 8
    assert default_teacher_steps(100, 8, cap=16) == 16
    for bad in [(8, 3), (12, 8), (4, 8), (8, 8), (12, 4)]:
        with pytest.raises(ConfigError):
            levels(*bad)


@pytest.mark.parametrize("process", [continuous("linear"), continuous("edm"), diffusion("linear", 100),
                                     diffusion("poly", 10)], ids=["continuous", "edm", "discrete", "poly10"])
@pytest.mark.parametrize("steps", [1, 4])
def test_levels_nest_down_to_the_grid_the_student_samples_on(process, steps) -> None:
    n0 = default_teacher_steps(process.T, steps)
    loop = Progressive(lambda x, t: None, ResMLP(2, 0 if not process.discrete else process.T, width=8, depth=1),
                       process, get_parameterization("v"), torch.zeros(4, 2),
                       LoopSettings(round_steps=1, batch_size=4, lr=1e-3), steps=steps, teacher_steps=n0)
    for fine, coarse in zip(loop.levels[:-1], loop.levels[1:], strict=True):
        assert loop.grid(coarse).tolist() == loop.grid(fine).tolist()[::2]
    assert loop.grid(steps).tolist() == make_grid(process, steps, student_grid(process))
    times = loop.grid(n0).tolist()
    assert all(a > b for a, b in zip(times[:-1], times[1:], strict=False)) and times[-1] == 0
    assert times == make_grid(process, n0, student_grid(process))


def test_karras_trailing_grid_is_the_ramp_in_equal_parts_without_its_end() -> None:
    d = continuous("edm")
    for K in (1, 2, 8, 64):
        sig = np.array([d.sigma(t) for t in make_grid(d, K, "karras-trailing")[:-1]])
        r_max, r_min = 80.0 ** (1 / KARRAS_RHO), 0.002 ** (1 / KARRAS_RHO)
        np.testing.assert_allclose(sig, (r_max + np.arange(K) / K * (r_min - r_max)) ** KARRAS_RHO, rtol=1e-6)


def distill(dim, gaussian_data, *, teacher_steps: int, steps: int, round_steps: int):
    mu, s, x = gaussian_data
    d = continuous("linear")
    torch.manual_seed(0)
    student = ResMLP(dim, 0, width=64, depth=2)
    loop = Progressive(grouped_rows(GaussianOracle(d, mu, s), d), student, d, get_parameterization("v"), x,
                       LoopSettings(round_steps=round_steps, batch_size=256, lr=5e-3, seed=0), steps=steps,
                       teacher_steps=teacher_steps)
    loop.fit()
    teacher_times, student_times = loop.grid(teacher_steps).tolist(), loop.grid(steps).tolist()
    z = d.alpha_sigma(1.0, x)[0] * x[:1000] + d.alpha_sigma(1.0, x)[1] * torch.randn(1000, dim)  # fresh x_T ~ q_T
    teacher = sample_ddim(GaussianOracle(d, mu, s), z, d, teacher_times)
    student_map = sample_ddim(Denoiser(student.eval(), d, "v"), z, d, student_times)
    # the teacher's own map on the student's grid: what the student would be without distillation
    undistilled = sample_ddim(GaussianOracle(d, mu, s), z, d, student_times)
    rel = lambda y: float((y - teacher).pow(2).mean() / teacher.var(0).mean())  # noqa: E731
    return rel(student_map), rel(undistilled)


def test_student_one_step_reproduces_the_teachers_two_ddim_steps(dim, gaussian_data) -> None:
    student, undistilled = distill(dim, gaussian_data, teacher_steps=2, steps=1, round_steps=400)
    assert student < 0.05 < undistilled


@pytest.mark.parametrize("dim", [2])
def test_two_rounds_reproduce_the_teachers_four_step_map(dim, gaussian_data) -> None:
    student, undistilled = distill(dim, gaussian_data, teacher_steps=4, steps=1, round_steps=300)
    assert student < 0.1 < undistilled
