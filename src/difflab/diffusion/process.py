"""The Gaussian forward process q and its posterior, after Ho et al. 2020 (DDPM).

Coefficients are kept in float64 and cast to the data's dtype at use. ``t`` is an integer step in 1..T (0 = clean
data); a tensor ``t`` of shape (B,) gives one step per row of ``x`` of shape (B, D).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from difflab.diffusion.schedules import Schedule


class GaussianDiffusion:
    """Forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) and posterior q(x_{t−1} | x_t, x_0)."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.T = schedule.T
        b = schedule.betas
        ab = schedule.alpha_bars
        ab_prev = np.concatenate([[1.0], ab[:-1]])
        as64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
        self.betas = as64(b)
        self.alphas = as64(1.0 - b)
        self.alpha_bars = as64(ab)
        # log ᾱ_t stays finite where ᾱ_t underflows to 0 (seed-linear at T = 1000): samplers take ratios from it.
        self.log_alpha_bars = as64(np.cumsum(np.log1p(-b)))
        # q(x_t | x_0), Ho et al. 2020 eq. 4
        self.sqrt_alpha_bars = as64(np.sqrt(ab))
        self.sqrt_one_minus_alpha_bars = as64(np.sqrt(1.0 - ab))
        # q(x_{t-1} | x_t, x_0), Ho et al. 2020 eqs. 6-7; index 0 is never used (set to 0 instead of 0/0)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.where(ab < 1.0, b * (1.0 - ab_prev) / (1.0 - ab), 0.0)
            c0 = np.where(ab < 1.0, np.sqrt(ab_prev) * b / (1.0 - ab), 0.0)
            ct = np.where(ab < 1.0, np.sqrt(1.0 - b) * (1.0 - ab_prev) / (1.0 - ab), 0.0)
        self.posterior_variance = as64(var)
        self.posterior_mean_coef_x0 = as64(c0)
        self.posterior_mean_coef_xt = as64(ct)

    @staticmethod
    def coef(table: Tensor, t: Tensor | int, like: Tensor) -> Tensor:
        """``table[t]`` cast to ``like``'s dtype (and device, for a tensor ``t``), shaped to broadcast over (B, D).

        For an integer t the value stays a 0-d tensor on the host: it mixes with tensors on any device as a
        scalar, without the blocking host-to-device copy per call that moving it would cost a GPU sampler."""
        if isinstance(t, int):
            return table[t].to(dtype=like.dtype)
        return table.to(like.device)[t].to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def alpha_bar_ratio(self, t: int, s: int) -> float:
        """ᾱ_t / ᾱ_s = ∏_{s<k≤t} α_k, from log ᾱ so that it is exact where ᾱ_t and ᾱ_s both underflow."""
        return float(np.exp(float(self.log_alpha_bars[t]) - float(self.log_alpha_bars[s])))

    # --- forward process -------------------------------------------------------------------------------------
    def q_mean_std(self, x0: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
        """Mean and std of q(x_t | x_0) (Ho et al. 2020, eq. 4)."""
        return self.coef(self.sqrt_alpha_bars, t, x0) * x0, self.coef(self.sqrt_one_minus_alpha_bars, t, x0)

    def q_sample(self, x0: Tensor, t: Tensor | int, noise: Tensor) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Ho et al. 2020, eq. 4 reparameterised)."""
        mean, std = self.q_mean_std(x0, t)
        return mean + std * noise

    def q_step(self, x_prev: Tensor, t: int, noise: Tensor) -> Tensor:
        """One forward step x_t ~ q(x_t | x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I) (Ho et al. 2020, eq. 2)."""
        return self.coef(self.alphas, t, x_prev).sqrt() * x_prev + self.coef(self.betas, t, x_prev).sqrt() * noise

    # --- posterior ---------------------------------------------------------------------------------------------
    def q_posterior_mean_variance(self, x0: Tensor, xt: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
        """Mean μ̃_t(x_t, x_0) and variance β̃_t of q(x_{t−1} | x_t, x_0) (Ho et al. 2020, eq. 7)."""
        mean = self.coef(self.posterior_mean_coef_x0, t, xt) * x0 + self.coef(self.posterior_mean_coef_xt, t, xt) * xt
        return mean, self.coef(self.posterior_variance, t, xt)

    # --- conversions between ε, x_0 and v (Salimans & Ho 2022 for v) ------------------------------------------
    def x0_from_eps(self, xt: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """x_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t."""
        return (xt - self.coef(self.sqrt_one_minus_alpha_bars, t, xt) * eps) / self.coef(self.sqrt_alpha_bars, t, xt)

    def eps_from_x0(self, xt: Tensor, t: Tensor | int, x0: Tensor) -> Tensor:
        """ε = (x_t − √ᾱ_t x_0) / √(1 − ᾱ_t)."""
        return (xt - self.coef(self.sqrt_alpha_bars, t, xt) * x0) / self.coef(self.sqrt_one_minus_alpha_bars, t, xt)

    def v_from(self, x0: Tensor, eps: Tensor, t: Tensor | int) -> Tensor:
        """v = √ᾱ_t ε − √(1 − ᾱ_t) x_0."""
        return self.coef(self.sqrt_alpha_bars, t, x0) * eps - self.coef(self.sqrt_one_minus_alpha_bars, t, x0) * x0

    def x0_from_v(self, xt: Tensor, t: Tensor | int, v: Tensor) -> Tensor:
        """x_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v."""
        return self.coef(self.sqrt_alpha_bars, t, xt) * xt - self.coef(self.sqrt_one_minus_alpha_bars, t, xt) * v

    def eps_from_v(self, xt: Tensor, t: Tensor | int, v: Tensor) -> Tensor:
        """ε = √(1 − ᾱ_t) x_t + √ᾱ_t v."""
        return self.coef(self.sqrt_one_minus_alpha_bars, t, xt) * xt + self.coef(self.sqrt_alpha_bars, t, xt) * v
