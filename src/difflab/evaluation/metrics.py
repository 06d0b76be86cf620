"""Two-sample metrics between a generated sample ``x`` (n, D) and a true sample ``y`` (m, D).

Every metric has the signature ``metric(x, y, *, rng) -> float`` and is registered in :data:`METRICS` under the
name users type. ``y`` is treated as the *reference*: metrics that standardise or choose a kernel bandwidth do so
from ``y`` alone, so that ``metric(gen, true_a)`` and its noise floor ``metric(true_b, true_a)`` are measured
with the same yardstick.

The distance metrics (w1, energy, mmd, swd) are V-statistics (biased estimators): they are exactly 0 for
identical samples and never negative, so the noise floor between two independent true samples is a positive
number of order n^(-1/2) (or n^(-1/D) for w1 in high D) and the ratio value/floor is well defined.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import ot
from scipy.spatial.distance import cdist
from sklearn.ensemble import ExtraTreesClassifier

from difflab.errors import DataError

MetricFn = Callable[..., float]

# Multiples of the reference sample's median pairwise distance used as RBF bandwidths: powers of 2 around the
# median heuristic of Gretton et al. 2012, so both fine structure and the overall shape count. Powers of 2 let
# each narrower kernel be computed from the next wider one by squaring twice instead of another exp.
MMD_BANDWIDTH_MULTIPLES: tuple[float, ...] = tuple(2.0**k for k in range(-2, 3))  # 0.25 .. 4
SWD_DIRECTIONS = 256
C2ST_TREES = 50


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        fn: ``fn(x, y, *, rng) -> float``.
        description: one line shown in help texts and tables.
        higher_is_worse: True for every metric here (a larger distance / accuracy means a worse model).
        chance: the value for two samples of the same distribution in the many-points limit
            (0 for distances, 0.5 for a classifier's accuracy).
        null_sd: for accuracy-like metrics, ``null_sd(n_test)`` is the standard deviation of the value under
            identical distributions when ``n_test`` held-out points were scored; it keeps :meth:`ratio` finite.
    """

    fn: MetricFn
    description: str
    higher_is_worse: bool = True
    chance: float = 0.0
    null_sd: Callable[[int], float] | None = None

    def __call__(self, x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator) -> float:
        return float(self.fn(x, y, rng=rng))

    def excess(self, value: float, *, n_test: int) -> float:
        """How far a (mean) ``value`` is from chance: ``value`` for a distance; for an accuracy-like metric the
        accuracy above chance, never below the null standard deviation of ``n_test`` scored points."""
        ev = value - self.chance
        return max(ev, self.null_sd(n_test)) if self.null_sd is not None else ev

    def ratio(self, value: float, floor: float, *, n_test: int) -> float:
        """Headline ratio: how far ``value`` is from chance, in units of the noise floor's distance from chance.

        For distances this is ``value / floor``. For c2st both accuracies are first turned into an *excess*
        ``max(acc - 0.5, null_sd(n_test))``: the accuracy above chance, never below one standard deviation of
        a coin-flip classifier scored on ``n_test`` points. Without that clip a floor accuracy at or below 0.5
        (half the time, when the data allow no better) would make the ratio negative or infinite; with it, two
        indistinguishable pairs give a ratio near 1 and the ratio is always > 0.
        A zero floor (only possible when the two true samples are identical multisets) gives 1.0 for a zero
        value and ``inf`` otherwise.
        """
        ev, ef = value - self.chance, floor - self.chance
        if self.null_sd is not None:
            sd = self.null_sd(n_test)
            ev, ef = max(ev, sd), max(ef, sd)
        if ef <= 0.0:
            return 1.0 if ev <= 0.0 else math.inf
        return ev / ef


def _uniform(k: int) -> np.ndarray:
    return np.full(k, 1.0 / k)


def w1(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator) -> float:
    """Exact Wasserstein-1 distance with Euclidean ground cost (network simplex, Bonneel et al. 2011, via POT).

    Both samples carry uniform weights; n and m may differ. In 1-D the same exact value comes from sorting
    (:func:`wasserstein_1d`), in O(n log n) instead of the simplex's seconds at n = 2000. ``rng`` is unused.
    """
    if x.shape[1] == 1:
        return float(wasserstein_1d(x.T, y.T)[0])
    cost = ot.dist(x, y, metric="euclidean")
    return float(ot.emd2(_uniform(len(x)), _uniform(len(y)), cost, numItermax=10_000_000))


def energy(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator) -> float:
    """Energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (Székely & Rizzo 2013), V-statistic.

    The V-statistic averages over all pairs including i = j, which makes it the squared energy distance between
    the two empirical distributions: exactly 0 for identical samples and never negative. In 1-D it equals
    ``2 * integral (F_n - G_m)^2`` (Cramér's identity), the square of ``scipy.stats.energy_distance``.
    ``rng`` is unused.
    """
    value = 2.0 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()
    return max(float(value), 0.0)


def _standardise_by(y: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """Scale all arrays with y's column mean and std (constant columns are only centred)."""
    mean, std = y.mean(axis=0), y.std(axis=0)
    std = np.where(std > 0.0, std, 1.0)
    return [(a - mean) / std for a in (y, *arrays)]


def mmd(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator) -> float:
    """RBF maximum mean discrepancy MMD^2 (Gretton et al. 2012, biased estimate MMD_b^2), bandwidth-averaged.

    Data are standardised with the reference y's mean and std; the kernel exp(-|a-b|^2 / (2 h^2)) is averaged
    over h = c * median pairwise distance of y for c in ``MMD_BANDWIDTH_MULTIPLES`` (the median is taken over
    the pairs (y[i], y[j]) with i even and j odd: distinct pairs, off the diagonal). Each biased MMD^2 is the
    squared RKHS distance between the empirical mean embeddings, so the result is 0 for identical samples and
    never negative. ``rng`` is unused.
    """
    ys, xs = _standardise_by(y, x)
    dxx, dyy, dxy = cdist(xs, xs, "sqeuclidean"), cdist(ys, ys, "sqeuclidean"), cdist(xs, ys, "sqeuclidean")
    # pairs (even i, odd j) are distinct and off the diagonal: a quarter of all pairs is plenty for a heuristic
    pairs = dyy[0::2, 1::2]
    median_sq = float(np.median(pairs)) if pairs.size else 0.0
    if median_sq <= 0.0:  # a reference of (mostly) repeated points: fall back to unit scale
        median_sq = 1.0
    widest = MMD_BANDWIDTH_MULTIPLES[-1]
    gamma = 1.0 / (2.0 * widest * widest * median_sq)
    count = len(MMD_BANDWIDTH_MULTIPLES)
    total = _rbf_means(dxx, gamma, count) + _rbf_means(dyy, gamma, count) - 2.0 * _rbf_means(dxy, gamma, count)
    return max(total / count, 0.0)


def _rbf_means(sq_dist: np.ndarray, gamma: float, count: int) -> float:
    """Sum over i < count of mean(exp(-gamma * 4^i * sq_dist)), i.e. bandwidths halving from the widest.

    exp(-4 g d^2) = exp(-g d^2)^4, so each narrower kernel is two in-place squarings of the previous one.
    Consumes ``sq_dist``: it is overwritten in place (the matrices are large and used once).
    """
    kernel = sq_dist
    kernel *= -gamma
    np.exp(kernel, out=kernel)
    total = kernel.mean()
    for _ in range(count - 1):
        kernel *= kernel
        kernel *= kernel
        total += kernel.mean()
    return float(total)


def wasserstein_1d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Exact 1-D W1 between the rows of u (k, n) and v (k, m) with uniform weights: integral |F - G| dt.

    The pooled points are sorted per row; between consecutive pooled points F - G is constant and equals the
    running sum of +1/n (a point of u) and -1/m (a point of v).
    """
    n, m = u.shape[1], v.shape[1]
    if n == m:  # equal sizes: the quantile functions are step functions on the same grid i/n
        return np.abs(np.sort(u, axis=1) - np.sort(v, axis=1)).mean(axis=1)
    pooled = np.concatenate([u, v], axis=1)
    order = np.argsort(pooled, axis=1, kind="stable")
    weights = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])[order]
    cdf_gap = np.cumsum(weights, axis=1)[:, :-1]
    steps = np.diff(np.take_along_axis(pooled, order, axis=1), axis=1)
    return np.abs(cdf_gap * steps).sum(axis=1)


def swd(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator) -> float:
    """Sliced Wasserstein-1 (Rabin et al. 2011): mean exact 1-D W1 over random unit directions drawn from rng.

    ``SWD_DIRECTIONS`` directions uniform on the sphere (normalised Gaussians); n and m may differ (the 1-D
    distance is integrated exactly over the pooled breakpoints).
    """
    directions = rng.standard_normal((x.shape[1], SWD_DIRECTIONS))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    return float(wasserstein_1d((x @ directions).T, (y @ directions).T).mean())


def c2st(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator) -> float:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017): held-out accuracy of a classifier telling x from y.

    The larger sample is first subsampled to the smaller size k so both classes are balanced (chance = 0.5).
    A random half of each class trains extremely randomised trees (Geurts et al. 2006; 50 trees, leaves of at
    least 5 points, seeded from rng), the other half (about k points in all) is scored. Trees are used rather
    than k-NN because in 10-D a k-NN vote barely notices a sample twice as wide (hubness), while the trees do;
    they are as good as k-NN on 2-D shapes. Accuracy near 0.5 means indistinguishable; its null standard
    deviation is 0.5 / sqrt(k).
    """
    k = min(len(x), len(y))
    if k < 2:
        raise DataError(f"c2st needs at least 2 points in each sample; got {len(x)} and {len(y)}")
    x = x[rng.choice(len(x), size=k, replace=False)] if len(x) > k else x
    y = y[rng.choice(len(y), size=k, replace=False)] if len(y) > k else y
    train_idx, test_idx = [], []
    for offset in (0, k):  # stratified split: half of each class trains, the rest is held out
        perm = offset + rng.permutation(k)
        train_idx.append(perm[: k // 2])
        test_idx.append(perm[k // 2 :])
    points = np.concatenate(_standardise_by(y, x)[::-1])  # x rows first, then y rows
    labels = np.concatenate([np.zeros(k), np.ones(k)])
    train, test = np.concatenate(train_idx), np.concatenate(test_idx)
    clf = ExtraTreesClassifier(n_estimators=C2ST_TREES, min_samples_leaf=5, random_state=int(rng.integers(2**31)))
    clf.fit(points[train], labels[train])
    return float((clf.predict(points[test]) == labels[test]).mean())


METRICS: dict[str, Metric] = {
    "w1": Metric(w1, "exact Wasserstein-1 distance, Euclidean cost"),
    "energy": Metric(energy, "energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (V-statistic)"),
    "mmd": Metric(mmd, "RBF MMD^2 averaged over 5 bandwidths, data standardised by the reference"),
    "swd": Metric(swd, f"sliced Wasserstein-1 over {SWD_DIRECTIONS} random directions"),
    "c2st": Metric(
        c2st,
        "classifier two-sample test: held-out accuracy of extra trees (0.5 = indistinguishable)",
        chance=0.5,
        null_sd=lambda n_test: 0.5 / math.sqrt(max(n_test, 1)),
    ),
}
