"""The baselines against closed forms and their construction: the Gaussian copula keeps Gaussian correlations and
the marginals; SMOTE-style rows lie on segments between same-class nearest neighbours."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from difflab.data.columns import plan_kinds
from difflab.data.table import fit_table
from difflab.errors import ConfigError
from difflab.tabular.baselines import GaussianCopula, Interpolation

DIMS = [1, 2, 10]


def gaussian_table(d: int, n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of N(0, Σ) with Σ_ij = 0.6^|i - j| (an AR(1) correlation), one column shifted and cubed."""
    idx = np.arange(d)
    cov = 0.6 ** np.abs(idx[:, None] - idx[None, :])
    x = np.random.default_rng(seed).multivariate_normal(np.zeros(d), cov, n)
    frame = pd.DataFrame(x, columns=[f"c{j}" for j in range(d)])
    frame["c0"] = (frame["c0"] + 2.0) ** 3  # monotone: the copula's rank correlations do not see it
    return frame, cov


@pytest.mark.parametrize("d", DIMS)
def test_copula_keeps_marginals_and_gaussian_correlations(d):
    frame, cov = gaussian_table(d)
    spec = fit_table(frame, plan_kinds(frame, {}, source="t"))
    out = GaussianCopula().fit(frame, spec).sample(3000, seed=1)
    assert list(out.columns) == list(frame.columns) and out.dtypes.equals(frame.dtypes)
    for c in frame.columns:  # every marginal as in the data
        assert stats.ks_2samp(out[c], frame[c]).statistic < 0.05
    if d > 1:  # normal scores of the generated rows correlate as the true Σ says (closed form for a Gaussian)
        z = stats.norm.ppf((stats.rankdata(out.to_numpy(), axis=0) - 0.5) / len(out))
        np.testing.assert_allclose(np.corrcoef(z, rowvar=False), cov, atol=0.06)


def test_copula_labels_and_integers_keep_frequencies():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 2000, p=[0.6, 0.3, 0.1]), "k": rng.integers(0, 7, 2000)})
    spec = fit_table(frame, plan_kinds(frame, {}, source="t"))
    out = GaussianCopula().fit(frame, spec).sample(4000, seed=2)
    freq = out["c"].value_counts(normalize=True)
    np.testing.assert_allclose([freq["a"], freq["b"], freq["c"]], [0.6, 0.3, 0.1], atol=0.03)
    assert out["k"].dtype == np.int64 and out["k"].between(0, 6).all()


@pytest.mark.parametrize("d", DIMS)
def test_interpolation_rows_lie_between_same_class_neighbours(d):
    rng = np.random.default_rng(d)
    frame = pd.DataFrame(rng.normal(size=(60, d)), columns=[f"x{j}" for j in range(d)])
    frame["target"] = rng.choice(["p", "q"], 60)
    spec = fit_table(frame, plan_kinds(frame, {}, source="t"))
    model = Interpolation(k=3, target="target").fit(frame, spec)
    out = model.sample(40, seed=0)
    x, y = frame.drop(columns="target").to_numpy(), out.drop(columns="target").to_numpy()
    for row, cls in zip(y, out["target"]):
        # Some pair (i, j) of rows of class cls, j among i's 3 nearest, has row = x_i + λ (x_j - x_i), λ in [0, 1].
        found = False
        for i in np.flatnonzero(frame["target"] == cls):
            for j in model.neighbours[i]:
                assert frame["target"][j] == cls
                step = x[j] - x[i]
                lam = float(np.dot(row - x[i], step) / np.dot(step, step))
                found |= 0.0 <= lam <= 1.0 and np.allclose(x[i] + lam * step, row, atol=1e-9)
        assert found


def test_interpolation_is_reproducible_and_checks_k():
    frame, _ = gaussian_table(2, 100)
    spec = fit_table(frame, plan_kinds(frame, {}, source="t"))
    model = Interpolation().fit(frame, spec)
    pd.testing.assert_frame_equal(model.sample(20, seed=4), model.sample(20, seed=4))
    with pytest.raises(ConfigError, match="k must be at least 1"):
        Interpolation(k=0)
