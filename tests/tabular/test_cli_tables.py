"""Tables from the command line: train on mixed columns, sample to .csv/.parquet/.npy, evaluate with the row checks;
numeric runs as before; bad input as one line."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import cli, one_line_error
from difflab.rundir import load_run

FAST = ["--steps", "40", "--T", "20", "--batch-size", "64", "-q"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    n = 150
    x = rng.normal(size=n)
    mixed = pd.DataFrame({"x": x * 3 + 10, "count": rng.poisson(4, n), "colour": rng.choice(["red", "green", "blue"], n),
                          "flag": rng.random(n) < 0.4, "target": np.where(x > 0, "yes", "no")})
    mixed.to_csv(root / "mixed.csv", index=False)
    holes = mixed.astype({"count": float})
    holes.loc[[4, 9], "count"] = np.nan
    holes.loc[[1], "colour"] = None
    holes.to_csv(root / "holes.csv", index=False)
    mixed.assign(colour="purple").to_csv(root / "unseen.csv", index=False)
    mixed.drop(columns="flag").to_csv(root / "narrow.csv", index=False)
    pd.DataFrame(rng.normal(size=(100, 3)), columns=list("abc")).to_csv(root / "nums.csv", index=False)
    for name, extra in (("run", []), ("bits", ["--encoding", "bits", "--scaler", "quantile"]),
                        ("nums", []), ("holes", ["--missing", "category"])):
        data = {"run": "mixed.csv", "bits": "mixed.csv", "nums": "nums.csv", "holes": "holes.csv"}[name]
        r = cli("train", "--data", root / data, "--out", root / name, *FAST, *extra)
        assert r.exit_code == 0, r.output
    return root


def test_train_keeps_the_table_spec(ws: Path):
    data = json.loads((ws / "run" / "data.json").read_text())
    kinds = {c["name"]: c["kind"] for c in data["table"]["columns"]}
    assert kinds == {"x": "continuous", "count": "integer", "colour": "categorical", "flag": "boolean",
                     "target": "categorical"}
    assert data["columns"][:2] == ["x", "count"] and "colour=blue" in data["columns"]
    assert data["scaler"]["name"] == "table"
    bits = load_run(ws / "bits")
    assert bits.table.encoding == "bits" and "colour:bit1" in bits.columns and bits.scaler.inner.name == "quantile"
    nums = json.loads((ws / "nums" / "data.json").read_text())
    assert "table" not in nums and nums["columns"] == ["a", "b", "c"] and nums["scaler"]["name"] == "minmax"


@pytest.mark.parametrize("run", ["run", "bits"])
def test_sample_decodes_to_rows(ws: Path, run: str, tmp_path: Path):
    assert cli("sample", ws / run, "--n", 50, "--out", tmp_path / "s.csv").exit_code == 0
    rows = pd.read_csv(tmp_path / "s.csv")
    assert list(rows.columns) == ["x", "count", "colour", "flag", "target"]
    assert set(rows["colour"]) <= {"red", "green", "blue"} and set(rows["target"]) <= {"yes", "no"}
    assert rows["count"].dtype == np.int64 and rows["flag"].dtype == bool
    assert cli("sample", ws / run, "--n", 50, "--out", tmp_path / "s.parquet").exit_code == 0
    back = pd.read_parquet(tmp_path / "s.parquet")
    assert back["count"].dtype == np.int64 and back["flag"].dtype == bool and len(back) == 50
    one_line_error(cli("sample", ws / run, "--n", 5, "--out", tmp_path / "s.npy"), "s.npy", "'colour'", ".csv")
    assert not (tmp_path / "s.npy").exists()


def test_missing_values_as_their_own_level(ws: Path, tmp_path: Path):
    run = load_run(ws / "holes")
    assert run.table.column("count").missing and None in run.table.column("colour").levels
    assert cli("sample", ws / "holes", "--n", 400, "--out", tmp_path / "s.csv").exit_code == 0
    rows = pd.read_csv(tmp_path / "s.csv")
    assert set(rows["colour"].dropna()) <= {"red", "green", "blue"}


def test_numeric_runs_sample_as_before(ws: Path, tmp_path: Path):
    assert cli("sample", ws / "nums", "--n", 7, "--out", tmp_path / "s.csv").exit_code == 0
    text = (tmp_path / "s.csv").read_text().splitlines()
    assert text[0] == "a,b,c" and len(text) == 8
    assert cli("sample", ws / "nums", "--n", 7, "--out", tmp_path / "s.npy").exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), np.loadtxt(tmp_path / "s.csv", delimiter=",",
                                                                       skiprows=1), rtol=1e-7)
    assert cli("sample", ws / "nums", "--n", 7, "--out", tmp_path / "s.parquet").exit_code == 0
    assert list(pd.read_parquet(tmp_path / "s.parquet").columns) == ["a", "b", "c"]


def test_evaluate_a_table_run(ws: Path, tmp_path: Path):
    out = tmp_path / "r.json"
    r = cli("evaluate", ws / "run", "--repeats", 1, "--json", out)
    assert r.exit_code == 0, r.output
    for text in ("n = 15 chosen", "standardised by the reference's mean and sd", "per column", "correlations",
                 "training min or max", "ML efficacy", "'target'", "samples lie closer"):
        assert text in r.stdout, text
    rep = json.loads(out.read_text())
    assert rep["n"] == 15 and rep["standardised"] and rep["checks"]["efficacy"]["task"] == "classification"
    assert set(rep["checks"]["columns"]["per_column"]) == {"x", "count", "colour", "flag", "target"}
    raw = cli("evaluate", ws / "run", "--repeats", 1, "--metrics", "w1", "--raw-units", "--target", "x", "--json", out)
    assert raw.exit_code == 0, raw.output
    rep = json.loads(out.read_text())
    assert "data units" in raw.stdout and not rep["standardised"] and rep["checks"]["efficacy"]["task"] == "regression"
    r = cli("evaluate", ws / "run", "--repeats", 1, "--metrics", "w1", "--reference", ws / "mixed.csv", "--elbo")
    assert r.exit_code == 0 and "mixed.csv (150 rows)" in r.stdout and "ELBO" in r.stdout


def test_evaluate_two_table_files(ws: Path, tmp_path: Path):
    assert cli("sample", ws / "run", "--n", 200, "--out", tmp_path / "s.csv").exit_code == 0
    r = cli("evaluate", tmp_path / "s.csv", "--reference", ws / "mixed.csv", "--repeats", 1, "--metrics", "w1")
    assert r.exit_code == 0, r.output
    assert "n = 75 chosen" in r.stdout and "ML efficacy" in r.stdout


@pytest.mark.parametrize(("args", "words"), [
    (["train", "--data", "{ws}/mixed.csv", "--categorical", "nope", "--out", "{tmp}/x"], ["no column 'nope'"]),
    (["train", "--data", "{ws}/mixed.csv", "--integer", "colour", "--out", "{tmp}/x"], ["'colour'", "not numbers"]),
    (["train", "--data", "{ws}/holes.csv", "--out", "{tmp}/x"], ["holes.csv", "'count'", "missing", "--missing"]),
    (["train", "--data", "{ws}/mixed.csv", "--encoding", "gray", "--out", "{tmp}/x"], ["--encoding"]),
    (["train", "--data", "sklearn:mnist", "--out", "{tmp}/x"], ["sklearn:mnist", "sklearn:iris"]),
    (["evaluate", "{ws}/run", "--reference", "{ws}/unseen.csv"], ["unseen.csv", "'colour'", "'purple'", "never"]),
    (["evaluate", "{ws}/run", "--reference", "{ws}/narrow.csv"], ["narrow.csv", "no column 'flag'"]),
    (["evaluate", "{ws}/run", "--target", "nope"], ["--target 'nope'", "no such column"]),
    (["evaluate", "{ws}/run", "--reference", "moons"], ["moons", "table run"]),
    (["evaluate", "{ws}/bits", "--elbo"], ["quantile scaler is not affine"]),
])
def test_bad_table_input_is_one_line(ws: Path, tmp_path: Path, args: list[str], words: list[str]):
    argv = [a.format(ws=ws, tmp=tmp_path) for a in args]
    one_line_error(cli(*argv), *words)
    assert not (tmp_path / "x").exists()


def test_categorical_with_one_level_is_refused(ws: Path, tmp_path: Path):
    pd.DataFrame({"x": np.arange(20.0) * 1.5, "c": ["only"] * 20}).to_csv(tmp_path / "one.csv", index=False)
    one_line_error(cli("train", "--data", tmp_path / "one.csv", "--categorical", "c", "--out", tmp_path / "x"),
                   "'c'", "declared categorical", "one value ('only')")
    with pytest.warns(UserWarning, match="'c' is constant in the training rows"):  # detected: kept as a constant
        r = cli("train", "--data", tmp_path / "one.csv", "--out", tmp_path / "y", *FAST)
    assert r.exit_code == 0, r.output
    assert cli("sample", tmp_path / "y", "--n", 10, "--out", tmp_path / "s.csv").exit_code == 0
    assert set(pd.read_csv(tmp_path / "s.csv")["c"]) == {"only"}


def test_datasets_lists_sklearn_tables():
    out = cli("datasets").output
    for name in ("sklearn:iris", "sklearn:wine", "sklearn:breast_cancer", "sklearn:diabetes", "sklearn:digits"):
        assert name in out


def test_evaluate_picks_n_for_a_small_sample_file(tmp_path: Path):
    from difflab.data import get_dataset

    pd.DataFrame(get_dataset("8gaussians").iid(300, 1), columns=["x", "y"]).to_csv(tmp_path / "s.csv", index=False)
    r = cli("evaluate", tmp_path / "s.csv", "--reference", "8gaussians", "--repeats", 1, "--metrics", "w1")
    assert r.exit_code == 0, r.output
    assert "n = 300 chosen, the most the samples allow" in r.stdout
    one_line_error(cli("evaluate", tmp_path / "s.csv", "--reference", "8gaussians", "--n", 301), "fewer than n=301")
