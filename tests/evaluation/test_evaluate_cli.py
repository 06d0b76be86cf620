"""`difflab evaluate` through the command line: runs (toy and file data), sample files, --json, --elbo, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from difflab.cli import app
from difflab.compute import cpu_threads
from difflab.config import resolve_config
from difflab.data import get_dataset
from difflab.pipeline import train_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors only: one thread is faster, and much faster on a busy 2-core machine (see test_oracles)."""
    with cpu_threads(1):
        yield


def evaluate(*args: object):  # noqa: ANN201
    return runner.invoke(app, ["evaluate", *[str(a) for a in args]])


def assert_one_line_error(result, *fragments: str) -> None:  # noqa: ANN001
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def strict_json(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def write_csv(path: Path, x: np.ndarray) -> Path:
    names = ",".join(f"c{j}" for j in range(x.shape[1]))
    np.savetxt(path, x, delimiter=",", header=names, comments="")
    return path


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "oracle"
    cfg = resolve_config(overrides={"model": {"name": "oracle"}, "data": {"source": "8gaussians", "n": 500}})
    train_run(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def table_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny seed-recipe runs (20 steps) on a 3-column table: one keeps 20 % held out, one keeps none."""
    root = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    data = write_csv(root / "table.csv", rng.normal([0.0, 5.0, -2.0], [1.0, 2.0, 0.5], (200, 3)))
    out = {"data": data, "reference": write_csv(root / "ref.csv", rng.normal(0.0, 1.0, (100, 3)))}
    for name, holdout in (("heldout", 0.2), ("none", 0.0)):
        cfg = resolve_config("seed", overrides={"data": {"source": str(data), "holdout": holdout},
                                                "train": {"steps": 20}})
        out[name] = train_run(cfg, root / name, progress=False).path
    return out


def test_toy_run_table_memorisation_elbo_and_json(oracle_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    r = evaluate(oracle_run, "--n", 500, "--repeats", 1, "--floor-pairs", 3, "--metrics", "w1,energy", "--elbo",
                 "--json", out)
    assert r.exit_code == 0, r.output
    for text in ("metric", "floor", "w1", "energy", "memorisation", "ELBO", "true NLL"):
        assert text in r.stdout
    rep = strict_json(out)
    assert set(rep) >= {"w1", "energy", "n", "seed", "repeats", "memorisation", "elbo", "sampling"}
    assert "mmd" not in rep
    assert set(rep["w1"]) == {"value", "value_se", "floor", "floor_se", "ratio", "ratio_se", "repeats", "floor_pairs"}
    assert rep["w1"]["ratio"] < 1.5 and rep["w1"]["floor_pairs"] == 3
    assert rep["w1"]["ratio_se"] is None and f"{rep['w1']['ratio']:.2f} ± ?" in r.stdout  # one repeat: no spread
    assert (rep["n"], rep["seed"], rep["repeats"]) == (500, 0, 1)
    assert 0.6 < rep["memorisation"]["ratio"] < 1.5  # the mixture oracle does not copy its training points
    e = rep["elbo"]
    assert e["n"] == 500 and e["dim"] == 2
    assert e["gap"] == pytest.approx(e["nats_per_dim"] - e["true_nll"])
    # the exact denoiser's bound is a little above the true NLL of the same points (the default process, 200 jumps)
    assert -4 * e["stderr"] < e["gap"] < 0.3
    assert math.isclose(e["bits_per_dim"], e["nats_per_dim"] / math.log(2))


def test_sampler_options_change_the_samples(oracle_run: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert evaluate(oracle_run, "--n", 100, "--repeats", 1, "--floor-pairs", 4, "--metrics", "energy",
                    "--json", a).exit_code == 0
    r = evaluate(oracle_run, "--n", 100, "--repeats", 1, "--floor-pairs", 4, "--metrics", "energy", "--sampler", "ddim",
                 "--steps", 20, "--json", b)
    assert r.exit_code == 0, r.output
    ja, jb = strict_json(a), strict_json(b)
    assert jb["sampling"]["sampler"] == "ddim" and jb["sampling"]["steps"] == 20
    assert ja["energy"]["floor"] == jb["energy"]["floor"]  # same seed, same true samples
    assert ja["energy"]["value"] != jb["energy"]["value"]


def test_file_run_compares_with_its_heldout_rows(table_runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = evaluate(table_runs["heldout"], "--n", 20, "--repeats", 2, "--floor-pairs", 3, "--metrics", "energy,swd",
                 "--elbo", "--json", out)
    assert r.exit_code == 0, r.output
    rep = strict_json(out)
    assert rep["reference"] == "the run's held-out rows"
    assert rep["memorisation"]["n_heldout"] == 20 and rep["memorisation"]["n_generated"] == 20
    assert rep["elbo"]["n"] == 20 and rep["elbo"]["dim"] == 3 and "true_nll" not in rep["elbo"]
    assert math.isfinite(rep["elbo"]["nats_per_dim"])


def test_file_run_errors(table_runs: dict[str, Path], tmp_path: Path) -> None:
    assert_one_line_error(evaluate(table_runs["heldout"], "--n", 30), "40 points", "--n 20 or fewer")
    assert_one_line_error(evaluate(table_runs["none"], "--n", 10), "held-out", "--reference")
    assert_one_line_error(evaluate(table_runs["heldout"], "--reference", "8gaussians"), "3 columns")
    assert_one_line_error(evaluate(table_runs["heldout"], "--sampler", "euler"), "unknown sampler")
    assert_one_line_error(evaluate(table_runs["heldout"], "--elbo-variance", "medium"), "--elbo-variance")
    assert_one_line_error(evaluate(table_runs["heldout"], "--floor-pairs", 1), "--floor-pairs 1")
    r = evaluate(table_runs["none"], "--n", 10, "--repeats", 1, "--floor-pairs", 2, "--metrics", "energy", "--reference",
                 table_runs["reference"])
    assert r.exit_code == 0, r.output
    assert "ref.csv" in r.stdout


@pytest.fixture
def sample_files(tmp_path: Path) -> dict[str, Path]:
    toy = get_dataset("8gaussians")
    return {
        "good": write_csv(tmp_path / "good.csv", toy.iid(600, 11)),
        "shifted": write_csv(tmp_path / "shifted.csv", toy.iid(600, 12) + 1.0),
        "wide": write_csv(tmp_path / "wide.csv", np.random.default_rng(0).normal(size=(600, 3))),
        "ref_npy": tmp_path / "ref.npy",
    }


def test_sample_file_against_toy_and_reference_file(sample_files: dict[str, Path], tmp_path: Path) -> None:
    np.save(sample_files["ref_npy"], get_dataset("8gaussians").iid(500, 13))
    out = tmp_path / "s.json"
    r = evaluate(sample_files["good"], "--reference", "8gaussians", "--n", 200, "--repeats", 2, "--floor-pairs", 10,
                 "--metrics", "w1", "--json", out)
    assert r.exit_code == 0, r.output
    good = strict_json(out)
    assert "memorisation" not in good and "elbo" not in good
    assert 0 < good["w1"]["ratio_se"] < 0.5 and f"{good['w1']['ratio']:.2f} ± " in r.stdout
    r = evaluate(sample_files["shifted"], "--reference", "8gaussians", "--n", 200, "--repeats", 2, "--floor-pairs", 10,
                 "--metrics", "w1", "--json", out)
    shifted = strict_json(out)
    assert good["w1"]["ratio"] < 1.5 < 3 < shifted["w1"]["ratio"]
    r = evaluate(sample_files["good"], "--reference", sample_files["ref_npy"], "--n", 200, "--repeats", 2,
                 "--floor-pairs", 5, "--metrics", "w1")
    assert r.exit_code == 0, r.output
    assert "ref.npy (500 rows)" in r.stdout


@pytest.mark.parametrize(("args", "fragments"), [
    (["good"], ["--reference"]),
    (["wide", "--reference", "8gaussians"], ["3 columns"]),
    (["good", "--reference", "wide"], ["3 columns"]),
    (["good", "--reference", "8gaussians", "--metrics", "w1,fid"], ["unknown metric 'fid'"]),
    (["good", "--reference", "8gaussians", "--n", 1000], ["fewer than n=1000"]),
    (["good", "--reference", "8gaussians", "--elbo"], ["--elbo", "run directory"]),
    (["good", "--reference", "nonesuch"], ["nonesuch"]),
    (["missing.csv", "--reference", "8gaussians"], ["no such"]),
    (["good", "--reference", "8gaussians", "--json", "out.txt"], ["out.txt", ".json"]),
])
def test_sample_file_errors(sample_files: dict[str, Path], tmp_path: Path, args: list, fragments: list) -> None:
    args = [sample_files.get(a, a) if isinstance(a, str) else a for a in args]
    out = tmp_path / "never.json"
    r = evaluate(*args, *([] if "--json" in args else ["--json", out]))
    assert_one_line_error(r, *fragments)
    assert not out.exists()

