"""The quantile-normal scaler against scikit-learn's QuantileTransformer, and the table scaler's two blocks."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.preprocessing import QuantileTransformer

from difflab.data.scalers import QuantileScaler, TableScaler, make_scaler, scaler_from_dict
from difflab.errors import ConfigError

DIMS = [1, 2, 10]


def mixed_columns(d: int, n: int = 400, seed: int = 0) -> np.ndarray:
    """Skewed continuous columns, and every third column discrete (repeated values: ties across knots)."""
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0.0, 1.0, (n, d)) * 10.0 ** rng.uniform(-2, 3, d)
    x[:, ::3] = rng.integers(0, 5, (n, len(range(0, d, 3))))
    return x


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n", [50, 3000])  # fewer rows than 1000 quantiles, and more
def test_matches_sklearn_forward_and_inverse(d, n):
    x = mixed_columns(d, n)
    ours = QuantileScaler().fit(x)
    ref = QuantileTransformer(n_quantiles=min(1000, n), output_distribution="normal", subsample=None).fit(x)
    # Points inside, at and beyond the fitted range, and normal scores far in the tails.
    probe = np.vstack([mixed_columns(d, 200, seed=1), x.min(axis=0) - 1.0, x.max(axis=0) + 1.0, x[:5]])
    np.testing.assert_allclose(ours.transform(probe), ref.transform(probe), rtol=1e-12, atol=1e-12)
    y = np.random.default_rng(2).normal(0.0, 2.5, (300, d))
    y[0], y[1] = -9.0, 9.0
    np.testing.assert_allclose(ours.inverse_transform(y), ref.inverse_transform(y), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", DIMS)
def test_inverse_is_exact_at_the_knots_and_stays_in_range(d):
    x = np.random.default_rng(3).standard_t(3, (500, d)) * 7.0  # heavy tails, all values distinct
    s = QuantileScaler().fit(x)
    knots = s.params["quantiles"]
    np.testing.assert_allclose(s.inverse_transform(s.transform(knots)), knots, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(s.inverse_transform(s.transform(x)), x, rtol=1e-9, atol=1e-9)
    far = s.inverse_transform(np.full((2, d), [[-50.0], [50.0]]))
    np.testing.assert_array_equal(far, np.vstack([knots[0], knots[-1]]))


@pytest.mark.parametrize("d", DIMS)
def test_training_columns_become_standard_normal(d):
    x = np.random.default_rng(4).exponential(3.0, (4000, d)) ** 2
    y = QuantileScaler().fit(x).transform(x)
    for j in range(d):  # the scores' distribution is N(0, 1) up to the 1000-knot interpolation
        assert stats.kstest(y[:, j], "norm").statistic < 0.01


def test_dict_round_trip_and_not_affine():
    x = mixed_columns(4)
    s = make_scaler("quantile").fit(x)
    s2 = scaler_from_dict(json.loads(json.dumps(s.to_dict())))
    assert isinstance(s2, QuantileScaler)
    np.testing.assert_array_equal(s2.transform(x), s.transform(x))
    y = np.random.default_rng(5).normal(size=(20, 4))
    np.testing.assert_array_equal(s2.inverse_transform(y), s.inverse_transform(y))
    with pytest.raises(ConfigError, match="quantile scaler is not affine"):
        s.log_abs_det_jacobian()
    bad = s.to_dict()
    bad["quantiles"] = bad["quantiles"][::-1]  # decreasing: not quantiles
    with pytest.raises(ConfigError, match="non-decreasing"):
        scaler_from_dict(bad)


# --- the table scaler ------------------------------------------------------------------------------


def table_features(d: int, n: int = 300, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """d numeric columns (different units) and d indicator columns in {0, 1}, interleaved."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, 2 * d))
    x[:, 0::2] = rng.normal(50.0, 20.0, (n, d)) * np.arange(1, d + 1)
    x[:, 1::2] = rng.integers(0, 2, (n, d))
    return x, list(range(1, 2 * d, 2))


@pytest.mark.parametrize("inner", ["minmax", "standard", "none", "quantile"])
@pytest.mark.parametrize("d", DIMS)
def test_table_scaler_blocks(inner, d):
    x, ind = table_features(d)
    s = TableScaler(make_scaler(inner), ind, 2 * d).fit(x)
    y = s.transform(x)
    np.testing.assert_array_equal(y[:, ind], 2.0 * x[:, ind] - 1.0)  # indicators to {-1, +1}
    alone = make_scaler(inner).fit(x[:, 0::2])  # the numbers as if the indicators were not there
    np.testing.assert_allclose(y[:, 0::2], alone.transform(x[:, 0::2]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(y), x, rtol=1e-9, atol=1e-9)
    s2 = scaler_from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(s2.transform(x), y)
    assert s.affine == (inner != "quantile")
    if s.affine:  # log|det| of the whole map, read off its matrix
        origin = s.transform(np.zeros((1, 2 * d)))
        matrix = (s.transform(np.eye(2 * d)) - origin).T
        np.testing.assert_allclose(s.log_abs_det_jacobian(), np.linalg.slogdet(matrix)[1], rtol=1e-9)


def test_table_scaler_all_indicators_and_bad_settings():
    x = np.random.default_rng(0).integers(0, 2, (10, 3)).astype(float)
    s = TableScaler(None, [0, 1, 2], 3).fit(x)
    np.testing.assert_array_equal(s.transform(x), 2 * x - 1)
    assert s.log_abs_det_jacobian() == pytest.approx(3 * np.log(2.0))
    np.testing.assert_array_equal(scaler_from_dict(s.to_dict()).transform(x), 2 * x - 1)
    with pytest.raises(ConfigError, match="invalid table scaler"):
        scaler_from_dict({**s.to_dict(), "indicators": [0, 5]})
    with pytest.raises(ConfigError, match="invalid table scaler"):
        scaler_from_dict({**s.to_dict(), "indicators": [0]})  # numeric features but no inner scaler
