"""Guards on x̂_0 for any sampler: clipping to the data's own box, and dynamic thresholding (Saharia et al. 2022).

Both wrap a denoiser: the guarded x̂_0 replaces the network's, and ε̂ is recomputed from it, ε̂ = (x_t − α x̂_0)/σ,
so that every sampler, whichever of the two it reads, moves towards the guarded point (a two-time denoiser's jump end
s passes through, :mod:`difflab.sampling.jumps`). The box is the training data's range in the scaled space widened
by a margin (:func:`data_box`), never a fixed ±1: a standard-scaled column spans more than ±1, and a min-max-scaled
one exactly ±1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from difflab.diffusion.parameterization import DenoiseFn, Prediction
from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError


def data_box(scaled: np.ndarray, margin: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (low, high) of training points in the scaled space, each side moved out by ``margin`` × range."""
    if margin < 0:
        raise ConfigError(f"clip margin must be >= 0, got {margin}")
    lo, hi = scaled.min(axis=0), scaled.max(axis=0)
    pad = margin * (hi - lo)
    return lo - pad, hi + pad


def _with_x0(d: Process, xt: Tensor, t: Time, pred: Prediction, x0: Tensor) -> Prediction:
    a, s = d.alpha_sigma(t, xt)
    return Prediction(eps=(xt - a * x0) / s, x0=x0, v=pred.v)


def clipped(denoise: DenoiseFn, d: Process, low: np.ndarray, high: np.ndarray) -> DenoiseFn:
    """x̂_0 clamped to [low, high] per column (a NaN from 0/0 where ᾱ underflows is taken as 0 first)."""
    lo = torch.as_tensor(np.asarray(low, dtype=np.float64))
    hi = torch.as_tensor(np.asarray(high, dtype=np.float64))

    def fn(xt: Tensor, t: Time, *jump: Time) -> Prediction:
        pred = denoise(xt, t, *jump)
        x0 = torch.nan_to_num(pred.x0, nan=0.0)
        x0 = torch.minimum(torch.maximum(x0, lo.to(x0)), hi.to(x0))
        return _with_x0(d, xt, t, pred, x0)

    return fn


def thresholded(denoise: DenoiseFn, d: Process, low: np.ndarray, high: np.ndarray, percentile: float = 0.995
                ) -> DenoiseFn:
    """Dynamic thresholding (Saharia et al. 2022, §2.3) for (B, D) rows: in box units r = (x̂_0 − centre)/half-width
    (the data box is [−1, 1]), s = max(1, the ``percentile`` quantile of |r| over the row's D coordinates), and
    r ← clip(r, −s, s)/s. A row whose coordinates stay in the box is unchanged; one that leaves it is pulled back
    and shrunk towards the centre, instead of being flattened onto the box's faces as plain clipping does."""
    if not 0.0 < percentile <= 1.0:
        raise ConfigError(f"thresholding percentile must be in (0, 1], got {percentile}")
    centre = torch.as_tensor((np.asarray(low) + np.asarray(high)) / 2.0, dtype=torch.float64)
    half = torch.as_tensor((np.asarray(high) - np.asarray(low)) / 2.0, dtype=torch.float64)

    def fn(xt: Tensor, t: Time, *jump: Time) -> Prediction:
        pred = denoise(xt, t, *jump)
        c, h = centre.to(pred.x0), half.to(pred.x0)
        r = (torch.nan_to_num(pred.x0, nan=0.0) - c) / h
        s = torch.quantile(r.abs(), percentile, dim=1, keepdim=True).clamp(min=1.0)
        x0 = c + h * (torch.minimum(torch.maximum(r, -s), s) / s)
        return _with_x0(d, xt, t, pred, x0)

    return fn


GUARDS: dict[str, Callable[..., DenoiseFn]] = {"clip": clipped, "threshold": thresholded}
