"""Imputing a table with a trained run (difflab.impute, TabularDiffusion.impute): observed cells untouched in value and
dtype, every missing cell filled with a valid value, multiple imputation, the point estimate, and one-line refusals.
The model is tiny: these tests check the plumbing; the quality is benchmarks/impute.py's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from difflab import TabularDiffusion
from difflab.data.condition import Condition
from difflab.errors import ConfigError, DataError
from difflab.impute import _known_features, impute_features, impute_frame, missing_levels, observe_frame, point_estimate
from helpers import people_table

FAST = {"steps": 60, "width": 32, "depth": 1, "T": 20}
QUICK = {"resample": 2, "jump": 2}


def holes(df: pd.DataFrame, share: float = 0.3, seed: int = 1) -> pd.DataFrame:
    """``df`` with a share of its cells missing (NaN for numbers, None for labels), as a user's frame would be."""
    mask = np.random.default_rng(seed).random(df.shape) < share
    out = df.copy()
    for j, c in enumerate(df.columns):
        labels = df[c].dtype == bool or isinstance(df[c].dtype, pd.CategoricalDtype)
        if labels:
            out[c] = df[c].astype(object).where(~mask[:, j])
        else:  # ints with NaN become floats, floats keep their width
            out[c] = (df[c] if df[c].dtype.kind == "f" else df[c].astype(np.float64)).where(~mask[:, j])
    return out


@pytest.fixture(scope="module")
def fitted():
    df = people_table()
    return df, TabularDiffusion(**FAST, seed=0).fit(df)


def test_observed_cells_stay_and_missing_cells_are_filled(fitted):
    df, model = fitted
    inc = holes(df)
    (out,) = impute_frame(model.run_, inc, seed=0, **QUICK)
    assert list(out.columns) == list(df.columns) and out.dtypes.equals(df.dtypes)  # widened dtypes restored
    assert not out.isna().any().any()
    for c in df.columns:
        seen = inc[c].notna().to_numpy()
        assert np.array_equal(out[c].to_numpy()[seen], df[c].to_numpy()[seen]), c  # float32 bits included
    assert set(out["city"]) <= {"Bern", "Oslo", "Pisa"} and set(out["code"]) <= {1.0, 2.0}
    assert out["age"].between(df["age"].min(), df["age"].max()).all()


def test_draws_are_seeded_and_differ(fitted):
    df, model = fitted
    inc = holes(df)
    a = impute_frame(model.run_, inc, draws=3, seed=4, **QUICK)
    b = impute_frame(model.run_, inc, draws=3, seed=4, **QUICK)
    assert len(a) == 3 and all(x.equals(y) for x, y in zip(a, b, strict=True))
    gone = inc["height"].isna()
    assert not np.array_equal(a[0]["height"][gone], a[1]["height"][gone])
    assert not a[0].equals(impute_frame(model.run_, inc, seed=5, **QUICK)[0])


def test_estimator_impute(fitted):
    df, model = fitted
    inc = holes(df)
    out = model.impute(inc, seed=0, **QUICK)
    assert isinstance(out, pd.DataFrame) and not out.isna().any().any()
    assert len(model.impute(inc.head(1).assign(age=np.nan), draws=2, **QUICK)) == 2  # one row, two draws
    x = np.random.default_rng(0).normal(size=(60, 3))
    arr = TabularDiffusion(**FAST, seed=0).fit(x)
    x[::4, 1] = np.nan
    filled = arr.impute(x, **QUICK)
    assert isinstance(filled, np.ndarray) and filled.shape == (60, 3) and np.isfinite(filled).all()
    assert np.array_equal(filled[:, [0, 2]], x[:, [0, 2]])


@pytest.mark.parametrize("encoding", ["onehot", "multinomial", "masked"])
def test_a_run_that_modelled_missing_values_fills_them_with_values(encoding):
    df = holes(people_table(), share=0.2, seed=3)
    model = TabularDiffusion(**FAST, seed=0, missing="category", encoding=encoding).fit(df)
    run, spec = model.run_, model.run_.table
    known = _known_features(spec, df)
    flag = spec.features.index("height:missing")
    assert known[:, flag].all() and not known[df["height"].isna().to_numpy(), spec.features.index("height")].any()
    missing_city = spec.features.index("city=<missing>")
    if encoding == "onehot":
        assert known[:, missing_city].all()  # "not missing" is given in every row
    else:  # a discretely diffused label is drawn as a whole, with its "missing" level denied to the network
        levels = spec.column("city").levels
        assert missing_levels(run)[list(run.layout.names).index("city")] == levels.index(None)
        x, known = observe_frame(run, df)
        (draw,) = impute_features(run, x, known, seed=0, **QUICK)
        block = [j for j, f in enumerate(spec.features) if f.startswith("city=")]
        gone = df["city"].isna().to_numpy()
        assert gone.sum() > 10 and not np.any(draw[gone][:, block].argmax(axis=1) == block.index(missing_city))
    (out,) = impute_frame(run, df, seed=0, **QUICK)
    assert not out.isna().any().any() and set(out["city"]) <= {"Bern", "Oslo", "Pisa"}
    assert set(out["smoker"]) <= {True, False}


@pytest.mark.parametrize("encoding", ["onehot", "multinomial", "masked"])
def test_labels_and_numbers_are_drawn_given_each_other(encoding):
    """Two clusters, a label naming each: a missing label is drawn from its row's number and a missing number from
    its row's label (across the Gaussian and the discrete process when the label is diffused as a category)."""
    rng = np.random.default_rng(0)
    n = 400
    side = rng.choice(["lo", "hi"], n)
    df = pd.DataFrame({"v": np.where(side == "hi", 3.0, -3.0) + rng.normal(0, 0.5, n), "w": rng.normal(0, 1, n),
                       "side": pd.Series(side, dtype="category")})
    model = TabularDiffusion(steps=2000, width=64, depth=2, seed=0, encoding=encoding).fit(df)
    inc = df.copy()
    no_label, no_number = np.arange(n) % 3 == 0, np.arange(n) % 3 == 1
    inc["side"] = inc["side"].astype(object).where(~no_label)
    inc["v"] = inc["v"].where(~no_number)
    (out,) = impute_frame(model.run_, inc, seed=0)
    # measured (seed 0, U = 5, j = 1): labels 0.78 / 0.93 / 0.73 right (onehot / multinomial / masked), numbers on
    # the right side 1.00 / 0.94 / 0.95; a draw that ignored the observed cells would be right half the time
    assert (out["side"][no_label] == df["side"][no_label]).mean() > 0.68
    assert (np.sign(out["v"][no_number]) == np.where(df["side"][no_number] == "hi", 1, -1)).mean() > 0.85


def test_point_estimate_is_the_mean_and_the_mode():
    frames = [pd.DataFrame({"n": [1.0, 2.0], "k": [3, 4], "lab": ["a", "b"]}),
              pd.DataFrame({"n": [1.0, 4.0], "k": [3, 5], "lab": ["a", "c"]}),
              pd.DataFrame({"n": [1.0, 9.0], "k": [3, 5], "lab": ["a", "c"]})]
    missing = pd.DataFrame({"n": [False, True], "k": [False, True], "lab": [False, True]})
    out = point_estimate(frames, missing)
    assert out["n"].tolist() == [1.0, 5.0] and out["k"].tolist() == [3, 5]  # (4 + 5 + 5)/3 = 4.67 → 5
    assert out["lab"].tolist() == ["a", "c"] and out.dtypes.equals(frames[0].dtypes)
    tie = point_estimate(frames[:2], missing)
    assert tie["lab"].tolist() == ["a", "b"] and tie["n"].tolist() == [1.0, 3.0]  # a tie: the first drawn


@pytest.mark.parametrize(("change", "words"), [
    (lambda f: f.assign(extra=1.0), "'extra' is not one the run was trained on"),
    (lambda f: f.drop(columns="age"), "no column 'age'"),
    (lambda f: f.dropna(), "no missing cells"),
    (lambda f: f.assign(height=f["height"].astype(object).where(f["height"].isna(), "tall")), "should hold numbers"),
    (lambda f: f.assign(city=f["city"].where(f["city"].isna(), "Rome")), "'Rome'"),
])
def test_bad_tables_are_refused_in_one_line(fitted, change, words):
    df, model = fitted
    with pytest.raises(DataError, match=words):
        impute_frame(model.run_, change(holes(df)), **QUICK)


def test_bad_settings_and_conditional_runs_are_refused(fitted):
    df, model = fitted
    with pytest.raises(ConfigError, match="at least 1"):
        impute_frame(model.run_, holes(df), draws=0)
    conditional = dataclasses.replace(model.run_, condition=Condition("city", ["Bern", "Oslo", "Pisa"], [1, 1, 1],
                                                                      5, 8))
    with pytest.raises(ConfigError, match="without --condition"):
        impute_frame(conditional, holes(df), **QUICK)
