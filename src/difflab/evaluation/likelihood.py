"""The variational bound on −log p(x_0) of a diffusion model, in nats per dimension (Ho et al. 2020, eq. 5).

For a denoiser giving x̂_0(x_t, t), the reverse process is p_θ(x_{t−1} | x_t) = N(μ̃_t(x_t, x̂_0), σ_t² I), with μ̃_t
the posterior mean of q(x_{t−1} | x_t, x_0) (Ho et al. 2020, eq. 7) evaluated at x̂_0, and

    L(x_0) = KL(q(x_T | x_0) ‖ N(0, I))                                   "prior"
           + Σ_{t=2..T} E_{x_t ~ q(x_t|x_0)} KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))   "diffusion"
           − E_{x_1 ~ q(x_1|x_0)} log p_θ(x_0 | x_1)                        "decoder"

is an upper bound on −log p_θ(x_0). Every KL is between Gaussians and computed in closed form; only x_t is sampled,
one draw per step t (and per ``n_noise`` repeat), so the estimate is unbiased for L and the sum over all T steps is
exact, not importance-sampled.

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

from difflab.diffusion.parameterization import DenoiseFn
from difflab.diffusion.process import GaussianDiffusion
from difflab.errors import ConfigError, DataError

REVERSE_VARIANCES = ("small", "large")
DEFAULT_CHUNK = 65_536


def _reverse_variance(d: GaussianDiffusion, t: int, variance: str) -> float:
    return float(d.posterior_variance[t] if variance == "small" else d.betas[t])


def prior_kl(d: GaussianDiffusion, x0: Tensor) -> Tensor:
    """KL(N(√ᾱ_T x_0, (1 − ᾱ_T) I) ‖ N(0, I)) per row of x0 (float64), summed over dimensions."""
    ab = float(d.alpha_bars[d.T])
    v = 1.0 - ab
    return 0.5 * (ab * x0.pow(2) + v - 1.0 - math.log(v)).sum(dim=1)


def mean_gap(d: GaussianDiffusion, x0: Tensor, xt: Tensor, eps_hat: Tensor, t: int) -> Tensor:
    """c_t (x_0 − x̂_0) written with ε̂ instead of x̂_0: c_t x̂_0 = β_t / (√α_t (1 − ᾱ_t)) · (x_t − √(1 − ᾱ_t) ε̂).

    No division by √ᾱ_t, which underflows on long schedules (seed-linear or poly at T = 1000: ᾱ_T < 1e-100), where
    x̂_0 itself overflows although the gap is finite."""
    b, a, ab = float(d.betas[t]), float(d.alphas[t]), float(d.alpha_bars[t])
    c = float(d.posterior_mean_coef_x0[t])
    return c * x0 - (b / (math.sqrt(a) * (1.0 - ab))) * (xt - math.sqrt(1.0 - ab) * eps_hat)


def step_kl(
    d: GaussianDiffusion, x0: Tensor, x0_hat: Tensor | None, t: int, variance: str, *, gap: Tensor | None = None
) -> Tensor:
    """KL(q(x_{t−1} | x_t, x_0) ‖ N(μ̃_t(x_t, x̂_0), σ_t² I)) for t ≥ 2, per row (Ho et al. 2020, eq. 5, L_{t−1}).

    The two means differ by c_t (x_0 − x̂_0) with c_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t), the x_0-coefficient of μ̃_t
    (eq. 7); computing the difference this way avoids subtracting two nearly equal means.
    """
    var_q = float(d.posterior_variance[t])
    var_p = _reverse_variance(d, t, variance)
    c = float(d.posterior_mean_coef_x0[t])
    dim = x0.shape[1]
    const = 0.5 * dim * (math.log(var_p / var_q) + var_q / var_p - 1.0)
    if gap is None:
        assert x0_hat is not None
        gap = c * (x0 - x0_hat)
    return const + 0.5 * gap.pow(2).sum(dim=1) / var_p


def decoder_nll(d: GaussianDiffusion, x0: Tensor, x0_hat: Tensor) -> Tensor:
    """−log N(x_0; x̂_0(x_1, 1), β_1 I) per row: the Gaussian decoder with variance β_1 (see the module doc)."""
    var = float(d.betas[1])
    dim = x0.shape[1]
    return 0.5 * dim * math.log(2.0 * math.pi * var) + 0.5 * (x0 - x0_hat).pow(2).sum(dim=1) / var


def elbo_terms(
    denoise: DenoiseFn,
    diffusion: GaussianDiffusion,
    x0_scaled: Tensor,
    *,
    n_noise: int = 1,
    variance: str = "large",
    generator: torch.Generator | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> dict[str, Tensor]:
    """Per-point terms of the bound in the scaled space, in nats summed over dimensions (float64, shape (N,)).

    Returns ``{"prior", "diffusion", "decoder", "total"}``; each is averaged over ``n_noise`` draws of every x_t.
    The denoiser is called once per step t = 1..T on all N · n_noise rows (in chunks of ``chunk_size``), with x_t
    in ``x0_scaled``'s dtype (a float32 network takes float32 input).
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
    for t in range(1, diffusion.T + 1):
        for lo in range(0, rows, chunk_size):
            x = x0[lo : lo + chunk_size]
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float64, device=x.device)
            xt = diffusion.q_sample(x, t, noise)
            with torch.no_grad():
                pred = denoise(xt.to(x0_scaled.dtype), t)
            if t == 1:
                decoder[lo : lo + chunk_size] = decoder_nll(diffusion, x, pred.x0.to(torch.float64))
            else:
                gap = mean_gap(diffusion, x, xt, pred.eps.to(torch.float64), t)
                kl[lo : lo + chunk_size] = kl[lo : lo + chunk_size] + step_kl(diffusion, x, None, t, variance, gap=gap)
    per_draw = {"prior": prior_kl(diffusion, x0), "diffusion": kl, "decoder": decoder}
    out = {k: v.reshape(n_noise, n).mean(dim=0) for k, v in per_draw.items()}
    out["total"] = out["prior"] + out["diffusion"] + out["decoder"]
    return out


def elbo(
    denoise: DenoiseFn,
    diffusion: GaussianDiffusion,
    x0_scaled: Tensor,
    *,
    scaler_logdet: float = 0.0,
    n_noise: int = 1,
    variance: str = "large",
    generator: torch.Generator | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> dict[str, float | int | str]:
    """The negative ELBO, an upper bound on −log p(x_0), in nats per dimension in the data's own units.

    Args:
        denoise: ``denoise(x_t, t) -> Prediction``; only its x̂_0 is used.
        diffusion: the run's forward process (t = 0 clean, 1..T noisy).
        x0_scaled: points (N, D) in the scaled space the model works in.
        scaler_logdet: log|det ∂s/∂x| of the scaler s (data → scaled), ``Scaler.log_abs_det_jacobian()``;
            0 reports the bound in scaled units.
        n_noise: independent draws of each x_t per point, averaged.
        variance: reverse variance for t ≥ 2, ``"large"`` (β_t, the tighter bound) or ``"small"`` (β̃_t).
        generator: seeds the draws of x_t.

    Returns:
        ``nats_per_dim`` (the bound, data units), ``bits_per_dim`` (the same / ln 2), ``stderr`` (standard error
        of the mean over the N points, nats/dim), the parts ``prior``, ``diffusion``, ``decoder`` (scaled space)
        and ``jacobian`` (= −scaler_logdet / D), which add up to ``nats_per_dim``; ``nats_per_dim_scaled``; and
        ``n``, ``dim``, ``T``, ``n_noise``, ``variance``.
    """
    terms = elbo_terms(denoise, diffusion, x0_scaled, n_noise=n_noise, variance=variance, generator=generator,
                       chunk_size=chunk_size)
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
        "n_noise": int(n_noise),
        "variance": variance,
    }
