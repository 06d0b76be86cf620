"""``difflab impute`` and ``difflab sample --given`` / ``plot --kind conditional`` on the command line: files, names,
the exact conditional of a toy with its exact denoiser (an oracle run: nothing trained), and one-line refusals with
nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import cli, one_line_error
from difflab import TabularDiffusion

FAST = {"steps": 60, "width": 32, "depth": 1, "T": 20}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("impute")
    rng = np.random.default_rng(0)
    n = 100
    df = pd.DataFrame({"x": rng.normal(10, 3, n), "count": rng.poisson(4, n), "colour": rng.choice(["red", "blue"], n),
                       "flag": rng.random(n) < 0.4})
    TabularDiffusion(**FAST, seed=0).fit(df).save(root / "table")
    inc = df.copy().astype({"count": np.float64, "colour": object, "flag": object})
    holes = rng.random(df.shape) < 0.25
    for j, c in enumerate(df.columns):
        inc.loc[holes[:, j], c] = np.nan if c in ("x", "count") else None
    inc.to_csv(root / "inc.csv", index=False)
    df.to_csv(root / "full.csv", index=False)
    for name in ("blobs", "8gaussians"):  # exact denoisers of the toys' mixtures: built, not trained
        assert cli("train", "--data", name, "--model", "oracle", "--preset", "table", "--scaler", "minmax",
                   "--out", root / name, "-q").exit_code == 0
    for d in (1, 10):  # exact denoisers of the training points of a D-column file
        pd.DataFrame(rng.normal(size=(200, d)), columns=[f"c{i}" for i in range(d)]).to_csv(root / f"d{d}.csv",
                                                                                            index=False)
        assert cli("train", "--data", root / f"d{d}.csv", "--model", "oracle-empirical", "--preset", "table",
                   "--out", root / f"d{d}", "-q").exit_code == 0
    return root


def test_impute_writes_the_table_with_its_observed_cells_as_they_were(ws):
    r = cli("impute", ws / "table", "--data", ws / "inc.csv", "--out", ws / "filled.csv", "--resample", 2,
            "--jump", 2)
    assert r.exit_code == 0, r.output
    inc, out = pd.read_csv(ws / "inc.csv"), pd.read_csv(ws / "filled.csv")
    assert list(out.columns) == list(inc.columns) and not out.isna().any().any()
    for c in inc.columns:
        seen = inc[c].notna().to_numpy()
        assert np.array_equal(out[c].to_numpy()[seen], inc[c].to_numpy()[seen]), c
    assert out["count"].dtype == np.int64 and set(out["colour"]) <= {"red", "blue"}


def test_draws_are_numbered_and_the_point_estimate_is_one_file(ws):
    r = cli("impute", ws / "table", "--data", ws / "inc.csv", "--out", ws / "mi" / "f.parquet", "--draws", 3,
            "--resample", 1)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (ws / "mi").iterdir()) == ["f-1.parquet", "f-2.parquet", "f-3.parquet"]
    frames = [pd.read_parquet(ws / "mi" / f"f-{m}.parquet") for m in (1, 2, 3)]
    assert not frames[0].equals(frames[1])
    r = cli("impute", ws / "table", "--data", ws / "inc.csv", "--out", ws / "pt" / "p.csv", "--draws", 3, "--point",
            "--resample", 1)
    assert r.exit_code == 0 and [p.name for p in (ws / "pt").iterdir()] == ["p.csv"]


@pytest.mark.parametrize(("args", "words"), [
    (("--data", "full.csv"), ["no missing cells"]),
    (("--data", "inc.csv", "--draws", "0"), ["--draws"]),
    (("--data", "inc.csv", "--out-format"), ["--out-format"]),
    (("--data", "missing.csv"), ["missing.csv", "not found"]),
])
def test_impute_refusals_write_nothing(ws, args, words):
    out = ws / "refused" / "out.csv"
    r = cli("impute", ws / "table", *[ws / a if a.endswith(".csv") else a for a in args], "--out", out)
    one_line_error(r, *words)
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_labels_do_not_fit_a_npy(ws):
    one_line_error(cli("impute", ws / "table", "--data", ws / "inc.csv", "--out", ws / "x.npy"), ".npy", "labels")


def test_given_draws_the_exact_conditional_of_a_mixture(ws):
    """blobs given x = 2.5: the blobs at (2.5, ±2.5) with equal weight, std 0.4 (the others are 6 sd away). In the
    run's min-max space a blob's std is 0.12, small beside the noise of the last steps, where the reverse jumps'
    variance is below the true reverse variance: resampling there narrows the draws (measured std ratio 0.80-0.88 on
    100 steps, 0.64-0.70 on 40-50)."""
    r = cli("sample", ws / "blobs", "--given", "x=2.5", "--n", 400, "--out", ws / "g.csv")
    assert r.exit_code == 0, r.output
    g = pd.read_csv(ws / "g.csv")
    assert (g["x"] == 2.5).all()
    up, down = g["y"][g["y"] > 0], g["y"][g["y"] <= 0]
    assert 0.4 < len(up) / 400 < 0.6
    for mode, centre in ((up, 2.5), (down, -2.5)):
        assert abs(mode.mean() - centre) < 0.08 and 0.7 < mode.std() / 0.4 < 1.1


def test_given_on_ten_columns_and_refused_on_one(ws):
    r = cli("sample", ws / "d10", "--given", "c0=0.5", "--given", "c3=-1", "--given", "c9=2", "--n", 20,
            "--steps", 10, "--out", ws / "g10.npy")
    assert r.exit_code == 0, r.output
    x = np.load(ws / "g10.npy")
    assert x.shape == (20, 10) and np.all(x[:, [0, 3, 9]] == [0.5, -1.0, 2.0]) and np.isfinite(x).all()
    one_line_error(cli("sample", ws / "d1", "--given", "c0=1", "--out", ws / "g1.csv"), "nothing left to draw")
    assert not (ws / "g1.csv").exists()


@pytest.mark.parametrize(("args", "words"), [
    (("--given", "z=1"), ["no column 'z'"]),
    (("--given", "x=abc"), ["x=abc", "number"]),
    (("--given", "x"), ["COLUMN=VALUE"]),
    (("--given", "x=1", "--given", "x=2"), ["given twice"]),
    (("--given", "x=1", "--given", "y=2"), ["nothing left to draw"]),
    (("--given", "x=1", "--trajectory", "t.npy"), ["--trajectory", "--given"]),
])
def test_given_refusals(ws, args, words):
    one_line_error(cli("sample", ws / "blobs", *args, "--out", ws / "bad.csv"), *words)
    assert not (ws / "bad.csv").exists()


def test_conditional_figure_and_its_refusals(ws):
    r = cli("plot", ws / "8gaussians", "--kind", "conditional", "--given", "x=2", "--n", 100, "--out", ws / "fig")
    assert r.exit_code == 0, r.output
    assert (ws / "fig" / "conditional-x.png").stat().st_size > 10_000
    one_line_error(cli("plot", ws / "8gaussians", "--kind", "conditional", "--out", ws / "fig2"), "--given")
    one_line_error(cli("plot", ws / "8gaussians", "--kind", "data", "--given", "x=1", "--out", ws / "fig2"),
                   "--kind conditional")
    one_line_error(cli("plot", ws / "d10", "--kind", "conditional", "--given", "c0=1", "--out", ws / "fig2"), "D = 2")
    assert not (ws / "fig2").exists()


def test_given_labels_of_a_table_run(ws):
    r = cli("sample", ws / "table", "--given", "colour=red", "--given", "flag=true", "--n", 12, "--out", ws / "t.csv",
            "--resample", 1)
    assert r.exit_code == 0, r.output
    t = pd.read_csv(ws / "t.csv")
    assert (t["colour"] == "red").all() and t["flag"].all() and not t.isna().any().any()
    one_line_error(cli("sample", ws / "table", "--given", "colour=green", "--out", ws / "t2.csv"), "not a level",
                   "red")
