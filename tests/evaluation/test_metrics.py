"""Each metric against an independent computation: closed forms for Gaussians, scipy, brute-force sums."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.special import gammaln

from difflab.errors import DataError
from difflab.evaluation.metrics import (
    METRICS,
    MMD_BANDWIDTH_MULTIPLES,
    c2st,
    energy,
    mmd,
    swd,
    w1,
    wasserstein_1d,
)

DIMS = [1, 2, 10]
DISTANCES = ["w1", "energy", "mmd", "swd"]


def gauss(n: int, d: int, seed: int, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    return mean + std * np.random.default_rng(seed).standard_normal((n, d))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_registry_order_and_fields():
    assert list(METRICS) == ["w1", "energy", "mmd", "swd", "c2st"]
    for metric in METRICS.values():
        assert metric.higher_is_worse
        assert metric.description and "\n" not in metric.description
    assert METRICS["c2st"].chance == 0.5
    assert all(METRICS[name].chance == 0.0 for name in DISTANCES)


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("name", DISTANCES)
def test_identical_samples_give_zero(name, d):
    x = gauss(300, d, seed=1)
    assert METRICS[name](x, x, rng=rng()) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("d", DIMS)
def test_c2st_same_distribution_is_chance(d):
    acc = c2st(gauss(1000, d, 1), gauss(1000, d, 2), rng=rng())
    assert abs(acc - 0.5) < 4 * 0.5 / math.sqrt(1000)  # 4 null standard deviations


def test_c2st_unequal_sizes_are_balanced_to_chance():
    # 500 vs 2000 points: without balancing, predicting "y" always would score 0.8
    acc = c2st(gauss(500, 2, 1), gauss(2000, 2, 2), rng=rng())
    assert abs(acc - 0.5) < 4 * 0.5 / math.sqrt(500)


def test_c2st_needs_two_points():
    with pytest.raises(DataError, match="at least 2 points"):
        c2st(gauss(1, 2, 1), gauss(10, 2, 2), rng=rng())


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize("change", ["shift", "widen"])
def test_changed_distribution_is_clearly_worse_than_noise(name, d, change):
    n = 500
    y = gauss(n, d, seed=1)
    same = gauss(n, d, seed=2)
    other = gauss(n, d, seed=3, mean=1.0) if change == "shift" else gauss(n, d, seed=3, std=2.0)
    metric = METRICS[name]
    value, floor = metric(other, y, rng=rng()), metric(same, y, rng=rng())
    assert value > floor
    assert metric.ratio(value, floor, n_test=n) > 1.5


@pytest.mark.parametrize("mu", [0.5, -2.0])
def test_w1_1d_gaussian_shift_closed_form(mu):
    # W1(N(0,1), N(mu,1)) = |mu| (a translation); the empirical noise at n=1500 is about 0.03
    assert w1(gauss(1500, 1, 1), gauss(1500, 1, 2, mean=mu), rng=rng()) == pytest.approx(abs(mu), abs=0.06)


@pytest.mark.parametrize("m", [300, 217])
def test_w1_matches_scipy_in_1d(m):
    x, y = gauss(300, 1, 1), gauss(m, 1, 2, mean=0.3, std=1.5)
    expected = stats.wasserstein_distance(x[:, 0], y[:, 0])
    assert w1(x, y, rng=rng()) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("d", [2, 10])
def test_w1_equals_optimal_assignment(d):
    # with n == m and uniform weights, optimal transport is an optimal matching (Birkhoff-von Neumann)
    x, y = gauss(200, d, 1), gauss(200, d, 2, mean=0.3)
    cost = np.linalg.norm(x[:, None] - y[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    assert w1(x, y, rng=rng()) == pytest.approx(cost[rows, cols].mean(), abs=1e-9)
    # m = n/2: uniform weights 1/m equal two copies of each y point at weight 1/n
    half = y[:100]
    cost = np.linalg.norm(x[:, None] - np.repeat(half, 2, axis=0)[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    assert w1(x, half, rng=rng()) == pytest.approx(cost[rows, cols].mean(), abs=1e-9)


@pytest.mark.parametrize("m", [300, 217])
def test_wasserstein_1d_rows_match_scipy(m):
    u, v = gauss(4, 300, 1), gauss(4, m, 2, mean=0.2)
    expected = [stats.wasserstein_distance(a, b) for a, b in zip(u, v)]
    np.testing.assert_allclose(wasserstein_1d(u, v), expected, rtol=0, atol=1e-12)


def cramer_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """2 * integral (F - G)^2 dt over the empirical CDFs, integrated exactly between pooled points."""
    grid = np.sort(np.concatenate([a, b]))
    f = np.searchsorted(np.sort(a), grid[:-1], side="right") / len(a)
    g = np.searchsorted(np.sort(b), grid[:-1], side="right") / len(b)
    return float(2.0 * np.sum((f - g) ** 2 * np.diff(grid)))


@pytest.mark.parametrize("m", [200, 131])
def test_energy_1d_equals_cramer_identity_and_scipy(m):
    x, y = gauss(200, 1, 1), gauss(m, 1, 2, mean=0.4, std=0.7)
    value = energy(x, y, rng=rng())
    assert value == pytest.approx(cramer_statistic(x[:, 0], y[:, 0]), rel=1e-9)
    # scipy reports sqrt(2 * integral (F - G)^2)
    assert value == pytest.approx(stats.energy_distance(x[:, 0], y[:, 0]) ** 2, rel=1e-9)


@pytest.mark.parametrize("d", [2, 10])
def test_energy_matches_brute_force_v_statistic(d):
    x, y = gauss(30, d, 1), gauss(25, d, 2, mean=0.5)

    def mean_dist(a, b):
        return sum(np.linalg.norm(p - q) for p in a for q in b) / (len(a) * len(b))

    expected = 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)
    assert energy(x, y, rng=rng()) == pytest.approx(expected, rel=1e-10)


def test_energy_1d_gaussian_closed_form():
    # E|X-Y| for X-Y ~ N(mu, 2); E|X-X'| = 2/sqrt(pi) for unit variance
    mu, s = 1.0, math.sqrt(2.0)
    e_xy = s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2)) + mu * (1 - 2 * stats.norm.cdf(-mu / s))
    expected = 2 * e_xy - 2 * (2 / math.sqrt(math.pi))
    value = energy(gauss(2000, 1, 1), gauss(2000, 1, 2, mean=mu), rng=rng())
    assert value == pytest.approx(expected, rel=0.1)


def brute_force_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """The documented recipe, written out with explicit exps per bandwidth."""
    mean, std = y.mean(0), y.std(0)
    xs, ys = (x - mean) / std, (y - mean) / std

    def sq(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    median_sq = np.median(sq(ys[0::2], ys[1::2]))
    total = 0.0
    for c in MMD_BANDWIDTH_MULTIPLES:
        h2 = c * c * median_sq
        k = [np.exp(-sq(a, b) / (2 * h2)).mean() for a, b in ((xs, xs), (ys, ys), (xs, ys))]
        total += k[0] + k[1] - 2 * k[2]
    return total / len(MMD_BANDWIDTH_MULTIPLES)


@pytest.mark.parametrize("d", DIMS)
def test_mmd_matches_brute_force(d):
    x, y = gauss(60, d, 1, mean=0.3), gauss(50, d, 2, std=1.3)
    assert mmd(x, y, rng=rng()) == pytest.approx(brute_force_mmd(x, y), rel=1e-9)


@pytest.mark.parametrize("d", DIMS)
def test_mmd_gaussian_closed_form(d):
    # Population MMD^2 between N(0, I) and N(mu, I) with kernel exp(-|a-b|^2 / (2 h^2)):
    # 2 (h^2 / (h^2 + 2))^(d/2) (1 - exp(-|mu|^2 / (2 (h^2 + 2)))); the median of |Y - Y'|^2 is 2 * median(chi2_d).
    mu_sq = d * 0.5**2
    median_sq = 2 * stats.chi2.median(d)
    expected = np.mean(
        [
            2 * (h2 / (h2 + 2)) ** (d / 2) * (1 - math.exp(-mu_sq / (2 * (h2 + 2))))
            for h2 in (c * c * median_sq for c in MMD_BANDWIDTH_MULTIPLES)
        ]
    )
    value = mmd(gauss(2000, d, 1, mean=0.5), gauss(2000, d, 2), rng=rng())
    assert value == pytest.approx(expected, rel=0.15, abs=2e-3)


@pytest.mark.parametrize("d", DIMS)
def test_mmd_and_c2st_invariant_to_column_scaling(d):
    x, y = gauss(200, d, 1, mean=0.5), gauss(200, d, 2)
    scale, offset = np.linspace(0.1, 50.0, d), np.linspace(-3.0, 7.0, d)
    assert mmd(x * scale + offset, y * scale + offset, rng=rng()) == pytest.approx(mmd(x, y, rng=rng()), rel=1e-8)
    assert c2st(x * scale + offset, y * scale + offset, rng=rng(5)) == c2st(x, y, rng=rng(5))


@pytest.mark.parametrize("m", [300, 250])
def test_swd_in_1d_is_exact_w1(m):
    x, y = gauss(300, 1, 1), gauss(m, 1, 2, mean=0.7)
    assert swd(x, y, rng=rng()) == pytest.approx(stats.wasserstein_distance(x[:, 0], y[:, 0]), abs=1e-12)


@pytest.mark.parametrize("d", DIMS)
def test_swd_gaussian_shift_closed_form(d):
    # Projection on a unit direction t turns the shift mu into t.mu, so SW1 = |mu| E|t_1| for t uniform on the
    # sphere, with E|t_1| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)).
    mu = np.full(d, 1.0)
    e_abs = math.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / math.sqrt(math.pi)
    expected = np.linalg.norm(mu) * e_abs
    value = swd(gauss(2000, d, 1) + mu, gauss(2000, d, 2), rng=rng())
    assert value == pytest.approx(expected, rel=0.08, abs=0.04)


@pytest.mark.parametrize("name", ["swd", "c2st"])
def test_random_metrics_are_reproducible(name):
    x, y = gauss(200, 3, 1), gauss(200, 3, 2, mean=0.2)
    assert METRICS[name](x, y, rng=rng(7)) == METRICS[name](x, y, rng=rng(7))


def test_ratio_for_distances():
    metric = METRICS["w1"]
    assert metric.ratio(0.3, 0.1, n_test=100) == pytest.approx(3.0)
    assert metric.ratio(0.0, 0.0, n_test=100) == 1.0
    assert metric.ratio(0.2, 0.0, n_test=100) == math.inf


def test_ratio_for_c2st_uses_excess_over_chance():
    metric = METRICS["c2st"]
    sd = 0.5 / math.sqrt(10_000)
    assert metric.ratio(0.8, 0.5, n_test=10_000) == pytest.approx(0.3 / sd)
    # both at or below chance: both clipped to one null sd, ratio exactly 1
    assert metric.ratio(0.49, 0.5, n_test=10_000) == pytest.approx(1.0)
    assert metric.ratio(0.5 + 2 * sd, 0.5 + 4 * sd, n_test=10_000) == pytest.approx(0.5)
    assert metric.ratio(0.2, 0.9, n_test=10_000) > 0
