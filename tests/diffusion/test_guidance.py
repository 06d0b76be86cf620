"""Classifier-free guidance (Ho & Salimans 2022) against closed forms.

An exact conditional denoiser: each class is a Gaussian mixture, "no label" is the mixture of the classes weighted by
their frequencies. Its guided prediction must equal −σ [(1 + w) ∇ log p_t(x | c) − w ∇ log p_t(x)], with the
scores taken by autograd from the noisy densities p_t written out (an independent computation), and sampling it
class by class with w = 0 must give each class's distribution. For a network, guiding the (ε̂, x̂_0) prediction must
equal guiding its raw output, for every parameterization.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from difflab.compute import cpu_threads
from difflab.conditional import generate_labelled
from difflab.diffusion import ContinuousDiffusion, Denoiser, GaussianDiffusion, Prediction, make_schedule
from difflab.diffusion.denoiser import guide
from difflab.models import MixtureOracle, ResMLP

FREQS = np.array([0.5, 0.3, 0.2])


@pytest.fixture(autouse=True)
def _one_thread():
    """Small problems: one thread, so that other processes on the machine do not stall OpenMP hand-offs."""
    with cpu_threads(1):
        yield


def class_mixtures(dim: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Three classes, each a mixture of two Gaussians with random means and covariances."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(3):
        means = rng.normal(size=(2, dim)) * 0.4 + (k - 1) * 1.2
        a = rng.normal(size=(2, dim, dim)) * 0.15
        covs = a @ a.transpose(0, 2, 1) + 0.05 * np.eye(dim)
        out.append((np.array([0.6, 0.4]), means, covs))
    return out


class ConditionalOracle(nn.Module):
    """E[ε | x_t, c] and E[x_0 | x_t, c] per class (:class:`MixtureOracle`); label None or K: the marginal."""

    def __init__(self, classes, freqs, diffusion) -> None:
        super().__init__()
        self.per_class = nn.ModuleList([MixtureOracle.of(w, m, c, diffusion) for w, m, c in classes])
        w = np.concatenate([f * w for f, (w, _, _) in zip(freqs, classes, strict=True)])
        means = np.concatenate([m for _, m, _ in classes])
        covs = np.concatenate([c for _, _, c in classes])
        self.marginal = MixtureOracle.of(w, means, covs, diffusion)

    def posterior(self, x, ab, labels=None):
        if labels is None or labels == len(self.per_class):
            return self.marginal.posterior(x, ab)
        return self.per_class[labels].posterior(x, ab)


def log_density(x: torch.Tensor, ab: float, weights, means, covs) -> torch.Tensor:
    """log p_t(x) of a Gaussian mixture under x_t = √ᾱ x_0 + √(1 − ᾱ) ε, written out per component."""
    terms = []
    for w, mu, cov in zip(weights, means, covs, strict=True):
        c = torch.as_tensor(ab * cov + (1 - ab) * np.eye(len(mu)))
        dist = torch.distributions.MultivariateNormal(torch.as_tensor(math.sqrt(ab) * mu), covariance_matrix=c)
        terms.append(math.log(w) + dist.log_prob(x))
    return torch.logsumexp(torch.stack(terms), dim=0)


def score(x: torch.Tensor, ab: float, mixtures) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    total = sum(log_density(x, ab, *m).sum() for m in mixtures) if isinstance(mixtures, list) else \
        log_density(x, ab, *mixtures).sum()
    return torch.autograd.grad(total, x)[0]


def test_guided_oracle_is_the_closed_form_score_mix(dim: int):
    diffusion = GaussianDiffusion(make_schedule("linear", 100))
    classes = class_mixtures(dim)
    den = Denoiser(ConditionalOracle(classes, FREQS, diffusion), diffusion, "eps")
    x = torch.randn(64, dim, generator=torch.Generator().manual_seed(dim), dtype=torch.float64) * 1.5
    marginal = (np.concatenate([f * c[0] for f, c in zip(FREQS, classes, strict=True)]),
                np.concatenate([c[1] for c in classes]), np.concatenate([c[2] for c in classes]))
    for t in (5, 40, 95):
        ab = float(diffusion.alpha_bar(t))
        s_free = score(x, ab, marginal)
        free = -math.sqrt(1 - ab) * s_free  # ε = −σ ∇ log p_t (Tweedie)
        torch.testing.assert_close(den(x, t).eps, free, rtol=1e-7, atol=1e-9)  # no label: the marginal's
        for c in range(3):
            s_cond = score(x, ab, classes[c])
            for w in (0.0, 1.0, 3.0):
                eps = -math.sqrt(1 - ab) * ((1 + w) * s_cond - w * s_free)
                got = den.given(c, guidance=w)(x, t)
                torch.testing.assert_close(got.eps, eps, rtol=1e-7, atol=1e-9)
                torch.testing.assert_close(got.x0, (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab), rtol=1e-7,
                                           atol=1e-8)
        torch.testing.assert_close(den.given(None, guidance=2.0)(x, t).eps, free, rtol=1e-7, atol=1e-9)


def test_sampling_class_by_class_gives_each_class(dim: int):
    """w = 0 with the exact denoiser: the rows of each class have that class's mean and covariance, in the order of
    the labels (drawn from the class frequencies)."""
    diffusion = GaussianDiffusion(make_schedule("linear", 1000))
    classes = class_mixtures(dim)
    den = Denoiser(ConditionalOracle(classes, FREQS, diffusion), diffusion, "eps")
    labels = np.random.default_rng(1).choice(3, size=4000, p=FREQS)
    # Heun's probability-flow ODE solver (40 steps, Karras grid): ancestral sampling with few steps under-disperses
    # a mixture by itself (~10 % of the variance at T = 200), which would hide what this test is about
    x, traj = generate_labelled(lambda k: den.given(k), diffusion, labels, dim, seed=3, trajectory=True,
                                sampler="heun", steps=40, grid="karras")
    assert x.shape == (4000, dim) and traj.shape == (41, 4000, dim) and torch.equal(traj[-1], x)
    for k, (w, mu, cov) in enumerate(classes):
        xk = x[torch.as_tensor(labels == k)].double().numpy()
        mean = w @ mu
        second = sum(wj * (cj + np.outer(mj, mj)) for wj, mj, cj in zip(w, mu, cov, strict=True))
        true_cov = second - np.outer(mean, mean)
        se = np.sqrt(np.diag(true_cov) / len(xk))
        assert np.all(np.abs(xk.mean(0) - mean) < 5 * se + 0.02), (k, xk.mean(0), mean)
        # the solver's own error (a few % here, measured at 30 000 points) and 4 standard errors of a variance
        tol = (0.06 + 4 * np.sqrt(2 / len(xk))) * np.abs(true_cov).max()
        np.testing.assert_allclose(np.cov(xk.T).reshape(dim, dim), true_cov, atol=tol)


def test_labelled_generation_is_reproducible_and_per_class():
    diffusion = GaussianDiffusion(make_schedule("linear", 20))
    classes = class_mixtures(2)
    den = Denoiser(ConditionalOracle(classes, FREQS, diffusion), diffusion, "eps")
    labels = np.array([2, 0, 2, 1, 0, 2])
    a, _ = generate_labelled(lambda k: den.given(k), diffusion, labels, 2, seed=5)
    b, _ = generate_labelled(lambda k: den.given(k), diffusion, labels, 2, seed=5)
    c, _ = generate_labelled(lambda k: den.given(k), diffusion, labels, 2, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # a class's rows depend on that class's rows only: the same seed gives them whatever the other rows are
    d, _ = generate_labelled(lambda k: den.given(k), diffusion, np.array([1, 2, 2, 2]), 2, seed=5)
    torch.testing.assert_close(d[1:], a[labels == 2])


PARAMS = ["eps", "x0", "v", "score", "mean", "edm"]


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("learned", [False, True])
def test_guiding_the_prediction_is_guiding_the_output(dim: int, param: str, learned: bool):
    """For every parameterization, (1 + w) pred(c) − w pred(∅) equals the prediction read from the mixed raw output
    (1 + w) f(x, c) − w f(x, ∅): guidance is right whatever the network predicts."""
    if learned and param == "edm":
        pytest.skip("learned variances are discrete-time only")
    continuous = param == "edm"
    process = ContinuousDiffusion("edm", 50) if continuous else GaussianDiffusion(make_schedule("cosine", 50))
    torch.manual_seed(dim)
    net = ResMLP(dim, 0 if continuous else 50, width=16, depth=1, n_classes=3, out_dim=2 * dim if learned else None)
    nn.init.normal_(net.label_emb.weight)  # trained embeddings differ per class; zeros would make this trivial
    den = Denoiser(net.eval(), process, param, learned_variance=learned)
    x = torch.randn(32, dim, generator=torch.Generator().manual_seed(0))
    w = 2.5
    for t in ([0.3, 0.9] if continuous else [1, 17, 40]):
        got = den.given(1, guidance=w)(x, t)
        nt = den._net_time(t)
        times = torch.full((32,), nt, dtype=torch.long if isinstance(nt, int) else torch.float32)
        inp = den._input(x, t)
        with torch.no_grad():
            mixed = (1 + w) * net(inp, times, 1) - w * net(inp, times)
        want = den._read(x, t, mixed)
        torch.testing.assert_close(got.eps, want.eps, rtol=1e-4, atol=1e-4)  # float32, two orders of rounding
        torch.testing.assert_close(got.x0, want.x0, rtol=1e-4, atol=1e-4)
        if learned:  # the variances are the conditional prediction's
            torch.testing.assert_close(got.v, den.predict(x, t, labels=1).v, rtol=1e-5, atol=1e-5)


def test_the_one_step_path_equals_the_batch_path_with_labels(dim: int):
    diffusion = GaussianDiffusion(make_schedule("linear", 30))
    torch.manual_seed(0)
    net = ResMLP(dim, 30, width=16, depth=2, n_classes=4)
    nn.init.normal_(net.label_emb.weight)
    den = Denoiser(net.eval(), diffusion, "eps")
    x = torch.randn(20, dim)
    for label in (None, 0, 3):
        fast = den.guided(x, 12, label)
        with torch.no_grad():
            slow = den.predict(x, 12, labels=torch.full((20,), 4 if label is None else label))
        torch.testing.assert_close(fast.eps, slow.eps, rtol=1e-5, atol=1e-6)
    # per-row labels: each row as if asked alone
    labels = torch.tensor([0, 1, 2, 3, 4] * 4)
    with torch.no_grad():
        rows = den.predict(x, 12, labels=labels).eps
        for k in range(5):
            torch.testing.assert_close(rows[labels == k], den.guided(x[labels == k], 12, k if k < 4 else None).eps,
                                       rtol=1e-5, atol=1e-6)


def test_guide_is_eq_6_and_keeps_x_t_consistent():
    g = torch.Generator().manual_seed(0)
    a, s = 0.8, 0.6
    x = torch.randn(10, 3, generator=g)
    preds = [torch.randn(10, 3, generator=g) for _ in range(2)]
    c = Prediction(eps=preds[0], x0=(x - s * preds[0]) / a)
    u = Prediction(eps=preds[1], x0=(x - s * preds[1]) / a)
    out = guide(c, u, 3.0)
    torch.testing.assert_close(out.eps, 4.0 * c.eps - 3.0 * u.eps)
    torch.testing.assert_close(a * out.x0 + s * out.eps, x)
    assert guide(c, u, 0.0).eps.equal(c.eps)


def test_an_unconditional_network_refuses_labels_and_a_conditional_one_adds_only_the_embedding():
    torch.manual_seed(0)
    plain = ResMLP(2, 10, width=8, depth=1)
    torch.manual_seed(0)
    cond = ResMLP(2, 10, width=8, depth=1, n_classes=3)
    x, t = torch.randn(5, 2), torch.full((5,), 4)
    with pytest.raises(ValueError, match="without classes"):
        plain(x, t, 1)
    with pytest.raises(ValueError, match="outside 0..3"):
        cond(x, t, 7)
    # the same seed draws the same weights for every layer but the class embedding, built last
    mine = cond.state_dict()
    assert set(mine) - set(plain.state_dict()) == {"label_emb.weight"}
    assert all(torch.equal(v, mine[k]) for k, v in plain.state_dict().items())
    # and the embedding is the only difference: with a zero embedding the two networks agree for every label
    nn.init.zeros_(cond.label_emb.weight)
    for label in (None, 0, 2, torch.tensor([0, 1, 2, 3, 0])):
        torch.testing.assert_close(cond(x, t, label), plain(x, t))
