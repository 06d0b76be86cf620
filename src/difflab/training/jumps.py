"""What the objectives of one-step models share (MeanFlow, :mod:`difflab.training.meanflow`; shortcut models,
:mod:`difflab.training.shortcut`): a two-time network ū(z, t, h) on the straight path, trained on rows of two kinds.

Each row has a data point x_0, noise ε, the path's z_t = (1 − t) x_0 + t ε and its conditional velocity v = ε − x_0
(Liu et al. 2022; Lipman et al. 2023), and a jump t → r, h = t − r ≥ 0, given to the network as (t, h). A share
``jump_share`` of the rows (placed at random, their number fixed) has a jump r < t whose target the family defines;
the others have r = t, where the average velocity is the instantaneous one and the target is v (flow matching). The
loss is the squared error per row, its mean over the D coordinates e = ‖Δ‖²/D, with the adaptive weight of Geng et al.
2025 (§4.3) w = sg(1/(e + c)^p), c = 10⁻³: p = 0 is the plain squared error, p = 1 MeanFlow's choice.

The times of a batch are one (B, 2) tensor [t, r] per row (:meth:`JumpObjective.draw`), so the trainer handles them as
any other objective's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from difflab.config import TrainConfig
from difflab.diffusion.parameterization import Parameterization
from difflab.diffusion.process import Process
from difflab.errors import ConfigError

ADAPTIVE_C = 1e-3  # Geng et al. 2025, §4.3: c in w = 1/(‖Δ‖² + c)^p


class JumpObjective:
    """``draw(B, generator)`` → (B, 2) times [t, r]; ``loss(model, x0, eps, times, labels)`` → the step's loss.
    Subclasses give :meth:`draw` and :meth:`jump_targets` (the targets of the rows with r < t)."""

    importance = False  # (the trainer asks: no importance-sampled times, whose history has dynamic shapes)
    default_power = 0.0  # the adaptive weight's p when ``loss_power`` is unset

    def __init__(self, process: Process, param: Parameterization, cfg: TrainConfig, device: torch.device, *,
                 learned_variance: bool = False) -> None:
        if process.discrete or process.path != "straight" or param.name != "velocity" or learned_variance:
            raise ConfigError(f"objective '{cfg.objective}' trains an average velocity on the straight path: it needs "
                              "--schedule rectified, --parameterization velocity and fixed variances")
        if cfg.noise_sampling not in ("uniform", "logit-normal"):
            raise ConfigError(f"objective '{cfg.objective}' draws times t in [0, 1]: noise_sampling must be uniform or "
                              f"logit-normal, not {cfg.noise_sampling!r}")
        self.process, self.param, self.cfg, self.device = process, param, cfg, device
        self.power = self.default_power if cfg.loss_power is None else cfg.loss_power

    def jump_rows(self, B: int) -> int:
        """How many of B rows get a jump r < t: the share ``jump_share``, rounded."""
        return int(round(self.cfg.jump_share * B))

    def draw_t(self, n: int, generator: torch.Generator) -> Tensor:
        """n times in (0, 1): uniform, or t = sigmoid(m + s·n), n ~ N(0, 1) (Esser et al. 2024; Geng et al. 2025,
        Table 1d), float32."""
        if self.cfg.noise_sampling == "uniform":
            return torch.rand(n, generator=generator, device=self.device)
        g = torch.randn(n, generator=generator, device=self.device)
        return torch.sigmoid(self.cfg.logit_mean + self.cfg.logit_std * g)

    def draw(self, B: int, generator: torch.Generator, out: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def place_jumps(self, times: Tensor, jumps: Tensor, generator: torch.Generator) -> Tensor:
        """``times`` (B, 2) with the k rows of ``jumps`` (k, 2) put at k rows chosen at random (the rows' data may
        come in a fixed order: the full batch)."""
        k = len(jumps)
        if k:
            rows = torch.randperm(len(times), generator=generator, device=self.device)[:k]
            times[rows] = jumps
        return times

    def jump_targets(self, model: nn.Module, z: Tensor, t: Tensor, h: Tensor, v: Tensor,
                     labels: Tensor | None) -> Tensor:
        """The targets (k, D) of rows with a jump, stop-gradient."""
        raise NotImplementedError

    def loss(self, model: nn.Module, x0: Tensor, eps: Tensor, times: Tensor, labels: Tensor | None = None) -> Tensor:
        """The step's loss; ``labels`` (B,): each row's class code for a conditional network (K: no label)."""
        t, r = times[:, 0].to(x0.dtype), times[:, 1].to(x0.dtype)
        h = t - r
        z = torch.lerp(x0, eps, t.unsqueeze(1))  # (1 − t) x_0 + t ε
        v = eps - x0
        u = model(z, t, h) if labels is None else model(z, t, h, labels)
        target = v
        k = self.jump_rows(len(x0))
        if k:
            rows = torch.topk(h, k).indices  # the rows drawn with r < t (a fixed count: no host sync)
            with torch.no_grad():
                jumped = self.jump_targets(model, z[rows], t[rows], h[rows], v[rows],
                                           None if labels is None else labels[rows])
            target = v.index_copy(0, rows, jumped)
        err = (u - target).pow(2).mean(dim=1)
        if self.power == 0.0:
            return err.mean()
        return (err * (err.detach() + ADAPTIVE_C).pow(-self.power)).mean()

    def state_tensors(self) -> dict[str, Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        return None
