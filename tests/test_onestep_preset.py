"""`--preset onestep` (issue 15, item 5): MeanFlow with minibatch OT coupling, which samples in one network call by
default and in K with `--steps K`."""

from __future__ import annotations

import numpy as np

from difflab.assemble import check_config
from difflab.config import PRESETS, resolve_config
from difflab.pipeline import train_run
from difflab.sample import sample_run, sampling_kwargs


def test_the_onestep_preset_trains_and_samples_in_one_call(tmp_path) -> None:
    cfg = resolve_config("onestep", overrides={"train": {"steps": 30, "warmup": 0},
                                               "model": {"options": {"width": 16, "depth": 1}}, "data": {"n": 200}})
    check_config(cfg)
    assert (cfg.diffusion.schedule, cfg.diffusion.parameterization, cfg.train.coupling, cfg.train.objective) == (
        "rectified", "velocity", "ot", "meanflow")
    run = train_run(cfg, tmp_path / "run", progress=False)
    assert sampling_kwargs(run)["steps"] == 1 and sampling_kwargs(run)["sampler"] == "jumps"
    x, traj = sample_run(run, 50, device="cpu", trajectory=True)  # jumps: one network call per jump
    assert np.isfinite(x).all() and traj.shape[0] == 2
    assert sample_run(run, 50, device="cpu", steps=4, trajectory=True)[1].shape[0] == 5
    assert "onestep" in PRESETS
