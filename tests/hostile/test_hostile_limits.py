"""Size limits and numbers out of range: each refused in one line before anything is allocated or written, naming
the limit and how to raise it (difflab.limits). Before issue 18 these allocated gigabytes, hung, or crashed with a
traceback."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from hostile_helpers import cli, listing, one_line_error

from difflab import limits
from difflab.sweep.grid import expand, load_grid


def _toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("toml", "words"), [
    ("[train]\nsteps = 1e15\n", ["--steps 1,000,000,000,000,000", "DIFFLAB_MAX_STEPS="]),
    ("[train]\nseed = 100000000000000000000\n", ["--seed 100000000000000000000", "0 to 9223372036854775807"]),
    ("[data]\nn = 3e8\n", ["--n 300,000,000", "DIFFLAB_MAX_ROWS="]),
    ("[model]\nname = 'mlp'\noptions = {width = 30000}\n", ["width = 30,000", "DIFFLAB_MAX_WIDTH="]),
    ("[model]\nname = 'mlp'\noptions = {depth = 100000}\n", ["depth = 100,000", "DIFFLAB_MAX_DEPTH="]),
    ("[model]\nname = 'mlp'\noptions = {width = 12000, depth = 200}\n", ["parameters", "DIFFLAB_MAX_PARAMS="]),
    ("[model]\nname = 'mlp'\noptions = {width = -3}\n", ["width = -3", "at least 1"]),
    ("[model]\nname = 'mlp'\noptions = {emb_dim = 7}\n", ["emb_dim = 7", "even"]),
    ("[train]\nthreads = 100000\n", ["threads", "DIFFLAB_MAX_THREADS="]),
], ids=["steps-1e15", "seed-1e20-as-integer", "toy-n-3e8", "width", "depth", "params", "negative-width", "odd-emb", "threads"])
def test_config_sizes_refused_before_anything(tmp_path, toml, words):
    config = _toml(tmp_path / "c.toml", toml)
    before = listing(tmp_path)
    start = time.perf_counter()
    one_line_error(cli("train", "--config", config, "--out", tmp_path / "out"), *words)
    assert time.perf_counter() - start < 10  # refused, not attempted
    assert listing(tmp_path) == before


@pytest.mark.parametrize(("argv", "words"), [
    ("train --preset seed --steps 2000000000", ["--steps 2,000,000,000", "8 GB", "DIFFLAB_MAX_STEPS="]),
    ("train --preset seed --seed 100000000000000000000", ["--seed", "9223372036854775807"]),
    ("train --preset seed --seed -1", ["--seed", "0"]),
    ("sample RUN --n 9223372036854775808", ["--n 9,223,372,036,854,775,808", "DIFFLAB_MAX_SAMPLES="]),
    ("sample RUN --n 4611686018427387904", ["--n 4,611,686,018,427,387,904", "DIFFLAB_MAX_SAMPLES="]),
    ("sample RUN --seed -1", ["--seed"]),
    ("sample RUN --seed 18446744073709551616", ["--seed"]),
    ("plot RUN --n 100000000", ["--n 100,000,000", "DIFFLAB_MAX_POINTS="]),
    ("report RUN --n 100000000", ["--n 100,000,000", "DIFFLAB_MAX_POINTS="]),
    ("report RUN --eval-n 1000000000", ["--eval-n", "DIFFLAB_MAX_EVAL_N="]),
    ("evaluate RUN --n 1000000000", ["--n 1,000,000,000", "DIFFLAB_MAX_EVAL_N="]),
    ("evaluate RUN --repeats 100000000", ["--repeats", "DIFFLAB_MAX_REPEATS="]),
], ids=lambda v: "-".join(v.split()[:1] + v.split()[2:]) if isinstance(v, str) else "")
def test_command_line_sizes_refused(run_dir, tmp_path, argv, words):
    args = [str(run_dir) if a == "RUN" else a for a in argv.split()]
    if args[0] in ("train", "sample", "plot"):
        args += ["--out", str(tmp_path / ("o.csv" if args[0] == "sample" else "o"))]
    before, run_before = listing(tmp_path), listing(run_dir)
    one_line_error(cli(*args), *words)
    assert listing(tmp_path) == before and listing(run_dir) == run_before


def test_limit_raised_by_its_environment_variable(monkeypatch):
    """The message's advice works: the variable named raises the limit, DIFFLAB_ALLOW_LARGE lifts them all, and a
    value that is no number is itself a one-line error."""
    with pytest.raises(limits.LimitError, match="DIFFLAB_MAX_STEPS=30"):
        monkeypatch.setenv("DIFFLAB_MAX_STEPS", "20")
        limits.check("steps", 30, label="--steps")
    monkeypatch.setenv("DIFFLAB_MAX_STEPS", "30")
    limits.check("steps", 30, label="--steps")
    monkeypatch.setenv("DIFFLAB_MAX_STEPS", "20")
    monkeypatch.setenv("DIFFLAB_ALLOW_LARGE", "1")
    limits.check("steps", 10**12, label="--steps")
    monkeypatch.delenv("DIFFLAB_ALLOW_LARGE")
    monkeypatch.setenv("DIFFLAB_MAX_STEPS", "lots")
    with pytest.raises(limits.LimitError, match="DIFFLAB_MAX_STEPS='lots'"):
        limits.check("steps", 1, label="--steps")


@pytest.mark.parametrize(("dim", "width", "depth", "emb"), [(1, 7, 1, 4), (2, 128, 3, 32), (10, 33, 5, 16)])
def test_mlp_parameter_count_matches_the_network(dim, width, depth, emb):
    """The parameter count that the width/depth limit uses, against the built network (D = 1, 2, 10)."""
    from difflab.models import build_model

    net = build_model("mlp", dim, 0, width=width, depth=depth, emb_dim=emb)
    assert limits.mlp_parameters(dim, width, depth, emb) == sum(p.numel() for p in net.parameters())


def test_text_id_column_refused_before_its_one_hot_matrix(tmp_path):
    """A text ID of 3000 rows would be 3000 one-hot features: refused, naming the column."""
    rng = np.random.default_rng(0)
    rows = "".join(f"{x:.4f},{y:.4f},user{i:05d}\n" for i, (x, y) in enumerate(rng.normal(size=(3000, 2))))
    data = tmp_path / "people.csv"
    data.write_text("a,b,id\n" + rows, encoding="utf-8")
    line = one_line_error(cli("train", "--preset", "table", "--data", data, "--out", tmp_path / "o"),
                          "people.csv", "DIFFLAB_MAX_FEATURES=", "'id'", "--columns")
    assert "2,000" in line
    assert not (tmp_path / "o").exists()


def _npy_claiming(path: Path, shape: tuple[int, ...]) -> Path:
    """A tiny .npy file whose header claims ``shape`` (its data is 4 numbers)."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
        f.write(np.zeros(4).tobytes())
    return path


def test_npy_header_with_a_huge_shape(tmp_path, run_copy):
    """As training data and as a run's train.npy: refused from the header, nothing allocated."""
    data = _npy_claiming(tmp_path / "huge.npy", (10**12, 2))
    one_line_error(cli("train", "--preset", "seed", "--data", data, "--out", tmp_path / "o"), "huge.npy", "shape")
    _npy_claiming(run_copy / "train.npy", (10**11, 2))
    one_line_error(cli("sample", run_copy, "--out", tmp_path / "s.csv"), "train.npy", "corrupt")
    # a header within the file's size but above the limit names the limit
    _npy_claiming(tmp_path / "big.npy", (2, 2))
    np.save(tmp_path / "big.npy", np.zeros((40, 2)))
    one_line_error(cli("train", "--preset", "seed", "--data", tmp_path / "big.npy", "--out", tmp_path / "o",
                       env={"DIFFLAB_MAX_ARRAY_BYTES": "100"}), "DIFFLAB_MAX_ARRAY_BYTES=")


def test_schedule_with_a_huge_T_or_beta_outside_the_unit_interval(run_copy, tmp_path):
    path = run_copy / "schedule.json"
    schedule = json.loads(path.read_text())
    for bad, words in (({**schedule, "betas": [0.0, 1.5, *schedule["betas"][2:]]}, ["schedule.json", "[0, 1]"]),
                       ({**schedule, "betas": [0.0, -0.1, *schedule["betas"][2:]]}, ["schedule.json", "[0, 1]"]),
                       ({**schedule, "betas": [0.0, math.nan, *schedule["betas"][2:]]}, ["schedule.json", "[0, 1]"]),
                       ({"time": "continuous", "name": "cosine", "T": 10**12}, ["T = 1,000,000,000,000",
                                                                                  "DIFFLAB_MAX_T="])):
        path.write_text(json.dumps(bad))
        one_line_error(cli("sample", run_copy, "--out", tmp_path / "s.csv"), *words)
        assert not (tmp_path / "s.csv").exists()


def test_a_million_cell_grid_is_refused_at_once(tmp_path):
    """Before a cell is resolved (their duplicate check was quadratic), and [evaluate] metrics of the wrong type."""
    grid = _toml(tmp_path / "g.toml", 'preset = "seed"\nseeds = [0, 1, 2, 3]\n[grid]\n"train.steps" = '
                 f"{list(range(1, 501))}\n\"diffusion.T\" = {list(range(1, 501))}\n")
    start = time.perf_counter()
    with pytest.raises(limits.LimitError, match="1,000,000"):
        expand(load_grid(grid))
    assert time.perf_counter() - start < 5
    one_line_error(cli("sweep", grid, "--out", tmp_path / "sw"), "DIFFLAB_MAX_CELLS=")
    bad = _toml(tmp_path / "m.toml", '[grid]\n"diffusion.T" = [3]\n[evaluate]\nmetrics = 5\n')
    one_line_error(cli("sweep", bad, "--out", tmp_path / "sw"), "m.toml", "metrics", "list")
    assert not (tmp_path / "sw").exists()
