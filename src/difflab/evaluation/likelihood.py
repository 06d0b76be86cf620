"""The variational bound on −log p(x_0) of a diffusion model, in nats per dimension (Ho et al. 2020, eq. 5).

For a denoiser giving x̂_0(x_t, t), the reverse process is p_θ(x_{t−1} | x_t) = N(μ̃_t(x_t, x̂_0), σ_t² I), with μ̃_t
the posterior mean of q(x_{t−1} | x_t, x_0) (Ho et al. 2020, eq. 7) evaluated at x̂_0, and

    L(x_0) = KL(q(x_T | x_0) ‖ N(0, I))                                   "prior"
           + Σ_{t=2..T} E_{x_t ~ q(x_t|x_0)} KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))   "diffusion"
           − E_{x_1 ~ q(x_1|x_0)} log p_θ(x_0 | x_1)                        "decoder"

is an upper bound on −log p_θ(x_0). Every KL is between Gaussians and computed in closed form; only x_t is sampled,
one draw per step t (and per ``n_noise`` repeat), so the estimate is unbiased for L and the sum over all T steps is
exact, not importance-sampled. The same bound holds for any grid of jumps t → s (the model that samples on that
grid): a continuous-time model's bound is taken on T jumps uniform in log-SNR from t_max to t_min
(:func:`elbo_grid`; the bound's integrand is smooth in log-SNR, Kingma et al. 2021, "Variational Diffusion Models",
eq. 17), whose last jump is the decoder. With learned variances (Nichol & Dhariwal 2021) σ² is the network's.

Reverse variance σ_t² for t ≥ 2: ``"small"`` is the posterior's β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), ``"large"`` is
β_t (Ho et al. 2020, §3.2), matching the two choices of the ddpm sampler. For the likelihood the default is
``"large"``: at small t, where 1 − ᾱ_t is far below the data's spread, the true reverse variance is about
β̃_t + β_t² / (1 − ᾱ_t) ≈ β_t, while β̃_t is only (t − 1)/t of it on linear-like schedules, whatever T. With the
exact denoiser of N(0, 0.5²) data the "large" bound's gap to −log p shrinks like 1/T (0.12, 0.011, 0.001 nats/dim at
T = 10, 100, 1000, linear schedule), while the "small" one levels off near 0.3 nats/dim.

Decoder choice (continuous data): p_θ(x_0 | x_1) = N(x_0; x̂_0(x_1, 1), β_1 I). Its mean is μ̃_1(x_1, x̂_0) = x̂_0
because ᾱ_0 = 1. A Gaussian decoder needs a positive variance, and the posterior's β̃_1 is 0, so we take β_1, the
"large" variance at t = 1: when β_1 is far below the data's spread, x_0 given x_1 has variance ≈ β_1 per
dimension, so this decoder is nearly exact for an exact denoiser. (Ho et al. score 8-bit images with a discretised
decoder instead, which does not apply to real-valued tables.) With an exact denoiser and the "large" variance the
bound approaches −log p(x_0) as T grows (tests/evaluation/test_likelihood.py checks this in closed form).

Units: the model runs on scaled data s(x) with an affine scaler, and p_data(x) = p_scaled(s(x)) |det ∂s/∂x|, so
−log p_data(x) = −log p_scaled(s(x)) − log|det J|. :func:`elbo` subtracts ``scaler_logdet`` once per point.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from difflab.diffusion.parameterization import DenoiseFn, Prediction
from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError, DataError
from difflab.sampling.grids import make_grid

REVERSE_VARIANCES = ("small", "large", "learned")
DEFAULT_CHUNK = 65_536


def _jump(d: Process, t: Time, s: Time | None) -> tuple[Time, float, float]:
    """(s, β_{t|s}, β̃_{t|s}) for the jump t → s (s = t − 1 by default, a discrete step)."""
    s = t - 1 if s is None else s
    ab_t, ab_s = d.alpha_bar(t), d.alpha_bar(s)
    beta = 1.0 - d.alpha_bar_ratio(t, s)
    return s, beta, beta * (1.0 - ab_s) / (1.0 - ab_t)


def _log_var_p(d: Process, t: Time, s: Time | None, variance: str, v: Tensor | None) -> Tensor | float:
    """log σ² of the reverse jump: β̃ (small), β (large) or the network's v log β + (1 − v) log β̃ (learned; at the
    first step, where β̃ = 0, β̃ of the second step, as in training)."""
    s, beta, post = _jump(d, t, s)
    if variance == "small":
        return math.log(post)
    if variance == "large":
        return math.log(beta)
    if v is None:
        raise ConfigError("reverse variance 'learned' needs a model trained with variance = 'learned-range'")
    if post <= 0.0:
        post = _jump(d, 2, 1)[2] if d.discrete and d.T >= 2 else beta
    return v * math.log(beta) + (1.0 - v) * math.log(post)


def prior_kl(d: Process, x0: Tensor) -> Tensor:
    """KL(N(√ᾱ_T x_0, (1 − ᾱ_T) I) ‖ N(0, I)) per row of x0 (float64), summed over dimensions."""
    ab = d.alpha_bar(d.t_max)
    v = 1.0 - ab
    return 0.5 * (ab * x0.pow(2) + v - 1.0 - math.log(v)).sum(dim=1)


def mean_gap(d: Process, x0: Tensor, xt: Tensor, pred: Prediction, t: Time, s: Time | None = None) -> Tensor:
    """c (x_0 − x̂_0), c = √ᾱ_s β_{t|s} / (1 − ᾱ_t) the x_0-coefficient of the posterior mean (Ho et al. 2020,
    eq. 7), from the prediction (float64).

    Where ᾱ_t > 0 it is written with ε̂ instead of x̂_0, c x̂_0 = β_{t|s} / (√α_{t|s} (1 − ᾱ_t)) · (x_t − √(1 − ᾱ_t) ε̂):
    no division by √ᾱ_t, which underflows on long schedules (seed-linear or poly at T = 1000: ᾱ_T < 1e-100), where
    x̂_0 itself overflows although the gap is finite. Where ᾱ_t = 0 (zero terminal SNR, the straight path's t = 1)
    α_{t|s} = 0 and that form is 0/0, while x̂_0 is the network's own finite prediction: the x_0 form."""
    s, beta, _ = _jump(d, t, s)
    ab_t, ab_s = d.alpha_bar(t), d.alpha_bar(s)
    c = math.sqrt(ab_s) * beta / (1.0 - ab_t)
    if beta >= 1.0:
        return c * (x0 - pred.x0.to(torch.float64))
    eps_hat = pred.eps.to(torch.float64)
    return c * x0 - (beta / (math.sqrt(1.0 - beta) * (1.0 - ab_t))) * (xt - math.sqrt(1.0 - ab_t) * eps_hat)


def step_kl(
    d: Process, x0: Tensor, x0_hat: Tensor | None, t: Time, variance: str, *, gap: Tensor | None = None,
    s: Time | None = None, v: Tensor | None = None,
) -> Tensor:
    """KL(q(x_s | x_t, x_0) ‖ N(μ̃(x_t, x̂_0), σ² I)) for a jump t → s > 0, per row (Ho et al. 2020, eq. 5,
    L_{t−1}, for a jump of any size; s = t − 1 by default).

    The two means differ by c (x_0 − x̂_0) with c = √ᾱ_s β_{t|s} / (1 − ᾱ_t), the x_0-coefficient of μ̃ (eq. 7);
    computing the difference this way avoids subtracting two nearly equal means.
    """
    s, beta, var_q = _jump(d, t, s)
    log_var_p = _log_var_p(d, t, s, variance, v)
    c = math.sqrt(d.alpha_bar(s)) * beta / (1.0 - d.alpha_bar(t))
    if gap is None:
        assert x0_hat is not None
        gap = c * (x0 - x0_hat)
    if isinstance(log_var_p, float):
        dim = x0.shape[1]
        const = 0.5 * dim * (log_var_p - math.log(var_q) + var_q / math.exp(log_var_p) - 1.0)
        return const + 0.5 * gap.pow(2).sum(dim=1) / math.exp(log_var_p)
    inv = torch.exp(-log_var_p)
    return 0.5 * (log_var_p - math.log(var_q) + var_q * inv - 1.0 + gap.pow(2) * inv).sum(dim=1)


def decoder_nll(d: Process, x0: Tensor, x0_hat: Tensor, t: Time | None = None, *, variance: str = "large",
                v: Tensor | None = None) -> Tensor:
    """−log N(x_0; x̂_0(x_t1, t1), σ² I) per row: the Gaussian decoder of the last jump t1 → 0 (t1 = 1 by default),
    σ² = β_{t1|0} = 1 − ᾱ_{t1}, or the learned variance (see the module doc)."""
    t = 1 if t is None else t
    log_var = _log_var_p(d, t, 0, "large" if variance == "small" else variance, v)
    if isinstance(log_var, float):
        dim = x0.shape[1]
        return 0.5 * dim * math.log(2.0 * math.pi) + 0.5 * dim * log_var + 0.5 * (x0 - x0_hat).pow(2).sum(
            dim=1) / math.exp(log_var)
    return 0.5 * (math.log(2.0 * math.pi) + log_var + (x0 - x0_hat).pow(2) * torch.exp(-log_var)).sum(dim=1)


def elbo_grid(d: Process, steps: int | None = None) -> list[Time]:
    """The times of the bound: every step T..1 of a discrete process (or ``steps`` of them, trailing), and for a
    continuous one ``steps`` (default T) jumps uniform in log-SNR from t_max to t_min; then 0. (Uniform in t would
    put a single jump from σ ≈ 0.4 down to σ_min = 0.002 on EDM's σ(t) = t with T = 200: a bound 0.6 nats/dim looser
    for the exact denoiser of 8gaussians.)"""
    return make_grid(d, steps, "trailing" if d.discrete else "logsnr")


def elbo_terms(
    denoise: DenoiseFn,
    diffusion: Process,
    x0_scaled: Tensor,
    *,
    n_noise: int = 1,
    variance: str = "large",
    generator: torch.Generator | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    steps: int | None = None,
) -> dict[str, Tensor]:
    """Per-point terms of the bound in the scaled space, in nats summed over dimensions (float64, shape (N,)).

    Returns ``{"prior", "diffusion", "decoder", "total"}``; each is averaged over ``n_noise`` draws of every x_t.
    The denoiser is called once per time of :func:`elbo_grid` on all N · n_noise rows (in chunks of ``chunk_size``),
    with x_t in ``x0_scaled``'s dtype (a float32 network takes float32 input).
    """
    if variance not in REVERSE_VARIANCES:
        raise ConfigError(f"unknown reverse variance '{variance}'; choose one of: {', '.join(REVERSE_VARIANCES)}")
    if n_noise < 1:
        raise ConfigError(f"n_noise={n_noise}; expected at least 1")
    if x0_scaled.ndim != 2 or x0_scaled.shape[0] < 1:
        raise DataError(f"ELBO points must be a non-empty 2-D array (rows, D); got shape {tuple(x0_scaled.shape)}")
    if not torch.isfinite(x0_scaled).all():
        raise DataError("ELBO points contain non-finite values (NaN or inf)")
    n = x0_scaled.shape[0]
    x0 = x0_scaled.detach().to(torch.float64).repeat(n_noise, 1)  # (n_noise · N, D)
    rows = x0.shape[0]
    kl = torch.zeros(rows, dtype=torch.float64, device=x0.device)
    decoder = torch.zeros_like(kl)
    ts = elbo_grid(diffusion, steps)
    for t, s in zip(ts[:-1], ts[1:], strict=True):
        for lo in range(0, rows, chunk_size):
            x = x0[lo : lo + chunk_size]
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float64, device=x.device)
            xt = diffusion.q_sample(x, t, noise)
            with torch.no_grad():
                pred = denoise(xt.to(x0_scaled.dtype), t)
            v = None if pred.v is None else pred.v.to(torch.float64)
            if s == 0:
                decoder[lo : lo + chunk_size] = decoder_nll(diffusion, x, pred.x0.to(torch.float64), t,
                                                            variance=variance, v=v)
            else:
                gap = mean_gap(diffusion, x, xt, pred, t, s)
                kl[lo : lo + chunk_size] += step_kl(diffusion, x, None, t, variance, gap=gap, s=s, v=v)
    per_draw = {"prior": prior_kl(diffusion, x0), "diffusion": kl, "decoder": decoder}
    out = {k: v.reshape(n_noise, n).mean(dim=0) for k, v in per_draw.items()}
    out["total"] = out["prior"] + out["diffusion"] + out["decoder"]
    return out


def elbo(
    denoise: DenoiseFn,
    diffusion: Process,
    x0_scaled: Tensor,
    *,
    scaler_logdet: float = 0.0,
    n_noise: int = 1,
    variance: str = "large",
    generator: torch.Generator | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    steps: int | None = None,
) -> dict[str, float | int | str]:
    """The negative ELBO, an upper bound on −log p(x_0), in nats per dimension in the data's own units.

    Args:
        denoise: ``denoise(x_t, t) -> Prediction``; only its x̂_0 is used.
        diffusion: the run's forward process (t = 0 clean, 1..T noisy).
        x0_scaled: points (N, D) in the scaled space the model works in.
        scaler_logdet: log|det ∂s/∂x| of the scaler s (data → scaled), ``Scaler.log_abs_det_jacobian()``;
            0 reports the bound in scaled units.
        n_noise: independent draws of each x_t per point, averaged.
        variance: reverse variance for t ≥ 2, ``"large"`` (β_t, the tighter bound), ``"small"`` (β̃_t) or
            ``"learned"`` (the network's, Nichol & Dhariwal 2021).
        generator: seeds the draws of x_t.
        steps: jumps of the bound's grid (:func:`elbo_grid`; default every discrete step, or T for continuous time).

    Returns:
        ``nats_per_dim`` (the bound, data units), ``bits_per_dim`` (the same / ln 2), ``stderr`` (standard error
        of the mean over the N points, nats/dim), the parts ``prior``, ``diffusion``, ``decoder`` (scaled space)
        and ``jacobian`` (= −scaler_logdet / D), which add up to ``nats_per_dim``; ``nats_per_dim_scaled``; and
        ``n``, ``dim``, ``T``, ``n_noise``, ``variance``.
    """
    terms = elbo_terms(denoise, diffusion, x0_scaled, n_noise=n_noise, variance=variance, generator=generator,
                       chunk_size=chunk_size, steps=steps)
    n, dim = x0_scaled.shape
    total = terms["total"]
    scaled = float(total.mean()) / dim
    jacobian = -float(scaler_logdet) / dim
    nats = scaled + jacobian
    stderr = float(total.std(unbiased=True)) / math.sqrt(n) / dim if n > 1 else math.nan
    return {
        "nats_per_dim": nats,
        "bits_per_dim": nats / math.log(2.0),
        "stderr": stderr,
        "prior": float(terms["prior"].mean()) / dim,
        "diffusion": float(terms["diffusion"].mean()) / dim,
        "decoder": float(terms["decoder"].mean()) / dim,
        "jacobian": jacobian,
        "nats_per_dim_scaled": scaled,
        "n": int(n),
        "dim": int(dim),
        "T": int(diffusion.T),
        "steps": len(elbo_grid(diffusion, steps)) - 1,
        "n_noise": int(n_noise),
        "variance": variance,
    }
