"""The command line end to end: train → sample (csv, npy, trajectory) → plot, for D = 1, 2 and 10; --help; plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import difflab.cli
from difflab.cli import app
from difflab.config import RunConfig, resolve_config
from difflab.errors import DifflabError
from difflab.rundir import FILES, load_run

RUNNER = CliRunner()
PNG, GIF = b"\x89PNG\r\n\x1a\n", b"GIF8"
STEPS = 200  # enough for the samples to land on the data's location and scale; ~0.5 s each


def cli(*args: object, code: int = 0):
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    """One tiny trained run per width: D = 1 and 10 from csv files offset by +100 (columns of scale 1..10),
    D = 2 from the moons toy."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    out: dict[int, Path] = {}
    for dim in (1, 2, 10):
        args: list[object] = ["--preset", "seed", "--steps", STEPS]
        if dim == 2:
            args += ["--data", "moons", "--n", 200]
        else:
            data = root / f"table{dim}.csv"
            x = 100 + rng.normal(size=(250, dim)) * np.arange(1, dim + 1)
            np.savetxt(data, x, delimiter=",", header=",".join(f"c{j}" for j in range(dim)), comments="")
            args += ["--data", data]
        out[dim] = root / f"run{dim}"
        text = cli("train", *args, "--out", out[dim], "-q").output
        assert f"D={dim}" in text and "to step 200" in text
    return out


@pytest.fixture(params=[1, 2, 10], ids=lambda d: f"D{d}")
def run_dir(request, runs) -> Path:
    return runs[request.param]


def test_train_writes_a_complete_run_directory(run_dir):
    for key in ("config", "data", "schedule", "train", "model", "checkpoint", "loss"):
        assert (run_dir / FILES[key]).stat().st_size > 0, key
    run = load_run(run_dir)
    raw = json.loads((run_dir / FILES["config"]).read_text())
    assert RunConfig.model_validate(raw) == run.config  # the saved config round-trips
    expected = resolve_config("seed", overrides={"train": {"steps": STEPS}, "data": {
        "source": run.config.data.source, "n": run.config.data.n}})
    # the thread count is resolved at training time (from the network's size and the cores) and recorded, so that
    # the saved config trains the same model again; the seed network is small work: one thread
    assert run.config.train.threads == 1 and expected.train.threads is None
    recorded = expected.model_copy(update={"train": expected.train.model_copy(update={"threads": 1})})
    assert run.config == recorded
    losses = np.loadtxt(run_dir / FILES["loss"], delimiter=",", skiprows=1)
    assert losses.shape == (STEPS, 2) and np.all(np.isfinite(losses))
    if run.toy is None:  # a file: 20 % of its 250 rows held out, the rest trained on
        assert run.train.shape == (200, run.dim) and run.heldout.shape == (50, run.dim)


def test_sample_in_data_units(tmp_path, run_dir):
    run = load_run(run_dir)
    csv, npy, traj = tmp_path / "s.csv", tmp_path / "s.npy", tmp_path / "traj.npy"
    cli("sample", run_dir, "--n", 400, "--out", csv, "--seed", 3)
    cli("sample", run_dir, "--n", 400, "--out", npy, "--seed", 3, "--trajectory", traj)
    x = np.load(npy)
    assert x.shape == (400, run.dim) and np.all(np.isfinite(x))
    header = csv.read_text().splitlines()[0]
    assert header == ",".join(run.columns)
    np.testing.assert_allclose(np.loadtxt(csv, delimiter=",", skiprows=1, ndmin=2), x, rtol=1e-7)
    tr = np.load(traj)
    assert tr.shape == (run.config.diffusion.T + 1, 400, run.dim)
    np.testing.assert_allclose(tr[-1], x, rtol=1e-12)  # the trajectory ends at the samples, in data units too
    # data units: each column's location and spread, not the scaled space's [-1, 1]
    mean, std = run.train.mean(0), run.train.std(0)
    assert np.all(np.abs(x.mean(0) - mean) < std), (x.mean(0), mean)
    assert np.all((x.std(0) > 0.5 * std) & (x.std(0) < 2 * std)), (x.std(0), std)
    if run.toy is None:
        assert np.all(np.abs(x.mean(0) - 100) < 10)
    # a few-step DDIM trajectory has K + 1 states
    cli("sample", run_dir, "--n", 50, "--out", tmp_path / "k.csv", "--sampler", "ddim", "--steps", 4,
        "--trajectory", tmp_path / "k.npy")
    assert np.load(tmp_path / "k.npy").shape == (5, 50, run.dim)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.csv", "k.npy", "s.csv", "s.npy", "traj.npy"]


@pytest.mark.slow
def test_plot_draws_every_figure_that_applies(tmp_path, run_dir):
    dim = load_run(run_dir).dim
    out = tmp_path / "figs"
    printed = cli("plot", run_dir, "--n", 60, "--out", out).output.split()
    names = {"data.png", "forward.png", "samples.png", "trajectories.png", "schedules.png", "loss.png",
             "reverse.gif"} | ({"vector_field.png"} if dim == 2 else set())
    assert {Path(p).name for p in printed} == names
    assert sorted(os.listdir(out)) == sorted(names)  # nothing else, no temp files
    for name in names:
        head = (out / name).read_bytes()[:8]
        assert head.startswith(GIF if name.endswith(".gif") else PNG), name
        assert (out / name).stat().st_size > 1000, name
    if dim != 2:
        r = cli("plot", run_dir, "--kind", "field", "--out", tmp_path / "f", code=2)
        assert r.stderr.startswith("error: --kind field:") and f"D = {dim}" in r.stderr
        assert r.stderr.count("\n") == 1 and not (tmp_path / "f").exists()


@pytest.mark.slow
def test_plot_draws_every_figure_of_a_continuous_time_run(tmp_path, dim):
    """The default recipe (continuous time, EDM) has no discrete schedule table: its schedule figure shows the β of
    its T jumps. (`make demo` plots the default recipe; this failed before.)"""
    data = tmp_path / "x.csv"
    x = np.random.default_rng(dim).normal(size=(200, dim))
    np.savetxt(data, x, delimiter=",", header=",".join(f"c{j}" for j in range(dim)), comments="")
    run_dir = tmp_path / "run"
    cli("train", "--data", data, "--steps", 20, "--T", 20, "--out", run_dir, "-q")
    assert not load_run(run_dir).diffusion.discrete
    printed = cli("plot", run_dir, "--n", 40, "--out", tmp_path / "figs").output.split()
    names = {"data.png", "forward.png", "samples.png", "trajectories.png", "schedules.png", "loss.png",
             "reverse.gif"} | ({"vector_field.png"} if dim == 2 else set())
    assert {Path(p).name for p in printed} == names
    assert (tmp_path / "figs" / "schedules.png").read_bytes()[:8] == PNG


def test_plot_kinds_subset_and_default_folder(runs):
    run_dir = runs[2]
    printed = cli("plot", run_dir, "--kind", "loss,field", "--kind", "loss", "--t", 2, "--n", 30).output.split()
    assert [Path(p).name for p in printed] == ["loss.png", "vector_field.png"]
    assert all(Path(p).parent == run_dir / "figures" for p in printed)


def test_help_on_every_command():
    top = cli("--help").output
    for name in ("train", "sample", "plot", "datasets", "demo"):
        assert name in top
        text = " ".join(cli(name, "--help").output.split())
        assert "Usage:" in text
    train = " ".join(cli("train", "--help").output.replace("│", " ").split())
    for opt in ("--preset", "--config", "--data", "--columns", "--schedule", "--T", "--steps", "--model", "--scaler",
                "--batch-size", "--lr", "--seed", "--resume", "--out"):
        assert opt in train, opt
    assert "data, diffusion, model, train, sample" in train  # not eaten as rich markup
    sample = " ".join(cli("sample", "--help").output.split())
    for opt in ("--n", "--out", "--sampler", "--steps", "--seed", "--trajectory"):
        assert opt in sample, opt


def test_help_names_match_the_registries():
    from difflab.diffusion import CONTINUOUS, PARAMETERIZATIONS, SCHEDULES
    from difflab.figures import FIGURES
    from difflab.models import MODELS
    from difflab.sampling import GRIDS, SAMPLERS

    def names(text: str) -> list[str]:
        return [n.strip() for n in text.replace(",", "|").split("|")]

    assert set(names(difflab.cli.SCHEDULE_NAMES)) == {*SCHEDULES, *CONTINUOUS, "array"}
    assert set(names(difflab.cli.GRID_NAMES)) == set(GRIDS)
    assert set(names(difflab.cli.PARAMETERIZATION_NAMES)) == set(PARAMETERIZATIONS)
    assert set(names(difflab.cli.SAMPLER_NAMES)) == set(SAMPLERS)
    assert names(difflab.cli.FIGURE_KINDS) == list(FIGURES)
    assert set(names(difflab.cli.MODEL_NAMES)) <= set(MODELS)  # the trainable ones; more may be registered


def test_datasets_lists_the_toys_and_sklearn_tables():
    from difflab.data import DATASETS
    from difflab.data.sklearn_sets import SKLEARN_SETS

    lines = cli("datasets").output.splitlines()
    assert [line.split()[0] for line in lines] == [*DATASETS, *(f"sklearn:{n}" for n in SKLEARN_SETS)]


def test_train_with_only_data_uses_the_recommended_recipe(monkeypatch, tmp_path):
    import difflab.pipeline

    seen = {}

    def fake_train_run(cfg, out, *, resume, progress):
        seen["cfg"] = cfg
        raise DifflabError("stop here")

    monkeypatch.setattr(difflab.pipeline, "train_run", fake_train_run)
    cli("train", "--data", "moons", "--out", tmp_path / "r", code=2)
    assert seen["cfg"] == resolve_config("recommended", overrides={"data": {"source": "moons"}})
    cli("train", "--preset", "seed", "--out", tmp_path / "r", code=2)
    assert seen["cfg"] == resolve_config("seed")


def test_python_dash_m_difflab():
    """The real entry point; --help imports neither torch nor the plugin modules, so it answers at once."""
    r = subprocess.run([sys.executable, "-m", "difflab", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Usage: difflab" in " ".join(r.stdout.split())
    assert all(name in r.stdout for name in ("train", "sample", "plot", "datasets", "demo"))
    r = subprocess.run([sys.executable, "-m", "difflab"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "train" in r.stdout  # bare `difflab` shows the help
    code = textwrap.dedent("""
        import sys, difflab.cli
        try:
            difflab.cli.main(["train", "--help"])
        except SystemExit as e:
            print(e.code, "torch" in sys.modules, file=sys.stderr)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "--resume" in r.stdout and r.stderr.split() == ["0", "False"]


def test_plugins_load_on_first_use(monkeypatch, tmp_path):
    """evaluate / sweep are added by their modules' register(app), imported only when their command runs."""
    pkg = tmp_path / "fake_difflab_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text(textwrap.dedent("""
        import typer

        def register(app: typer.Typer) -> None:
            @app.command()
            def hello(name: str = "world") -> None:
                '''Say hello.'''
                typer.echo(f"hello {name}")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(difflab.cli, "PLUGINS", {"hello": ("fake_difflab_plugin.cli", "Greet someone."),
                                                 "missing": ("no_such_pkg.cli", "Not installed.")})
    cli("datasets")
    top = cli("--help").output
    assert "fake_difflab_plugin.cli" not in sys.modules  # neither other commands nor the help import it
    assert "Greet someone." in top and "missing" not in top
    assert cli("hello", "--name", "you").output == "hello you\n"
    assert "fake_difflab_plugin.cli" in sys.modules
    assert "--name" in cli("hello", "--help").output
    r = cli("missing", code=2)
    assert r.stderr.startswith("error: No such command 'missing'")
    sys.modules.pop("fake_difflab_plugin.cli", None)
    sys.modules.pop("fake_difflab_plugin", None)
