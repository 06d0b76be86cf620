"""Scalers: per-column affine maps, their inverses, Jacobians and serialisation."""

import json

import numpy as np
import pytest
from sklearn.datasets import make_moons

from difflab.data.scalers import SCALERS, MinMaxScaler, Scaler, make_scaler, scaler_from_dict
from difflab.errors import ConfigError, DataError

DIMS = [1, 2, 10]
AFFINE = [name for name, cls in SCALERS.items() if cls.affine]  # quantile has tests of its own


def make_data(d: int, n: int = 300, seed: int = 0) -> np.ndarray:
    """Columns with very different offsets and spreads, so per-column handling matters."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-100, 100, d)
    spreads = 10.0 ** rng.uniform(-2, 3, d)
    return offsets + spreads * rng.standard_normal((n, d)) ** 3  # skewed, heavy tails


def affine_matrix(scaler: Scaler, d: int) -> np.ndarray:
    """The linear part A of the map y = A x + b, read off by transforming the origin and unit vectors."""
    origin = scaler.transform(np.zeros((1, d)))
    return (scaler.transform(np.eye(d)) - origin).T


@pytest.mark.parametrize("d", DIMS)
def test_minmax_range(d):
    x = make_data(d)
    y = make_scaler("minmax").fit(x).transform(x)
    np.testing.assert_array_equal(y.min(axis=0), -1.0)
    np.testing.assert_array_equal(y.max(axis=0), 1.0)
    # Against the formula written out independently.
    lo, hi = x.min(axis=0), x.max(axis=0)
    np.testing.assert_allclose(y, (x - lo) / (hi - lo) * 2 - 1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", DIMS)
def test_standard_moments(d):
    x = make_data(d)
    y = make_scaler("standard").fit(x).transform(x)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-9)  # offsets up to 1e4 x spread
    np.testing.assert_allclose(y.std(axis=0, ddof=0), 1.0, rtol=1e-12)


@pytest.mark.parametrize("d", DIMS)
def test_none_is_identity(d):
    x = make_data(d)
    s = make_scaler("none").fit(x)
    np.testing.assert_array_equal(s.transform(x), x)
    np.testing.assert_array_equal(s.inverse_transform(x), x)
    assert s.log_abs_det_jacobian() == 0.0


@pytest.mark.parametrize("name", AFFINE)
@pytest.mark.parametrize("d", DIMS)
def test_inverse_round_trip(name, d):
    x = make_data(d)
    s = make_scaler(name).fit(x)
    # Also on points the scaler was not fitted on.
    x2 = make_data(d, seed=1)
    for data in (x, x2):
        np.testing.assert_allclose(s.inverse_transform(s.transform(data)), data, rtol=1e-12, atol=1e-9)
    y = np.random.default_rng(2).normal(size=(50, d))
    np.testing.assert_allclose(s.transform(s.inverse_transform(y)), y, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", AFFINE)
@pytest.mark.parametrize("d", DIMS)
def test_log_abs_det_jacobian_matches_slogdet(name, d):
    s = make_scaler(name).fit(make_data(d))
    sign, logdet = np.linalg.slogdet(affine_matrix(s, d))
    assert sign != 0
    np.testing.assert_allclose(s.log_abs_det_jacobian(), logdet, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("d", DIMS)
def test_log_det_converts_densities(d):
    # Change of variables: a Gaussian in data units has log density log N_scaled(T x) + log|det J|.
    from scipy import stats

    rng = np.random.default_rng(3)
    mean, std = rng.normal(0, 5, d), rng.uniform(0.5, 4, d)
    x = mean + std * rng.standard_normal((2000, d))
    s = make_scaler("standard").fit(x)
    mu_s, sd_s = s.transform(mean[None])[0], std / s.params["std"]
    pts = x[:5]
    lp_scaled = stats.norm(mu_s, sd_s).logpdf(s.transform(pts)).sum(axis=1)
    lp_data = stats.norm(mean, std).logpdf(pts).sum(axis=1)
    np.testing.assert_allclose(lp_scaled + s.log_abs_det_jacobian(), lp_data, rtol=1e-10)


@pytest.mark.parametrize("name", list(SCALERS))
@pytest.mark.parametrize("d", DIMS)
def test_dict_round_trip(name, d):
    x = make_data(d)
    s = make_scaler(name).fit(x)
    d_json = json.loads(json.dumps(s.to_dict()))
    s2 = scaler_from_dict(d_json)
    assert type(s2) is type(s)
    np.testing.assert_array_equal(s2.transform(x), s.transform(x))
    np.testing.assert_array_equal(s2.inverse_transform(x), s.inverse_transform(x))
    if s.affine:
        assert s2.log_abs_det_jacobian() == s.log_abs_det_jacobian()


@pytest.mark.parametrize("name", ["minmax", "standard", "quantile"])
@pytest.mark.parametrize("d", DIMS)
def test_constant_column_is_named(name, d):
    x = make_data(d)
    x[:, d - 1] = 3.7
    cols = [f"c{i}" for i in range(d)]
    with pytest.raises(DataError, match=rf"column 'c{d - 1}' is constant; it cannot be scaled"):
        make_scaler(name).fit(x, columns=cols)
    with pytest.raises(DataError, match=rf"column {d - 1} is constant"):
        make_scaler(name).fit(x)


def test_constant_column_none_is_fine():
    x = np.ones((5, 2))
    np.testing.assert_array_equal(make_scaler("none").fit(x).transform(x), x)


@pytest.mark.parametrize("name", list(SCALERS))
def test_width_mismatch(name):
    s = make_scaler(name).fit(make_data(3))
    with pytest.raises(DataError, match=r"^scaler was fitted on 3 columns, data has 2$"):
        s.transform(make_data(2))
    with pytest.raises(DataError, match="fitted on 3 columns, data has 10"):
        s.inverse_transform(make_data(10))
    with pytest.raises(DataError, match="2-D"):
        s.transform(np.zeros(3))


def test_unknown_scaler_and_bad_dict():
    with pytest.raises(ConfigError, match=r"unknown scaler 'robust'; choose one of: minmax, standard, none, quantile"):
        make_scaler("robust")
    with pytest.raises(ConfigError):
        scaler_from_dict({"name": "minmax", "n_features": 2, "min": [0.0]})
    with pytest.raises(ConfigError):
        scaler_from_dict({"name": "minmax", "n_features": 2})
    with pytest.raises(ConfigError):
        scaler_from_dict({"n_features": 2})


def test_unfitted_use_is_a_programming_error():
    with pytest.raises(RuntimeError):
        make_scaler("minmax").transform(np.zeros((2, 2)))


def test_tutorial_moons_minmax():
    x = make_moons(n_samples=1002, noise=None, shuffle=True, random_state=0)[0]  # 501 points per moon
    s = MinMaxScaler().fit(x)
    y = s.transform(x)
    assert np.all((y >= -1.0) & (y <= 1.0))
    np.testing.assert_array_equal(y.min(axis=0), -1.0)
    np.testing.assert_array_equal(y.max(axis=0), 1.0)
    # Data ranges are x in [-1, 2] and y in [-0.5, 1]; the outer moon's top (0, 1) maps to (-1/3, 1).
    np.testing.assert_allclose(s.params["min"], [-1.0, -0.5], atol=1e-15)
    np.testing.assert_allclose(s.params["max"], [2.0, 1.0], atol=1e-15)
    top = y[np.argmax(x[:, 1])]
    np.testing.assert_allclose(top, [-1 / 3, 1.0], atol=1e-12)
    np.testing.assert_allclose(s.log_abs_det_jacobian(), np.log(2 / 3) + np.log(2 / 1.5), rtol=1e-14)
