"""Tables: column kinds, categorical encodings, the table spec's encode/decode, prepared table data, sklearn sets."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from difflab.config import DataConfig
from difflab.data.columns import check_values, detect_kind, plan_kinds
from difflab.data.encodings import ENCODINGS, get_encoding
from difflab.data.prepare import prepare_data, prepare_frame
from difflab.data.sklearn_sets import SKLEARN_SETS, list_sklearn_sets, load_sklearn_frame
from difflab.data.table import TableSpec, fit_table
from difflab.data.table_scaler import TableScaler
from difflab.errors import ConfigError, DataError

WIDTHS = [1, 2, 10]


def mixed_frame(n: int = 60, seed: int = 0, *, holes: bool = False) -> pd.DataFrame:
    """One column of every kind, with the dtypes pandas gives them."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "height": rng.normal(170.0, 10.0, n),
        "age": rng.integers(18, 90, n),
        "smoker": rng.random(n) < 0.3,
        "city": pd.Series(rng.choice(["Bern", "Graz", "Lyon", "Oslo", "Pisa"], n), dtype="str"),
        "grade": pd.Categorical(rng.choice(["a", "b", "c"], n), categories=["a", "b", "c"]),
        "sex": rng.choice([1.0, 2.0], n),
        "unit": np.full(n, 7),
    })
    if holes:
        df.loc[[1, 5], "height"] = np.nan
        df["city"] = df["city"].astype(object)
        df.loc[[2, 3], "city"] = None
    return df


# --- kinds -------------------------------------------------------------------------------------------


def test_detect_kind_by_dtype_and_distinct_values():
    assert detect_kind(pd.Series([1.5, 2.25, 3.0])) == "continuous"
    assert detect_kind(pd.Series([1, 5, 9])) == "integer"
    assert detect_kind(pd.Series([1.0, 5.0, 9.0])) == "integer"  # whole-valued floats
    assert detect_kind(pd.Series([1.0, 2.0, 1.0])) == "categorical"  # two values: a code, not a quantity
    assert detect_kind(pd.Series([True, False])) == "boolean"
    assert detect_kind(pd.Series([True, None, False], dtype=object)) == "boolean"
    assert detect_kind(pd.Series(["x", "y", "z"])) == "categorical"
    assert detect_kind(pd.Series([3.0, 3.0])) == "constant"
    assert detect_kind(pd.Series([3.0, np.nan, 4.5, 5.5])) == "continuous"


def test_plan_kinds_overrides_hints_and_detection():
    df = mixed_frame()
    kinds = plan_kinds(df, {}, source="t.csv")
    assert kinds == {"height": "continuous", "age": "integer", "smoker": "boolean", "city": "categorical",
                     "grade": "categorical", "sex": "categorical", "unit": "constant"}
    over = plan_kinds(df, {"categorical": ["age"], "continuous": ["sex"]}, source="t.csv", hints={"age": "integer"})
    assert over["age"] == "categorical" and over["sex"] == "continuous"


@pytest.mark.parametrize("overrides, words", [
    ({"categorical": ["nope"]}, ["t.csv", "no column 'nope'", "--categorical", "height"]),
    ({"integer": ["city"]}, ["t.csv", "'city'", "not numbers", "--categorical city"]),
    ({"categorical": ["unit"]}, ["t.csv", "'unit'", "declared categorical", "one value (7)"]),
])
def test_plan_kinds_bad_input(overrides, words):
    with pytest.raises(DataError) as e:
        plan_kinds(mixed_frame(), overrides, source="t.csv")
    assert all(w in str(e.value) for w in words), str(e.value)
    assert "\n" not in str(e.value)


def test_plan_kinds_column_in_two_lists():
    with pytest.raises(ConfigError, match="'age' is given both as categorical and as integer"):
        plan_kinds(mixed_frame(), {"categorical": ["age"], "integer": ["age"]}, source="t.csv")


def test_missing_values_error_by_default_and_infinite_always():
    df = mixed_frame(holes=True)
    kinds = plan_kinds(df, {}, source="t.csv")
    with pytest.raises(DataError, match=r"t.csv: column 'height' has 2 missing \(NaN\) values; .*--missing category"):
        check_values(df, kinds, source="t.csv", missing="error")
    check_values(df, kinds, source="t.csv", missing="category")
    df.loc[0, "height"] = np.inf
    with pytest.raises(DataError, match="column 'height' has 1 infinite values"):
        check_values(df, kinds, source="t.csv", missing="category")


# --- encodings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ENCODINGS))
@pytest.mark.parametrize("k", [2, 3, 4, 5, 8, 9])
def test_encoding_round_trip_and_nearest_valid_code(name, k):
    enc = get_encoding(name)
    levels = np.arange(k).repeat(3)
    f = enc.encode(levels, k)
    assert f.shape == (3 * k, max(1, int(np.ceil(np.log2(k)))) if name == "bits" else k)  # one-hot features
    assert enc.one_hot == (name != "bits") and enc.process == {"multinomial": "multinomial", "masked": "masked"}.get(name)
    assert set(np.unique(f)) <= {0.0, 1.0} and len({tuple(r) for r in f}) == k  # distinct corners
    np.testing.assert_array_equal(enc.decode(f, k), levels)
    # Noisy points decode to the level whose code is nearest, by brute force over every level.
    noisy = np.random.default_rng(k).normal(0.5, 0.8, (500, f.shape[1]))
    codes = enc.encode(np.arange(k), k)
    nearest = np.argmin(((noisy[:, None, :] - codes[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(enc.decode(noisy, k), nearest)


def test_bits_threshold_where_the_code_is_valid():
    enc = get_encoding("bits")
    f = np.array([[0.9, 0.2, 0.7], [0.1, 0.6, 0.4]])  # thresholds to 101 = 5 and 010 = 2
    np.testing.assert_array_equal(enc.decode(f, 8), [5, 2])
    with pytest.raises(ConfigError, match="unknown encoding 'gray'"):
        get_encoding("gray")


# --- the table spec ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("holes", [False, True])
def test_spec_round_trip_keeps_values_labels_and_dtypes(encoding, holes):
    df = mixed_frame(holes=holes)
    spec = fit_table(df, plan_kinds(df, {}, source="t"), encoding=encoding)
    x = spec.encode(df)
    assert x.shape == (len(df), len(spec.features))
    assert set(np.unique(x[:, spec.indicators])) <= {0.0, 1.0}
    back = spec.decode(x)
    pd.testing.assert_frame_equal(back, df)
    # Through JSON (as in data.json) and with noise well inside each feature's decision region.
    spec2 = TableSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    noise = np.random.default_rng(1).uniform(-0.2, 0.2, x.shape)
    noise[:, spec.features.index("height")] = 0.0  # the one plain number: any change shows
    pd.testing.assert_frame_equal(spec2.decode(x + noise), df)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_spec_widths(width, encoding):
    rng = np.random.default_rng(width)
    df = pd.DataFrame({f"c{j}": rng.choice(list("abcde"[: 2 + j % 4]), 40) for j in range(width)})
    spec = fit_table(df, plan_kinds(df, {}, source="t"), encoding=encoding)
    per = [len(df[c].unique()) for c in df.columns]
    expected = sum(per) if encoding != "bits" else sum(max(1, int(np.ceil(np.log2(k)))) for k in per)
    assert len(spec.features) == expected == len(spec.indicators)
    pd.testing.assert_frame_equal(spec.decode(spec.encode(df)), df)


def test_integers_round_and_stay_in_the_training_range():
    df = pd.DataFrame({"n": [3, 4, 8, 10], "x": [0.5, 1.5, 2.0, 2.5]})
    spec = fit_table(df, {"n": "integer", "x": "continuous"})
    out = spec.decode(np.array([[4.49, 0.0], [4.51, 0.0], [-7.0, 0.0], [55.0, 0.0]]))
    assert out["n"].tolist() == [4, 5, 3, 10] and out["n"].dtype == np.int64


def test_unseen_level_and_missing_column_are_one_line_errors():
    df = mixed_frame()
    spec = fit_table(df, plan_kinds(df, {}, source="t"))
    other = df.copy()
    other.loc[0, "city"] = "Rome"
    with pytest.raises(DataError, match=r"ref.csv: column 'city' has the value 'Rome', which the training rows never"):
        spec.encode(other, source="ref.csv")
    with pytest.raises(DataError, match="ref.csv: no column 'age'"):
        spec.encode(df.drop(columns="age"), source="ref.csv")


def test_corrupt_spec_is_refused():
    df = mixed_frame()
    d = fit_table(df, plan_kinds(df, {}, source="t")).to_dict()
    d["columns"][3]["levels"] = ["Bern"]
    with pytest.raises(ValueError):
        TableSpec.from_dict(d)
    d["columns"][3]["role"] = "boss"
    with pytest.raises(ValueError):
        TableSpec.from_dict(d)


# --- prepared data -----------------------------------------------------------------------------------


def test_plain_numbers_are_prepared_as_always(tmp_path):
    path = tmp_path / "nums.csv"
    pd.DataFrame(np.random.default_rng(0).normal(size=(50, 3)), columns=list("abc")).to_csv(path, index=False)
    data = prepare_data(DataConfig(source=str(path)))
    assert data.table is None and data.columns == ["a", "b", "c"] and data.scaler.name == "minmax"
    assert data.train.shape == (40, 3) and data.heldout.shape == (10, 3)


@pytest.mark.parametrize("scaler", ["minmax", "standard", "quantile", "none"])
def test_mixed_table_is_prepared_with_a_spec(scaler):
    df = mixed_frame(200)
    with pytest.warns(UserWarning, match="mixed: column 'unit' is constant in the training rows"):
        data = prepare_frame(df, DataConfig(source="mixed", scaler=scaler, encoding="bits"))
    assert isinstance(data.scaler, TableScaler) and data.scaler.inner.name == scaler
    assert data.columns == data.table.features and data.train.shape == (160, len(data.columns))
    scaled = data.scaled.numpy()
    assert set(np.unique(scaled[:, data.table.indicators])) == {-1.0, 1.0}
    rows = pd.concat([data.table.decode(data.train), data.table.decode(data.heldout)])
    assert len(rows) == 200 and set(rows["city"]) == set(df["city"])
    assert any("'unit'" in note for note in data.table.notes)


def test_level_only_in_heldout_rows_still_encodes():
    df = pd.DataFrame({"x": np.arange(10.0) + 0.5, "c": ["a", "b"] * 4 + ["z", "z"]})
    data = prepare_frame(df, DataConfig(source="t", holdout=0.2, seed=0))
    assert data.table.column("c").levels == ["a", "b", "z"]


def test_prepare_frame_bad_input_names_the_source():
    with pytest.raises(DataError, match="mixed: column 'height' has 2 missing"):
        prepare_frame(mixed_frame(holes=True), DataConfig(source="mixed"))
    with pytest.raises(DataError, match="mixed: no column 'wat'"):
        prepare_frame(mixed_frame(), DataConfig(source="mixed", categorical=["wat"]))


# --- scikit-learn's data sets ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SKLEARN_SETS))
def test_sklearn_sets_are_whole_labelled_rows(name):
    from sklearn import datasets

    spec = SKLEARN_SETS[name]
    frame, hints = load_sklearn_frame(f"sklearn:{name}")
    bunch = getattr(datasets, spec.loader)(**spec.options)
    np.testing.assert_array_equal(frame.drop(columns="target").to_numpy(), bunch.data)
    np.testing.assert_array_equal(frame["target"].to_numpy(), bunch.target)
    assert list(frame.columns[:-1]) == list(bunch.feature_names) and frame.columns[-1] == "target"
    assert (hints.get("target") == "categorical") == (spec.task == "classification")


def test_sklearn_source_through_prepare_and_listing():
    data = prepare_data(DataConfig(source="sklearn:wine", seed=3))
    assert data.table.column("target").kind == "categorical" and data.table.column("target").levels == [0, 1, 2]
    assert len(data.train) + len(data.heldout) == 178
    again = prepare_data(DataConfig(source="sklearn:wine", seed=3))
    np.testing.assert_array_equal(again.heldout, data.heldout)  # the split is fixed by the seed
    assert [n for n, _ in list_sklearn_sets()] == [f"sklearn:{n}" for n in SKLEARN_SETS]
    with pytest.raises(ConfigError, match="unknown scikit-learn data set 'sklearn:mnist'"):
        prepare_data(DataConfig(source="sklearn:mnist"))


def test_every_pair_of_overrides_conflicts_cleanly():
    for a, b in itertools.combinations(["categorical", "integer", "continuous"], 2):
        with pytest.raises(ConfigError, match="given both"):
            plan_kinds(mixed_frame(), {a: ["age"], b: ["age"]}, source="t")
