"""Reading tables from files, load_data and hold-out splits."""

import numpy as np
import pandas as pd
import pytest

from difflab.data import DATASETS, Dataset, holdout_split, load_data, read_table
from difflab.errors import ConfigError, DataError

DIMS = [1, 2, 10]


def frame(d: int, n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-3, 3, d)
    return pd.DataFrame(values, columns=[f"c{i}" for i in range(d)])


def write(df: pd.DataFrame, path) -> None:
    if path.suffix == ".csv":
        # float_format keeps every digit so the round trip is exact.
        df.to_csv(path, index=False, float_format="%.17g")
    elif path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        np.save(path, df.to_numpy())


def assert_data_error(path, match, **kw):
    with pytest.raises(DataError) as info:
        read_table(path, **kw)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    assert match in msg, msg
    return msg


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "parquet"])
@pytest.mark.parametrize("d", DIMS)
def test_round_trip_tables(tmp_path, ext, d):
    df = frame(d)
    path = tmp_path / f"t.{ext}"
    write(df, path)
    x, cols = read_table(path)
    assert x.dtype == np.float64 and x.shape == (20, d)
    np.testing.assert_array_equal(x, df.to_numpy())
    assert cols == list(df.columns)


@pytest.mark.parametrize("d", DIMS)
def test_round_trip_npy(tmp_path, d):
    df = frame(d)
    path = tmp_path / "t.npy"
    np.save(path, df.to_numpy().astype(np.float32))
    x, cols = read_table(path)
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, df.to_numpy().astype(np.float32).astype(np.float64))
    assert cols == [f"x{i}" for i in range(d)]


def test_npy_1d_and_int(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, np.arange(5))
    x, cols = read_table(path)
    assert cols == ["x0"] and x.shape == (5, 1) and x.dtype == np.float64
    np.testing.assert_array_equal(x[:, 0], np.arange(5))


@pytest.mark.parametrize("ext", ["csv", "parquet", "npy"])
def test_select_columns_by_name_and_index(tmp_path, ext):
    df = frame(4)
    path = tmp_path / f"t.{ext}"
    write(df, path)
    names = list(df.columns) if ext != "npy" else [f"x{i}" for i in range(4)]
    x, cols = read_table(path, columns=[names[2], "0"])
    assert cols == [names[2], names[0]]
    np.testing.assert_array_equal(x, df.to_numpy()[:, [2, 0]])


def test_numeric_columns_can_be_picked_out_of_mixed_csv(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("name,age,height\nann,31,1.7\nbob,45,1.8\ncid,22,1.6\n")
    assert_data_error(path, "column 'name' is not numeric")
    x, cols = read_table(path, columns=["age", "height"])
    assert cols == ["age", "height"]
    np.testing.assert_array_equal(x, [[31, 1.7], [45, 1.8], [22, 1.6]])


# --- errors: each one names the file ----------------------------------------------------------------


def test_missing_file(tmp_path):
    assert_data_error(tmp_path / "nope.csv", "file not found")


def test_unknown_extension(tmp_path):
    path = tmp_path / "t.xlsx"
    path.write_text("a\n1\n2\n")
    assert_data_error(path, "unknown file type '.xlsx'")


def test_folder_is_not_a_file(tmp_path):
    path = tmp_path / "dir.csv"
    path.mkdir()
    assert_data_error(path, "folder")


@pytest.mark.parametrize("ext", ["csv", "parquet", "npy"])
def test_empty_file(tmp_path, ext):
    path = tmp_path / f"e.{ext}"
    path.write_bytes(b"")
    assert_data_error(path, "empty")


@pytest.mark.parametrize("ext, content", [
    ("parquet", b"this is not parquet at all, just some text\n"),
    ("npy", b"\x93NUMPY garbage that is not a header"),
    ("npy", b"plain text, no magic"),
    ("csv", b"a,b\n1,2\n\xff\xfe\xfa,3\n"),
])
def test_corrupt_file(tmp_path, ext, content):
    path = tmp_path / f"bad.{ext}"
    path.write_bytes(content)
    assert_data_error(path, "cannot read")


def test_truncated_parquet(tmp_path):
    path = tmp_path / "cut.parquet"
    write(frame(3, n=100), path)
    path.write_bytes(path.read_bytes()[:-40])
    assert_data_error(path, "cannot read")


def test_npy_with_objects_is_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([[1, "a"], [2, None]], dtype=object), allow_pickle=True)
    assert_data_error(path, "cannot read")


def test_npy_strings_are_not_numeric(tmp_path):
    path = tmp_path / "s.npy"
    np.save(path, np.array([["a", "b"], ["c", "d"]]))
    assert_data_error(path, "not numeric")


def test_npy_3d(tmp_path):
    path = tmp_path / "cube.npy"
    np.save(path, np.zeros((4, 3, 2)))
    assert_data_error(path, "3-D")


@pytest.mark.parametrize("ext", ["csv", "parquet", "npy"])
def test_zero_rows(tmp_path, ext):
    path = tmp_path / f"z.{ext}"
    if ext == "csv":
        path.write_text("a,b\n")
    else:
        write(pd.DataFrame({"a": np.zeros(0), "b": np.zeros(0)}), path)
    assert_data_error(path, "no data rows")


@pytest.mark.parametrize("ext", ["csv", "parquet", "npy"])
def test_one_row(tmp_path, ext):
    path = tmp_path / f"one.{ext}"
    write(pd.DataFrame({"a": [1.0], "b": [2.0]}), path)
    assert_data_error(path, "needs at least 2 rows, has 1")


@pytest.mark.parametrize("ext", ["csv", "parquet", "npy"])
def test_unknown_column_lists_available(tmp_path, ext):
    path = tmp_path / f"t.{ext}"
    write(frame(3), path)
    names = "c0, c1, c2" if ext != "npy" else "x0, x1, x2"
    msg = assert_data_error(path, "no column 'zz'", columns=["zz"])
    assert names in msg
    assert_data_error(path, "no column '3'", columns=["3"])


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_non_numeric_column_named(tmp_path, ext):
    path = tmp_path / f"t.{ext}"
    write(pd.DataFrame({"a": [1.0, 2.0, 3.0], "city": ["x", "y", "z"]}), path)
    assert_data_error(path, "column 'city' is not numeric")


@pytest.mark.parametrize("ext", ["csv", "parquet", "npy"])
@pytest.mark.parametrize("bad, word", [(np.nan, "missing"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_values_counted(tmp_path, ext, bad, word):
    df = frame(3, n=10)
    df.iloc[[2, 5, 7], 1] = bad
    path = tmp_path / f"t.{ext}"
    write(df, path)
    name = "c1" if ext != "npy" else "x1"
    assert_data_error(path, f"column '{name}' has 3 {word}")


def test_csv_blank_cells_are_missing(tmp_path):
    path = tmp_path / "holes.csv"
    path.write_text("a,b\n1,2\n3,\n,\n5,6\n")
    assert_data_error(path, "column 'a' has 1 missing")
    assert_data_error(path, "column 'b' has 2 missing", columns=["b"])


# --- load_data ------------------------------------------------------------------------------------


def test_load_toy_defaults_and_n():
    ds = load_data("moons")
    toy = DATASETS["moons"]
    assert isinstance(ds, Dataset) and ds.toy is toy and ds.name == "moons"
    assert ds.columns == ["x", "y"]
    assert ds.x.shape == (toy.default_n, 2) and ds.x.dtype == np.float64
    np.testing.assert_array_equal(load_data("rings", n=123, seed=4).x, DATASETS["rings"].recipe(123, 4))


def test_load_file_and_subsample(tmp_path):
    df = frame(3, n=50)
    path = tmp_path / "table.parquet"
    write(df, path)
    ds = load_data(str(path))
    assert ds.toy is None and ds.name == "table.parquet" and ds.columns == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(ds.x, df.to_numpy())
    sub = load_data(str(path), columns=["c2"], n=10, seed=1)
    assert sub.x.shape == (10, 1) and sub.columns == ["c2"]
    # The kept rows are distinct rows of the file, reproducible in the seed.
    assert len({tuple(r) for r in sub.x}) == 10 and set(sub.x[:, 0]) <= set(df["c2"])
    np.testing.assert_array_equal(sub.x, load_data(str(path), columns=["c2"], n=10, seed=1).x)
    assert not np.array_equal(sub.x, load_data(str(path), columns=["c2"], n=10, seed=2).x)
    with pytest.raises(DataError, match="asked for 51 rows"):
        load_data(str(path), n=51)


def test_load_unknown_name():
    with pytest.raises(ConfigError, match=r"unknown dataset 'mooons'; choose one of: moons, circles"):
        load_data("mooons")


def test_load_missing_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_data(str(tmp_path / "gone.csv"))


def test_load_existing_file_with_unknown_extension(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("a\n1\n")
    with pytest.raises(DataError, match="unknown file type"):
        load_data(str(path))


def test_registry_name_wins_over_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "moons").write_text("not data")
    assert load_data("moons").toy is DATASETS["moons"]


def test_load_rejects_columns_for_toys_and_bad_n():
    with pytest.raises(ConfigError, match="--columns"):
        load_data("moons", columns=["x"])
    for n in (0, 1, -5, 2.5, True):
        with pytest.raises(ConfigError):
            load_data("moons", n=n)


# --- holdout_split --------------------------------------------------------------------------------


@pytest.mark.parametrize("n_rows, fraction, n_test", [(100, 0.2, 20), (2, 0.01, 1), (2, 0.99, 1),
                                                       (10, 0.999, 9), (7, 0.5, 4)])
def test_holdout_split_sizes_and_partition(n_rows, fraction, n_test):
    train, test = holdout_split(n_rows, fraction, seed=3)
    assert len(test) == n_test and len(train) == n_rows - n_test
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n_rows))


def test_holdout_split_seeded():
    a = holdout_split(1000, 0.1, seed=0)
    b = holdout_split(1000, 0.1, seed=0)
    c = holdout_split(1000, 0.1, seed=1)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_holdout_split_errors():
    with pytest.raises(DataError):
        holdout_split(1, 0.5, 0)
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError):
            holdout_split(10, fraction, 0)
