"""One-step runs (MeanFlow, shortcut) through the command line: train → config.json → sample in 1, 2 and K calls →
evaluate → plot → report, and every combination that cannot work refused in one line before any data is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli, one_line_error
from difflab.assemble import check_config
from difflab.config import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ("--n", 300, "--steps", 40, "--batch-size", 64, "-q")


@pytest.fixture(scope="module")
def meanflow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mf") / "run"
    r = cli("train", "--preset", "meanflow", "--out", out, *TINY)
    assert r.exit_code == 0, r.output
    return out


def read(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def test_the_run_records_its_objective_and_samples_in_one_call(meanflow_run: Path, tmp_path: Path) -> None:
    cfg = json.loads((meanflow_run / "config.json").read_text())
    assert cfg["train"]["objective"] == "meanflow" and cfg["model"]["name"] == "jump-mlp"
    assert (cfg["sample"]["sampler"], cfg["sample"]["steps"]) == ("jumps", 1)
    traj = tmp_path / "traj.npy"
    r = cli("sample", meanflow_run, "--out", tmp_path / "one.csv", "--n", 50, "--trajectory", traj)
    assert r.exit_code == 0, r.output
    assert read(tmp_path / "one.csv").shape == (50, 2) and np.load(traj).shape == (2, 50, 2)  # x_1 and x_0: 1 call


@pytest.mark.parametrize("steps", [2, 4, 7])
def test_steps_k_are_k_jumps(meanflow_run: Path, tmp_path: Path, steps: int) -> None:
    traj = tmp_path / "traj.npy"
    r = cli("sample", meanflow_run, "--out", tmp_path / "k.csv", "--n", 30, "--steps", steps, "--trajectory", traj)
    assert r.exit_code == 0, r.output
    assert np.load(traj).shape == (steps + 1, 30, 2)
    assert np.isfinite(read(tmp_path / "k.csv")).all()


def test_other_samplers_read_the_instantaneous_velocity(meanflow_run: Path, tmp_path: Path) -> None:
    r = cli("sample", meanflow_run, "--out", tmp_path / "h.csv", "--n", 20, "--sampler", "heun", "--steps", 6,
            "--grid", "karras")
    assert r.exit_code == 0, r.output
    assert np.isfinite(read(tmp_path / "h.csv")).all()


def test_evaluate_plot_and_report(meanflow_run: Path, tmp_path: Path) -> None:
    r = cli("evaluate", meanflow_run, "--n", 100, "--repeats", 1, "--metrics", "w1", "--json", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "e.json").read_text())
    r = cli("plot", meanflow_run, "--kind", "samples,trajectories,field,loss", "--n", 40, "--out", tmp_path / "f")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "f").iterdir())) == 4
    r = cli("report", meanflow_run, "--out", tmp_path / "r.html", "--n", 60, "--eval-n", 60, "--repeats", 1)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.html").stat().st_size > 1000


def test_a_shortcut_run(tmp_path: Path) -> None:
    r = cli("train", "--preset", "shortcut", "--out", tmp_path / "sc", *TINY)
    assert r.exit_code == 0, r.output
    r = cli("sample", tmp_path / "sc", "--out", tmp_path / "s.csv", "--n", 20, "--steps", 2)
    assert r.exit_code == 0, r.output
    assert read(tmp_path / "s.csv").shape == (20, 2)


@pytest.mark.parametrize("args,words", [
    (("--objective", "meanflow"), ["objective 'meanflow'", "--model jump-mlp"]),
    (("--model", "jump-mlp"), ["model 'jump-mlp'", "objective meanflow or shortcut"]),
    (("--preset", "meanflow", "--schedule", "edm", "--parameterization", "edm"), ["straight path", "rectified"]),
    (("--preset", "meanflow", "--objective", "denoising"), ["model 'jump-mlp'"]),
    (("--preset", "meanflow", "--time", "discrete", "--schedule", "poly"), ["objective 'meanflow'", "rectified"]),
    (("--objective", "reflow"), ["--objective"]),
    (("--data", "no-such-file.csv", "--objective", "meanflow"), ["--model jump-mlp"]),  # before loading data
])
def test_train_refuses_what_cannot_work(tmp_path: Path, args: tuple, words: list[str]) -> None:
    out = tmp_path / "bad"
    one_line_error(cli("train", "--out", out, *args, "--steps", 1), *words)
    assert not out.exists()


@pytest.mark.parametrize("preset", ["meanflow", "shortcut"])
def test_the_presets_are_workable(preset: str) -> None:
    check_config(resolve_config(preset))


def test_noise_sampling_lognormal_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('preset = "meanflow"\n[train]\nnoise_sampling = "lognormal"\n')
    one_line_error(cli("train", "--config", config, "--out", tmp_path / "bad", "--steps", 1), "lognormal")


def test_jumps_need_a_two_time_run_and_one_step_runs_are_not_distilled(meanflow_run: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    assert cli("train", "--out", plain, "--preset", "recommended", *TINY).exit_code == 0
    one_line_error(cli("sample", plain, "--out", tmp_path / "x.csv", "--sampler", "jumps"), "sampler 'jumps'",
                   "meanflow or shortcut")
    assert not (tmp_path / "x.csv").exists()
    one_line_error(cli("distill", meanflow_run, "--out", tmp_path / "d"), "cannot be distilled")
    assert not (tmp_path / "d").exists()


def test_a_conditional_one_step_run(tmp_path: Path) -> None:
    """Class labels reach the two-time network in training (with the JVP's rows) and in guided jumps."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 200)
    xy = rng.normal(size=(200, 2)) + 3 * label[:, None]
    rows = "\n".join(f"{a:.4f},{b:.4f},{'ab'[k]}" for (a, b), k in zip(xy, label, strict=True))
    (tmp_path / "t.csv").write_text("x,y,kind\n" + rows + "\n")
    r = cli("train", "--preset", "meanflow", "--data", tmp_path / "t.csv", "--condition", "kind", "--out",
            tmp_path / "c", "--steps", 20, "--batch-size", 64, "-q")
    assert r.exit_code == 0, r.output
    r = cli("sample", tmp_path / "c", "--out", tmp_path / "c.csv", "--n", 30, "--where", "kind=b", "--guidance", 1,
            "--steps", 2)
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert lines[0] == "x,y,kind" and len(lines) == 31 and all(line.endswith(",b") for line in lines[1:])
