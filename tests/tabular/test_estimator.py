"""TabularDiffusion: the docstring's example, fit/sample on DataFrames and arrays, parameters, save/load, and the
command line on a saved estimator."""

import doctest
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import difflab
import difflab.tabular.estimator
from difflab import TabularDiffusion
from difflab.cli import app
from difflab.errors import ConfigError, DataError, DifflabError
from helpers import people_table

FAST = {"steps": 60, "width": 32, "depth": 1, "T": 20}  # a few seconds: these tests check plumbing, not quality


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory):
    df = people_table()
    model = TabularDiffusion(**FAST, seed=0, holdout=0.2).fit(df)
    return df, model


def test_docstring_example_runs():
    result = doctest.testmod(difflab.tabular.estimator, raise_on_error=False, verbose=False)
    assert result.attempted >= 5 and result.failed == 0


def test_exported_lazily_from_the_package():
    assert difflab.TabularDiffusion is TabularDiffusion
    with pytest.raises(AttributeError):
        difflab.NoSuchThing  # noqa: B018


def test_samples_have_the_columns_dtypes_levels_and_ranges(fitted):
    df, model = fitted
    rows = model.sample(300, seed=1)
    assert list(rows.columns) == list(df.columns) and rows.dtypes.equals(df.dtypes) and len(rows) == 300
    assert list(rows["city"].cat.categories) == ["Bern", "Oslo", "Pisa"]
    assert set(rows["code"]) <= {1.0, 2.0} and set(rows["smoker"]) <= {True, False}
    train = model.run_.table.decode(model.run_.train)
    assert rows["age"].between(train["age"].min(), train["age"].max()).all()
    pd.testing.assert_frame_equal(model.sample(50, seed=7), model.sample(50, seed=7))  # reproducible by seed
    assert not model.sample(50, seed=7).equals(model.sample(50, seed=8))


@pytest.mark.parametrize("d", [1, 2, 10])
@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_arrays_in_arrays_out(d, dtype):
    rng = np.random.default_rng(d)
    x = (rng.normal(0, 30, (80, d))).astype(dtype)
    model = TabularDiffusion(**FAST, seed=1).fit(x)
    out = model.sample(40, seed=0)
    assert isinstance(out, np.ndarray) and out.shape == (40, d) and out.dtype == dtype
    if dtype == np.int64:  # whole numbers within each column's training range
        assert np.all(out >= x.min(axis=0)) and np.all(out <= x.max(axis=0))


def test_get_and_set_params_follow_sklearn(fitted):
    from sklearn.base import clone

    _, model = fitted
    params = model.get_params()
    assert params["steps"] == 60 and params["preset"] == "table" and params["width"] == 32
    twin = clone(model)  # scikit-learn rebuilds it from get_params
    assert twin.get_params() == params and not hasattr(twin, "run_")
    twin.set_params(steps=5, encoding="bits")
    assert twin.config().train.steps == 5 and twin.config().data.encoding == "bits"
    assert twin.config().model.options == {"width": 32, "depth": 1}
    with pytest.raises(ConfigError, match="unknown parameter 'stepz'"):
        twin.set_params(stepz=3)
    with pytest.raises(ConfigError, match="steps"):
        TabularDiffusion(steps=-1).config()


def test_save_load_and_the_command_line(fitted, tmp_path):
    df, model = fitted
    path = model.save(tmp_path / "est")
    again = TabularDiffusion.load(path)
    pd.testing.assert_frame_equal(again.sample(30, seed=3), model.sample(30, seed=3))
    assert again.get_params()["steps"] == 60 and again.get_params()["encoding"] == "multinomial"  # the preset's
    with pytest.raises(DifflabError, match="not an empty folder"):
        model.save(path)
    runner = CliRunner()
    r = runner.invoke(app, ["sample", str(path), "--n", "20", "--out", str(tmp_path / "s.csv")])
    assert r.exit_code == 0, r.output
    back = pd.read_csv(tmp_path / "s.csv")
    assert list(back.columns) == list(df.columns) and set(back["city"]) <= {"Bern", "Oslo", "Pisa"}
    r = runner.invoke(app, ["evaluate", str(path), "--repeats", "1", "--metrics", "w1", "--json",
                            str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert "n = 12 chosen" in r.stdout and "per column" in r.stdout
    assert json.loads((tmp_path / "r.json").read_text())["n"] == 12  # 24 held-out rows


def test_bad_input():
    with pytest.raises(DifflabError, match="not fitted"):
        TabularDiffusion().sample(3)
    with pytest.raises(DataError, match="2-D"):
        TabularDiffusion(**FAST).fit(np.zeros(10))
    with pytest.raises(DataError, match="no column 'nope'"):
        TabularDiffusion(**FAST, categorical=["nope"]).fit(people_table())
    holes = people_table().astype({"height": np.float64})
    holes.loc[3, "height"] = np.nan
    with pytest.raises(DataError, match="'height' has 1 missing"):
        TabularDiffusion(**FAST).fit(holes)
    rows = TabularDiffusion(**FAST, missing="category").fit(holes).sample(200, seed=0)
    assert rows["height"].dtype == np.float64  # a missing flag next to the number; NaN where it says so
