"""Consistency distillation (Song et al. 2023, Alg. 2): a network f(x_t, t) that maps every point of one
probability-flow ODE trajectory to the trajectory's start x_0, so that one call from pure noise is a sample.

The consistency function is f(x_t, t) = c_skip(t) x̄_t + c_out(t) F_θ(c_in x̄_t, t) in the variance-exploding
variables x̄ = x/α, σ̄ = σ/α, with c_skip = σ_d²/(σ̄² + σ_d²) and c_out = σ̄ σ_d/√(σ̄² + σ_d²): the paper's §3 form with
the boundary at σ̄ = 0, where c_skip = 1 and c_out = 0, so f(x, 0) = x holds by construction. That is exactly the
x̂_0 of difflab's ``edm`` parameterization (Karras et al. 2022, Table 1), so the student is an ordinary EDM-
preconditioned network of the teacher's architecture, initialised from the teacher's weights, and its run directory
needs nothing new to be loaded.

Training pairs: intervals (t_{n+1}, t_n) of N jumps spaced as Karras et al.'s ρ = 7 ramp in σ̄ from σ̄(t_max) down
past σ̄(t_min) to 0 (Song et al.'s discretisation), each placed anywhere along the ramp (:func:`karras_pairs`); per
row x_0 from the training rows, an interval, x_{t_{n+1}} = α x_0 + σ ε, one step of the teacher's ODE solver (Heun,
as in the paper, or DDIM) to x̂_{t_n}, and the loss ‖f_θ(x_{t_{n+1}}, t_{n+1}) − f_θ⁻(x̂_{t_n}, t_n)‖² (squared L2,
λ = 1), where θ⁻ ← μ θ⁻ + (1 − μ) θ is the EMA target network. On intervals that end at 0 the target is the
teacher's own x̂_0 (f(·, 0) is the identity). The target network θ⁻ is the model saved.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor, nn

from difflab.diffusion import Parameterization, Process
from difflab.distill.loop import LoopSettings, RoundLoop
from difflab.distill.rows import SOLVERS, RowFn, network_rows
from difflab.errors import ConfigError
from difflab.sampling.grids import KARRAS_RHO, lam_range
from difflab.training.checkpoint import model_tensors, strip

TABLE = 1024  # positions u of the interval's upper end along the Karras ramp, drawn uniformly


def karras_pairs(process: Process, intervals: int) -> tuple[Tensor, Tensor]:
    """(t_hi, t_lo), each (TABLE,): intervals of Song et al.'s discretisation, N = ``intervals`` jumps
    spaced as Karras et al. 2022, eq. 5 (ρ = 7), σ̄(u) = (σ̄_max^{1/ρ} + u (σ̄_min^{1/ρ} − σ̄_max^{1/ρ}))^ρ for u ∈
    [0, 1], with t_hi at u and t_lo at u + 1/N (0, the boundary, past σ̄_min). The ramp is sampled at TABLE points
    instead of N, so that the consistency condition is trained at every time a sampler may ask, not only at N
    fixed ones (a model trained on 18 times and asked between them drifted: W1 twice as large there). A discrete
    process gets whole steps (its network was trained on those only; integers), t_lo at least one step below t_hi;
    a continuous one float64 times."""
    if intervals < 2:
        raise ConfigError(f"consistency distillation needs at least 2 intervals, got {intervals}")
    lo, hi = lam_range(process)
    r_max, r_min = math.exp(-lo / 2) ** (1 / KARRAS_RHO), math.exp(-hi / 2) ** (1 / KARRAS_RHO)  # σ̄ = e^{−λ/2}

    def times(u: np.ndarray) -> np.ndarray:
        sig = (r_max + np.clip(u, 0.0, 1.0) * (r_min - r_max)) ** KARRAS_RHO
        t = np.array([process.t_of_log_snr(-2.0 * math.log(v)) for v in sig])
        t[u <= 0.0] = process.t_max
        t[u >= 1.0] = process.t_min
        return np.round(t) if process.discrete else t

    u = np.arange(TABLE) / (TABLE - 1)
    t_hi, t_lo = times(u), times(u + 1.0 / intervals)
    t_lo[u + 1.0 / intervals > 1.0] = 0.0
    if process.discrete:  # whole steps as integers: the process's tables, as the samplers read them
        t_lo = np.minimum(t_lo, t_hi - 1.0)
        return torch.as_tensor(t_hi, dtype=torch.long), torch.as_tensor(t_lo, dtype=torch.long)
    return torch.as_tensor(t_hi, dtype=torch.float64), torch.as_tensor(t_lo, dtype=torch.float64)


class Consistency(RoundLoop):
    """``teacher``: the teacher's denoiser per row; ``student``: an ``edm``-preconditioned network (``param``),
    initialised from the teacher's weights; ``x``: the training rows, scaled. One round of ``round_steps``."""

    rounds = 1

    def __init__(self, teacher: RowFn, student: nn.Module, process: Process, param: Parameterization, x: Tensor,
                 settings: LoopSettings, *, intervals: int = 18, solver: str = "heun", ema: float = 0.95) -> None:
        super().__init__(student, x, settings)
        if solver not in SOLVERS:
            raise ConfigError(f"unknown ODE solver '{solver}'; choose one of: {', '.join(SOLVERS)}")
        if not 0.0 <= ema < 1.0:
            raise ConfigError(f"the target network's EMA decay must be in [0, 1), got {ema}")
        self.process, self.teacher, self.solver, self.mu = process, teacher, SOLVERS[solver], ema
        self.t_hi, self.t_lo = (t.to(self.device) for t in karras_pairs(process, intervals))
        self.target = copy.deepcopy(student).eval().requires_grad_(False)
        self.student_fn = network_rows(self.network, process, param)
        self.target_fn = network_rows(self.fused(self.target), process, param)

    def loss(self, x0: Tensor) -> Tensor:
        d = self.process
        k = self.uniform_index(TABLE)
        t_hi, t_lo = self.t_hi[k], self.t_lo[k]
        eps = self.noise(x0)
        a, s = d.alpha_sigma(t_hi, x0)
        z = a * x0 + s * eps
        with torch.no_grad():
            z_lo = self.solver(self.teacher, d, z, t_hi, t_lo)
            target = z_lo.clone()  # f(x, 0) = x: the teacher's x̂_0 is the target on the last interval
            inner = t_lo > 0
            if bool(inner.any()):
                target[inner] = self.target_fn(z_lo[inner], t_lo[inner]).x0
        return (self.student_fn(z, t_hi).x0 - target).pow(2).mean()

    @torch.no_grad()
    def after_update(self) -> None:
        # θ⁻ ← μ θ⁻ + (1 − μ) θ (Song et al. 2023, Alg. 2)
        torch._foreach_lerp_(list(self.target.parameters()), list(self.student.parameters()), 1.0 - self.mu)

    def extra_tensors(self) -> dict[str, Tensor]:
        return model_tensors(self.target, "target.")

    def load_extra(self, tensors: dict[str, Tensor]) -> None:
        self.target.load_state_dict(strip(tensors, "target."))
