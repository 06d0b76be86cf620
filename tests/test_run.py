"""Run directories: --resume equals training straight, guards on --out, atomic sample files, writability probes."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from difflab.cli import app
from difflab.errors import DifflabError
from difflab.rundir import FILES, load_run
from difflab.sampling.output import check_output_path, check_writable, write_chunks
from difflab.weights import load_weights, save_weights

RUNNER = CliRunner()


def cli(*args: object, code: int = 0):
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def _tensors(run_dir: Path, file: str = "model") -> dict[str, torch.Tensor]:
    return load_weights(run_dir / FILES[file])[0]


def _assert_same_weights(a: Path, b: Path, file: str = "model") -> None:
    ta, tb = _tensors(a, file), _tensors(b, file)
    assert ta.keys() == tb.keys()
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], rtol=1e-5, atol=1e-6, msg=f"{file}: {k}")


RESUMABLE = {
    # the tutorial's recipe: full batch, constant lr, no EMA
    "seed": ["--preset", "seed", "--n", "100"],
    # mini-batches, EMA, warm-up still running at step 20 (the lr does not depend on the total yet)
    "recommended": ["--data", "moons", "--n", "100", "--T", "20", "--batch-size", "16"],
}


@pytest.mark.parametrize("recipe", list(RESUMABLE))
def test_resume_gives_the_same_weights_as_training_straight(tmp_path, recipe):
    base = RESUMABLE[recipe]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    cli("train", *base, "--steps", 20, "--out", straight, "-q")
    cli("train", *base, "--steps", 10, "--out", resumed, "-q")
    assert load_weights(resumed / FILES["checkpoint"])[1]["step"] == 10
    with pytest.raises(AssertionError):  # the test can fail: 10 steps are not 20
        _assert_same_weights(straight, resumed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # still in the warm-up: the lr so far does not depend on the total
        out = cli("train", "--out", resumed, "--resume", "--steps", 20, "-q").output
    assert "to step 20" in out
    _assert_same_weights(straight, resumed)  # the weights sampled with (EMA for the recommended recipe)
    _assert_same_weights(straight, resumed, "checkpoint")  # raw weights, optimizer moments, RNG, loss log
    la = np.loadtxt(straight / FILES["loss"], delimiter=",", skiprows=1)
    lb = np.loadtxt(resumed / FILES["loss"], delimiter=",", skiprows=1)
    assert la.shape == lb.shape == (20, 2)
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    assert load_run(resumed).config == load_run(straight).config


def test_resume_keeps_the_saved_config_and_checks_steps(tmp_path):
    run = tmp_path / "run"
    cli("train", "--preset", "seed", "--n", "60", "--steps", 6, "--lr", 0.003, "--out", run, "-q")
    r = cli("train", "--out", run, "--resume", "--steps", 3, code=2)
    assert "--steps 3 is less than the 6 steps" in r.stderr
    cli("train", "--out", run, "--resume", "--steps", 8, "-q")
    cfg = load_run(run).config
    assert cfg.train.lr == 0.003 and cfg.train.steps == 8 and cfg.data.n == 60  # from the saved config
    assert load_weights(run / FILES["model"])[1]["step"] == 8


def test_resuming_a_gpu_checkpoint_on_the_cpu_says_which_device(tmp_path):
    """A CUDA generator's state (16 bytes) cannot continue a CPU generator: one line naming the device."""
    run = tmp_path / "run"
    cli("train", "--preset", "seed", "--n", "60", "--steps", 4, "--out", run, "-q")
    path = run / FILES["checkpoint"]
    tensors, meta = load_weights(path)
    tensors["rng"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA (Philox) generator's state
    save_weights(path, tensors, meta)
    r = cli("train", "--out", run, "--resume", "--steps", 6, "--device", "cpu", code=2)
    assert "random draws come from a cuda generator; resume it with --device cuda" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_extending_a_cosine_schedule_past_its_warmup_warns(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("[train]\nwarmup = 2\n[data]\nn = 60\n")
    run = tmp_path / "run"
    cli("train", "--config", config, "--T", "10", "--steps", 4, "--out", run, "-q")
    with pytest.warns(UserWarning, match="cosine learning-rate schedule was planned for 4 steps"):
        cli("train", "--out", run, "--resume", "--steps", 6, "-q")


def test_out_guards(tmp_path):
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    r = cli("train", "--preset", "seed", "--steps", 2, "--out", stranger, code=2)
    assert "not empty and not a difflab run" in r.stderr
    assert sorted(os.listdir(stranger)) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    cli("train", "--preset", "seed", "--n", "50", "--steps", 2, "--out", empty, "-q")
    r = cli("train", "--preset", "seed", "--steps", 2, "--out", empty, code=2)
    assert "already holds a trained run" in r.stderr


def test_check_writable_creates_nothing(tmp_path):
    deep = tmp_path / "a" / "b" / "c.csv"
    assert check_writable(deep) == deep
    assert os.listdir(tmp_path) == []  # no folders made, no probe left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(DifflabError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "x.csv")
    if Path("/proc/self").exists():
        with pytest.raises(DifflabError, match="cannot create files in /proc"):
            check_writable(Path("/proc/x.csv"))
    with pytest.raises(DifflabError, match=r"unknown output format '\.txt'"):
        check_output_path(tmp_path / "x.txt")
    with pytest.raises(DifflabError, match=r"unknown output format \(none\)"):
        check_output_path(tmp_path / "x")
    assert os.listdir(tmp_path) == ["file"]


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_write_chunks_streams_and_is_atomic(tmp_path, suffix):
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(k, 3)) for k in (4, 1, 5)]
    path = write_chunks(tmp_path / f"s{suffix}", iter(parts), n=10, columns=["a", "b,c", "d"],
                        transform=lambda c: c * 2 + 100)
    expected = np.concatenate(parts) * 2 + 100
    if suffix == ".npy":
        np.testing.assert_array_equal(np.load(path), expected)
    else:
        import pandas as pd

        frame = pd.read_csv(path)
        assert list(frame.columns) == ["a", "b,c", "d"]  # a name with a comma is quoted
        np.testing.assert_allclose(frame.to_numpy(), expected, rtol=1e-7)

    def failing():
        yield parts[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_chunks(tmp_path / f"t{suffix}", failing(), n=10, columns=["a", "b", "c"])
    assert sorted(os.listdir(tmp_path)) == [f"s{suffix}"]  # neither the target nor a temp file


@pytest.mark.slow
def test_demo_trains_both_recipes_and_reruns(tmp_path, monkeypatch):
    """run_demo's wiring with tiny recipes and no figures (the real demo trains 2 × 5000 steps)."""
    import difflab.config
    import difflab.demo
    from difflab.evaluation.uncertainty import format_ratio

    tiny = {"data": {"n": 200}, "train": {"steps": 5}, "diffusion": {"T": 20}}
    for name in ("seed", "recommended"):
        monkeypatch.setitem(difflab.config.PRESETS, name, difflab.config._merge(difflab.config.PRESETS[name], tiny))
    monkeypatch.setattr(difflab.demo, "N_EVAL", 100)
    drawn = []
    monkeypatch.setattr(difflab.demo, "make_figures", lambda run_dir, out, **kw: drawn.append(run_dir) or [out / "x"])
    monkeypatch.setattr(difflab.demo, "write_report", lambda run_dir, out, **kw: out)  # tests/report runs the real one
    lines: list[str] = []
    results = difflab.demo.run_demo(tmp_path / "demo", progress=False, echo=lines.append)
    assert set(results) == {"seed", "recommended"} and drawn == [tmp_path / "demo" / n for n in results]
    for name, r in results.items():
        assert r["value"] > 0 and r["floor"] > 0 and np.isclose(r["ratio"], r["value"] / r["floor"], rtol=0.05)
        samples = np.loadtxt(tmp_path / "demo" / name / "samples.csv", delimiter=",", skiprows=1)
        assert samples.shape == (100, 2)
        assert load_run(tmp_path / "demo" / name).config.train.steps == 5
    assert "tutorial" in lines[-2] and "recommended" in lines[-2]
    for name, label in (("seed", "tutorial"), ("recommended", "recommended")):  # each ratio with its ±
        r = results[name]
        assert 0 < r["ratio_se"] < r["ratio"] and f"{label} {format_ratio(r['ratio'], r['ratio_se'], suffix='x')}" \
            in lines[-2]
    difflab.demo.run_demo(tmp_path / "demo", progress=False, echo=lines.append)  # a re-run replaces the runs
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "seed").mkdir()
    (tmp_path / "stranger" / "seed" / "notes.txt").write_text("keep")
    with pytest.raises(DifflabError, match="not a difflab run"):
        difflab.demo.run_demo(tmp_path / "stranger", progress=False, echo=lines.append)
    assert (tmp_path / "stranger" / "seed" / "notes.txt").read_text() == "keep"
