"""Toy distributions: the i.i.d. samplers describe the same distributions as the training recipes."""

import numpy as np
import ot
import pytest
from scipy import stats
from scipy.spatial import cKDTree

from difflab.data.toy import (
    DATASETS,
    EIGHT_GAUSSIANS_RADIUS,
    EIGHT_GAUSSIANS_STD,
    RINGS_RADII,
    GaussianMixture,
    get_dataset,
    list_datasets,
)
from difflab.errors import ConfigError

NAMES = list(DATASETS)


def w1(a: np.ndarray, b: np.ndarray) -> float:
    """Exact 1-Wasserstein distance between two equal-weight point clouds."""
    wa, wb = np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b))
    return float(ot.emd2(wa, wb, ot.dist(a, b, "euclidean")))


# --- every dataset --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["recipe", "iid"])
@pytest.mark.parametrize("n", [1, 7, 500])
def test_shape_dtype_finite(name, kind, n):
    x = getattr(DATASETS[name], kind)(n, 3)
    assert x.shape == (n, 2)
    assert x.dtype == np.float64
    assert np.all(np.isfinite(x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["recipe", "iid"])
def test_seeds_reproduce_and_differ(name, kind):
    f = getattr(DATASETS[name], kind)
    np.testing.assert_array_equal(f(200, 5), f(200, 5))
    assert not np.allclose(f(200, 5), f(200, 6))


@pytest.mark.parametrize("name", NAMES)
def test_iid_and_recipe_use_different_streams(name):
    # Evaluation data drawn with the training seed must not repeat the training points.
    t = DATASETS[name]
    a, b = t.recipe(300, 0), t.iid(300, 0)
    d = np.min(np.linalg.norm(a[:, None] - b[None], axis=-1), axis=1)
    assert np.mean(d < 1e-12) < 0.05


@pytest.mark.parametrize("name", NAMES)
def test_w1_between_recipe_and_iid_is_small(name):
    t = DATASETS[name]
    a, b = t.recipe(500, 11), t.iid(500, 12)
    base = w1(a, b)
    # Two independent i.i.d. samples give the sampling noise floor at this size.
    floor = w1(t.iid(500, 13), t.iid(500, 14))
    shift = np.array([0.5 * np.linalg.norm(a.std(axis=0)), 0.0])
    shifted = w1(a, b + shift)
    assert base < 0.35 * shifted
    assert base < 1.5 * floor


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("coord", [0, 1])
def test_marginals_match_two_sample_ks(name, coord):
    t = DATASETS[name]
    a, b = t.recipe(3000, 21), t.iid(3000, 22)
    assert stats.ks_2samp(a[:, coord], b[:, coord]).pvalue > 1e-3


def test_registry_lookup_and_listing():
    assert get_dataset("moons") is DATASETS["moons"]
    expected = {"moons", "circles", "swissroll", "scurve", "blobs", "8gaussians", "checkerboard",
                "pinwheel", "2spirals", "rings"}
    assert set(DATASETS) == expected
    listing = list_datasets()
    assert [name for name, _ in listing] == list(DATASETS)
    for name, desc in listing:
        assert DATASETS[name].name == name
        assert desc and "\n" not in desc
    with pytest.raises(ConfigError, match=r"unknown dataset 'foo'; choose one of: moons, circles"):
        get_dataset("foo")


@pytest.mark.parametrize("n, seed", [(0, 0), (-3, 0), (2.5, 0), (10, -1), (10, 2**32), (10, 1.5)])
def test_bad_n_or_seed_is_config_error(n, seed):
    for t in DATASETS.values():
        with pytest.raises(ConfigError):
            t.recipe(n, seed)
        with pytest.raises(ConfigError):
            t.iid(n, seed)


# --- moons and circles: i.i.d. points lie on the recipe's curves --------------------------------------


def nearest(points: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return cKDTree(ref).query(points)[0]


@pytest.mark.parametrize("name, spacing", [("moons", np.pi / 10_000), ("circles", 2 * np.pi / 10_000)])
def test_iid_points_lie_on_recipe_curves_and_back(name, spacing):
    t = DATASETS[name]
    dense = t.recipe(20_000, 0)  # about 10 000 evenly spaced points per curve
    iid = t.iid(2000, 1)
    # Half the gap between neighbouring grid points on a radius-1 arc bounds the distance.
    assert nearest(iid, dense).max() < spacing
    # And the supports coincide: the recipe's points are near dense i.i.d. points too.
    assert nearest(t.recipe(400, 2), t.iid(40_000, 3)).max() < 0.01


def test_moons_iid_arcs_and_proportions():
    x = DATASETS["moons"].iid(20_000, 4)
    outer = np.isclose(x[:, 0] ** 2 + x[:, 1] ** 2, 1.0) & (x[:, 1] >= 0)
    inner = np.isclose((1 - x[:, 0]) ** 2 + (0.5 - x[:, 1]) ** 2, 1.0) & (x[:, 1] <= 0.5)
    assert np.all(outer | inner)
    frac = outer.mean()
    assert abs(frac - 0.5) < 4 * np.sqrt(0.25 / len(x))
    # Angles are uniform on [0, pi] on both arcs.
    assert stats.kstest(np.arctan2(x[outer, 1], x[outer, 0]), "uniform", args=(0, np.pi)).pvalue > 1e-3
    assert stats.kstest(np.arctan2(0.5 - x[inner, 1], 1 - x[inner, 0]), "uniform",
                        args=(0, np.pi)).pvalue > 1e-3


def test_moons_iid_is_bernoulli_not_exact_split():
    # An exact half split would give 50 outer points for every seed.
    counts = {int((DATASETS["moons"].iid(100, s)[:, 1] > 0.5).sum()) for s in range(20)}
    assert len(counts) > 3


def test_circles_iid_radii_and_proportions():
    x = DATASETS["circles"].iid(20_000, 4)
    r = np.linalg.norm(x, axis=1)
    outer = np.isclose(r, 1.0)
    assert np.all(outer | np.isclose(r, 0.5))
    assert abs(outer.mean() - 0.5) < 4 * np.sqrt(0.25 / len(x))
    angle = np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * np.pi)
    assert stats.kstest(angle, "uniform", args=(0, 2 * np.pi)).pvalue > 1e-3


def gap_cv(angles: np.ndarray) -> float:
    """Coefficient of variation of the gaps between sorted angles: ~0 on a grid, ~1 for i.i.d. draws."""
    gaps = np.diff(np.sort(angles))
    return float(gaps.std() / gaps.mean())


@pytest.mark.parametrize("name", ["moons", "circles"])
def test_iid_angles_are_not_a_grid_but_recipe_angles_are(name):
    t = DATASETS[name]

    def outer_angles(x):
        on = np.isclose(np.linalg.norm(x, axis=1), 1.0) & (x[:, 1] >= -1e-12 if name == "moons" else True)
        return np.arctan2(x[on, 1], x[on, 0])

    assert gap_cv(outer_angles(t.iid(1000, 0))) > 0.5
    assert gap_cv(outer_angles(t.recipe(1000, 0))) < 0.01


# --- swiss roll and S curve ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["recipe", "iid"])
def test_swissroll_is_t_cos_t_with_uniform_t(kind):
    x = getattr(DATASETS["swissroll"], kind)(5000, 7)
    t = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(x, np.column_stack([t * np.cos(t), t * np.sin(t)]), atol=1e-9)
    assert stats.kstest(t, "uniform", args=(1.5 * np.pi, 3 * np.pi)).pvalue > 1e-3


@pytest.mark.parametrize("kind", ["recipe", "iid"])
def test_scurve_points_lie_on_the_s(kind):
    x = getattr(DATASETS["scurve"], kind)(5000, 7)
    # The branch y = sign(t)(cos t - 1) gives |y| = 1 - cos t, so x^2 + (|y| - 1)^2 = 1.
    np.testing.assert_allclose(x[:, 0] ** 2 + (np.abs(x[:, 1]) - 1) ** 2, 1.0, atol=1e-9)
    # t uniform on [-1.5 pi, 1.5 pi] makes P(y > 0) = 1/2.
    assert abs((x[:, 1] > 0).mean() - 0.5) < 4 * np.sqrt(0.25 / len(x))


# --- FFJORD-style toys ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["recipe", "iid"])
def test_checkerboard_uniform_on_dark_squares(kind):
    x = getattr(DATASETS["checkerboard"], kind)(16_000, 8)
    assert np.all((x >= -4) & (x <= 4))
    cells = np.floor((x + 4) / 2).astype(int)
    assert np.all(cells.sum(axis=1) % 2 == 0)
    counts = np.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)[[0, 2, 5, 7, 8, 10, 13, 15]]
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("kind", ["recipe", "iid"])
def test_rings_radii_and_proportions(kind):
    x = getattr(DATASETS["rings"], kind)(16_000, 8)
    r = np.linalg.norm(x, axis=1)
    ring = np.argmin(np.abs(r[:, None] - RINGS_RADII[None]), axis=1)
    assert np.abs(r - RINGS_RADII[ring]).max() < 0.6  # noise std 0.08, rings 0.75 apart
    assert stats.chisquare(np.bincount(ring, minlength=4)).pvalue > 1e-3


def rotate(x: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return x @ np.array([[c, s], [-s, c]])


def test_pinwheel_has_five_fold_symmetry():
    t = DATASETS["pinwheel"]
    a, b = t.recipe(500, 1), t.iid(500, 2)
    floor = w1(a, b)
    assert w1(a, rotate(b, 2 * np.pi / 5)) < 1.5 * floor
    assert w1(a, rotate(b, np.pi / 5)) > 2.0 * floor


def test_two_spirals_are_point_symmetric():
    t = DATASETS["2spirals"]
    a, b = t.recipe(500, 1), t.iid(500, 2)
    floor = w1(a, b)
    assert w1(a, -b) < 1.5 * floor
    assert w1(a, rotate(b, np.pi / 2)) > 2.0 * floor


# --- Gaussian mixtures ----------------------------------------------------------------------------


def random_mixture(d: int, seed: int) -> GaussianMixture:
    rng = np.random.default_rng(seed)
    k = 3
    w = rng.dirichlet(np.ones(k) * 2)
    means = rng.normal(0, 2, (k, d))
    a = rng.normal(0, 1, (k, d, d)) / np.sqrt(d)
    covs = a @ a.transpose(0, 2, 1) + 0.2 * np.eye(d)
    return GaussianMixture(w, means, covs)


@pytest.mark.parametrize("d", [1, 2, 10])
def test_mixture_sample_moments(d):
    gm = random_mixture(d, d)
    n = 200_000
    x = gm.sample(n, 0)
    assert x.shape == (n, d) and x.dtype == np.float64
    mean = gm.weights @ gm.means
    second = np.einsum("k,kij->ij", gm.weights, gm.covs + gm.means[:, :, None] * gm.means[:, None, :])
    cov = second - np.outer(mean, mean)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=float(5 * sd.max() / np.sqrt(n)))
    # Relative to the scale of each entry; a fourth-moment bound would be tighter but this catches
    # a wrong factor (e.g. covs used where their square root belongs).
    emp = np.cov(x.T, bias=True).reshape(d, d)
    np.testing.assert_allclose(emp, cov, atol=float(0.03 * np.outer(sd, sd).max()))


@pytest.mark.parametrize("d", [1, 2, 10])
def test_mixture_component_weights(d):
    gm = random_mixture(d, 100 + d)
    gm = GaussianMixture(gm.weights, gm.means * 0 + 50 * np.arange(3)[:, None], gm.covs)  # far apart
    x = gm.sample(30_000, 1)
    label = np.argmin(np.linalg.norm(x[:, None] - gm.means[None], axis=-1), axis=1)
    frac = np.bincount(label, minlength=3) / len(x)
    np.testing.assert_allclose(frac, gm.weights, atol=float(5 * np.sqrt(0.25 / len(x))))


@pytest.mark.parametrize("d", [1, 2, 10])
def test_mixture_log_prob_matches_scipy(d):
    gm = random_mixture(d, 7 + d)
    x = np.random.default_rng(0).normal(0, 3, (50, d))
    parts = zip(gm.weights, gm.means, gm.covs, strict=True)
    dens = sum(w * stats.multivariate_normal(m, c).pdf(x) for w, m, c in parts)
    np.testing.assert_allclose(gm.log_prob(x), np.log(dens).reshape(-1), rtol=1e-10)


def test_mixture_sample_seeded():
    gm = random_mixture(2, 0)
    np.testing.assert_array_equal(gm.sample(100, 3), gm.sample(100, 3))
    assert not np.allclose(gm.sample(100, 3), gm.sample(100, 4))


def test_mixture_validates_shapes():
    with pytest.raises(ValueError):
        GaussianMixture(np.array([0.5, 0.6]), np.zeros((2, 2)), np.tile(np.eye(2), (2, 1, 1)))
    with pytest.raises(ValueError):
        GaussianMixture(np.array([1.0]), np.zeros((1, 2)), np.eye(3)[None])


def test_eight_gaussians_geometry():
    gm = DATASETS["8gaussians"].mixture
    assert gm is not None
    np.testing.assert_allclose(np.linalg.norm(gm.means, axis=1), EIGHT_GAUSSIANS_RADIUS)
    angles = np.sort(np.mod(np.arctan2(gm.means[:, 1], gm.means[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, np.arange(8) * np.pi / 4, atol=1e-12)
    np.testing.assert_allclose(gm.covs, np.tile(np.eye(2) * EIGHT_GAUSSIANS_STD**2, (8, 1, 1)))
    np.testing.assert_allclose(gm.weights, 1 / 8)


@pytest.mark.parametrize("name", ["blobs", "8gaussians"])
def test_mixture_toys_sample_their_mixture(name):
    t = DATASETS[name]
    assert t.mixture is not None
    x = t.recipe(500, 0)
    y = t.mixture.sample(500, 99)
    other = GaussianMixture(t.mixture.weights, t.mixture.means * 1.3, t.mixture.covs)
    assert w1(x, y) < 0.5 * w1(x, other.sample(500, 99))
    # Mean log density under the mixture matches its negative entropy estimated from its own samples.
    assert abs(t.mixture.log_prob(t.iid(20_000, 1)).mean() - t.mixture.log_prob(y).mean()) < 0.15


def test_non_mixture_toys_have_no_mixture():
    assert {n for n, t in DATASETS.items() if t.mixture is not None} == {"blobs", "8gaussians"}
