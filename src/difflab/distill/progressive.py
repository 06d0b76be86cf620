"""Progressive distillation (Salimans & Ho 2022, Alg. 2): a student learns to take in one DDIM step what its teacher
takes in two; the student becomes the next round's teacher, so each round halves the steps, N → N/2 → … → K.

Everything runs on the teacher's own process at its own times, on nested grids: each level is every other time of
the level above, down to the student's own grid of K jumps, which its run records, so it is sampled with ``ddim``
at exactly the times it was trained at (:func:`student_grid`: ``trailing`` whole steps for a discrete process,
``karras-trailing`` for a continuous one). Per row of a batch: x_0 from the training rows, a student jump t → t''
of the current level with its midpoint t' on the teacher's level, z_t = α_t x_0 + σ_t ε, the teacher's two DDIM
steps z_t → z_t' → z_t'', and the target x̃ that makes one DDIM step from z_t land on z_t'':

    x̃ = (z_t'' − (σ_t''/σ_t) z_t) / (α_t'' − (σ_t''/σ_t) α_t)

(Alg. 2; x̃ = z_0 on the last jump). The loss is the truncated-SNR weighting max(α_t²/σ_t², 1) ‖x̂ − x̃‖² of their
§4, on the student's x̂_0 (a v- or x_0-predicting student: ε-prediction cannot give x_0 where α_t ≈ 0).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from difflab.diffusion import Parameterization, Process
from difflab.distill.loop import LoopSettings, RoundLoop
from difflab.distill.rows import RowFn, ddim_step, network_rows
from difflab.errors import ConfigError
from difflab.sampling import make_grid
from difflab.training.checkpoint import model_tensors, strip


def levels(teacher_steps: int, steps: int) -> list[int]:
    """[N, N/2, …, K]: the steps of the teacher and of each round's student."""
    if steps < 1 or steps & (steps - 1):
        raise ConfigError(f"--steps {steps}: progressive distillation halves the steps each round, so the student's "
                          "steps must be a power of two (1, 2, 4, 8, …)")
    if teacher_steps <= steps:
        raise ConfigError(f"--teacher-steps {teacher_steps} must be more than --steps {steps}: each round halves the "
                          "teacher's steps")
    n, out = teacher_steps, [teacher_steps]
    while n > steps and n % 2 == 0:
        n //= 2
        out.append(n)
    if n != steps:
        raise ConfigError(f"--teacher-steps {teacher_steps} does not halve down to --steps {steps}; use "
                          f"{steps}·2^r steps, e.g. {default_teacher_steps(teacher_steps, steps)}")
    return out


def default_teacher_steps(limit: int, steps: int, cap: int = 64) -> int:
    """The largest K·2^r that is at most ``limit`` (the teacher's own steps) and ``cap``, and at least K."""
    n = steps
    while 2 * n <= min(limit, max(cap, steps)):
        n *= 2
    return n


def ddim_target(process: Process, z: Tensor, t: Tensor, z_end: Tensor, t_end: Tensor) -> Tensor:
    """The x̂_0 with which one DDIM step from z_t lands on z_t'' (Salimans & Ho 2022, Alg. 2): solving
    z'' = α'' x̃ + σ'' (z − α x̃)/σ for x̃ gives x̃ = (z'' − (σ''/σ) z) / (α'' − (σ''/σ) α)."""
    a, s = process.alpha_sigma(t, z)
    a2, s2 = process.alpha_sigma(t_end, z)
    ratio = s2 / s
    return (z_end - ratio * z) / (a2 - ratio * a)


def student_grid(process: Process) -> str:
    """The grid a progressive student is sampled on: ``trailing`` (whole steps) for a discrete process,
    ``karras-trailing`` for a continuous one. Both are nested (the grid of K steps is every other time of the grid of
    2K) and call the network at neither end's extreme: uniform in t would be uniform in σ for EDM's schedule (64 such
    DDIM steps of the default recipe: W1/floor 10 on moons; 64 Karras steps: 0.95), and ``karras`` spends one of two
    calls at σ_min (a 2-step student scored worse than a 1-step one)."""
    return "trailing" if process.discrete else "karras-trailing"


def teacher_grid(process: Process, steps: int, teacher_steps: int) -> list:
    """The teacher's descending times (N + 1,): :func:`student_grid` of N steps, of which every (N/K)th is the
    student's own grid of K steps (checked: rounding to whole steps could break it)."""
    kind = student_grid(process)
    grid = make_grid(process, teacher_steps, kind)
    if grid[:: teacher_steps // steps] != make_grid(process, steps, kind):
        raise ConfigError(f"the {kind} grid of {steps} steps is not every {teacher_steps // steps}th time of the "
                          f"teacher's {teacher_steps}: use another --teacher-steps")
    return grid


class Progressive(RoundLoop):
    """``teacher``: the teacher's denoiser per row; ``student``: a network initialised from the teacher's weights,
    read through ``param``; ``x``: the training rows, scaled. ``teacher_steps`` → … → ``steps``."""

    def __init__(self, teacher: RowFn, student: nn.Module, process: Process, param: Parameterization, x: Tensor,
                 settings: LoopSettings, *, steps: int, teacher_steps: int) -> None:
        super().__init__(student, x, settings)
        self.levels = levels(teacher_steps, steps)
        self.teacher_steps = teacher_steps
        self.rounds = len(self.levels) - 1
        self.process, self.param = process, param
        self.original = self.teacher = teacher
        self.teacher_net: nn.Module | None = None
        self.student_fn = network_rows(self.network, process, param)
        self.grid0 = torch.tensor(teacher_grid(process, steps, teacher_steps), device=self.device,
                                  dtype=torch.long if process.discrete else torch.float64)

    def grid(self, n: int) -> Tensor:
        """The descending times (n + 1,) of level n: every (N/n)th time of the teacher's grid."""
        return self.grid0[:: self.teacher_steps // n]

    def begin_round(self) -> None:
        if self.round > 0:  # the last round's student teaches this one (Alg. 2: η ← θ)
            self.teacher_net = copy.deepcopy(self.student).eval().requires_grad_(False)
            self.teacher = network_rows(self.fused(self.teacher_net), self.process, self.param)

    def loss(self, x0: Tensor) -> Tensor:
        d = self.process
        g = self.grid(self.levels[self.round])
        j = 2 * self.uniform_index(self.levels[self.round + 1])
        t, t_mid, t_end = g[j], g[j + 1], g[j + 2]
        eps = self.noise(x0)
        a, s = d.alpha_sigma(t, x0)
        z = a * x0 + s * eps
        with torch.no_grad():
            z_end = ddim_step(self.teacher, d, ddim_step(self.teacher, d, z, t, t_mid), t_mid, t_end)
            x_tilde = ddim_target(d, z, t, z_end, t_end)
        x_hat = self.student_fn(z, t).x0
        weight = torch.clamp(a**2 / s**2, min=1.0)  # truncated SNR (Salimans & Ho 2022, §4)
        return (weight * (x_hat - x_tilde) ** 2).mean()

    def extra_tensors(self) -> dict[str, Tensor]:
        return model_tensors(self.teacher_net, "teacher.") if self.teacher_net is not None else {}

    def load_extra(self, tensors: dict[str, Tensor]) -> None:
        if self.round > 0 and self.step > 0:
            net = copy.deepcopy(self.student)
            net.load_state_dict(strip(tensors, "teacher."))
            self.teacher_net = net.eval().requires_grad_(False)
            self.teacher = network_rows(self.fused(self.teacher_net), self.process, self.param)
