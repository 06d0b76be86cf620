"""2-D toy distributions: a training recipe and an i.i.d. sampler of the same distribution for each.

The *recipe* is how the training data is made (for ``moons`` and ``circles`` that is scikit-learn's
generator, which places points at evenly spaced angles, so its samples are not independent draws).
The *i.i.d. sampler* draws independent points from the distribution the recipe approximates; evaluation
compares a model's samples with it, never with a grid. Everything is in the data's natural units.

The FFJORD-style toys (``8gaussians``, ``checkerboard``, ``pinwheel``, ``2spirals``, ``rings``) follow the
definitions popularised by Grathwohl et al., "FFJORD" (ICLR 2019); the constants are chosen here and
written next to each sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from difflab.errors import ConfigError


def _sklearn_datasets():  # noqa: ANN202
    """scikit-learn's generators, imported on first use: sklearn takes seconds to import and most commands
    never draw a toy recipe."""
    from sklearn import datasets

    return datasets

# The i.i.d. sampler and the recipe draw from different streams of the same seed, so that evaluation
# data made with the training seed is still independent of the training data.
_RECIPE_STREAM = 0
_IID_STREAM = 1
_MAX_SEED = 2**32 - 1  # scikit-learn's limit for random_state


def _check(n: int, seed: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"number of samples must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed <= _MAX_SEED:
        raise ConfigError(f"seed must be an integer in [0, {_MAX_SEED}], got {seed!r}")


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([stream, int(seed)])


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """A mixture of K Gaussians in D dimensions: ``weights`` (K,), ``means`` (K, D), ``covs`` (K, D, D)."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        mu = np.asarray(self.means, dtype=np.float64)
        cov = np.asarray(self.covs, dtype=np.float64)
        if w.ndim != 1 or mu.ndim != 2 or cov.ndim != 3 or not (len(w) == len(mu) == len(cov)):
            raise ValueError("GaussianMixture needs weights (K,), means (K, D) and covs (K, D, D)")
        if cov.shape[1:] != (mu.shape[1], mu.shape[1]):
            raise ValueError("GaussianMixture covs must be (K, D, D) with D = means.shape[1]")
        if np.any(w < 0) or not np.isclose(w.sum(), 1.0):
            raise ValueError("GaussianMixture weights must be non-negative and sum to 1")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", mu)
        object.__setattr__(self, "covs", cov)
        # Raises LinAlgError if a covariance is not positive definite.
        object.__setattr__(self, "_chol", np.linalg.cholesky(cov))

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` i.i.d. points: a component by its weight, then a Gaussian draw from it."""
        _check(n, seed)
        return self._draw(n, np.random.default_rng(int(seed)))

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        z = rng.standard_normal((n, self.dim))
        return self.means[k] + np.einsum("nij,nj->ni", self._chol[k], z)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact log density at each row of ``x`` (N, D): log sum_k w_k N(x; mu_k, Sigma_k)."""
        x = np.asarray(x, dtype=np.float64)
        # Per component k solve L_k y = x - mu_k; |y|^2 is the squared Mahalanobis distance.
        y = np.stack([np.linalg.solve(L, (x - mu).T).T for L, mu in zip(self._chol, self.means, strict=True)],
                     axis=1)  # (N, K, D)
        log_det = 2.0 * np.log(np.diagonal(self._chol, axis1=1, axis2=2)).sum(axis=1)
        comp = -0.5 * (np.sum(y**2, axis=2) + log_det + self.dim * np.log(2 * np.pi))
        from scipy.special import logsumexp  # on use: scipy.special costs ~0.15 s of every command's start-up

        with np.errstate(divide="ignore"):
            return logsumexp(comp + np.log(self.weights), axis=1)


@dataclass(frozen=True)
class ToyDataset:
    """A named 2-D toy: ``recipe(n, seed)`` makes training data, ``iid(n, seed)`` independent draws."""

    name: str
    description: str
    recipe: Callable[[int, int], np.ndarray]
    iid: Callable[[int, int], np.ndarray]
    default_n: int = 1000
    mixture: GaussianMixture | None = None


# --- moons and circles: scikit-learn's grids for training, random angles for evaluation --------------


def _moons_recipe(n: int, seed: int) -> np.ndarray:
    """scikit-learn's ``make_moons(n, noise=None, shuffle=True, random_state=seed)`` point for point (tested against
    it), written out: importing sklearn costs ~0.5 s of the training command's start-up (benchmarks/startup.py)."""
    _check(n, seed)
    n_out = n // 2
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n - n_out)
    x = np.vstack([np.append(np.cos(t_out), 1 - np.cos(t_in)), np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5)]).T
    order = np.arange(n)
    np.random.RandomState(int(seed)).shuffle(order)  # sklearn.utils.shuffle(x, random_state=seed)
    return x[order]


def _moons_iid(n: int, seed: int) -> np.ndarray:
    """sklearn's moons: outer (cos t, sin t) and inner (1 - cos t, 0.5 - sin t), t in [0, pi]."""
    _check(n, seed)
    rng = _rng(seed, _IID_STREAM)
    inner = rng.random(n) < 0.5
    t = rng.uniform(0.0, np.pi, n)
    x = np.where(inner, 1.0 - np.cos(t), np.cos(t))
    y = np.where(inner, 0.5 - np.sin(t), np.sin(t))
    return np.column_stack([x, y])


CIRCLES_FACTOR = 0.5  # radius of the inner circle; the outer one has radius 1


def _circles_recipe(n: int, seed: int) -> np.ndarray:
    _check(n, seed)
    return _sklearn_datasets().make_circles(n_samples=n, noise=None, factor=CIRCLES_FACTOR, shuffle=True,
                            random_state=int(seed))[0]


def _circles_iid(n: int, seed: int) -> np.ndarray:
    """sklearn's circles put half the points on each circle, at uniform angles in [0, 2 pi)."""
    _check(n, seed)
    rng = _rng(seed, _IID_STREAM)
    r = np.where(rng.random(n) < 0.5, CIRCLES_FACTOR, 1.0)
    t = rng.uniform(0.0, 2 * np.pi, n)
    return np.column_stack([r * np.cos(t), r * np.sin(t)])


# --- swiss roll and S curve: the (x, z) plane of scikit-learn's 3-D manifolds -----------------------


def _swissroll_recipe(n: int, seed: int) -> np.ndarray:
    _check(n, seed)
    return _sklearn_datasets().make_swiss_roll(n_samples=n, noise=0.0, random_state=int(seed))[0][:, [0, 2]]


def _swissroll_iid(n: int, seed: int) -> np.ndarray:
    """(t cos t, t sin t) with t uniform on [1.5 pi, 4.5 pi], as in sklearn's make_swiss_roll."""
    _check(n, seed)
    t = _rng(seed, _IID_STREAM).uniform(1.5 * np.pi, 4.5 * np.pi, n)
    return np.column_stack([t * np.cos(t), t * np.sin(t)])


def _scurve_recipe(n: int, seed: int) -> np.ndarray:
    _check(n, seed)
    return _sklearn_datasets().make_s_curve(n_samples=n, noise=0.0, random_state=int(seed))[0][:, [0, 2]]


def _scurve_iid(n: int, seed: int) -> np.ndarray:
    """(sin t, sign(t)(cos t - 1)) with t uniform on [-1.5 pi, 1.5 pi], as in sklearn's make_s_curve."""
    _check(n, seed)
    t = _rng(seed, _IID_STREAM).uniform(-1.5 * np.pi, 1.5 * np.pi, n)
    return np.column_stack([np.sin(t), np.sign(t) * (np.cos(t) - 1.0)])


# --- Gaussian mixtures ------------------------------------------------------------------------------

BLOBS_STD = 0.4
BLOBS = GaussianMixture(
    weights=np.full(5, 0.2),
    means=np.array([[0.0, 0.0], [2.5, 2.5], [-2.5, 2.5], [-2.5, -2.5], [2.5, -2.5]]),
    covs=np.tile(np.eye(2) * BLOBS_STD**2, (5, 1, 1)),
)

# FFJORD draws unit compass directions scaled by 4, adds N(0, 0.5^2) noise and divides by 1.414; that is,
# centres at radius 2*sqrt(2) with std 0.5/sqrt(2) (~0.354). We use those values exactly.
EIGHT_GAUSSIANS_RADIUS = 2.0 * np.sqrt(2.0)
EIGHT_GAUSSIANS_STD = 0.5 / np.sqrt(2.0)
_angles8 = np.arange(8) * (np.pi / 4)
EIGHT_GAUSSIANS = GaussianMixture(
    weights=np.full(8, 1 / 8),
    means=EIGHT_GAUSSIANS_RADIUS * np.column_stack([np.cos(_angles8), np.sin(_angles8)]),
    covs=np.tile(np.eye(2) * EIGHT_GAUSSIANS_STD**2, (8, 1, 1)),
)


# --- FFJORD-style toys and mixtures: one sampler is recipe and, on another stream, i.i.d. sampler ----


def _checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the 8 dark squares (i + j even) of a 4x4 board of side-2 squares covering [-4, 4]^2."""
    i = rng.integers(0, 4, n)
    j = 2 * rng.integers(0, 2, n) + (i % 2)  # same parity as i
    return np.column_stack([i, j]) * 2.0 - 4.0 + rng.uniform(0.0, 2.0, (n, 2))


def _pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    """5 arms: radial N(1, 0.3^2), tangential N(0, 0.1^2), rotated by 2 pi k / 5 + 0.25 exp(radial), x2."""
    arm = rng.integers(0, 5, n)
    radial = 1.0 + 0.3 * rng.standard_normal(n)
    tangential = 0.1 * rng.standard_normal(n)
    angle = 2 * np.pi * arm / 5 + 0.25 * np.exp(radial)
    c, s = np.cos(angle), np.sin(angle)
    return 2.0 * np.column_stack([c * radial - s * tangential, s * radial + c * tangential])


def _two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two mirrored spirals (-s cos s, s sin s), s = 3 pi sqrt(u), with uniform jitter in [0, 0.5]^2,
    divided by 3, plus N(0, 0.1^2) noise."""
    s = 3 * np.pi * np.sqrt(rng.random(n))
    arm = np.column_stack([-np.cos(s) * s, np.sin(s) * s]) + rng.uniform(0.0, 0.5, (n, 2))
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    return sign * arm / 3.0 + 0.1 * rng.standard_normal((n, 2))


RINGS_RADII = np.array([0.75, 1.5, 2.25, 3.0])
RINGS_NOISE = 0.08


def _rings(n: int, rng: np.random.Generator) -> np.ndarray:
    """4 concentric circles (radii 0.75, 1.5, 2.25, 3), equally likely, uniform angle, N(0, 0.08^2) noise."""
    r = RINGS_RADII[rng.integers(0, 4, n)]
    t = rng.uniform(0.0, 2 * np.pi, n)
    return np.column_stack([r * np.cos(t), r * np.sin(t)]) + RINGS_NOISE * rng.standard_normal((n, 2))


def _streams(draw: Callable[[int, np.random.Generator], np.ndarray]) -> tuple[Callable, Callable]:
    def recipe(n: int, seed: int) -> np.ndarray:
        _check(n, seed)
        return draw(n, _rng(seed, _RECIPE_STREAM))

    def iid(n: int, seed: int) -> np.ndarray:
        _check(n, seed)
        return draw(n, _rng(seed, _IID_STREAM))

    return recipe, iid


def _toy(name: str, description: str, samplers: tuple[Callable, Callable], **kw) -> ToyDataset:
    return ToyDataset(name, description, samplers[0], samplers[1], **kw)


DATASETS: dict[str, ToyDataset] = {
    t.name: t
    for t in [
        _toy("moons", "two interleaved half circles (sklearn make_moons, no noise)",
             (_moons_recipe, _moons_iid)),
        _toy("circles", "two concentric circles, radii 1 and 0.5 (sklearn make_circles, no noise)",
             (_circles_recipe, _circles_iid)),
        _toy("swissroll", "2-D swiss roll spiral (sklearn make_swiss_roll, columns x and z)",
             (_swissroll_recipe, _swissroll_iid)),
        _toy("scurve", "S-shaped curve (sklearn make_s_curve, columns x and z)",
             (_scurve_recipe, _scurve_iid)),
        _toy("blobs", f"5 isotropic Gaussians (std {BLOBS_STD}) at the centre and 4 corners, equal weights",
             _streams(BLOBS._draw), mixture=BLOBS),
        _toy("8gaussians", "8 Gaussians (std 0.35) on a circle of radius 2.83 at the compass points",
             _streams(EIGHT_GAUSSIANS._draw), mixture=EIGHT_GAUSSIANS),
        _toy("checkerboard", "uniform on the dark squares of a 4x4 checkerboard on [-4, 4]^2",
             _streams(_checkerboard)),
        _toy("pinwheel", "5 curved Gaussian arms rotating with radius", _streams(_pinwheel)),
        _toy("2spirals", "two interleaved noisy spirals", _streams(_two_spirals)),
        _toy("rings", "4 concentric noisy circles, radii 0.75 to 3", _streams(_rings)),
    ]
}


def get_dataset(name: str) -> ToyDataset:
    """Look up a toy by name; an unknown name is a :class:`ConfigError` listing the choices."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


def list_datasets() -> list[tuple[str, str]]:
    """(name, one-line description) for every toy, in registry order."""
    return [(t.name, t.description) for t in DATASETS.values()]
