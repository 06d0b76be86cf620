"""--select heldout: candidates scored every tenth of training on the held-out rows, the rule that picks one, and
the run that keeps its weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cli_helpers import cli, one_line_error
from difflab.compute import cpu_threads
from difflab.pipeline.select import NEARER_LIMIT, Candidate, HeldoutSelector, every
from difflab.rundir import load_run
from difflab.weights import load_weights


def test_cadence_is_a_tenth_of_training_and_at_least_50_steps() -> None:
    assert [every(s) for s in (100, 700, 5000)] == [50, 70, 500]


def test_pick_takes_the_best_fidelity_below_the_limit_else_the_least_nearer() -> None:
    sel = HeldoutSelector.__new__(HeldoutSelector)
    c = lambda step, nearer, fid: Candidate(step, nearer, fid, {})  # noqa: E731
    sel.candidates = [c(1, 0.50, 0.4), c(2, NEARER_LIMIT, 0.2), c(3, 0.60, 0.1)]
    assert sel.pick().step == 2
    sel.candidates = [c(1, 0.70, 0.4), c(2, 0.62, 0.3), c(3, 0.65, 0.1)]
    assert sel.pick().step == 2


def test_run_keeps_the_chosen_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 2))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 0] + 0.3 * x[:, 1], "c": rng.choice(["u", "v"], 150)}).to_csv(
        tmp_path / "t.csv", index=False)
    with cpu_threads(1):
        r = cli("train", "--preset", "table", "--data", tmp_path / "t.csv", "--select", "heldout", "--steps", "100",
                "--T", "30", "--out", tmp_path / "run", "-q")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "run" / "select.json").read_text())
    steps = [c["step"] for c in report["candidates"]]
    assert steps == [50, 100] and report["chosen"] in report["candidates"]
    assert all(0.0 <= c["nearer"] <= 1.0 and c["fidelity"] >= 0.0 for c in report["candidates"])
    tensors, meta = load_weights(tmp_path / "run" / "model.safetensors")
    assert meta["step"] == report["chosen"]["step"]
    run = load_run(tmp_path / "run")
    assert all(torch.equal(run.model.state_dict()[k], v) for k, v in tensors.items())


def test_select_without_held_out_rows_is_one_line(tmp_path: Path) -> None:
    pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) ** 0.5}).to_csv(tmp_path / "t.csv", index=False)
    r = cli("train", "--preset", "table", "--data", tmp_path / "t.csv", "--select", "heldout", "--out",
            tmp_path / "run", "--steps", "5", "-q", "--config", _no_holdout(tmp_path))
    one_line_error(r, "--select heldout", "held-out rows")
    assert not (tmp_path / "run").exists()


def _no_holdout(tmp: Path) -> Path:
    (tmp / "c.toml").write_text("[data]\nholdout = 0.0\n")
    return tmp / "c.toml"


@pytest.mark.parametrize("value", ["first"])
def test_unknown_select_is_one_line(tmp_path: Path, value: str) -> None:
    r = cli("train", "--data", "moons", "--select", value, "--out", tmp_path / "run")
    one_line_error(r, "--select")
