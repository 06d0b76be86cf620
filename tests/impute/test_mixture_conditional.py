"""The exact conditional of a Gaussian mixture against independent computations: Bayes' rule on a grid of the joint
density (D = 2), the precision-matrix form of Gaussian conditioning (D = 10), and refusals (D = 1, bad indices)."""

from __future__ import annotations

import numpy as np
import pytest

from difflab.data import DATASETS, GaussianMixture
from difflab.data.mixture_conditional import density_1d, mixture_conditional
from difflab.errors import ConfigError


@pytest.mark.parametrize(("name", "value"), [("8gaussians", 2.0), ("8gaussians", -0.3), ("blobs", 2.5)])
def test_d2_conditional_is_the_joint_density_renormalised(name, value):
    mix = DATASETS[name].mixture
    y = np.linspace(-6, 6, 4001)
    joint = np.exp(mix.log_prob(np.column_stack([np.full_like(y, value), y])))
    bayes = joint / (joint.sum() * (y[1] - y[0]))  # p(y | x) = p(x, y) / ∫ p(x, y') dy'
    closed = density_1d(mixture_conditional(mix, [0], [value]), y)
    assert np.allclose(closed, bayes, atol=1e-6 * bayes.max() + 1e-12)
    # and given y instead of x (the other coordinate)
    joint = np.exp(mix.log_prob(np.column_stack([y, np.full_like(y, value)])))
    assert np.allclose(density_1d(mixture_conditional(mix, [1], [value]), y),
                       joint / (joint.sum() * (y[1] - y[0])), atol=1e-6 * joint.max() / joint.sum() + 1e-12)


def test_d10_gaussian_conditional_matches_the_precision_form():
    """x_u | x_k = v ~ N(μ_u − Λ_uu⁻¹ Λ_uk (v − μ_k), Λ_uu⁻¹), Λ = Σ⁻¹ (Bishop 2006, eqs. 2.73, 2.75): another route
    than the Schur complement the code takes."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((10, 10))
    cov, mu = a @ a.T + np.eye(10), rng.standard_normal(10)
    known, free = [1, 4, 8], [0, 2, 3, 5, 6, 7, 9]
    v = rng.standard_normal(3)
    lam = np.linalg.inv(cov)
    prec_uu = lam[np.ix_(free, free)]
    mean = mu[free] - np.linalg.solve(prec_uu, lam[np.ix_(free, known)] @ (v - mu[known]))
    out = mixture_conditional(GaussianMixture(np.ones(1), mu[None], cov[None]), known, v)
    assert np.allclose(out.means[0], mean) and np.allclose(out.covs[0], np.linalg.inv(prec_uu))
    assert out.weights.tolist() == [1.0]


def test_component_weights_follow_bayes_rule():
    mix = GaussianMixture(np.array([0.25, 0.75]), np.array([[0.0, 0.0], [3.0, 1.0]]), np.tile(np.eye(2), (2, 1, 1)))
    out = mixture_conditional(mix, [0], [1.0])
    like = np.array([0.25 * np.exp(-0.5 * 1.0), 0.75 * np.exp(-0.5 * 4.0)])  # w_k N(1; μ_k, 1), same constant
    assert np.allclose(out.weights, like / like.sum())


def test_refusals():
    mix = GaussianMixture(np.ones(1), np.zeros((1, 1)), np.eye(1)[None])
    with pytest.raises(ConfigError, match="every coordinate is known"):
        mixture_conditional(mix, [0], [0.5])  # D = 1: nothing left to condition
    with pytest.raises(ConfigError, match="do not fit"):
        mixture_conditional(DATASETS["blobs"].mixture, [2], [0.0])
    with pytest.raises(ConfigError, match="one coordinate"):
        density_1d(DATASETS["blobs"].mixture, np.zeros(3))
