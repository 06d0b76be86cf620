"""A network of two times, for one-step models: the residual MLP of :mod:`difflab.models.mlp` given the time t of
x_t and the length h = t − s of a jump t → s.

It predicts an average velocity over [s, t]: MeanFlow's u(z, r, t) with r = s (Geng et al. 2025) or a shortcut model's
s(z, t, d) with d = h (Frans et al. 2024); h = 0 is the instantaneous velocity of flow matching. Geng et al. 2025
(Table 1c) condition on (t, t − r); here both enter as sinusoidal features (:func:`~difflab.models.mlp.
sinusoidal_embedding`, the times in [0, 1] as they are) concatenated into one time MLP, whose output is added inside
every residual block as in :class:`~difflab.models.mlp.ResMLP`. Built with ``n_classes`` = K > 0 it is conditional
the same way: a learned class embedding (K classes and K for "no label") is added to the time embedding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from difflab.models.mlp import ResidualBlock, ResMLP, sinusoidal_embedding

# The fastest time feature turns MAX_PERIOD radians per unit of t. MeanFlow's target holds ∂u/∂t, which a feature
# cos(1000 t) (the one-time network's default period, made for noise codes and step numbers) makes large and noisy:
# at initialisation d/dt u was ~8 per coordinate against 0.3 with 20, and MeanFlow on moons (3000 steps) scored
# W1/floor 11.7 at 1 call with 1000 against 2.9 with 20 (benchmarks/RESULTS.md, section 16).
MAX_PERIOD = 20


class JumpMLP(nn.Module):
    """Residual MLP of (x (B, D), t (B,), h (B,)) → (B, D), t and h in [0, 1]. ``T`` must be 0 (continuous time);
    ``labels`` (B,) or one int: classes 0..K-1, K (the default) for no label, as :class:`~difflab.models.mlp.ResMLP`."""

    two_time = True  # the denoiser asks it about a jump t → s, not about one time (difflab.assemble.denoiser)

    def __init__(self, dim: int, T: int = 0, width: int = 128, depth: int = 3, emb_dim: int = 32,
                 max_period: int = MAX_PERIOD, out_dim: int | None = None, n_classes: int = 0) -> None:
        super().__init__()
        if T:
            raise ValueError(f"the two-time network takes times in [0, 1] (continuous time), not T={T} steps")
        if max_period < 2:
            raise ValueError(f"max_period must be at least 2, got {max_period}")
        self.dim, self.T, self.emb_dim, self.max_period = dim, 0, emb_dim, max_period
        self.time_mlp = nn.Sequential(nn.Linear(2 * emb_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList([ResidualBlock(width) for _ in range(depth)])
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, out_dim or dim)
        self.act = nn.SiLU()
        self.n_classes = n_classes
        if n_classes:
            self.label_emb = nn.Embedding(n_classes + 1, width)

    def time_embedding(self, t: Tensor, h: Tensor) -> Tensor:
        """e(t, h) (B, width) from the sinusoidal features of t and of h side by side."""
        p = self.max_period
        feats = torch.cat([sinusoidal_embedding(t, self.emb_dim, p), sinusoidal_embedding(h, self.emb_dim, p)], dim=1)
        return self.time_mlp(feats)

    # the class embedding as the one-time network reads it (same n_classes and label_emb attributes)
    label_embedding = ResMLP.label_embedding

    def _trunk(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(self.act(self.out_norm(h)))

    def forward(self, x: Tensor, t: Tensor, h: Tensor, labels: Tensor | int | None = None) -> Tensor:
        emb = self.time_embedding(t, h)
        label = self.label_embedding(labels, x.device)
        return self._trunk(x, (emb if label is None else emb + label).to(x.dtype))

    def forward_jvp(self, x: Tensor, t: Tensor, h: Tensor, dx: Tensor, dt: Tensor, dh: Tensor,
                    labels: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """(forward(x, t, h), its directional derivative along (dx, dt, dh)): ``torch.func.jvp`` of
        :meth:`forward`, written out layer by layer (a fifth of its time on this small network, where torch's
        forward-mode dispatch costs more than the arithmetic; MeanFlow's target asks for it every step)."""
        feats, dfeats = [], []
        for u, du in ((t, dt), (h, dh)):
            f, df = _sinusoidal_jvp(u, du, self.emb_dim, self.max_period)
            feats.append(f)
            dfeats.append(df)
        lin1, _, lin2 = self.time_mlp
        a, da = _linear_jvp(lin1, torch.cat(feats, dim=1), torch.cat(dfeats, dim=1))
        a, da = _silu_jvp(a, da)
        emb, demb = _linear_jvp(lin2, a, da)
        label = self.label_embedding(labels, x.device)
        emb = emb if label is None else emb + label  # a label has no tangent
        y, dy = _linear_jvp(self.inp, x, dx)
        for block in self.blocks:
            n, dn = _layer_norm_jvp(block.norm, y, dy)
            a, da = _linear_jvp(block.fc1, n, dn)
            a, da = _silu_jvp(a + emb, da + demb)
            o, do = _linear_jvp(block.fc2, a, da)
            y, dy = y + o, dy + do
        n, dn = _silu_jvp(*_layer_norm_jvp(self.out_norm, y, dy))
        return _linear_jvp(self.out, n, dn)

    @torch.no_grad()
    def at_step(self, t: float, h: float, label: int | None = None) -> Callable[[Tensor], Tensor]:
        """``forward(·, t, h, label)`` for one jump shared by all rows: the embeddings are computed once."""
        dev = self.inp.weight.device
        emb = self.time_embedding(torch.tensor([t], device=dev), torch.tensor([h], device=dev))
        code = self.label_embedding(label, dev)
        emb = emb if code is None else emb + code
        return lambda x: self._trunk(x, emb.to(x.dtype))


# --- forward-mode derivatives of the layers (each returns the value and its tangent) ---------------------------------
def _sinusoidal_jvp(u: Tensor, du: Tensor, dim: int, max_period: float) -> tuple[Tensor, Tensor]:
    """:func:`~difflab.models.mlp.sinusoidal_embedding` and its tangent: d[cos a, sin a] = [−sin a, cos a] da."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=u.device, dtype=torch.float32) / half)
    args = (u.float() * max_period)[:, None] * freqs[None, :]  # rounded as sinusoidal_embedding rounds them
    dargs = (du.float() * max_period)[:, None] * freqs[None, :]
    cos, sin = torch.cos(args), torch.sin(args)
    return torch.cat([cos, sin], dim=1), torch.cat([-sin * dargs, cos * dargs], dim=1)


def _linear_jvp(layer: nn.Linear, x: Tensor, dx: Tensor) -> tuple[Tensor, Tensor]:
    return layer(x), dx @ layer.weight.T


def _silu_jvp(a: Tensor, da: Tensor) -> tuple[Tensor, Tensor]:
    """SiLU(a) = a σ(a), SiLU'(a) = σ(a) (1 + a (1 − σ(a)))."""
    sig = torch.sigmoid(a)
    return a * sig, da * sig * (1.0 + a * (1.0 - sig))


def _layer_norm_jvp(norm: nn.LayerNorm, x: Tensor, dx: Tensor) -> tuple[Tensor, Tensor]:
    """LN(x) = γ x̂ + β, x̂ = (x − mean x)/√(var x + eps); dx̂ = (dx − mean dx − x̂ mean(x̂ dx))/√(var x + eps)."""
    mu = x.mean(dim=-1, keepdim=True)
    inv = torch.rsqrt(x.var(dim=-1, unbiased=False, keepdim=True) + norm.eps)
    xhat = (x - mu) * inv
    dxhat = (dx - dx.mean(dim=-1, keepdim=True) - xhat * (xhat * dx).mean(dim=-1, keepdim=True)) * inv
    return xhat * norm.weight + norm.bias, dxhat * norm.weight
