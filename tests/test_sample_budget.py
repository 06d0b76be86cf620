"""`--steps K` alone is a budget of K network calls: the (sampler, grid) measured best for it
(difflab.sampling.budgets), unless the user or the run names its own."""

from __future__ import annotations

import pytest

import difflab.sample as sample_module
from difflab.config import resolve_config
from difflab.errors import ConfigError
from difflab.pipeline import train_run
from difflab.sample import sample_run, sampling_kwargs
from difflab.sampling import budgets, make_grid
from difflab.sampling.budgets import BUDGETS, Choice, calls_for_steps

TINY = {"diffusion": {"time": "discrete", "schedule": "linear", "T": 32, "parameterization": "eps"}, "model": {"name": "mlp", "options": {"width": 16, "depth": 1}},
        "train": {"steps": 20, "batch_size": 64, "warmup": 0}, "sample": {"sampler": "ddpm", "grid": "trailing"}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_run(resolve_config("recommended", overrides=TINY), tmp_path_factory.mktemp("b") / "r", progress=False)


@pytest.mark.parametrize("calls", [1, 2, 3, 4, 10, 20, 32])
def test_steps_alone_is_a_budget_of_network_calls(run, calls) -> None:
    kw = sampling_kwargs(run, steps=calls)
    key = max(b for b in BUDGETS if b <= calls)
    fitting = [c for c in BUDGETS[key] if _fits(run, c, calls)]
    assert (kw["sampler"], kw["grid"]) == (fitting[0].sampler, fitting[0].grid)
    assert calls_for_steps(kw["sampler"], kw["steps"]) <= calls


def _fits(run, choice: Choice, calls: int) -> bool:
    try:
        make_grid(run.diffusion, budgets.steps_for_calls(choice.sampler, calls), choice.grid)
    except ConfigError:
        return False
    return True


def test_a_named_sampler_or_grid_or_the_runs_own_steps_are_kept(run) -> None:
    assert sampling_kwargs(run, steps=4, sampler="ddpm")["grid"] == run.config.sample.grid
    assert sampling_kwargs(run, steps=4, grid="karras")["sampler"] == run.config.sample.sampler
    assert sampling_kwargs(run) == sampling_kwargs(run, steps=None)
    assert sampling_kwargs(run)["sampler"] == run.config.sample.sampler and sampling_kwargs(run)["steps"] is None
    own = resolve_config("recommended", overrides={**TINY, "sample": {"sampler": "ddim", "steps": 8}})
    fixed = type(run)(**{**run.__dict__, "config": own})
    assert sampling_kwargs(fixed, steps=4) | {"options": None} == {"sampler": "ddim", "steps": 4,
                                                                   "grid": own.sample.grid, "options": None}


def test_a_budget_above_T_takes_the_pair_whose_jumps_fit(run, monkeypatch) -> None:
    """40 calls on T = 32: 40 one-call jumps do not fit, Heun's 20 two-call jumps do."""
    with pytest.raises(ConfigError):
        make_grid(run.diffusion, 40, "logsnr")
    monkeypatch.setitem(BUDGETS, 20, (Choice("dpm++", "logsnr", 1.0), Choice("heun", "karras", 1.1)))
    kw = sampling_kwargs(run, steps=40)
    assert (kw["sampler"], kw["grid"], kw["steps"]) == ("heun", "karras", 20)
    assert calls_for_steps(kw["sampler"], kw["steps"]) <= 40
    x, _ = sample_run(run, 50, steps=40, device="cpu")
    assert x.shape == (50, 2)


def test_the_next_pair_is_taken_where_the_best_makes_no_grid(run, monkeypatch) -> None:
    """Within T every grid makes K distinct steps (discrete collisions are moved apart), so a pair that cannot is
    simulated: the logsnr grid is made to refuse."""
    real = sample_module.grid_fits
    monkeypatch.setattr(sample_module, "grid_fits", lambda r, k, g: g != "logsnr" and real(r, k, g))
    monkeypatch.setitem(BUDGETS, 20, (Choice("dpm++", "logsnr", 1.0), Choice("heun", "karras", 1.1)))
    kw = sampling_kwargs(run, steps=20)
    assert (kw["sampler"], kw["grid"], kw["steps"]) == ("heun", "karras", 10)  # 2 calls a jump: 10 jumps
    x, _ = sample_run(run, 50, steps=20, device="cpu")
    assert x.shape == (50, 2)
    # where no measured pair makes the steps, the run's own sampler takes them
    monkeypatch.setitem(BUDGETS, 20, (Choice("dpm++", "logsnr", 1.0),))
    assert sampling_kwargs(run, steps=20) | {"options": None} == {
        "sampler": run.config.sample.sampler, "steps": 20, "grid": run.config.sample.grid, "options": None}
