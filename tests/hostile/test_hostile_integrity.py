"""A run's files must still belong to its weights, and samples must be finite in the data's units
(difflab.integrity, difflab.sample). Before issue 18 an edited parameterization, a tampered scaler or another run's
schedule sampled wrong numbers with exit status 0, and values near ±1.8e308 were written as inf."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile_helpers import cli, one_line_error, write_csv


def _edit(path, change) -> None:  # noqa: ANN001
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(("file", "change", "words"), [
    ("config.json", lambda c: c["diffusion"].update(parameterization="x0"), ["parameterization", "'eps'"]),
    ("config.json", lambda c: c["model"].update(name="mlp"), ["model.name"]),
    ("config.json", lambda c: c["data"].update(scaler="standard"), ["model.safetensors", "other settings"]),
    ("data.json", lambda d: d["scaler"].update(max=[2.0, 3.0]), ["model.safetensors", "other settings"]),
    ("data.json", lambda d: d["scaler"].update(max=[float("nan"), 1.0]), ["data.json", "not all finite"]),
    ("schedule.json", lambda s: s.update(betas=[0.0, *np.linspace(0.01, 0.5, len(s["betas"]) - 1)]),
     ["model.safetensors", "other settings"]),
], ids=["parameterization", "network", "scaler-kind", "scaler", "nan-scaler", "schedule"])
def test_files_that_no_longer_match_the_weights(run_copy, tmp_path, file, change, words):
    _edit(run_copy / file, change)
    one_line_error(cli("sample", run_copy, "--n", 5, "--out", tmp_path / "s.csv"), *words)
    assert not (tmp_path / "s.csv").exists()


def test_moving_the_data_or_editing_sampling_settings_is_fine(run_copy, tmp_path):
    _edit(run_copy / "config.json", lambda c: (c["data"].update(source="elsewhere.csv"),
                                               c["sample"].update(sampler="ddim")))
    assert cli("sample", run_copy, "--n", 5, "--out", tmp_path / "s.csv").exit_code == 0


def test_samples_that_overflow_when_unscaled_are_not_written(tmp_path):
    """Data up to 1.7e308: the scaled samples of a barely trained model reach past the data's box, and their
    unscaled values overflow float64; nothing is written."""
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.uniform(0, 1.7e308, 200), rng.normal(size=200)])
    data = write_csv(tmp_path / "big.csv", ["a", "b"], rows)
    run = tmp_path / "run"
    result = cli("train", "--preset", "table", "--continuous", "a", "--data", data, "--steps", 3, "--out", run, "-q")
    assert result.exit_code == 0, result.output
    one_line_error(cli("sample", run, "--n", 2000, "--sampler", "ddim", "--steps", 10, "--out", tmp_path / "s.csv"),
                   "not finite in the data's units")
    assert not (tmp_path / "s.csv").exists()
