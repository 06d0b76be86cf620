"""The training loss for any process and parameterization, with learned variances and their hybrid loss.

Per row: a time (a step t ~ U{1..T}; in continuous time t ~ U[t_min, 1], ln σ ~ N(P_mean, P_std²) as in Karras
et al. 2022, §5, or t = sigmoid(n), n ~ N(m, s²), as in Esser et al. 2024), α and σ of the process's path (√ᾱ and
√(1 − ᾱ) on a variance-preserving one; 1 − t and t on the straight path), x_t = α x_0 + σ ε, and the simple loss w(α, σ) ‖f(c_in x_t, c(t)) − target‖²/D
(Ho et al. 2020, eq. 14, with each parameterization's target and weight). With learned variances (Nichol & Dhariwal
2021) the network's second half v sets log Σ = v log β_t + (1 − v) log β̃_t (eq. 15) and the loss is the hybrid
L_simple + λ L_vlb (§3.1), L_vlb = Σ_t L_t estimated by T · L_t at the drawn t, L_t in bits per dimension and the
mean inside it stop-gradient, so that L_vlb trains only the variances. With ``vlb_sampling = "importance"`` t is
drawn with p_t ∝ √E[L_t²] (from the last 10 values of each L_t, uniform until every t has 10) and every loss term
weighted by 1/(T p_t), which keeps both terms unbiased (§3.3). A conditional network also gets each row's class
label (the trainer has already replaced some by "no label": classifier-free guidance, Ho & Salimans 2022, Alg. 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from difflab.config import TrainConfig
from difflab.diffusion.continuous import c_noise
from difflab.diffusion.parameterization import Parameterization
from difflab.diffusion.process import GaussianDiffusion, Process, path_coefs_of_log_snr

HISTORY = 10  # Nichol & Dhariwal 2021, §3.3: the last 10 values of each L_t
UNIFORM_SHARE = 1e-3  # improved-diffusion's floor on p_t, so that no step is starved


class Objective:
    """``draw(B, generator)`` → per-row times; ``loss(model, x0, eps, times)`` → the step's scalar loss."""

    def __init__(self, process: Process, param: Parameterization, cfg: TrainConfig, device: torch.device, *,
                 learned_variance: bool = False) -> None:
        self.process, self.param, self.cfg, self.device = process, param, cfg, device
        self.learned = learned_variance
        self.plain = param.name == "eps" and not learned_variance  # the tutorial's F.mse_loss(ε̂, ε), as it is
        f32 = lambda x: x.to(device, torch.float32)  # noqa: E731
        if isinstance(process, GaussianDiffusion):
            d = process
            self.T = d.T
            self._a, self._s = f32(d.sqrt_alpha_bars), f32(d.sqrt_one_minus_alpha_bars)
            self._c0, self._ct = f32(d.posterior_mean_coef_x0), f32(d.posterior_mean_coef_xt)
            # β̃_1 = 0: log β̃ at t ≤ 1 is taken from t = 2 (improved-diffusion's "clipped" log variance); β_T = 1
            # (zero terminal SNR) is fine, log 1 = 0
            var = d.posterior_variance.clone()
            var[: min(2, d.T + 1)] = var[2] if d.T >= 2 else d.betas[1]
            self._log_post_var, self._post_var = f32(var.log()), f32(var)
            self._log_beta = f32(d.betas.clamp(min=1e-20).log())
        self.importance = learned_variance and cfg.vlb_sampling == "importance"
        if self.importance:
            self.history = torch.zeros(self.T + 1, HISTORY, device=device)
            self.counts = torch.zeros(self.T + 1, dtype=torch.long, device=device)

    # --- times ----------------------------------------------------------------------------------------------------
    def draw(self, B: int, generator: torch.Generator, out: Tensor | None = None) -> Tensor:
        """Steps 1..T (long) for a discrete process, log-SNRs λ (float64) for a continuous one."""
        if self.process.discrete:
            if self.importance and bool((self.counts[1:] >= HISTORY).all()):
                return torch.multinomial(self._p_t(), B, replacement=True, generator=generator) + 1
            if out is None:
                out = torch.empty(B, dtype=torch.long, device=self.device)
            return torch.randint(1, self.T + 1, (B,), generator=generator, out=out, device=self.device)
        return NOISE_SAMPLING[self.cfg.noise_sampling](self, B, generator)

    def _log_snr_at(self, t: Tensor) -> Tensor:
        la = self.process.log_alpha_bar_rows(t)
        return la - torch.log(-torch.expm1(la))

    def _lognormal(self, B: int, generator: torch.Generator) -> Tensor:
        """ln σ ~ N(P_mean, P_std²) (Karras et al. 2022, §5), as λ = −2 ln σ."""
        n = torch.randn(B, generator=generator, device=self.device, dtype=torch.float64)
        return -2.0 * (self.cfg.p_mean + self.cfg.p_std * n)

    def _uniform(self, B: int, generator: torch.Generator) -> Tensor:
        """t ~ U[t_min, 1]."""
        u = torch.rand(B, generator=generator, device=self.device, dtype=torch.float64)
        return self._log_snr_at(self.process.t_min + (1.0 - self.process.t_min) * u)

    def _logit_normal(self, B: int, generator: torch.Generator) -> Tensor:
        """t = sigmoid(n), n ~ N(m, s²) (Esser et al. 2024, §3.1: more weight in the middle of the path), kept in
        [t_min, 1]."""
        n = torch.randn(B, generator=generator, device=self.device, dtype=torch.float64)
        t = torch.sigmoid(self.cfg.logit_mean + self.cfg.logit_std * n)
        return self._log_snr_at(t.clamp(min=self.process.t_min))

    def _p_t(self) -> Tensor:
        w = self.history[1:].pow(2).mean(dim=1).sqrt()
        p = w / w.sum()
        return p * (1.0 - UNIFORM_SHARE) + UNIFORM_SHARE / self.T

    def _record(self, t: Tensor, L: Tensor) -> None:
        """Push this step's mean L_t of every drawn t into its history (one entry per distinct t)."""
        sums = torch.zeros(self.T + 1, device=self.device).index_add_(0, t, L)
        cnt = torch.zeros(self.T + 1, device=self.device).index_add_(0, t, torch.ones_like(L))
        seen = torch.nonzero(cnt > 0).squeeze(1)
        self.history[seen, self.counts[seen] % HISTORY] = sums[seen] / cnt[seen]
        self.counts[seen] += 1

    # --- the loss --------------------------------------------------------------------------------------------------
    def coefficients(self, times: Tensor, like: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """(α, σ) per row (B, 1), the network's time input (B,), and the posterior coefficients when needed."""
        if self.process.discrete:
            a, s = self._a[times].unsqueeze(1), self._s[times].unsqueeze(1)
            post = (self._c0[times].unsqueeze(1), self._ct[times].unsqueeze(1)) if self.param.needs_posterior else None
            return a, s, times, post
        a, s = path_coefs_of_log_snr(self.process.path, times)  # the path's own x_t = a x_0 + s ε, at ᾱ = sigmoid(λ)
        return a.unsqueeze(1).to(like.dtype), s.unsqueeze(1).to(like.dtype), c_noise(times, self.process.path), None

    def loss(self, model: nn.Module, x0: Tensor, eps: Tensor, times: Tensor, labels: Tensor | None = None) -> Tensor:
        """The step's loss; ``labels`` (B,): each row's class code for a conditional network (K: no label)."""
        a, s, cond, post = self.coefficients(times, x0)
        xt = a * x0 + s * eps
        c_in = self.param.input_scale(a, s)
        inp = xt if c_in is None else xt * c_in
        out = model(inp, cond) if labels is None else model(inp, cond, labels)
        if self.learned:
            out, v = out.chunk(2, dim=1)
        target = self.param.target(x0, eps, a, s, post)
        if self.plain:
            return F.mse_loss(out, target)
        per_row = (out - target).pow(2).mean(dim=1)
        weight = self.param.loss_weight(a, s)
        if weight is not None:
            per_row = per_row * weight.squeeze(1)
        is_w = 1.0 / (self.T * self._p_t()[times - 1]) if self.importance and self._ready() else None
        simple = (per_row * is_w).mean() if is_w is not None else per_row.mean()
        if not self.learned:
            return simple
        L = self.vlb_term(x0, xt, times, a, s, post, out.detach(), v)
        if self.importance:
            self._record(times, L.detach())
        vlb = (L * is_w).mean() if is_w is not None else L.mean()
        return simple + self.cfg.vlb_weight * self.T * vlb

    def _ready(self) -> bool:
        return bool((self.counts[1:] >= HISTORY).all())

    def vlb_term(self, x0: Tensor, xt: Tensor, t: Tensor, a: Tensor, s: Tensor, post: tuple[Tensor, Tensor] | None,
                 out: Tensor, v: Tensor) -> Tensor:
        """L_t per row in bits/dim: KL(q(x_{t−1}|x_t, x_0) ‖ N(μ_θ, Σ_θ)) for t ≥ 2, −log N(x_0; μ_θ, Σ_θ) at t = 1
        (the Gaussian decoder of :mod:`difflab.evaluation.likelihood`), μ_θ from the (detached) prediction."""
        c0, ct = self._c0[t].unsqueeze(1), self._ct[t].unsqueeze(1)
        x0_hat = self.param.predict(xt, out, a, s, post).x0
        mu_theta, mu_true = c0 * x0_hat + ct * xt, c0 * x0 + ct * xt
        log_var = v * self._log_beta[t].unsqueeze(1) + (1.0 - v) * self._log_post_var[t].unsqueeze(1)
        inv = torch.exp(-log_var)
        log_q = self._log_post_var[t].unsqueeze(1)
        kl = 0.5 * (-1.0 + log_var - log_q + self._post_var[t].unsqueeze(1) * inv + (mu_true - mu_theta).pow(2) * inv)
        nll = 0.5 * (math.log(2.0 * math.pi) + log_var + (x0 - mu_theta).pow(2) * inv)
        return torch.where((t == 1).unsqueeze(1), nll, kl).mean(dim=1) / math.log(2.0)

    # --- state for checkpoints ------------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, Tensor]:
        return {"vlb_history": self.history, "vlb_counts": self.counts} if self.importance else {}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        if self.importance and "vlb_history" in tensors:
            self.history.copy_(tensors["vlb_history"])
            self.counts.copy_(tensors["vlb_counts"])


# How a continuous-time run draws its training times, by the name of ``[train] noise_sampling``; each returns log-SNRs.
NOISE_SAMPLING = {"lognormal": Objective._lognormal, "uniform": Objective._uniform,
                  "logit-normal": Objective._logit_normal}
