"""The table metrics against independent computations: distance to closest record, KS, total variation,
correlation difference, piling at range ends, ML efficacy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import cdist

from difflab.data.columns import plan_kinds
from difflab.data.table import fit_table
from difflab.errors import ConfigError, DataError
from difflab.evaluation.efficacy import ml_efficacy
from difflab.evaluation.marginals import (
    column_distances,
    correlation_difference,
    ks_statistic,
    piled_at_bounds,
    total_variation,
)
from difflab.evaluation.privacy import distance_to_closest_record
from difflab.evaluation.tables import table_checks

DIMS = [1, 2, 10]


# --- distance to closest record ----------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_dcr_matches_brute_force(d):
    rng = np.random.default_rng(d)
    train, held, gen = rng.normal(size=(300, d)), rng.normal(size=(120, d)), rng.normal(size=(200, d)) * 1.3
    r = distance_to_closest_record(gen, train, held, n=1000)
    d_gen, d_held = cdist(gen, train).min(axis=1), cdist(held, train).min(axis=1)
    assert r["generated_to_train"] == pytest.approx(np.median(d_gen))
    assert r["heldout_to_train"] == pytest.approx(np.median(d_held))
    assert r["ratio"] == pytest.approx(np.median(d_gen) / np.median(d_held))
    cut = np.quantile(d_held, 0.05)
    assert r["share_closer"] == pytest.approx(np.mean(d_gen < cut))
    assert (r["n_generated"], r["n_heldout"]) == (200, 120)


@pytest.mark.parametrize("d", DIMS)
def test_dcr_tells_copies_from_new_draws(d):
    rng = np.random.default_rng(10 + d)
    train = rng.normal(size=(400, d))
    fresh = distance_to_closest_record(rng.normal(size=(400, d)), train, rng.normal(size=(400, d)))
    copies = distance_to_closest_record(train[rng.integers(0, 400, 400)] + 1e-6, train, rng.normal(size=(400, d)))
    assert 0.75 < fresh["ratio"] < 1.33 and fresh["share_closer"] < 0.12  # new data: about 1 and 5 %
    assert copies["ratio"] < 0.01 and copies["share_closer"] == 1.0
    # nearer to one of 400 training rows than to one of 400 held-out rows: ½ ± 4 se for new data, all for copies
    assert abs(fresh["nearer_train"] - 0.5) < 4 * 0.5 / 20 and copies["nearer_train"] == 1.0


@pytest.mark.parametrize("d", DIMS)
def test_nearer_train_uses_as_many_training_as_held_out_rows(d):
    """With 4x more training rows, new data lie nearer to a training row 80 % of the time; the subset of as many
    training rows as held-out rows brings that back to ½ (brute force on the same subset, same seed)."""
    rng = np.random.default_rng(20 + d)
    train, held, gen = rng.normal(size=(1600, d)), rng.normal(size=(400, d)), rng.normal(size=(400, d))
    r = distance_to_closest_record(gen, train, held, n=400, seed=3)
    assert r["nearer_train_rows"] == 400 and abs(r["nearer_train"] - 0.5) < 0.1
    whole = np.mean(cdist(gen, train).min(axis=1) < cdist(gen, held).min(axis=1))
    assert whole > 0.7


def test_dcr_bad_input():
    x = np.zeros((5, 2))
    with pytest.raises(DataError, match="columns"):
        distance_to_closest_record(x, np.zeros((5, 3)), x)
    with pytest.raises(DataError, match="non-finite"):
        distance_to_closest_record(np.full((5, 2), np.nan), x, x)
    with pytest.raises(ConfigError):
        distance_to_closest_record(x, x, x, quantile=1.5)


# --- per-column distances, correlations, piling ----------------------------------------------------------


def test_ks_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for a, b in [(rng.normal(size=200), rng.normal(0.3, 1.0, 150)),
                 (rng.integers(0, 5, 300).astype(float), rng.integers(0, 6, 100).astype(float))]:
        assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert ks_statistic([1.0, 2.0], [1.0, 2.0]) == 0.0


def test_total_variation_by_hand():
    a = pd.Series(["x", "x", "y", None])  # x ½, y ¼, missing ¼
    b = pd.Series(["x", "z", "z", "z"])  # x ¼, z ¾
    assert total_variation(a, b) == pytest.approx(0.5 * (0.25 + 0.25 + 0.25 + 0.75))
    assert total_variation(a, a) == 0.0


@pytest.mark.parametrize("d", DIMS)
def test_correlation_difference_by_hand(d):
    rng = np.random.default_rng(d)
    a, b = rng.normal(size=(500, d)), rng.normal(size=(400, d))
    a[:, -1] += a[:, 0]
    if d == 1:
        assert correlation_difference(a, b) == 0.0
        return
    i, j = np.triu_indices(d, k=1)
    expected = np.mean(np.abs(np.corrcoef(a, rowvar=False)[i, j] - np.corrcoef(b, rowvar=False)[i, j]))
    assert correlation_difference(a, b) == pytest.approx(expected, abs=1e-12)
    b[:, 0] = 3.0  # a constant column correlates 0
    assert np.isfinite(correlation_difference(a, b))


def test_piled_at_bounds_counts_ends_and_beyond():
    x = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, np.nan], [-1.0, 7.0]])
    np.testing.assert_allclose(piled_at_bounds(x, np.array([0.0, 5.0]), np.array([2.0, 9.0])), [0.75, 2 / 3])


def test_column_distances_by_kind():
    a = pd.DataFrame({"n": [1.0, 2.0, 3.0], "c": ["u", "u", "v"], "k": [1, 1, 1]})
    b = pd.DataFrame({"n": [1.0, 2.0, 5.0], "c": ["u", "v", "v"], "k": [1, 1, 1]})
    out = column_distances(a, b, {"n": "continuous", "c": "categorical", "k": "constant"})
    assert out == {"n": {"stat": "ks", "value": pytest.approx(1 / 3)}, "c": {"stat": "tv", "value": pytest.approx(1 / 3)}}


# --- ML efficacy ---------------------------------------------------------------------------------------


def labelled(n: int, seed: int) -> pd.DataFrame:
    """Two informative numbers, a label column, and a class target decided by them (plus 10 % noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    cls = np.where(x[:, 0] + x[:, 1] > 0, "hi", "lo")
    flip = rng.random(n) < 0.1
    cls[flip] = np.where(cls[flip] == "hi", "lo", "hi")
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "colour": rng.choice(["r", "g"], n), "target": cls,
                         "y": 2 * x[:, 0] - x[:, 1] + 0.1 * rng.normal(size=n)})


def test_efficacy_of_the_training_rows_themselves_is_one():
    train, test = labelled(300, 0), labelled(200, 1)
    spec = fit_table(train, plan_kinds(train, {}, source="t"))
    for target, task in (("target", "classification"), ("y", "regression")):
        r = ml_efficacy(train, train, test, spec=spec, target=target, seed=3)
        assert r["task"] == task and r["ratio"] == 1.0 and r["synthetic"] == r["real"]
        assert r["real"] > (0.8 if task == "classification" else 0.9)  # the forest learns the rule


def test_efficacy_sees_lost_labels_and_scores_like_sklearn():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import f1_score

    train, test = labelled(300, 0), labelled(200, 1)
    spec = fit_table(train, plan_kinds(train, {}, source="t"))
    shuffled = train.assign(target=np.random.default_rng(5).permutation(train["target"].to_numpy()))
    r = ml_efficacy(shuffled, train, test, spec=spec, target="target", seed=0)
    assert r["ratio"] < 0.75  # labels no longer follow the features
    # The real score by hand: the same forest on the same one-hot features.
    feats = lambda f: np.column_stack([f["a"], f["b"], f["colour"] == "g", f["colour"] == "r", f["y"]])  # noqa: E731
    model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(feats(train), train["target"])
    assert r["real"] == pytest.approx(f1_score(test["target"], model.predict(feats(test)), average="macro"))


def test_table_checks_of_real_rows_sit_at_their_floor():
    train, test = labelled(300, 0), labelled(200, 1)
    spec = fit_table(train, plan_kinds(train, {}, source="t"))
    checks = table_checks(train, train, test, spec, target="target")
    assert checks["columns"]["mean"] == checks["columns"]["floor"]
    assert checks["correlation"]["value"] == checks["correlation"]["floor"]
    assert checks["efficacy"]["ratio"] == 1.0
    assert checks["piled"]["synthetic"] == pytest.approx(2 / 300, abs=1e-9)  # the minimum and the maximum row
    # A generator too wide in 'a' that clips to the training range puts a heap at both ends.
    lo, hi = train["a"].min(), train["a"].max()
    clipped = train.assign(a=(3.0 * train["a"]).clip(lo, hi))
    piled = table_checks(clipped, train, test, spec)["piled"]
    share = np.mean((clipped["a"] <= lo) | (clipped["a"] >= hi))
    assert piled["worst"] == "a" and piled["synthetic"] == pytest.approx(share) and share > 0.1
