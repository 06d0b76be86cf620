"""Every column type handled or refused in one line before anything is written (difflab.data.coltypes,
difflab.data.csv_dialect). Before issue 18: datetime, timedelta, bytes, dict and list columns crashed with a
TypeError and left a run folder of config.json and schedule.json; a semicolon CSV trained as one text column;
whole numbers above 2^53 became categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hostile_helpers import cli, listing, one_line_error

from difflab.config import DataConfig
from difflab.data.coltypes import as_float, from_seconds
from difflab.data.prepare import prepare_frame
from difflab.errors import DataError

N = 60


def _base() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N) * 3 + 10})


@pytest.mark.parametrize(("dtype", "values"), [
    ("datetime64[us]", pd.date_range("2020-01-01", periods=N, freq="37h").as_unit("us")),
    ("datetime64[ns, Europe/Berlin]", pd.date_range("2021-03-20", periods=N, freq="61min", tz="Europe/Berlin").as_unit("ns")),
    ("timedelta64[ns]", pd.to_timedelta(np.linspace(0, 3600, N), unit="s")),
], ids=["naive", "zoned", "duration"])
def test_datetimes_and_durations_are_seconds_and_come_back(tmp_path, dtype, values):
    """Seconds since 1970-01-01 UTC (durations: seconds) to the model; the samples in the column's own dtype and
    zone, inside the training range."""
    frame = _base().assign(when=values)
    assert str(frame["when"].dtype) == dtype
    seconds = as_float(frame["when"])
    epoch = pd.Timestamp(0, tz="UTC")
    first = values[0]
    expected = ((first.tz_convert("UTC") if first.tzinfo else first.tz_localize("UTC")) - epoch).total_seconds() \
        if isinstance(first, pd.Timestamp) else first.total_seconds()
    assert seconds[0] == pytest.approx(expected, abs=1e-6)
    back = from_seconds(pd.Series(seconds), dtype)
    assert str(back.dtype) == dtype and (back.reset_index(drop=True) == frame["when"]).all()
    frame.to_parquet(tmp_path / "t.parquet")
    out = tmp_path / "run"
    result = cli("train", "--preset", "table", "--data", tmp_path / "t.parquet", "--steps", 3, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert cli("sample", out, "--n", 50, "--out", tmp_path / "s.parquet").exit_code == 0
    sampled = pd.read_parquet(tmp_path / "s.parquet")["when"]
    assert str(sampled.dtype) == dtype
    assert sampled.min() >= frame["when"].min() and sampled.max() <= frame["when"].max()


@pytest.mark.parametrize(("column", "words"), [
    ([bytes([i % 3]) for i in range(N)], ["'x'", "bytes", "decode"]),
    ([{"k": i % 2} for i in range(N)], ["'x'", "dicts", "one value per cell"]),
    ([[i % 2, 1] for i in range(N)], ["'x'", "lists", "one value per cell"]),
], ids=["bytes", "dict", "list"])
def test_cells_difflab_cannot_model_are_refused_before_any_file(tmp_path, column, words):
    _base().assign(x=column).to_parquet(tmp_path / "t.parquet")
    before = listing(tmp_path)
    one_line_error(cli("train", "--preset", "table", "--data", tmp_path / "t.parquet", "--out", tmp_path / "run"),
                   "t.parquet", *words)
    assert listing(tmp_path) == before  # no run folder of config.json and schedule.json


def test_complex_and_big_integers_in_a_frame():
    cfg = DataConfig(source="frame")
    with pytest.raises(DataError, match="'z' holds complex numbers"):
        prepare_frame(_base().assign(z=np.arange(N) + 1j), cfg)
    ids = _base().assign(id=2**60 + 7 * np.arange(N, dtype=np.int64))
    with pytest.raises(DataError, match=r"'id' holds whole numbers up to 1152921504606847389, beyond 2\^53"):
        prepare_frame(ids, cfg)
    assert prepare_frame(ids, cfg.model_copy(update={"continuous": ["id"]})).train.shape[1] == 3  # as asked


def test_semicolon_file_with_decimal_commas_is_read_as_numbers(tmp_path):
    frame = _base()
    text = "a;b\n" + "".join(f"{a:.4f};{b:.4f}\n".replace(".", ",") for a, b in frame.to_numpy())
    (tmp_path / "de.csv").write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    result = cli("train", "--preset", "seed", "--data", tmp_path / "de.csv", "--steps", 3, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert "D=2" in result.stdout
    train = np.load(out / "train.npy")
    assert train.shape[1] == 2 and 5 < train[:, 1].mean() < 15  # column b, read as numbers near 10


def test_quoted_decimal_commas_in_a_comma_file_are_refused(tmp_path):
    text = "a,b\n" + "".join(f'"{a:.3f}",{b:.3f}\n'.replace(".", ",", 1) for a, b in _base().to_numpy())
    (tmp_path / "q.csv").write_text(text, encoding="utf-8")
    one_line_error(cli("train", "--preset", "seed", "--data", tmp_path / "q.csv", "--out", tmp_path / "run"),
                   "'a'", "decimal comma")


def test_integers_beyond_2_53_in_a_csv_are_refused(tmp_path):
    rows = "".join(f"{a:.3f},{2**70 + 7 * i}\n" for i, a in enumerate(_base()["a"]))
    (tmp_path / "ids.csv").write_text("a,id\n" + rows, encoding="utf-8")
    one_line_error(cli("train", "--preset", "table", "--data", tmp_path / "ids.csv", "--out", tmp_path / "run"),
                   "'id'", "2^53", "--columns")


def test_a_range_float64_cannot_hold_is_refused(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, N) * 1.7e308
    pd.DataFrame({"a": x, "b": np.arange(N) * 0.5}).to_csv(tmp_path / "wide.csv", index=False)
    one_line_error(cli("train", "--preset", "table", "--data", tmp_path / "wide.csv", "--out", tmp_path / "run"),
                   "'a'", "overflows")
