"""Reflow (Liu et al. 2022, §2.3, "k-rectified flow"): a straight-path velocity model trained on pairs (ε, x_0) that
the teacher's probability-flow ODE couples, x_0 = ODE_teacher(ε), instead of independent noise and data.

Each round draws ``pairs`` noise rows ε ~ N(0, I) (from the loop's generator), solves the current teacher's ODE from
each to its sample x_0 (a deterministic sampler on the teacher's own grid: Heun, Karras et al. 2022 Alg. 1, in
``teacher_steps`` jumps by default, or DDIM, or the adaptive ODE solver), and trains the student by flow matching on their straight interpolation,

    x_t = (1 − t) x_0 + t ε,  t ~ U[0, 1],  loss ‖v_θ(x_t, t) − (ε − x_0)‖² / D   (Liu et al. 2022, eq. 1).

The coupling is deterministic, so the paths of the pairs cross less than those of independent pairs: the new flow
keeps the teacher's marginals with no higher convex transport costs and straighter trajectories (Liu et al. 2022,
§3), and in the limit one Euler step is exact. Round r + 1's teacher is round r's student (its own ODE, the same
sampler): two rounds give the 2-rectified flow, and so on. The first student starts from the teacher's weights
where the teacher is itself a straight-path velocity model; otherwise (any other process: EDM, discrete steps, an
exact denoiser) from a fresh network of the teacher's architecture (the recommended MLP for networks that cannot see
continuous time).

Straightness S (:mod:`difflab.evaluation.straightness`) is measured for the teacher before the first round and for
each round's student after it, on the same noise rows, so the record shows what each round bought.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from difflab.compute import cpu_threads, default_threads
from difflab.diffusion import DenoiseFn, Denoiser, Parameterization, Process
from difflab.distill.loop import LoopSettings, RoundLoop
from difflab.errors import ConfigError
from difflab.evaluation.straightness import straight_velocity, straightness
from difflab.sampling import get_sampler, make_grid

PAIR_SAMPLERS = ("heun", "ddim", "ode")  # --solver: the deterministic samplers that may draw the pairs
STRAIGHTNESS_ROWS = 2000
STRAIGHTNESS_SEED = 12_345  # its own generator: measuring S draws nothing from the training stream
CHECK_ROWS = 256  # rows of each round's pairs solved again on twice the jumps, to measure the pairs' error


def pair_plan(process: Process, solver: str, steps: int, grid: str) -> tuple[str, str, int]:
    """(sampler, grid, jumps) that draw the pairs on ``process``: ``solver`` on the teacher's own ``grid`` with
    ``steps`` jumps (at most T for a discrete process; ``ode``: the adaptive solver, whose grid only records)."""
    if solver not in PAIR_SAMPLERS:
        raise ConfigError(f"reflow: unknown pair sampler '{solver}'; choose one of: {', '.join(PAIR_SAMPLERS)}")
    return solver, grid, min(steps, process.T) if process.discrete else steps


@torch.no_grad()
def ode_pairs(denoise: DenoiseFn, process: Process, noise: Tensor, plan: tuple[str, str, int]) -> Tensor:
    """x_0 = ODE(ε) for each row of ``noise``, by the deterministic sampler of ``plan`` (the noise is x at t_max)."""
    sampler, grid, steps = plan
    return get_sampler(sampler)(denoise, noise.clone(), process, make_grid(process, steps, grid))


class Reflow(RoundLoop):
    """``teacher``: the teacher's denoiser on ``teacher_process``, sampled on its ``teacher_grid``; ``student``: a
    velocity network on the straight ``process`` (``param``: velocity), sampled on ``student_grid`` when it teaches
    the next round; ``x``: the training rows (only their shape and device are used: the pairs are the data).
    ``rounds`` rounds of ``round_steps`` steps, each on ``pairs`` fresh pairs drawn by ``solver`` in ``pair_steps``
    jumps."""

    def __init__(self, teacher: DenoiseFn, teacher_process: Process, student: nn.Module, process: Process,
                 param: Parameterization, x: Tensor, settings: LoopSettings, *, rounds: int = 1, pairs: int = 10_000,
                 solver: str = "heun", pair_steps: int = 32, teacher_grid: str = "karras",
                 student_grid: str = "trailing") -> None:
        super().__init__(student, x, settings)
        if process.path != "straight" or param.name != "velocity":
            raise ConfigError("reflow trains a velocity model on the straight path (--schedule rectified)")
        if rounds < 1 or pairs < 2:
            raise ConfigError(f"reflow needs at least 1 round and 2 pairs, got {rounds} and {pairs}")
        self.rounds, self.n_pairs = rounds, pairs
        self.teacher, self.teacher_process = teacher, teacher_process
        self.process, self.param, self.solver, self.pair_steps = process, param, solver, pair_steps
        self.grids = (teacher_grid, student_grid)
        pair_plan(teacher_process, solver, pair_steps, teacher_grid)  # a bad solver fails before any work
        dim = x.shape[1]
        self.z = torch.empty(0, dim, device=self.device)  # this round's pairs (ε, x_0)
        self.x0 = torch.empty(0, dim, device=self.device)
        probe = torch.Generator(device=self.device).manual_seed(STRAIGHTNESS_SEED)
        self.probe = torch.randn(STRAIGHTNESS_ROWS, dim, generator=probe, device=self.device)
        self.straightness: list[float] = []  # S of the teacher, then of each round's student
        self.pair_errors: list[float] = []  # RMS of x_0 against the same ODE on twice the jumps, per round

    # --- the round's teacher and its pairs ----------------------------------------------------------------------
    def round_teacher(self) -> tuple[DenoiseFn, Process, str]:
        """Round 0: the teacher; round r: round r − 1's student, frozen (k-rectified flow); with its grid."""
        if self.round == 0:
            return self.teacher, self.teacher_process, self.grids[0]
        frozen = copy.deepcopy(self.student).eval().requires_grad_(False)
        return Denoiser(frozen, self.process, self.param.name), self.process, self.grids[1]

    def measure(self, denoise: DenoiseFn, process: Process) -> float:
        return straightness(straight_velocity(denoise, process), self.probe)[0]

    def begin_round(self) -> None:
        denoise, process, grid = self.round_teacher()
        if len(self.straightness) == self.round:  # the S of this round's teacher (round r's: student r − 1)
            self.straightness.append(self.measure(denoise, process))
        plan = pair_plan(process, self.solver, self.pair_steps, grid)
        self.z = self.noise(torch.empty(self.n_pairs, self.x.shape[1], device=self.device))
        self.x0 = ode_pairs(denoise, process, self.z, plan).to(torch.float32)
        if not torch.isfinite(self.x0).all():
            raise ConfigError("reflow: the teacher's ODE gave non-finite samples; try --solver ddim or more "
                              "--teacher-steps")
        finer = (plan[0], plan[1], 2 * plan[2]) if not process.discrete or 2 * plan[2] <= process.T else plan
        check = ode_pairs(denoise, process, self.z[:CHECK_ROWS], finer)
        self.pair_errors.append(float((check - self.x0[:CHECK_ROWS]).pow(2).mean().sqrt()))

    def end(self) -> None:
        """After the last round: the straightness of each round's student (the last one's measured here, the
        others' when the next round began with them as teacher)."""
        if len(self.straightness) < self.rounds + 1:
            n_params = sum(p.numel() for p in self.student.parameters())
            with cpu_threads(default_threads(n_params, STRAIGHTNESS_ROWS) if self.device.type == "cpu" else None):
                self.straightness.append(self.measure(Denoiser(self.student.eval(), self.process, self.param.name),
                                                      self.process))

    # --- one batch ----------------------------------------------------------------------------------------------
    def batch(self) -> Tensor:
        """Indices of this step's pairs (the loss reads the pairs, not the data rows)."""
        return torch.randint(0, self.n_pairs, (self.settings.batch_size,), generator=self.generator,
                             device=self.device)

    def loss(self, idx: Tensor) -> Tensor:
        """The flow-matching loss on the pairs' straight interpolation (the module docstring), as the trainer's
        Objective computes it on independent pairs: the path's x_t, the network's noise code, the velocity target."""
        z, x0 = self.z[idx], self.x0[idx]
        u = torch.rand(len(idx), generator=self.generator, device=self.device, dtype=torch.float64)
        t = self.process.t_min + (1.0 - self.process.t_min) * u
        a, s = self.process.path_coefs(t, x0)  # (1 − t, t) on the rectified schedule
        xt = a * x0 + s * z
        c_in = self.param.input_scale(a, s)
        out = self.student(xt if c_in is None else xt * c_in, self.process.net_time(t).to(torch.float32))
        return (out - self.param.target(x0, z, a, s, None)).pow(2).mean()

    # --- checkpoints --------------------------------------------------------------------------------------------
    def extra_tensors(self) -> dict[str, Tensor]:
        return {"pairs.z": self.z, "pairs.x0": self.x0,
                "straightness": torch.tensor(self.straightness, dtype=torch.float64),
                "pair_errors": torch.tensor(self.pair_errors, dtype=torch.float64)}

    def load_extra(self, tensors: dict[str, Tensor]) -> None:
        self.z, self.x0 = tensors["pairs.z"].to(self.device), tensors["pairs.x0"].to(self.device)
        self.straightness = tensors["straightness"].tolist()
        self.pair_errors = tensors["pair_errors"].tolist()

    def record(self) -> dict[str, object]:
        """What distill.json keeps of the method: S per round and the pairs' sampler and error."""
        sampler, grid, steps = pair_plan(self.teacher_process, self.solver, self.pair_steps, self.grids[0])
        return {"straightness": {"teacher": self.straightness[0] if self.straightness else None,
                                 "rounds": self.straightness[1:]},
                "straightness_estimate": f"Liu et al. 2022's S on {STRAIGHTNESS_ROWS} noise rows, Euler with 100 "
                                         "uniform steps in t on the straight path",
                "pairs": {"n": self.n_pairs, "sampler": sampler, "grid": grid, "steps": steps,
                          "rms_error": self.pair_errors,
                          "error_estimate": f"RMS of x_0 against the same sampler on twice the jumps, {CHECK_ROWS} rows"}}

