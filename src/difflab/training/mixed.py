"""The training loss of a table whose numbers are diffused by the Gaussian process and its categories by a discrete one.

Per row: one step t ~ U{1..T} shared by both processes; the Gaussian features get x_t = α x_0 + σ ε and the
parameterization's simple loss (as :class:`~difflab.training.objective.Objective`), every categorical column
a state x_t ~ q(x_t | x_0) of its discrete process (:mod:`difflab.diffusion.categorical`), and one network
(:class:`~difflab.models.mixed.MixedNet`) predicts both. The loss is the Gaussian simple loss plus, averaged over the
categorical columns, L_t: the ELBO's term of the drawn step in nats, an unbiased estimate of the column's diffusion
ELBO divided by T. TabDDPM (Kotelnikov et al. 2023) sums T · L_t, the ELBO itself; with the table preset's 700
steps that term's variance (T · L_t is up to T times one step's cross-entropy) held the numbers back: on
breast_cancer (30 numbers, masked labels) W1/floor 2.5 against 1.2–1.3 with L_t, at equal label and yes/no-column
fidelity on the Housing table (benchmarks/RESULTS.md, section 12).

The categorical draws take their randomness from the trainer's own noise: the ε drawn for a column's first one-hot
feature (which no Gaussian process uses) becomes the uniform u = Φ(ε) of that cell's inverse-CDF draw, so a run is
reproduced and resumed by the trainer's one generator.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from difflab.config import TrainConfig
from difflab.data.layout import Layout
from difflab.diffusion.categorical import CategoricalProcess
from difflab.diffusion.parameterization import Parameterization
from difflab.diffusion.process import Process
from difflab.training.objective import Objective


class MixedObjective:
    """``draw`` and ``loss`` as :class:`~difflab.training.objective.Objective`'s, for a :class:`MixedNet` on
    scaled feature rows laid out by ``layout``."""

    importance = False

    def __init__(self, process: Process, categorical: CategoricalProcess, layout: Layout, param: Parameterization,
                 cfg: TrainConfig, device: torch.device) -> None:
        self.gaussian = Objective(process, param, cfg, device)
        self.categorical, self.layout, self.param = categorical, layout, param
        self.T = process.T
        self._first = [a for a, _ in layout.groups]
        # columns of equal K are drawn and scored together, as one (B·C_K, K) batch: fewer, larger operations
        self._by_k: dict[int, list[int]] = {}
        for c, k in enumerate(layout.levels):
            self._by_k.setdefault(k, []).append(c)

    def draw(self, B: int, generator: torch.Generator, out: Tensor | None = None) -> Tensor:
        return self.gaussian.draw(B, generator, out=out)

    def noisy(self, x0: Tensor, eps: Tensor, times: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(x_0's Gaussian part, its codes, x_t's Gaussian part, x_t's states, (α, σ)) of scaled rows x0 (B, D)."""
        xg0, codes = self.layout.split(x0)
        a, s, _, _ = self.gaussian.coefficients(times, xg0)
        xgt = a * xg0 + s * eps[:, list(self.layout.gaussian)]
        u = 0.5 * torch.erfc(-eps[:, self._first].to(torch.float64) / math.sqrt(2.0))  # Φ(ε) ~ U(0, 1)
        states = torch.empty_like(codes)
        for k, cols in self._by_k.items():
            t = times.repeat_interleave(len(cols))
            states[:, cols] = self.categorical.q_sample_u(codes[:, cols].reshape(-1), t, u[:, cols].reshape(-1),
                                                          k).reshape(-1, len(cols))
        return xg0, codes, xgt, states, torch.stack([a, s])

    def loss(self, model: nn.Module, x0: Tensor, eps: Tensor, times: Tensor, labels: Tensor | None = None) -> Tensor:
        """Gaussian simple loss + mean over categorical columns of L_t (nats)."""
        xg0, codes, xgt, states, (a, s) = self.noisy(x0, eps, times)
        c_in = self.param.input_scale(a, s)
        onehot = torch.cat([F.one_hot(states[:, c], self.categorical.states(k)).to(x0.dtype)
                            for c, k in enumerate(self.layout.levels)], 1)
        inp = torch.cat([xgt if c_in is None else xgt * c_in, onehot], 1)
        out = model(inp, times) if labels is None else model(inp, times, labels)
        out_g, logits = model.split(out)
        total = out.new_zeros(())
        if xg0.shape[1]:
            post = ((self.gaussian._c0[times].unsqueeze(1), self.gaussian._ct[times].unsqueeze(1))
                    if self.param.needs_posterior else None)
            per_row = (out_g - self.param.target(xg0, eps[:, list(self.layout.gaussian)], a, s, post)).pow(2).mean(1)
            weight = self.param.loss_weight(a, s)
            total = (per_row * weight.squeeze(1) if weight is not None else per_row).mean()
        cat = sum(self.categorical.loss_terms(torch.stack([logits[c] for c in cols], 1).reshape(-1, k),
                                              codes[:, cols].reshape(-1), states[:, cols].reshape(-1),
                                              times.repeat_interleave(len(cols))).sum()
                  for k, cols in self._by_k.items())
        return total + (cat / codes.numel()).to(total.dtype)

    def state_tensors(self) -> dict[str, Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        return None
