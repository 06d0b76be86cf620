"""`difflab distill` end to end (D = 1, 2, 10): the student is an ordinary run directory that sample, evaluate, plot
and report accept, recording its teacher and method; an interrupted distillation resumes to the same weights; bad
input is one line `error: …` and leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from difflab.cli import app
from difflab.config import resolve_config
from difflab.distill import distill_run, make_settings
from difflab.distill.loop import RoundLoop
from difflab.distill.run import CHECKPOINT, DISTILL_FILE
from difflab.pipeline import train_run
from difflab.rundir import FILES, load_run
from difflab.sample import sample_run
from difflab.weights import load_weights

RUNNER = CliRunner()
TINY = {"diffusion": {"T": 32}, "model": {"name": "mlp", "options": {"width": 16, "depth": 1}},
        "train": {"steps": 60, "batch_size": 64, "warmup": 0}}
QUICK = ["--round-steps", "12", "--batch-size", "32", "-q"]


def cli(*args: object, code: int = 0) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[int, Path]:
    """A tiny trained run per width: D = 1 and 10 from csv files, D = 2 from moons."""
    root = tmp_path_factory.mktemp("teachers")
    rng = np.random.default_rng(0)
    out = {}
    for dim in (1, 2, 10):
        source = "moons"
        if dim != 2:
            source = str(root / f"table{dim}.csv")
            x = 5 + rng.normal(size=(200, dim)) * np.arange(1, dim + 1)
            np.savetxt(source, x, delimiter=",", header=",".join(f"c{j}" for j in range(dim)), comments="")
        cfg = resolve_config("recommended", overrides={**TINY, "data": {"source": source, "n": 300 if dim == 2
                                                                          else None}})
        out[dim] = train_run(cfg, root / f"run{dim}", progress=False).path
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("method", "sampler"), [("progressive", "ddim"), ("consistency", "consistency")])
def test_student_is_an_ordinary_run(teachers, dim, tmp_path, method, sampler) -> None:
    """On the recommended recipe's teacher (whatever it is now), tiny."""
    student = tmp_path / "student"
    own = load_run(teachers[dim]).config.diffusion.parameterization
    param = "edm" if method == "consistency" else own if own in ("x0", "v", "edm") else "v"
    text = cli("distill", teachers[dim], "--steps", 2, "--method", method, "--out", student, *QUICK)
    assert f"2-call {sampler} student" in text
    run = load_run(student)
    assert (run.config.sample.sampler, run.config.sample.steps, run.config.diffusion.parameterization) == (
        sampler, 2, param)
    record = json.loads((student / DISTILL_FILE).read_text())
    assert record["teacher"] == str(teachers[dim].resolve()) and record["method"] == method
    assert record["teacher_config"] == json.loads((teachers[dim] / FILES["config"]).read_text())
    assert load_weights(student / FILES["model"])[1]["distill"]["method"] == method
    cli("sample", student, "--n", 40, "--out", tmp_path / "s.csv")
    rows = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1, ndmin=2)
    assert rows.shape == (40, dim) and np.isfinite(rows).all()
    assert "sampler " + sampler in cli("evaluate", student, "--n", 20, "--repeats", 1, "--metrics", "w1")
    assert cli("plot", student, "--kind", "samples", "--n", 100).strip().endswith(".png")


def test_report_accepts_a_student(teachers, tmp_path) -> None:
    student = tmp_path / "student"
    cli("distill", teachers[2], "--steps", 1, "--method", "consistency", "--out", student, *QUICK)
    cli("report", student, "--n", 100, "--eval-n", 100, "--repeats", 1)
    assert (student / "report.html").stat().st_size > 100_000


@pytest.mark.parametrize(("method", "stop"), [("progressive", 24), ("progressive", 30), ("consistency", 16)],
                         ids=["progressive-at-a-round's-end", "progressive-mid-round", "consistency-mid-round"])
def test_resume_gives_the_uninterrupted_weights(teachers, tmp_path, monkeypatch, method, stop) -> None:
    """Checkpoints every 7 steps and at each round's end (rounds of 20): stopping in step 24 resumes from the end of
    round 1, in step 30 from step 7 of round 2 (its teacher and optimizer state), in step 16 from step 14."""
    settings = make_settings({"method": method, "steps": 2, "teacher_steps": 8, "round_steps": 20,
                              "batch_size": 32, "checkpoint_every": 7})
    straight = distill_run(teachers[2], tmp_path / "straight", settings, progress=False)
    batch = RoundLoop.batch
    calls = []

    def interrupted(self):
        calls.append(1)
        if len(calls) == stop:
            raise KeyboardInterrupt
        return batch(self)

    monkeypatch.setattr(RoundLoop, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        distill_run(teachers[2], tmp_path / "resumed", settings, progress=False)
    assert not (tmp_path / "resumed" / FILES["model"]).exists() and (tmp_path / "resumed" / CHECKPOINT).exists()
    monkeypatch.setattr(RoundLoop, "batch", batch)
    resumed = distill_run(teachers[2], tmp_path / "resumed", settings, resume=True, progress=False)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert (tmp_path / "straight" / FILES["loss"]).read_text() == (tmp_path / "resumed" / FILES["loss"]).read_text()


def test_each_round_reports_its_student(teachers, tmp_path) -> None:
    seen = []
    distill_run(teachers[2], tmp_path / "s", make_settings({"steps": 1, "teacher_steps": 8, "round_steps": 3,
                                                           "batch_size": 16}),
                progress=False, on_round=lambda k, net: seen.append(k))
    assert seen == [4, 2, 1]


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory) -> Path:
    cfg = resolve_config("recommended", overrides={"data": {"source": "blobs"}, "model": {"name": "oracle"},
                                                   "diffusion": DISCRETE})
    return train_run(cfg, tmp_path_factory.mktemp("oracle") / "run", progress=False).path


def test_bad_input_is_one_line_and_writes_nothing(teachers, oracle_run, tmp_path) -> None:
    teacher = teachers[2]
    corrupt = tmp_path / "corrupt"
    shutil.copytree(teacher, corrupt)
    (corrupt / FILES["model"]).write_bytes(b"not a safetensors file")
    out = tmp_path / "out"
    cases = [
        (["--steps", 64], "more than the teacher's own 32 steps"),
        (["--steps", 3], "power of two"),
        (["--steps", 4, "--teacher-steps", 64], "more than the teacher's T=32"),
        (["--steps", 4, "--teacher-steps", 12], "does not halve"),
        (["--steps", 32], "must be more than --steps 32"),
        (["--steps", 0], "--steps"),
        (["--method", "magic"], "--method"),
        (["--lr", -1], "--lr"),
        (["--device", "tpu"], "--device"),
        (["--resume"], "no distill-checkpoint.safetensors"),
    ]
    for args, message in cases:
        text = cli("distill", teacher, "--out", out, *args, code=2)
        assert text.startswith("error:") and text.count("\n") == 1 and message in text, text
    for run_dir, message in [(oracle_run, "exact denoiser"), (tmp_path / "nothing", "not found"),
                             (corrupt, "corrupt")]:
        text = cli("distill", run_dir, "--out", out, code=2)
        assert text.startswith("error:") and text.count("\n") == 1 and message in text, text
    assert not out.exists()
    out.mkdir()
    (out / "note.txt").write_text("mine")
    assert "not empty" in cli("distill", teacher, "--out", out, code=2)
    assert [p.name for p in out.iterdir()] == ["note.txt"]


DISCRETE = {"time": "discrete", "schedule": "linear", "T": 32, "parameterization": "eps"}
KINDS = {  # teachers of every kind of process, network and output (tiny)
    "continuous-edm": ({"diffusion": {"time": "continuous", "schedule": "edm", "parameterization": "edm", "T": 32}},
                       "edm"),
    "continuous-cosine-eps": ({"diffusion": {"time": "continuous", "schedule": "cosine", "parameterization": "eps",
                                             "T": 32}, "train": {"noise_sampling": "uniform"}}, "v"),
    "discrete-eps": ({"diffusion": DISCRETE}, "v"),
    "seed-network": ({"diffusion": {**DISCRETE, "schedule": "poly", "T": 16}, "model": {"name": "seed"}}, "v"),
    "learned-variance": ({"diffusion": {**DISCRETE, "variance": "learned-range"}}, "v"),
    "zero-terminal-snr": ({"diffusion": {**DISCRETE, "zero_terminal_snr": True, "parameterization": "v"}}, "v"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_teacher_distils(kind, tmp_path) -> None:
    over, progressive_param = KINDS[kind]
    merged = {**TINY, **over, "diffusion": {**TINY["diffusion"], **over["diffusion"]},
              "model": over.get("model", TINY["model"]), "train": {**TINY["train"], **over.get("train", {})},
              "data": {"n": 200}}
    teacher = train_run(resolve_config("recommended", overrides=merged), tmp_path / "t", progress=False)
    for method, param in [("progressive", progressive_param), ("consistency", "edm")]:
        student = distill_run(teacher.path, tmp_path / method, make_settings(
            {"method": method, "steps": 2, "round_steps": 5, "batch_size": 16}), progress=False)
        assert student.config.diffusion.parameterization == param
        assert student.config.diffusion.variance == "fixed"
        x, _ = sample_run(load_run(student.path), 100, device="cpu")
        assert x.shape == (100, 2) and np.isfinite(x).all()
