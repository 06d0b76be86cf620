"""The exact conditional of a Gaussian mixture: p(x_u | x_k = v) for a set of known coordinates k.

For one component N(μ, Σ), partitioned into known k and unknown u coordinates, x_u | x_k = v is Gaussian with
mean μ_u + Σ_uk Σ_kk⁻¹ (v − μ_k) and covariance Σ_uu − Σ_uk Σ_kk⁻¹ Σ_ku (the Schur complement; e.g. Bishop 2006,
eqs. 2.81-2.82). A mixture's conditional is the mixture of those, with weights w_k N(v; μ_k, Σ_kk) renormalised
(Bayes' rule for the component). It is the reference the imputation tests and the conditional figure compare with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from difflab.data.toy import GaussianMixture
from difflab.errors import ConfigError


def mixture_conditional(mixture: GaussianMixture, known: Sequence[int], values: Sequence[float]) -> GaussianMixture:
    """p(x_u | x_known = values) as a mixture over the other coordinates u, in their order."""
    d = mixture.dim
    k = [int(j) for j in known]
    if len(set(k)) != len(k) or any(not 0 <= j < d for j in k) or len(values) != len(k):
        raise ConfigError(f"known coordinates {k} with values {list(values)} do not fit a mixture of D = {d}")
    u = [j for j in range(d) if j not in set(k)]
    if not u:
        raise ConfigError("every coordinate is known; there is no conditional to take")
    v = np.asarray(values, dtype=np.float64)
    means, covs, log_w = [], [], []
    for w, mu, cov in zip(mixture.weights, mixture.means, mixture.covs, strict=True):
        s_kk, s_uk, s_uu = cov[np.ix_(k, k)], cov[np.ix_(u, k)], cov[np.ix_(u, u)]
        gain = np.linalg.solve(s_kk, s_uk.T).T if k else np.zeros((len(u), 0))  # Σ_uk Σ_kk⁻¹
        means.append(mu[u] + gain @ (v - mu[k]))
        covs.append(s_uu - gain @ s_uk.T)
        if k:
            r = v - mu[k]
            _, logdet = np.linalg.slogdet(s_kk)
            log_w.append(np.log(w) - 0.5 * (r @ np.linalg.solve(s_kk, r) + logdet + len(k) * np.log(2 * np.pi)))
        else:
            log_w.append(np.log(w))
    log_w = np.asarray(log_w)
    weights = np.exp(log_w - log_w.max())
    covs_arr = np.asarray(covs)
    covs_arr = 0.5 * (covs_arr + np.swapaxes(covs_arr, 1, 2))  # symmetric to rounding, for the Cholesky
    return GaussianMixture(weights / weights.sum(), np.asarray(means), covs_arr)


def density_1d(mixture: GaussianMixture, y: np.ndarray) -> np.ndarray:
    """The density of a one-dimensional mixture at the points ``y``."""
    if mixture.dim != 1:
        raise ConfigError(f"density_1d needs a mixture over one coordinate, got D = {mixture.dim}")
    return np.exp(mixture.log_prob(np.asarray(y, dtype=np.float64).reshape(-1, 1)))
