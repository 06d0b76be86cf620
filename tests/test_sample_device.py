"""Sampling on a GPU fails safe: with device "auto" a failure on CUDA falls back to the CPU with one warning and
the very points a CPU run draws; with device "cuda" it is a one-line error and nothing is written.

No GPU is needed: torch is told a card exists, and the CUDA path is made to fail where a card could fail (placing
the network, or part-way through a streamed file)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import difflab.sample
from difflab.cli import app
from difflab.config import resolve_config
from difflab.errors import ConfigError, DifflabError, FallbackWarning
from difflab.pipeline import train_run
from difflab.rundir import load_run
from difflab.sample import run_on, sample_run, sample_to_file
from difflab.sampling.device import on_device

OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A tiny trained run per width D = 1, 2, 10 (a .npy table each)."""
    root = tmp_path_factory.mktemp("device")
    out = {}
    for dim in (1, 2, 10):
        np.save(root / f"x{dim}.npy", np.random.default_rng(dim).normal(size=(150, dim)) * 3 + 10)
        cfg = resolve_config("seed", overrides={"data": {"source": str(root / f"x{dim}.npy")},
                                                "train": {"steps": 20, "device": "cpu"}})
        out[dim] = train_run(cfg, root / f"run{dim}", progress=False).path
    return out


@pytest.fixture
def run_dir(runs: dict[int, Path], dim: int) -> Path:
    return runs[dim]


@pytest.fixture
def broken_cuda(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """torch sees a card, and putting the network on it runs out of memory. Returns the devices tried."""
    tried: list[str] = []
    real = difflab.sample.model_on

    def model_on(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        tried.append(device.type)
        if device.type == "cuda":
            raise torch.OutOfMemoryError(OOM)
        return real(model, device)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(difflab.sample, "model_on", model_on)
    return tried


@pytest.fixture
def cuda_fails_midway(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """torch sees a card; the network 'goes there' (stays on the CPU) and the CUDA stream of chunks raises after
    its first chunk, once part of the file is written. Returns the chunks the failing stream yielded."""
    yielded: list[int] = []
    real_generate = difflab.sample.generate_chunks

    def generate_chunks(*args, device: torch.device = torch.device("cpu"), **kwargs):  # noqa: ANN002, ANN003, ANN202
        if torch.device(device).type != "cuda":
            yield from real_generate(*args, device=device, **kwargs)
            return
        for chunk in real_generate(*args, device="cpu", **kwargs):
            yielded.append(1)
            yield chunk
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(difflab.sample, "model_on", lambda model, device: model)
    monkeypatch.setattr(difflab.sample, "generate_chunks", generate_chunks)
    return yielded


def _fallbacks(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, FallbackWarning)]


def test_auto_falls_back_to_the_cpu_with_one_warning(run_dir: Path, broken_cuda: list[str]) -> None:
    run = load_run(run_dir)
    expected, expected_traj = sample_run(run, 300, seed=3, trajectory=True, device="cpu")
    broken_cuda.clear()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got, traj = sample_run(run, 300, seed=3, trajectory=True)  # device="auto"
    assert broken_cuda == ["cuda", "cpu"]
    (message,) = _fallbacks(record)
    assert f"sampling on cuda failed (OutOfMemoryError: {OOM})" in message and "--device cpu" in message
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(traj, expected_traj)
    assert next(run.model.parameters()).device.type == "cpu"  # the run's own network never moved


def test_named_cuda_that_fails_is_a_one_line_error(run_dir: Path, broken_cuda: list[str],
                                                   tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        with pytest.raises(DifflabError) as err:
            sample_run(load_run(run_dir), 100, device="cuda")
        msg = str(err.value)
        assert "\n" not in msg and OOM in msg and "--device cpu" in msg and broken_cuda == ["cuda"]
        with pytest.raises(DifflabError, match="sampling on cuda failed"):
            sample_to_file(run_dir, tmp_path / "s.csv", n=100, device="cuda")
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_file_written_on_the_cpu_after_cuda_failed_midway(run_dir: Path, tmp_path: Path, suffix: str,
                                                          cuda_fails_midway: list[int]) -> None:
    """The half-written file of the failed attempt is discarded; the file is the one a CPU run writes."""
    ref = sample_to_file(run_dir, tmp_path / f"cpu{suffix}", n=700, seed=5, chunk_size=256, device="cpu")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = sample_to_file(run_dir, tmp_path / f"auto{suffix}", n=700, seed=5, chunk_size=256)
    assert cuda_fails_midway == [1]  # the failed attempt had streamed a chunk
    assert len(_fallbacks(record)) == 1 and "illegal memory access" in _fallbacks(record)[0]
    assert got.read_bytes() == ref.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"cpu{suffix}", f"auto{suffix}"])


def test_trajectory_file_after_cuda_failed(run_dir: Path, tmp_path: Path, broken_cuda: list[str]) -> None:
    ref = sample_to_file(run_dir, tmp_path / "a.npy", n=50, seed=1, trajectory=tmp_path / "ta.npy", device="cpu")
    with pytest.warns(FallbackWarning):
        got = sample_to_file(run_dir, tmp_path / "b.npy", n=50, seed=1, trajectory=tmp_path / "tb.npy")
    assert got.read_bytes() == ref.read_bytes()
    np.testing.assert_array_equal(np.load(tmp_path / "tb.npy"), np.load(tmp_path / "ta.npy"))


def test_without_a_gpu_auto_is_the_cpu_and_cuda_an_error(runs: dict[int, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = load_run(runs[2])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        np.testing.assert_array_equal(sample_run(run, 64, seed=2)[0], sample_run(run, 64, seed=2, device="cpu")[0])
    assert run_on(run, torch.device("cpu")) is run
    with pytest.raises(ConfigError, match="no CUDA device"):
        sample_run(run, 10, device="cuda")
    with pytest.raises(ConfigError, match="choose one of: auto | cpu | cuda"):
        sample_to_file(runs[2], tmp_path / "x.csv", n=10, device="gpu")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [DifflabError("--steps 0: out of range"), OSError(28, "No space left on device")])
def test_input_and_disk_errors_are_not_retried_on_the_cpu(error: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    """They would fail the same on the CPU: raised as they are, after one attempt, without a warning."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    tried: list[str] = []

    def attempt(dev: torch.device) -> None:
        tried.append(dev.type)
        raise error

    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        with pytest.raises(type(error)):
            on_device("auto", attempt)
    assert tried == ["cuda"]


def test_cli_device_option(runs: dict[int, Path], tmp_path: Path, broken_cuda: list[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest records warnings; show them on stderr, as outside pytest, through the CLI's one-line format
    monkeypatch.setattr(warnings, "showwarning", lambda message, category, filename, lineno, file=None, line=None:
                        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line)))
    runner = CliRunner()
    ok = runner.invoke(app, ["sample", str(runs[10]), "--n", "40", "--out", str(tmp_path / "a.csv")])
    assert ok.exit_code == 0, ok.output
    assert "warning: sampling on cuda failed (OutOfMemoryError" in ok.output  # CliRunner mixes stderr in
    bad = runner.invoke(app, ["sample", str(runs[10]), "--out", str(tmp_path / "b.csv"), "--device", "cuda"])
    assert bad.exit_code == 2 and "error: sampling on cuda failed" in bad.output and "Traceback" not in bad.output
    typo = runner.invoke(app, ["sample", str(runs[10]), "--out", str(tmp_path / "c.csv"), "--device", "gpu"])
    assert typo.exit_code == 2 and "error: --device 'gpu': choose one of: auto | cpu | cuda" in typo.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
