"""Shortcut models (Frans et al. 2024): one network s(z, t, d) of the time and the step size, trained to flow matching
at the finest step and to self-consistency above it, so that one call can take a step of any size up to the whole
path.

Self-consistency: two steps of d make one step of 2d (Frans et al. 2024, eq. 5). On difflab's straight path t = 1 is
noise and a step goes down in time, z_{t−d} = z_t − d s(z_t, t, d), so the target of a step of 2d is

    s_tgt(z_t, t, 2d) = ½ s(z_t, t, d) + ½ s(z', t − d, d),    z' = z_t − d s(z_t, t, d),

both evaluations stop-gradient (with the current weights; Frans et al. take them from the EMA weights). The step
sizes are the powers of two 2d = 1, ½, …, 2/M (``shortcut_steps`` = M, 128 in the paper), drawn uniformly among those
log₂ M levels, with t on the grid of the step's multiples in [2d, 1] (so that the two steps stay in [0, 1]); a half
step d below 2/M is the finest level, the instantaneous velocity (d = 0, the flow-matching rows), where the paper
encodes it as d = 1/M. Over [t − d, t] s is MeanFlow's average velocity u(z_t, t − d, t) (Geng et al. 2025), so the
network (:class:`~difflab.models.jump_mlp.JumpMLP`, given h = 2d) and the sampler (``jumps``) are the same.

The share of rows with a step (``jump_share``) is 1/4 here by default, 1/8 in the authors' code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from difflab.config import TrainConfig
from difflab.diffusion.parameterization import Parameterization
from difflab.diffusion.process import Process
from difflab.errors import ConfigError
from difflab.training.jumps import JumpObjective


class Shortcut(JumpObjective):
    """The shortcut objective (Frans et al. 2024, Alg. 1) for a two-time network s(z, t, h), h the step."""

    def __init__(self, process: Process, param: Parameterization, cfg: TrainConfig, device: torch.device, *,
                 learned_variance: bool = False) -> None:
        super().__init__(process, param, cfg, device, learned_variance=learned_variance)
        m = cfg.shortcut_steps
        if m < 2 or m & (m - 1):
            raise ConfigError(f"shortcut_steps must be a power of two ≥ 2 (the finest step 1/M), got {m}")
        self.levels = int(math.log2(m))  # steps 1, 1/2, ..., 2/M

    def draw(self, B: int, generator: torch.Generator, out: Tensor | None = None) -> Tensor:
        """[t, r] per row: r = t (flow matching) on all but the ``jump_share`` of rows, which get a step h = 2^−j,
        j uniform in 0..log₂M − 1, and t = h · n, n uniform in 1..1/h."""
        t = self.draw_t(B, generator)
        k = self.jump_rows(B)
        h = torch.pow(2.0, -torch.randint(0, self.levels, (k,), generator=generator, device=self.device).float())
        n = torch.floor(torch.rand(k, generator=generator, device=self.device) / h) + 1.0  # 1..1/h
        tj = (h * n).clamp(max=1.0)
        jumps = torch.stack([tj, tj - h], dim=1)
        return self.place_jumps(torch.stack([t, t], dim=1), jumps, generator)

    def jump_targets(self, model: nn.Module, z: Tensor, t: Tensor, h: Tensor, v: Tensor,
                     labels: Tensor | None) -> Tensor:
        """½ s(z, t, d) + ½ s(z − d s(z, t, d), t − d, d), d = h/2, a d below the finest step taken as 0."""
        extra = () if labels is None else (labels,)
        d = h / 2
        d_net = torch.where(d < 2.0 / self.cfg.shortcut_steps, torch.zeros_like(d), d)
        s1 = model(z, t, d_net, *extra)
        s2 = model(z - d.unsqueeze(1) * s1, t - d, d_net, *extra)
        return 0.5 * (s1 + s2)
