"""The condition column of a conditional run: which columns can be one, its vocabulary and class counts, labels to
features and back, --where values, and the prepared data the network and the trainer see."""

import json

import numpy as np
import pandas as pd
import pytest

from difflab.config import DataConfig
from difflab.data.condition import MAX_CLASSES, Condition, parse_where, plan_condition
from difflab.data.prepare import prepare_frame
from difflab.errors import ConfigError, DataError

WIDTHS = [1, 2, 10]


def frame(width: int, n: int = 90, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, width)), columns=[f"f{j}" for j in range(width)])
    df["kind"] = rng.choice(["cat", "dog", "eel"], n, p=[0.5, 0.3, 0.2])
    df["code"] = rng.integers(0, 5, n)  # few whole numbers: classes
    df["flag"] = rng.random(n) < 0.4
    return df


def prepared(df: pd.DataFrame, column: str, **kw):
    return prepare_frame(df, DataConfig(source="t.csv", condition=column, holdout=0.2, **kw))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("column", "encoding"), [("kind", "onehot"), ("kind", "bits"), ("code", "onehot"),
                                                  ("flag", "onehot")])
def test_prepared_data_splits_features_and_labels(width: int, column: str, encoding: str):
    df = frame(width)
    data = prepared(df, column, encoding=encoding)
    cond = data.condition
    spec = data.table
    assert spec.column(column).role == "condition" and spec.column(column).kind in ("categorical", "boolean")
    assert cond.column == column and data.model_dim == len(data.columns) - (cond.stop - cond.start)
    # the condition's features are where the spec put them, and the network sees all the others
    assert spec.features[cond.start : cond.stop] == [f for f in spec.features if f.startswith(f"{column}")]
    assert data.model_input.shape == (len(data.train), data.model_dim)
    kept = [spec.features[j] for j in cond.model_columns(len(spec.features))]
    assert column not in "".join(kept)
    # labels are the training rows' classes, counted per level of the vocabulary
    rows = spec.decode(data.train)
    labels = data.labels.numpy()
    assert [cond.levels[k] for k in labels] == list(rows[column])
    assert cond.counts == [int((rows[column] == v).sum()) for v in cond.levels] and sum(cond.counts) == len(rows)
    np.testing.assert_allclose(cond.frequencies, np.asarray(cond.counts) / len(rows))
    # labels → features → labels
    codes = np.arange(cond.n_classes).repeat(3)
    features = np.zeros((len(codes), len(spec.features)))
    features[:, cond.start : cond.stop] = cond.features_of(codes)
    np.testing.assert_array_equal(cond.codes(features), codes)


def test_json_round_trip_and_corruption():
    cond = prepared(frame(2), "kind").condition
    back = Condition.from_dict(json.loads(json.dumps(cond.to_dict())))
    assert back == cond
    for bad in ({**cond.to_dict(), "counts": [1]}, {**cond.to_dict(), "features": [0, 1]},
                {**cond.to_dict(), "levels": ["one"], "counts": [3]}, {"column": "kind"}):
        with pytest.raises((KeyError, TypeError, ValueError)):
            Condition.from_dict(bad)


@pytest.mark.parametrize(("column", "changes", "words"), [
    ("f0", {}, ["continuous", "--categorical f0"]),
    ("many", {"many": lambda n: np.arange(n) % (MAX_CLASSES + 5)}, ["distinct values", f"at most {MAX_CLASSES}"]),
    ("same", {"same": lambda n: np.full(n, 3)}, ["one value"]),
    ("nope", {}, ["no column 'nope'", "--condition"]),
])
def test_columns_that_are_not_classes_are_refused(column: str, changes: dict, words: list[str]):
    df = frame(2)
    for name, values in changes.items():
        df[name] = values(len(df))
    with pytest.raises(DataError) as e:
        prepared(df, column)
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value)


def test_a_declared_categorical_is_taken_as_classes_and_a_lone_column_refused():
    df = frame(1)
    df["grade"] = np.round(np.random.default_rng(0).normal(size=len(df)), 1)
    assert prepare_frame(df, DataConfig(source="t.csv", condition="grade", categorical=["grade"])).condition
    with pytest.raises(DataError, match="nothing to generate"):
        plan_condition(df[["kind"]], {"kind": "categorical"}, "kind", source="t.csv")


def test_where_values_match_levels_as_users_write_them():
    ints = Condition("target", [0, 1, 2], [5, 5, 0], 0, 3)
    assert ints.code_of("1") == 1 and ints.code_of(1) == 1 and ints.code_of(1.0) == 1 and ints.code_of("1.0") == 1
    with pytest.raises(DataError, match=r"no training row has this class \(known: 0, 1\)"):
        ints.code_of("2")  # a level of the table that no training row has
    with pytest.raises(DataError, match="known: 0, 1"):
        ints.code_of(True)  # True is not the class 1
    bools = Condition("flag", [False, True], [3, 4], 0, 2)
    assert bools.code_of("true") == 1 and bools.code_of("False") == 0 and bools.code_of(True) == 1
    text = Condition("kind", ["cat", "dog", None], [1, 1, 1], 0, 3)
    assert text.code_of("dog") == 1 and text.code_of("<missing>") == 2 and text.code_of(None) == 2
    with pytest.raises(DataError, match="kind=emu"):
        text.code_of("emu")


def test_where_names_the_runs_condition_column():
    cond = Condition("kind", ["cat", "dog"], [1, 1], 0, 2)
    assert parse_where(None, cond, "run") is None and parse_where({"kind": "dog"}, cond, "run") == 1
    with pytest.raises(ConfigError, match="without a condition column"):
        parse_where({"kind": "dog"}, None, "run")
    with pytest.raises(ConfigError, match="conditioned on the column 'kind' only"):
        parse_where({"size": "3"}, cond, "run")
    with pytest.raises(ConfigError, match="size="):
        parse_where({"kind": "dog", "size": "3"}, cond, "run")
