"""difflab's default network: a residual MLP with a sinusoidal time embedding.

The step t enters as t/T through sinusoidal features (Vaswani et al. 2017; Ho et al. 2020 §4) and an MLP, and is
added to every residual block, so the network is smooth in t (fractional steps work) and independent of T's size.
Built with T = 0 it is a continuous-time network: its time input is a real noise code, used as it is (difflab gives
c_noise = ¼ ln σ, Karras et al. 2022).

Built with ``n_classes`` = K > 0 it is a conditional network: a learned class embedding (K classes and one more entry,
K, for "no label") is added to the time embedding (Ho & Salimans 2022, classifier-free guidance), initialised N(0, 1)
as guided-diffusion's ``label_emb`` is (a zero start learned the classes more slowly in 400-step runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn


def sinusoidal_embedding(u: Tensor, dim: int, max_period: float = 1000.0) -> Tensor:
    """Features [cos(u·f_k), sin(u·f_k)] of u ∈ [0, 1] scaled by ``max_period``, f_k geometric in k (dim even)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=u.device, dtype=torch.float32) / half)
    args = (u.float() * max_period)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResidualBlock(nn.Module):
    """x + W₂ SiLU(W₁ LN(x) + e(t)) — pre-norm residual block with the time embedding added inside."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.SiLU()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return h + self.fc2(self.act(self.fc1(self.norm(h)) + emb))


class ResMLP(nn.Module):
    """Residual MLP denoiser for (B, D) data. ``t`` (B,): steps in 1..T (long, or float for fractional steps), or
    with T = 0 real noise codes. ``out_dim`` (default D): 2D for a network with learned variances. ``n_classes``:
    K > 0 for a conditional network, whose ``labels`` (B,) or one int for all rows take 0..K-1, or K (the default)
    for no label."""

    def __init__(self, dim: int, T: int, width: int = 128, depth: int = 3, emb_dim: int = 32,
                 out_dim: int | None = None, n_classes: int = 0) -> None:
        super().__init__()
        self.dim, self.T, self.emb_dim = dim, T, emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList([ResidualBlock(width) for _ in range(depth)])
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, out_dim or dim)
        self.act = nn.SiLU()
        self.n_classes = n_classes
        if n_classes:  # built last: the layers above draw the same initial weights as an unconditional network's
            self.label_emb = nn.Embedding(n_classes + 1, width)

    def label_embedding(self, labels: Tensor | int | None, device: torch.device) -> Tensor | None:
        """The class embedding of ``labels`` (B,) → (B, width), or of one label (an int; None: no label) → (1,
        width); None for an unconditional network, which refuses labels."""
        if not self.n_classes:
            if labels is not None:
                raise ValueError("this network was built without classes (n_classes = 0); it takes no labels")
            return None
        if labels is None or isinstance(labels, int):
            code = self.n_classes if labels is None else labels
            if not 0 <= code <= self.n_classes:
                raise ValueError(f"label {code} is outside 0..{self.n_classes} (K classes and K for no label)")
            return self.label_emb.weight[code : code + 1]
        return self.label_emb(labels.to(device))

    def _u(self, t: Tensor) -> Tensor:
        return t.to(torch.float32) / self.T if self.T else t.to(torch.float32)

    def time_embedding(self, t: Tensor) -> Tensor:
        """e(t) for each row. With fewer steps T than rows, embed every step 1..T once and gather the rows: the
        same values for less work (training batches hold each t many times)."""
        if 0 < self.T < t.shape[0] and not t.is_floating_point():
            steps = torch.arange(1, self.T + 1, device=t.device, dtype=torch.float32)
            table = self.time_mlp(sinusoidal_embedding(steps / self.T, self.emb_dim))
            return table[t - 1]
        return self.time_mlp(sinusoidal_embedding(self._u(t), self.emb_dim))

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | int | None = None) -> Tensor:
        emb = self.time_embedding(t)
        label = self.label_embedding(labels, x.device)
        emb = (emb if label is None else emb + label).to(x.dtype)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(self.act(self.out_norm(h)))

    @torch.no_grad()
    def at_step(self, t: float, label: int | None = None) -> Callable[[Tensor], Tensor]:
        """``forward(·, t, label)`` for one time t (and class ``label``) shared by all rows: the time and class
        embeddings are computed once, not per row."""
        if self.T and not 1 <= t <= self.T:
            raise ValueError(f"step t={t} is outside 1..{self.T}")
        u = self._u(torch.tensor([t], dtype=torch.float32, device=self.inp.weight.device))  # as forward does
        emb = self.time_mlp(sinusoidal_embedding(u, self.emb_dim))  # (1, width), broadcast over rows
        code = self.label_embedding(label, emb.device)
        emb = emb if code is None else emb + code

        def run(x: Tensor) -> Tensor:
            h = self.inp(x)
            for block in self.blocks:
                h = block(h, emb.to(x.dtype))
            return self.out(self.act(self.out_norm(h)))

        return run
