"""No command writes over a run's own files, or a sweep's results, without --force (difflab.protect, the sweep's
check of its --out). Before issue 18 `sample RUN --out RUN/train.npy` and `evaluate --json RUN/config.json`
destroyed the run, and `sweep --out EXISTING` replaced another grid's results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_helpers import cli, listing, one_line_error

GRID = 'preset = "seed"\n[data]\nn = 100\n[train]\nsteps = 2\n[grid]\n"diffusion.T" = [{T}]\n' \
       "[evaluate]\nn = 10\nrepeats = 1\n"


@pytest.mark.parametrize("argv", [
    "sample RUN --n 5 --out RUN/train.npy",
    "sample RUN --n 5 --out RUN/heldout.npy",
    "sample RUN --n 5 --out RUN/loss.csv",
    "sample RUN --n 5 --out s.csv --trajectory RUN/train.npy",
    "evaluate RUN --n 10 --repeats 1 --json RUN/config.json",
    "evaluate RUN --n 10 --repeats 1 --json RUN/data.json",
], ids=lambda a: a.split()[0] + "-" + a.split("RUN/")[-1])
def test_a_runs_own_files_are_not_outputs(run_copy, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    before = listing(tmp_path)
    args = [a.replace("RUN", str(run_copy)) for a in argv.split()]
    one_line_error(cli(*args), "own", "--force")
    assert listing(tmp_path) == before


def test_force_replaces_a_run_file_when_asked(run_copy):
    result = cli("sample", run_copy, "--n", 5, "--out", run_copy / "loss.csv", "--force")
    assert result.exit_code == 0, result.output
    assert (run_copy / "loss.csv").read_text().splitlines()[0] == "x,y"


def _finished_sweep(out: Path, T: int) -> None:
    """A sweep folder whose one cell (T) finished, as difflab.sweep leaves it (its result, the plan)."""
    cid = f"T={T},seed=0"
    (out / "cells" / cid).mkdir(parents=True)
    (out / "cells" / cid / "result.json").write_text(json.dumps({"status": "ok", "metrics": {}}))
    (out / "sweep.json").write_text(json.dumps({"spec": {}, "keys": ["diffusion.T"], "cells": [
        {"id": cid, "values": {"diffusion.T": T}, "seed": 0}]}))


def test_sweep_keeps_another_grids_results_and_other_folders(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(T=3), encoding="utf-8")
    other = tmp_path / "other"
    _finished_sweep(other, T=7)
    before = listing(other)
    one_line_error(cli("sweep", grid, "--out", other, "--workers", 1), "another grid", "T=7,seed=0", "--force")
    assert listing(other) == before
    stuff = tmp_path / "stuff"
    stuff.mkdir()
    (stuff / "notes.txt").write_text("mine")
    one_line_error(cli("sweep", grid, "--out", stuff, "--workers", 1), "holds no sweep", "--force")
    assert sorted(p.name for p in stuff.iterdir()) == ["notes.txt"]
    one_line_error(cli("report", tmp_path / "nowhere", "--out", other / "results.html"), "own", "--force")
