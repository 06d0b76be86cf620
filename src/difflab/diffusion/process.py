"""The Gaussian forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) and its posterior (Ho et al. 2020), in
discrete steps t = 0..T (:class:`GaussianDiffusion`) or continuous time t ∈ [0, 1] (:class:`ContinuousDiffusion`).

Both share one interface, :class:`Process`, so samplers, parameterizations, the trainer and the likelihoods are
written once: ``log_alpha_bar(t)`` (t = 0 is clean data, log ᾱ = 0), ``alpha_sigma(t, like)`` → (α_t, σ_t) =
(√ᾱ_t, √(1 − ᾱ_t)) shaped to broadcast over (B, D), the ε/x_0/v conversions, and ``net_time(t)``, what the network
is given for time t. Coefficients are float64 and cast to the data's dtype at use; a tensor ``t`` of shape (B,) gives
one time per row of x (B, D).

A process also has a *path*: the scale of x_t that the network sees and the forward process draws. Samplers,
likelihoods and oracles work in the variance-preserving scale above; a path with another scale multiplies it by
k(t) per time: ``vp`` (k = 1) or ``straight`` (k = 1/(α_t + σ_t), so x_t = a_t x_0 + s_t ε with a_t + s_t = 1; on the
``rectified`` schedule a_t = 1 − t, s_t = t). Paths with one log-SNR are one process seen at another scale: the
same marginals up to k(t), the same posteriors, the same samplers (Karras et al. 2022, §2 and eq. 4: s(t) drops out
of every sampler written in x/α).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from difflab.diffusion.schedules import Schedule

Time = int | float

# k(α, σ): the factor from the variance-preserving x_t to the path's own.
PATH_SCALES = {
    "vp": lambda a, s: 1.0,
    "straight": lambda a, s: 1.0 / (a + s),
}


def path_coefs_of_log_snr(path: str, lam: Tensor) -> tuple[Tensor, Tensor]:
    """(a, s) of the path's x_t = a x_0 + s ε at log-SNRs λ (rows; ᾱ = sigmoid(λ), no cancellation at either end)."""
    a, s = torch.exp(-0.5 * F.softplus(-lam)), torch.exp(-0.5 * F.softplus(lam))
    k = PATH_SCALES[path](a, s)
    return a * k, s * k


def log_snr_of(log_ab: float) -> float:
    """λ = log ᾱ − log(1 − ᾱ) from log ᾱ (−∞ where ᾱ = 0, +∞ where ᾱ = 1)."""
    if log_ab >= 0.0:
        return math.inf
    return log_ab - math.log(-math.expm1(log_ab))


class Process:
    """What discrete and continuous processes share; subclasses give ``log_alpha_bar`` and its row form."""

    discrete: bool
    path: str = "vp"  # the scale of x_t the network sees (PATH_SCALES)
    T: int  # discrete: the number of steps; continuous: the default number of sampling steps
    t_max: Time  # where sampling starts (T, or 1.0)
    t_min: Time  # the smallest time a sampler evaluates the network at (1, or the schedule's t_min)

    # --- to implement ---------------------------------------------------------------------------------------
    def log_alpha_bar(self, t: Time) -> float:
        raise NotImplementedError

    def log_alpha_bar_rows(self, t: Tensor) -> Tensor:
        """log ᾱ for a tensor of times, float64, same shape and device."""
        raise NotImplementedError

    def net_time(self, t: Time | Tensor) -> Time | Tensor:
        """What the network is given for time t."""
        raise NotImplementedError

    def t_of_log_snr(self, lam: float) -> float:
        """The time whose log-SNR is ``lam`` (fractional steps for a discrete process)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, object]:
        """Everything :func:`process_from_dict` needs to rebuild the process (a run's schedule.json)."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------------------------
    def alpha_bar(self, t: Time) -> float:
        return math.exp(self.log_alpha_bar(t))

    def log_snr(self, t: Time) -> float:
        return log_snr_of(self.log_alpha_bar(t))

    def sigma(self, t: Time) -> float:
        """The variance-exploding noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) (Karras et al. 2022); ∞ where ᾱ_t = 0."""
        return math.exp(-0.5 * self.log_snr(t))

    def alpha_bar_ratio(self, t: Time, s: Time) -> float:
        """ᾱ_t / ᾱ_s, from log ᾱ so that it is exact where ᾱ_t and ᾱ_s both underflow."""
        return math.exp(self.log_alpha_bar(t) - self.log_alpha_bar(s))

    def alpha_sigma(self, t: Time | Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """(α_t, σ_t) = (√ᾱ_t, √(1 − ᾱ_t)) in ``like``'s dtype: 0-d host tensors for a number t (they mix with
        tensors on any device as scalars, with no host-to-device copy per call), (B, 1, …) for a tensor t."""
        if isinstance(t, Tensor):
            la = self.log_alpha_bar_rows(t.to(like.device)).reshape(-1, *([1] * (like.dim() - 1)))
            a, s = torch.exp(0.5 * la), torch.sqrt(-torch.expm1(la))
        else:
            la = self.log_alpha_bar(t)
            f64 = torch.float64
            a, s = torch.tensor(math.exp(0.5 * la), dtype=f64), torch.tensor(math.sqrt(-math.expm1(la)), dtype=f64)
        return a.to(like.dtype), s.to(like.dtype)

    # --- the path's own scale -----------------------------------------------------------------------------------
    def path_scale(self, t: Time | Tensor, like: Tensor) -> Tensor | float:
        """k(t): the path's x_t is k(t) times the variance-preserving one (1 for a vp path; shaped like
        :meth:`alpha_sigma`'s coefficients)."""
        if self.path == "vp":
            return 1.0
        return PATH_SCALES[self.path](*self.alpha_sigma(t, like))

    def path_coefs(self, t: Time | Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """(a_t, s_t) of the path's x_t = a_t x_0 + s_t ε: (α_t, σ_t) times k(t)."""
        a, s = self.alpha_sigma(t, like)
        k = PATH_SCALES[self.path](a, s)
        return a * k, s * k

    def path_sample(self, x0: Tensor, t: Time | Tensor, noise: Tensor) -> Tensor:
        """x_t on the path's own scale, a_t x_0 + s_t ε (the network's input; :meth:`q_sample` on a vp path)."""
        a, s = self.path_coefs(t, x0)
        return a * x0 + s * noise

    # --- forward process ---------------------------------------------------------------------------------------
    def q_mean_std(self, x0: Tensor, t: Time | Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of q(x_t | x_0) (Ho et al. 2020, eq. 4)."""
        a, s = self.alpha_sigma(t, x0)
        return a * x0, s

    def q_sample(self, x0: Tensor, t: Time | Tensor, noise: Tensor) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Ho et al. 2020, eq. 4 reparameterised)."""
        mean, std = self.q_mean_std(x0, t)
        return mean + std * noise

    def q_posterior(self, x0: Tensor, xt: Tensor, t: Time, s: Time) -> tuple[Tensor, float]:
        """Mean and variance of q(x_s | x_t, x_0) for s < t (Ho et al. 2020, eqs. 6-7, for a jump of any size):
        μ̃ = √ᾱ_s β_{t|s}/(1 − ᾱ_t) x_0 + √α_{t|s} (1 − ᾱ_s)/(1 − ᾱ_t) x_t, β̃ = β_{t|s} (1 − ᾱ_s)/(1 − ᾱ_t), with
        α_{t|s} = ᾱ_t/ᾱ_s and β_{t|s} = 1 − α_{t|s}."""
        ab_t, ab_s = self.alpha_bar(t), self.alpha_bar(s)
        ratio = self.alpha_bar_ratio(t, s)
        beta = 1.0 - ratio
        mean = (math.sqrt(ab_s) * beta / (1.0 - ab_t)) * x0 + (math.sqrt(ratio) * (1.0 - ab_s) / (1.0 - ab_t)) * xt
        return mean, beta * (1.0 - ab_s) / (1.0 - ab_t)

    # --- conversions between ε, x_0 and v (Salimans & Ho 2022 for v) ------------------------------------------
    def x0_from_eps(self, xt: Tensor, t: Time | Tensor, eps: Tensor) -> Tensor:
        """x_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t."""
        a, s = self.alpha_sigma(t, xt)
        return (xt - s * eps) / a

    def eps_from_x0(self, xt: Tensor, t: Time | Tensor, x0: Tensor) -> Tensor:
        """ε = (x_t − √ᾱ_t x_0) / √(1 − ᾱ_t)."""
        a, s = self.alpha_sigma(t, xt)
        return (xt - a * x0) / s

    def v_from(self, x0: Tensor, eps: Tensor, t: Time | Tensor) -> Tensor:
        """v = √ᾱ_t ε − √(1 − ᾱ_t) x_0."""
        a, s = self.alpha_sigma(t, x0)
        return a * eps - s * x0

    def x0_from_v(self, xt: Tensor, t: Time | Tensor, v: Tensor) -> Tensor:
        """x_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v."""
        a, s = self.alpha_sigma(t, xt)
        return a * xt - s * v

    def eps_from_v(self, xt: Tensor, t: Time | Tensor, v: Tensor) -> Tensor:
        """ε = √(1 − ᾱ_t) x_t + √ᾱ_t v."""
        a, s = self.alpha_sigma(t, xt)
        return s * xt + a * v


class GaussianDiffusion(Process):
    """The forward process over T discrete steps of a :class:`~difflab.diffusion.schedules.Schedule`.

    Integer steps read float64 tables; a fractional step t (the adaptive ODE solvers, EDM's churn) takes log ᾱ
    linearly interpolated between its two integer neighbours (a constant β within the step, in log space)."""

    discrete = True

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.T = schedule.T
        self.t_max, self.t_min = self.T, 1
        b = schedule.betas
        ab = schedule.alpha_bars
        ab_prev = np.concatenate([[1.0], ab[:-1]])
        as64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
        self.betas = as64(b)
        self.alphas = as64(1.0 - b)
        self.alpha_bars = as64(ab)
        # log ᾱ_t stays finite where ᾱ_t underflows to 0 (seed-linear at T = 1000): samplers take ratios from it.
        with np.errstate(divide="ignore"):  # β_T = 1 (zero terminal SNR) gives log ᾱ_T = −∞
            self.log_alpha_bars = as64(np.cumsum(np.log1p(-b)))
        self._log_ab = self.log_alpha_bars.numpy()
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
        """``table[t]`` cast to ``like``'s dtype (and device, for a tensor ``t``), shaped to broadcast over (B, D)."""
        if isinstance(t, int):
            return table[t].to(dtype=like.dtype)
        return table.to(like.device)[t].to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def alpha_bar(self, t: Time) -> float:
        if float(t).is_integer():  # the cumulative product itself for whole steps (the tutorial's numbers)
            return float(self.alpha_bars[int(t)])
        return super().alpha_bar(t)

    def log_alpha_bar(self, t: Time) -> float:
        if float(t).is_integer():
            return float(self._log_ab[int(t)])
        lo = int(math.floor(t))
        w = float(t) - lo
        return float((1.0 - w) * self._log_ab[lo] + w * self._log_ab[lo + 1])

    def log_alpha_bar_rows(self, t: Tensor) -> Tensor:
        table = self.log_alpha_bars.to(t.device)
        if not t.is_floating_point():
            return table[t]
        lo = t.floor().long().clamp(max=self.T - 1)
        w = t.to(torch.float64) - lo
        # a whole step reads its own entry: (1 − w) a + w b would be 0 · (−∞) = NaN next to log ᾱ_T = −∞ (zero SNR)
        mixed = (1.0 - w) * table[lo] + w * table[lo + 1]
        return torch.where(w == 0, table[lo], torch.where(w == 1, table[lo + 1], mixed))

    def alpha_sigma(self, t: Time | Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        if isinstance(t, int) or (isinstance(t, Tensor) and not t.is_floating_point()):
            # integer steps: the tables themselves (the tutorial's numbers, bit for bit)
            return self.coef(self.sqrt_alpha_bars, t, like), self.coef(self.sqrt_one_minus_alpha_bars, t, like)
        return super().alpha_sigma(t, like)

    def net_time(self, t: Time | Tensor) -> Time | Tensor:
        return t  # the step itself (1..T; fractional for networks that take it)

    def t_of_log_snr(self, lam: float) -> float:
        lams = np.array([log_snr_of(float(v)) for v in self._log_ab[1:]])  # decreasing in t
        if lam >= lams[0]:
            return 1.0
        if lam <= lams[-1]:
            return float(self.T)
        k = int(np.searchsorted(-lams, -lam))  # lams[k-1] > lam >= lams[k]
        # log ᾱ is linear within a step, so solve λ(log ᾱ) = lam there for the fraction
        target = -math.log1p(math.exp(-lam))  # log ᾱ = log σ(λ)
        lo, hi = self._log_ab[k], self._log_ab[k + 1]
        return k + (float((target - lo) / (hi - lo)) if hi != lo else 0.0)

    # --- forward process, one step and the one-step posterior --------------------------------------------------
    def q_step(self, x_prev: Tensor, t: int, noise: Tensor) -> Tensor:
        """One forward step x_t ~ q(x_t | x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I) (Ho et al. 2020, eq. 2)."""
        return self.coef(self.alphas, t, x_prev).sqrt() * x_prev + self.coef(self.betas, t, x_prev).sqrt() * noise

    def posterior_coefs(self, t: Tensor | int, like: Tensor) -> tuple[Tensor, Tensor]:
        """(c0, ct) of μ̃_t = c0 x_0 + ct x_t, the posterior mean of x_{t−1} (Ho et al. 2020, eq. 7)."""
        return self.coef(self.posterior_mean_coef_x0, t, like), self.coef(self.posterior_mean_coef_xt, t, like)

    def q_posterior_mean_variance(self, x0: Tensor, xt: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
        """Mean μ̃_t(x_t, x_0) and variance β̃_t of q(x_{t−1} | x_t, x_0) (Ho et al. 2020, eq. 7)."""
        mean = self.coef(self.posterior_mean_coef_x0, t, xt) * x0 + self.coef(self.posterior_mean_coef_xt, t, xt) * xt
        return mean, self.coef(self.posterior_variance, t, xt)

    def to_dict(self) -> dict[str, object]:
        return {"time": "discrete", **self.schedule.to_dict()}
