"""Test helpers: closed-form Gaussian denoisers and small diffusions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from difflab.diffusion import ContinuousDiffusion, GaussianDiffusion, Prediction, Process, make_schedule


class GaussianOracle:
    """The exact denoiser of data x_0 ~ N(mu, diag(s²)): E[x_0 | x_t] by Gaussian conditioning (closed form)."""

    def __init__(self, diffusion: Process, mu: torch.Tensor, s: torch.Tensor) -> None:
        self.d, self.mu, self.s2 = diffusion, mu.double(), s.double() ** 2

    def __call__(self, xt: torch.Tensor, t: float) -> Prediction:
        ab = self.d.alpha_bar(t)
        x = xt.double()
        x0 = self.mu + ab**0.5 * self.s2 / (ab * self.s2 + 1 - ab) * (x - ab**0.5 * self.mu)
        eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        return Prediction(eps=eps.to(xt.dtype), x0=x0.to(xt.dtype))


def diffusion(name: str = "linear", T: int = 1000) -> GaussianDiffusion:
    return GaussianDiffusion(make_schedule(name, T))


def continuous(name: str = "linear", T: int = 100, **kw: float) -> ContinuousDiffusion:
    return ContinuousDiffusion(name, T, **kw)


class GaussianAverageVelocity(torch.nn.Module):
    """The exact two-time network of data x_0 ~ N(mu, diag(s²)) on the straight path z_t = (1 − t) x_0 + t ε, from
    its ODE written out here: z_t ~ N(m_t, σ_t²) with m_t = (1 − t) μ, σ_t² = (1 − t)² s² + t², the velocity
    E[ε − x_0 | z_t] is linear, v(z, t) = −μ + (t − (1 − t) s²)/σ_t² (z − m_t) = m_t' + (σ_t'/σ_t)(z − m_t), so the
    flow keeps (z − m_t)/σ_t fixed: Φ_{t→r}(z) = m_r + σ_r/σ_t (z − m_t). Its average velocity over [r, t] is
    u = (z − Φ_{t→r}(z))/(t − r), and v itself at h = t − r = 0. Float64 inside; ``forward(z, t, h)`` as
    :class:`~difflab.models.jump_mlp.JumpMLP`."""

    two_time = True

    def __init__(self, mu: torch.Tensor, s: torch.Tensor) -> None:
        super().__init__()
        self.mu, self.s2 = mu.double(), s.double() ** 2

    def moments(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = t.double()[:, None]
        return (1 - t) * self.mu, torch.sqrt((1 - t) ** 2 * self.s2 + t**2)

    def velocity(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m, sd = self.moments(t)
        tt = t.double()[:, None]
        return -self.mu + (tt - (1 - tt) * self.s2) / sd**2 * (z.double() - m)

    def flow(self, z: torch.Tensor, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        (m_t, s_t), (m_r, s_r) = self.moments(t), self.moments(r)
        return m_r + s_r / s_t * (z.double() - m_t)

    def forward(self, z: torch.Tensor, t: torch.Tensor, h: torch.Tensor, labels: object = None) -> torch.Tensor:
        h64 = h.double()
        safe = torch.where(h64 > 0, h64, torch.ones_like(h64))
        u = (z.double() - self.flow(z, t, t.double() - safe)) / safe[:, None]
        return torch.where((h64 > 0)[:, None], u, self.velocity(z, t)).to(z.dtype)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` (hidden too) with size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def people_table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """A small mixed table: float32 and whole numbers, a boolean, a categorical and a two-valued float column."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "height": rng.normal(170.0, 10.0, n).astype(np.float32),
        "age": rng.integers(18, 90, n),
        "smoker": rng.random(n) < 0.3,
        "city": pd.Series(rng.choice(["Bern", "Oslo", "Pisa"], n), dtype="category"),
        "code": rng.choice([1.0, 2.0], n),
    })
