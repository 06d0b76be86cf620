"""Configs that cannot work are refused before any work, saying why; the new options run end to end from the CLI and
the Python API (continuous time, learned variances, samplers, guards, --nll); a diverging run never writes NaN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from difflab.assemble import build_process, check_config
from difflab.cli import app
from difflab.config import resolve_config
from difflab.errors import ConfigError, DifflabError
from difflab.pipeline import train_run
from difflab.rundir import FILES, load_run
from difflab.sample import sample_run, sample_to_file

RUNNER = CliRunner()
TINY = {"model": {"name": "mlp", "options": {"width": 32, "depth": 1}}, "train": {"steps": 60, "batch_size": 64}}


def _cfg(**sections: dict) -> object:
    over = {k: dict(v) for k, v in TINY.items()}
    for k, v in sections.items():
        over.setdefault(k, {}).update(v)
    return resolve_config("recommended", overrides=over)


@pytest.mark.parametrize(("sections", "words"), [
    ({"diffusion": {"time": "continuous", "schedule": "poly"}}, "no continuous-time form"),
    ({"diffusion": {"time": "continuous", "schedule": "cosine"}, "model": {"name": "seed", "options": {}}},
     "one-hot"),
    ({"diffusion": {"time": "continuous", "schedule": "cosine", "parameterization": "mean"}}, "t → t−1"),
    ({"diffusion": {"time": "continuous", "schedule": "cosine", "variance": "learned-range"}}, "one step"),
    ({"diffusion": {"zero_terminal_snr": True, "parameterization": "eps"}}, "zero terminal SNR"),
    ({"diffusion": {"zero_terminal_snr": True, "parameterization": "score"}}, "zero terminal SNR"),
    ({"diffusion": {"zero_terminal_snr": True, "parameterization": "v"}, "sample": {"sampler": "ode"}}, "σ = ∞"),
    ({"sample": {"variance": "learned"}}, "learned-range"),
    ({"sample": {"sampler": "heun", "options": {"eta": 1.0}}}, "no option 'eta'"),
    ({"model": {"name": "oracle-empirical", "options": {}}, "diffusion": {"time": "discrete", "schedule": "cosine",
                                                                         "variance": "learned-range"}},
     "exact denoiser"),
])
def test_impossible_combinations_are_refused_with_the_reason(sections: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        check_config(_cfg(**sections))


def test_zero_terminal_snr_process_reaches_zero() -> None:
    for time, schedule in (("discrete", "linear"), ("continuous", "cosine")):
        d = build_process(_cfg(diffusion={"time": time, "schedule": schedule, "zero_terminal_snr": True,
                                          "parameterization": "v"}))
        assert d.alpha_bar(d.t_max) == 0.0 and d.alpha_bar(d.t_min) > 0.99


@pytest.fixture(scope="module")
def continuous_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("runs") / "ct"
    cfg = _cfg(diffusion={"time": "continuous", "schedule": "cosine", "parameterization": "v", "T": 20},
               data={"source": "8gaussians", "n": 400})
    train_run(cfg, out, progress=False)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++", "dpm++-sde", "heun", "heun-sde", "ode"])
@pytest.mark.parametrize("grid", ["trailing", "logsnr", "karras"])
def test_continuous_run_samples_with_every_sampler_and_grid(continuous_run: Path, sampler: str, grid: str) -> None:
    run = load_run(continuous_run)
    x, traj = sample_run(run, 64, seed=1, sampler=sampler, steps=6, grid=grid, trajectory=True)
    assert x.shape == (64, 2) and np.isfinite(x).all()
    assert traj is not None and traj.shape == (7, 64, 2)


def test_guards_keep_x0_in_the_box(continuous_run: Path) -> None:
    run = load_run(continuous_run)
    lo, hi = run.train.min(0), run.train.max(0)
    for guard in ("clip", "threshold"):
        x, _ = sample_run(run, 500, seed=2, sampler="ddim", steps=4, guard=guard, guard_margin=0.0)
        assert (x >= lo - 1e-4).all() and (x <= hi + 1e-4).all()  # the last step returns x̂_0 itself


@pytest.mark.slow
def test_cli_trains_continuous_and_reports_nll(continuous_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    r = RUNNER.invoke(app, ["sample", str(continuous_run), "--out", str(out), "--n", "50", "--sampler", "heun-sde",
                            "--steps", "5", "--grid", "karras", "--option", "s_churn=10", "--guard", "clip"])
    assert r.exit_code == 0, r.output
    assert np.loadtxt(out, delimiter=",", skiprows=1).shape == (50, 2)
    js = tmp_path / "m.json"
    r = RUNNER.invoke(app, ["evaluate", str(continuous_run), "--metrics", "w1", "--n", "40", "--repeats", "1",
                            "--nll", "--elbo", "--json", str(js)])
    assert r.exit_code == 0, r.output
    report = json.loads(js.read_text())
    assert isinstance(report["nll_ode"], float) and np.isfinite(report["nll_ode"])
    assert report["nll_ode_detail"]["trace"] == "exact" and report["nll_ode_detail"]["n"] == 40


@pytest.mark.slow
def test_ode_nll_is_below_the_elbo_on_a_trained_model(tmp_path: Path) -> None:
    """On a trained model (8 Gaussians, 1500 steps) the probability-flow likelihood is tighter than the bound:
    true NLL ≤ NLL_ODE ≤ −ELBO (measured 1.44 ≤ 1.67 ≤ 1.95 nats/dim when this test was written)."""
    import torch

    from difflab.evaluation.ode_likelihood import ode_nll
    from difflab.evaluation.report import heldout_elbo

    cfg = _cfg(data={"source": "8gaussians", "n": 500}, model={"options": {"width": 64, "depth": 2}},
               diffusion={"time": "continuous", "schedule": "linear", "parameterization": "v", "T": 50},
               train={"steps": 1500, "batch_size": 128})
    run = train_run(cfg, tmp_path / "r", progress=False)
    points = run.toy.iid(100, 5)
    x = torch.as_tensor(run.scaler.transform(points), dtype=torch.float64)
    nll = ode_nll(run.denoiser(), x, scaler_logdet=run.scaler.log_abs_det_jacobian(), rtol=1e-4, atol=1e-4)
    bound = heldout_elbo(run, points)
    assert bound["true_nll"] - 3 * bound["true_nll_stderr"] <= nll["nats_per_dim"] <= bound["nats_per_dim"]


def test_cli_rejects_bad_options(continuous_run: Path, tmp_path: Path) -> None:
    r = RUNNER.invoke(app, ["sample", str(continuous_run), "--out", str(tmp_path / "s.csv"), "--option", "s_churn"])
    assert r.exit_code == 2 and "KEY=VALUE" in r.stderr
    r = RUNNER.invoke(app, ["sample", str(continuous_run), "--out", str(tmp_path / "s.csv"), "--sampler", "heun",
                            "--option", "bogus=1"])
    assert r.exit_code == 2 and "no option 'bogus'" in r.stderr
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("param", ["mean", "score"])
def test_learned_variances_and_new_parameterizations_run_end_to_end(tmp_path: Path, param: str) -> None:
    cfg = _cfg(diffusion={"time": "discrete", "schedule": "linear", "T": 20, "parameterization": param,
                          "variance": "learned-range"},
               train={"vlb_sampling": "importance", "steps": 60})
    run = train_run(cfg, tmp_path / param, progress=False)
    loaded = load_run(tmp_path / param)
    assert loaded.model.out.out_features == 4
    for sampler, opts in (("ddpm", {}), ("ddpm", {"variance": "small"}), ("ddim", {}), ("heun", {})):
        x, _ = sample_run(loaded, 64, seed=0, sampler=sampler, steps=10, **opts)
        assert np.isfinite(x).all()
    assert run.dim == 2


def test_diverging_training_exits_nonzero_and_writes_no_nan(tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = RUNNER.invoke(app, ["train", "--out", str(out), "--lr", "1e6", "--steps", "300", "-q"])
    assert r.exit_code != 0
    assert "diverged" in r.stderr and "step" in r.stderr
    assert not (out / FILES["model"]).exists()
    if (out / FILES["checkpoint"]).exists():  # whatever was kept is finite
        from difflab.weights import load_weights

        tensors, _ = load_weights(out / FILES["checkpoint"])
        assert all(np.isfinite(v.float().numpy()).all() for v in tensors.values())


def test_sample_refuses_non_finite_rows(continuous_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import difflab.sample as sample_module

    real = sample_module.run_denoiser

    def broken(run, **over):  # noqa: ANN001, ANN202
        den = real(run, **over)

        def fn(x, t):  # noqa: ANN001, ANN202
            p = den(x, t)
            return type(p)(eps=p.eps * float("nan"), x0=p.x0 * float("nan"))

        return fn

    monkeypatch.setattr(sample_module, "run_denoiser", broken)
    out = tmp_path / "s.csv"
    with pytest.raises(DifflabError, match="not finite"):
        sample_to_file(continuous_run, out, n=20, sampler="ddim", steps=3)
    assert not out.exists() and not list(tmp_path.iterdir())
