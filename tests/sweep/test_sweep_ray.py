"""difflab sweep on Ray: the same cells and numbers as the local backend, resuming after the driver stops,
failures reported and not fatal, resources per task, and clear errors without Ray or with the wrong options.

One Ray instance (2 CPUs, no dashboard) serves the module; the backend joins it and leaves it running."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from safetensors import safe_open
from sweep_grids import TINY, quiet, write
from typer.testing import CliRunner

from difflab.cli import app
from difflab.errors import ConfigError
from difflab.sweep import load_grid, run_sweep
from difflab.sweep.backends import BackendOptions, ray_cluster
from difflab.sweep.cells import Job, Task
from difflab.sweep.runner import SweepSummary

TIMINGS = ("train_seconds", "sample_seconds", "eval_seconds", "seconds")


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    import ray

    # address "local": a new instance of our own even if another Ray runs on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _without_timings(obj: object) -> object:
    """A JSON value with every wall-clock figure dropped (they differ between any two runs)."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in TIMINGS}
    return obj


def _tensors(path: Path) -> dict[str, np.ndarray]:
    with safe_open(str(path), "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.mark.slow
def test_ray_writes_the_cells_and_numbers_of_the_local_backend(
    ray_session: object, tiny_sweep: tuple[Path, Path, SweepSummary], tmp_path: Path
) -> None:
    grid, local, _ = tiny_sweep
    lines: list[str] = []
    summary = run_sweep(load_grid(grid), tmp_path / "ray", backend="ray", batch=False, echo=lines.append,
                        echo_err=quiet)
    assert summary.ok == 8 and not summary.failed
    assert sorted(int(s[1:].split("/")[0]) for s in lines) == list(range(1, 9))  # progress: [1/8] … [8/8]
    a = pd.read_csv(local / "results.csv").set_index("cell").sort_index()
    b = pd.read_csv(tmp_path / "ray" / "results.csv").set_index("cell").sort_index()
    assert list(a.index) == list(b.index) and list(a.columns) == list(b.columns)
    same = [c for c in a.columns if c not in TIMINGS]
    pd.testing.assert_frame_equal(a[same], b[same])  # same training and sampling streams: equal to the bit
    files = sorted(p.relative_to(local) for p in (local / "cells").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray" / "cells").rglob("*")
                           if p.is_file())
    for rel in files:
        x, y = local / rel, tmp_path / "ray" / rel
        if rel.suffix == ".safetensors":
            tx, ty = _tensors(x), _tensors(y)
            assert tx.keys() == ty.keys() and all(np.array_equal(tx[k], ty[k]) for k in tx)
        elif rel.suffix == ".json":
            assert _without_timings(json.loads(x.read_text())) == _without_timings(json.loads(y.read_text()))
        else:  # train.npy, loss.csv
            assert x.read_bytes() == y.read_bytes(), rel
    # the local backend takes the Ray run's cells as its own: nothing left to run
    assert run_sweep(load_grid(grid), tmp_path / "ray", workers=1, echo=quiet, echo_err=quiet).skipped == 8


def test_interrupted_ray_sweep_resumes_with_finished_cells_skipped(
    ray_session: object, tiny_sweep: tuple[Path, Path, SweepSummary], tmp_path: Path
) -> None:
    """The driver stops after its first progress line (as if killed); batched groups run as Ray tasks."""
    grid, local, _ = tiny_sweep
    out = tmp_path / "out"

    def stop(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_grid(grid), out, backend="ray", echo=stop, echo_err=quiet)
    done = {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/result.json")}
    assert 1 <= len(done) <= 8
    summary = run_sweep(load_grid(grid), out, backend="ray", echo=quiet, echo_err=quiet)
    assert summary.skipped == len(done) and summary.ok == 8 - len(done) and not summary.failed
    assert {n: (out / "cells" / n / "result.json").stat().st_mtime_ns for n in done} == done
    df = pd.read_csv(out / "results.csv").set_index("cell").sort_index()
    alone = pd.read_csv(local / "results.csv").set_index("cell").sort_index()
    assert set(df["status"]) == {"ok"} and (df["batched"] > 1).any()
    # trained in groups: the batched step's sums run in another order than one model's, hence rtol
    assert np.allclose(df["w1_value"], alone["w1_value"], rtol=1e-3)


FILES = """
preset = "seed"
seeds = [0]

[train]
steps = 20

[grid]
"data.source" = ["d1.csv", "d10.csv"]

[evaluate]
n = 100
repeats = 1
metrics = ["w1", "energy"]
"""


@pytest.mark.slow
def test_tables_of_1_and_10_columns_by_relative_path_give_the_local_numbers(
    ray_session: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative data path is read in the driver's folder, which each Ray task enters (the workers started in
    another one); D = 1 and D = 10 (the toys are 2-D)."""
    rng = np.random.default_rng(0)
    for d in (1, 10):
        table = pd.DataFrame(rng.normal(size=(200, d)), columns=[f"x{i}" for i in range(d)])
        table.to_csv(tmp_path / f"d{d}.csv", index=False)
    grid = write(tmp_path, FILES)
    monkeypatch.chdir(tmp_path)
    local = run_sweep(load_grid(grid), "local", workers=1, batch=False, echo=quiet, echo_err=quiet)
    ray = run_sweep(load_grid(grid), "ray", backend="ray", batch=False, echo=quiet, echo_err=quiet)
    assert local.ok == ray.ok == 2
    a = pd.read_csv(tmp_path / "local" / "results.csv").set_index("cell").sort_index()
    b = pd.read_csv(tmp_path / "ray" / "results.csv").set_index("cell").sort_index()
    same = [c for c in a.columns if c not in TIMINGS]
    pd.testing.assert_frame_equal(a[same], b[same])
    for d in (1, 10):
        assert np.load(tmp_path / "ray" / "cells" / f"source=d{d}.csv,seed=0" / "train.npy").shape[1] == d


def test_failing_and_crashing_cells_are_reported_and_the_others_finish(
    ray_session: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = TINY.replace('"data.scaler" = ["minmax", "standard"]', '"data.source" = ["moons", "missing.csv"]')
    grid = write(tmp_path, text.replace("seeds = [0, 1]", "seeds = [0]"))
    real = ray_cluster.run_on_worker

    def crash_at_T5_moons(jobs: list[Job], batch: bool, *, threads: int, cwd: str) -> list[dict]:
        # defined here, so Ray ships it by value; the worker process dies as from a segfault or the OOM killer
        if any(j.id == "T=5,source=moons,seed=0" for j in jobs):
            os._exit(3)
        return real(jobs, batch, threads=threads, cwd=cwd)

    monkeypatch.setattr(ray_cluster, "run_on_worker", crash_at_T5_moons)
    errors: list[str] = []
    summary = run_sweep(load_grid(grid), tmp_path / "out", backend="ray", batch=False, echo=quiet,
                        echo_err=errors.append)
    assert summary.ok == 1 and len(summary.failed) == 3
    assert "missing.csv" in summary.failed["T=3,source=missing.csv,seed=0"]
    assert summary.failed["T=5,source=moons,seed=0"].startswith("ray worker died (")
    assert len(errors) == 3 and all(e.startswith("failed: ") and "\n" not in e for e in errors)
    df = pd.read_csv(tmp_path / "out" / "results.csv").set_index("cell")
    assert df.loc["T=3,source=moons,seed=0", "status"] == "ok"
    assert df.loc["T=5,source=moons,seed=0", "status"].startswith("failed: ray worker died")
    assert (tmp_path / "out" / "cells" / "T=5,source=moons,seed=0" / "failed.json").exists()


def _job(device: str) -> Job:
    return Job("c", "x", {"train": {"device": device}}, {}, 0, {}, True)


@pytest.mark.parametrize(
    ("gpus_in_cluster", "option", "device", "expected"),
    [
        (0, None, "auto", 0.0), (0, None, "cpu", 0.0), (2, None, "auto", 1.0), (2, None, "cpu", 0.0),
        (2, None, "cuda", 1.0), (0, None, "cuda", 1.0), (2, 0.25, "auto", 0.25), (2, 0.0, "cuda", 0.0),
    ],
)
def test_gpus_per_task_follow_the_cells_device_unless_set(gpus_in_cluster: float, option: float | None, device: str,
                                                          expected: float) -> None:
    backend = ray_cluster.RayBackend(BackendOptions(cpus_per_task=3, gpus_per_task=option))
    backend.gpus = gpus_in_cluster
    assert backend.resources(Task([_job(device)], False)) == (3.0, expected)


def test_slots_and_tasks_that_no_node_can_hold(ray_session: object, tmp_path: Path) -> None:
    with ray_cluster.RayBackend(BackendOptions()) as b:  # joins the module's 2-CPU Ray, leaves it running
        assert b.slots() == 2 and b.cpus == 2 and b.gpus == 0
        b.check([Task([_job("cpu")], False), Task([_job("auto")], False)])
        with pytest.raises(ConfigError, match="needs 1 GPUs but the largest node of the cluster has 0"):
            b.check([Task([_job("cpu")], False), Task([_job("cuda")], False)])
    assert ray_session.is_initialized()  # type: ignore[attr-defined]
    with ray_cluster.RayBackend(BackendOptions(cpus_per_task=0.5)) as b:
        assert b.slots() == 4
    with ray_cluster.RayBackend(BackendOptions(cpus_per_task=3)) as b, pytest.raises(ConfigError, match="needs 3 CPUs"):
        b.check([Task([_job("cpu")], False)])
    # from the command line: one line, exit 2, and no sweep directory
    result = CliRunner().invoke(app, ["sweep", str(write(tmp_path, TINY)), "--out", str(tmp_path / "out"),
                                      "--backend", "ray", "--gpus-per-task", "0.5"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --backend ray: a task needs 0.5 GPUs")
    assert not (tmp_path / "out").exists()


def test_without_ray_installed_one_line_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    grid = write(tmp_path, TINY)
    result = CliRunner().invoke(app, ["sweep", str(grid), "--out", str(tmp_path / "out"), "--backend", "ray"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --backend ray needs Ray, an optional extra of difflab: "
                                     "pip install 'difflab[ray]'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backend", "ray", "--workers", "2"], "--workers is an option of the local backend"),
        (["--address", "auto"], "--address is an option of --backend ray"),
        (["--gpus-per-task", "1"], "--gpus-per-task is an option of --backend ray"),
        (["--backend", "dask"], "--backend 'dask': expected one of local, ray"),
    ],
)
def test_options_of_the_other_backend_are_one_line_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    grid = write(tmp_path, TINY)
    result = CliRunner().invoke(app, ["sweep", str(grid), "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and needle in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
