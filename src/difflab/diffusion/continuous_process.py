"""The forward process in continuous time t ∈ [0, 1] of a schedule in :mod:`difflab.diffusion.continuous`: the
:class:`~difflab.diffusion.process.Process` interface (log ᾱ, the path's scale, the network's noise code) on top of
the schedule's log ᾱ(t)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from difflab.diffusion.continuous import c_noise, check_options, get_continuous
from difflab.diffusion.process import Process, Time


class ContinuousDiffusion(Process):
    """The forward process in continuous time t ∈ [0, 1] of a schedule in :mod:`difflab.diffusion.continuous`.

    ``T`` is the default number of sampling steps (and of the ELBO's grid). ``zero_terminal_snr`` rescales √ᾱ so that
    ᾱ(1) = 0 exactly, keeping ᾱ(0) = 1 (Lin et al. 2023, Alg. 1, with the clean end as anchor). A schedule that ends
    at ᾱ(1) = 0 by itself and only floors its log-SNR (cosine, sigmoid) has the floor lifted instead: rescaling the
    floored schedule would make ᾱ ≡ 0 on the whole interval where the floor holds (cosine: t ≥ 0.99965), where
    λ = −∞ and x_t carries nothing."""

    discrete = False

    def __init__(self, name: str, T: int = 100, *, zero_terminal_snr: bool = False, **options: float) -> None:
        self.name, self.T = name, int(T)
        self.options = check_options(name, options)
        self.zero_terminal_snr = zero_terminal_snr
        sched = get_continuous(name)
        self._fn, self.path = sched.fn, sched.path
        self._fn_options = dict(self.options)
        if zero_terminal_snr and "logsnr_min" in self._fn_options:
            self._fn_options["logsnr_min"] = -math.inf
        self.t_max, self.t_min = 1.0, sched.t_min
        self._a1 = math.exp(0.5 * float(self._fn(torch.tensor(1.0, dtype=torch.float64), **self._fn_options)))
        self._lam_table: tuple[np.ndarray, np.ndarray] | None = None

    def _log_ab(self, t: Tensor) -> Tensor:
        """log ᾱ(t) for float64 times in (0, 1]."""
        la = self._fn(t, **self._fn_options)
        if not self.zero_terminal_snr or self._a1 == 0.0:  # ᾱ(1) = 0 already: the rescale is the identity
            return la
        a = (torch.exp(0.5 * la) - self._a1) / (1.0 - self._a1)
        return 2.0 * torch.log(a.clamp(0.0, 1.0))

    def log_alpha_bar(self, t: Time) -> float:
        if t <= 0:
            return 0.0
        return float(self._log_ab(torch.tensor(min(float(t), 1.0), dtype=torch.float64)))

    def log_alpha_bar_rows(self, t: Tensor) -> Tensor:
        t = t.to(torch.float64)
        la = self._log_ab(t.clamp(1e-12, 1.0))
        return torch.where(t <= 0, torch.zeros_like(la), la)

    @property
    def alpha_bars(self) -> Tensor:
        """ᾱ at the T + 1 uniform times k/T, k = 0..T (for plots and tables that think in steps)."""
        return torch.exp(self.log_alpha_bar_rows(torch.linspace(0.0, 1.0, self.T + 1, dtype=torch.float64)))

    @property
    def betas(self) -> Tensor:
        """β of the jumps between those times, 1 − ᾱ_k/ᾱ_{k−1} (β_0 = 0)."""
        ab = self.alpha_bars
        return torch.cat([torch.zeros(1, dtype=torch.float64), 1.0 - ab[1:] / ab[:-1]])

    def net_time(self, t: Time | Tensor) -> Time | Tensor:
        """c_noise = ¼ ln σ_t = −λ_t / 8 (Karras et al. 2022, Table 1), λ clamped (:func:`~difflab.diffusion.
        continuous.c_noise`): the network sees the noise level."""
        if isinstance(t, Tensor):
            la = self.log_alpha_bar_rows(t)
            return c_noise(la - torch.log(-torch.expm1(la)), self.path)
        return float(c_noise(torch.tensor(self.log_snr(t), dtype=torch.float64), self.path))

    def t_of_log_snr(self, lam: float) -> float:
        """λ decreases in t: the bracket from a table of λ at 4097 times, then bisection inside it."""
        if self._lam_table is None:
            grid = torch.linspace(float(self.t_min), 1.0, 4097, dtype=torch.float64)
            la = self._log_ab(grid)
            self._lam_table = (grid.numpy(), (la - torch.log(-torch.expm1(la))).numpy())
        ts, lams = self._lam_table
        if lam >= lams[0]:
            return float(ts[0])
        if lam <= lams[-1]:
            return 1.0
        k = int(np.searchsorted(-lams, -lam))  # lams[k-1] > lam >= lams[k]
        lo, hi = float(ts[k - 1]), float(ts[k])
        # bisection: λ(t) may have a kink (a log-SNR floor) or end at −∞ (zero terminal SNR) inside the bracket,
        # where interpolation would stall; the bracket is 2⁻¹² wide, so 42 halvings reach ~1e-16
        for _ in range(42):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.log_snr(mid) > lam else (lo, mid)
        return 0.5 * (lo + hi)

    def to_dict(self) -> dict[str, object]:
        return {"time": "continuous", "name": self.name, "T": self.T, "options": self.options,
                "zero_terminal_snr": self.zero_terminal_snr}
