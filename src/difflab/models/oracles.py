"""Exact denoisers ("oracles"): E[ε | x_t] and E[x_0 | x_t] under a known data distribution, no training.

Under q(x_t | x_0) = N(√ᾱ x_0, (1 − ᾱ) I) the best possible ε-predictor (in mean squared error) is E[ε | x_t], and
x̂_0 = E[x_0 | x_t]. Two distributions have it in closed form:

- a Gaussian mixture Σ_k w_k N(μ_k, Σ_k): given component k, x_t ~ N(√ᾱ μ_k, C_k) with C_k = ᾱ Σ_k + (1 − ᾱ) I,
  and (x_0, ε, x_t) are jointly Gaussian, so E[ε | x_t, k] = √(1 − ᾱ) C_k⁻¹ (x_t − √ᾱ μ_k) and
  E[x_0 | x_t, k] = μ_k + √ᾱ Σ_k C_k⁻¹ (x_t − √ᾱ μ_k); these are averaged with the posterior weights
  p(k | x_t) ∝ w_k N(x_t; √ᾱ μ_k, C_k).
- the empirical distribution of N training points: p(i | x_t) ∝ exp(−‖x_t − √ᾱ x_i‖² / (2 (1 − ᾱ))), a softmax, and
  x̂_0 = Σ_i p(i | x_t) x_i. Sampling with it reproduces training points: this is the model a network would be if it
  minimised the training loss exactly (it memorises).

Both are ``nn.Module``s whose buffers (mixture or points, and the schedule's ᾱ table) save to safetensors like any
network; ``forward(x_t, t) -> ε̂`` plugs into :class:`difflab.diffusion.Denoiser` with the "eps" parameterization.
They compute in float64 and return ε̂ in the input's dtype. Registered as models ``oracle`` and
``oracle-empirical``: ``difflab train --model oracle`` builds one from the data (:meth:`Oracle.from_data`) instead of
training it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from difflab.data import DATASETS
from difflab.data.prepare import PreparedData
from difflab.diffusion.parameterization import Prediction
from difflab.diffusion.process import GaussianDiffusion
from difflab.errors import ConfigError

# Elements of the (rows, components·D) or (rows, points) work arrays computed at once: 2²² float64 = 32 MiB, so
# 10⁴ training points against 10⁵ queries run in chunks of ~400 queries.
CHUNK_ELEMENTS = 2**22
# Rows of training data (with fresh t and ε) used to measure an oracle's denoising loss.
LOSS_ROWS = 4096


class Oracle(nn.Module):
    """Base class: subclasses implement :meth:`posterior` on float64 rows with per-row ᾱ (shape (B, 1))."""

    def __init__(self, dim: int, T: int) -> None:
        super().__init__()
        self.dim, self.T = dim, T
        self.register_buffer("alpha_bars", torch.ones(T + 1, dtype=torch.float64))

    # --- to implement ---------------------------------------------------------------------------------------
    def posterior(self, x: Tensor, ab: Tensor) -> tuple[Tensor, Tensor]:
        """(E[ε | x_t], E[x_0 | x_t]) for float64 rows ``x`` (B, D) with ᾱ per row ``ab`` (B, 1)."""
        raise NotImplementedError

    @property
    def options(self) -> dict[str, int]:
        """Builder options that fix the buffers' shapes, saved with the run so ``build_model`` can rebuild it."""
        raise NotImplementedError

    @classmethod
    def from_data(cls, data: PreparedData, diffusion: GaussianDiffusion) -> Oracle:
        """The oracle of a run's prepared data, in its scaled space, for ``diffusion``'s schedule."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------------------------
    def _alpha_bar(self, t: Tensor | int, rows: int) -> Tensor:
        if isinstance(t, int):
            return self.alpha_bars[t].expand(rows).reshape(rows, 1)
        return self.alpha_bars[t.to(self.alpha_bars.device).long()].reshape(rows, 1)

    def forward(self, x: Tensor, t: Tensor | int) -> Tensor:
        """ε̂(x_t, t) for steps t in 1..T (an int or one per row), in x's dtype."""
        eps, _ = self.posterior(x.to(torch.float64), self._alpha_bar(t, x.shape[0]))
        return eps.to(x.dtype)

    @torch.no_grad()
    def predict(self, x: Tensor, t: Tensor | int) -> Prediction:
        """Both E[ε | x_t] and E[x_0 | x_t] in float64, computed directly (no conversion through ε)."""
        eps, x0 = self.posterior(x.to(torch.float64), self._alpha_bar(t, x.shape[0]))
        return Prediction(eps=eps, x0=x0)

    def _set_schedule(self, diffusion: GaussianDiffusion) -> None:
        if diffusion.T != self.T:
            raise ValueError(f"oracle built for T={self.T}, schedule has T={diffusion.T}")
        self.alpha_bars.copy_(diffusion.alpha_bars.to(torch.float64))

    @torch.no_grad()
    def denoising_loss(self, x0: Tensor, *, seed: int = 0) -> float:
        """The simple loss E‖ε − ε̂(x_t, t)‖² / D with t ~ U{1..T}, as the trainer measures it, on up to
        ``LOSS_ROWS`` rows of ``x0`` (the lowest loss any network can reach on that distribution)."""
        g = torch.Generator().manual_seed(seed)
        x0 = x0.to(torch.float64)
        if len(x0) > LOSS_ROWS:
            x0 = x0[torch.randperm(len(x0), generator=g)[:LOSS_ROWS]]
        t = torch.randint(1, self.T + 1, (len(x0),), generator=g)
        eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        ab = self._alpha_bar(t, len(x0))
        xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps
        return float((self(xt, t) - eps).pow(2).mean())


def _chunks(rows: int, per_row: int) -> list[slice]:
    step = max(1, CHUNK_ELEMENTS // max(per_row, 1))
    return [slice(lo, lo + step) for lo in range(0, rows, step)]


def _affine(data: PreparedData) -> tuple[np.ndarray, np.ndarray]:
    """Per-column slope a and offset b of the (affine) scaler s(x) = a ⊙ x + b, read off s(0) and s(1)."""
    d = len(data.columns)
    b = data.scaler.transform(np.zeros((1, d)))[0]
    a = data.scaler.transform(np.ones((1, d)))[0] - b
    return a, b


class MixtureOracle(Oracle):
    """Exact denoiser of a Gaussian mixture (weights (K,), means (K, D), covs (K, D, D) as float64 buffers)."""

    def __init__(self, dim: int, T: int, n_components: int = 1) -> None:
        super().__init__(dim, T)
        if n_components < 1:
            raise ConfigError(f"oracle: n_components must be at least 1, got {n_components}")
        k = n_components
        self.register_buffer("weights", torch.full((k,), 1.0 / k, dtype=torch.float64))
        self.register_buffer("means", torch.zeros(k, dim, dtype=torch.float64))
        self.register_buffer("covs", torch.eye(dim, dtype=torch.float64).repeat(k, 1, 1))

    @property
    def options(self) -> dict[str, int]:
        return {"n_components": int(self.weights.shape[0])}

    @classmethod
    def of(cls, weights: Any, means: Any, covs: Any, diffusion: GaussianDiffusion) -> MixtureOracle:
        """The oracle of the mixture (weights (K,), means (K, D), covs (K, D, D)) for ``diffusion``."""
        w, mu, cov = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (weights, means, covs))
        oracle = cls(mu.shape[1], diffusion.T, n_components=mu.shape[0])
        oracle.weights.copy_(w)
        oracle.means.copy_(mu)
        oracle.covs.copy_(cov)
        oracle._set_schedule(diffusion)
        return oracle

    @classmethod
    def from_data(cls, data: PreparedData, diffusion: GaussianDiffusion) -> MixtureOracle:
        """The toy's mixture moved into the scaled space: μ → a ⊙ μ + b, Σ → diag(a) Σ diag(a)."""
        mixture = data.toy.mixture if data.toy is not None else None
        if mixture is None:
            known = ", ".join(name for name, toy in DATASETS.items() if toy.mixture is not None)
            what = f"dataset {data.toy.name!r}" if data.toy is not None else "data from a file"
            raise ConfigError(f"model 'oracle' needs a Gaussian-mixture toy ({known}); {what} has no known "
                              "mixture — use --model oracle-empirical for the training set's exact denoiser")
        a, b = _affine(data)
        covs = a[None, :, None] * mixture.covs * a[None, None, :]
        return cls.of(mixture.weights, a * mixture.means + b, covs, diffusion)

    def posterior(self, x: Tensor, ab: Tensor) -> tuple[Tensor, Tensor]:
        # In each Σ_k's eigenbasis (Σ_k = U Λ Uᵀ) C_k = U (ᾱ Λ + (1 − ᾱ)) Uᵀ is diagonal for every ᾱ, so rows with
        # different t cost no extra factorisation.
        lam, U = torch.linalg.eigh(self.covs)  # (K, D), (K, D, D)
        lam = lam.clamp(min=0.0)
        log_w = self.weights.log()
        eps_out, x0_out = torch.empty_like(x), torch.empty_like(x)
        for sl in _chunks(x.shape[0], self.means.numel()):
            xs, a = x[sl], ab[sl]
            sa, s1a = a.sqrt().unsqueeze(2), (1.0 - a).sqrt().unsqueeze(2)  # (B, 1, 1)
            diff = xs[:, None, :] - sa * self.means[None]  # (B, K, D)
            z = torch.einsum("kde,bkd->bke", U, diff)  # Uᵀ (x_t − √ᾱ μ_k)
            c = a.unsqueeze(2) * lam[None] + (1.0 - a).unsqueeze(2)  # eigenvalues of C_k, (B, K, D)
            w = z / c
            log_r = log_w[None] - 0.5 * (z * w).sum(2) - 0.5 * c.log().sum(2)  # log w_k N(x_t; ·, C_k) + const
            r = torch.softmax(log_r, dim=1).unsqueeze(2)  # p(k | x_t), (B, K, 1)
            eps_k = s1a * torch.einsum("kde,bke->bkd", U, w)
            x0_k = self.means[None] + sa * torch.einsum("kde,bke->bkd", U, lam[None] * w)
            eps_out[sl] = (r * eps_k).sum(1)
            x0_out[sl] = (r * x0_k).sum(1)
        return eps_out, x0_out


class EmpiricalOracle(Oracle):
    """Exact denoiser of the empirical distribution of ``points`` (N, D), a float64 buffer."""

    def __init__(self, dim: int, T: int, n_points: int = 1) -> None:
        super().__init__(dim, T)
        if n_points < 1:
            raise ConfigError(f"oracle-empirical: n_points must be at least 1, got {n_points}")
        self.register_buffer("points", torch.zeros(n_points, dim, dtype=torch.float64))

    @property
    def options(self) -> dict[str, int]:
        return {"n_points": int(self.points.shape[0])}

    @classmethod
    def of(cls, points: Any, diffusion: GaussianDiffusion) -> EmpiricalOracle:
        """The oracle of the training points (N, D) for ``diffusion``."""
        p = torch.as_tensor(np.asarray(points, dtype=np.float64))
        oracle = cls(p.shape[1], diffusion.T, n_points=p.shape[0])
        oracle.points.copy_(p)
        oracle._set_schedule(diffusion)
        return oracle

    @classmethod
    def from_data(cls, data: PreparedData, diffusion: GaussianDiffusion) -> EmpiricalOracle:
        return cls.of(data.scaler.transform(data.train), diffusion)

    def posterior(self, x: Tensor, ab: Tensor) -> tuple[Tensor, Tensor]:
        # −‖x_t − √ᾱ x_i‖² / (2(1 − ᾱ)) up to a per-row constant (‖x_t‖², which the softmax ignores); leaving it out
        # avoids the cancellation of two large nearly equal terms when 1 − ᾱ is small.
        # Written as one product [x_t √ᾱ/(1 − ᾱ), −ᾱ/(2(1 − ᾱ))] · [x_i, ‖x_i‖²]ᵀ so the (rows, N) logits take a
        # single pass over memory.
        p = self.points
        p_aug = torch.cat([p, p.pow(2).sum(1, keepdim=True)], dim=1).T  # (D + 1, N)
        x0_out = torch.empty_like(x)
        for sl in _chunks(x.shape[0], p.shape[0]):
            a = ab[sl]
            x_aug = torch.cat([x[sl] * (a.sqrt() / (1.0 - a)), -a / (2.0 * (1.0 - a))], dim=1)
            x0_out[sl] = torch.softmax(x_aug @ p_aug, dim=1) @ p
        eps = (x - ab.sqrt() * x0_out) / (1.0 - ab).sqrt()
        return eps, x0_out


ORACLES: dict[str, type[Oracle]] = {"oracle": MixtureOracle, "oracle-empirical": EmpiricalOracle}
DESCRIPTIONS = {
    "oracle": "exact denoiser of a Gaussian-mixture toy (blobs, 8gaussians); built from the data, not trained",
    "oracle-empirical": "exact denoiser of the training set (softmax over training points): memorises; not trained",
}
