"""Figures by noise level: the times picked for every kind of process (discrete, continuous, EDM, a straight path)
sit at the intended σ, in order, and the run's figures use them."""

import math

import numpy as np
import pytest
import torch

from difflab import viz
from difflab.diffusion import ContinuousDiffusion, GaussianDiffusion, Process, make_schedule
from difflab.errors import DifflabError
from difflab.viz import levels

DIMS = [1, 2, 10]


class StraightPath(Process):
    """x_t = (1 − t) x_0 + t ε (Liu et al. 2022): α = 1 − t, σ̃ = t, so λ = 2 log((1 − t)/t), t = 1/(1 + e^{λ/2}).
    Written from its closed form, as a stand-in for any new process that gives log_snr and t_of_log_snr."""

    discrete, T, t_max, t_min = False, 100, 1.0, 1e-3

    def log_alpha_bar(self, t):  # the variance-preserving equivalent: ᾱ = α² / (α² + σ̃²)
        return 2 * math.log(1 - t) - math.log((1 - t) ** 2 + t**2) if t < 1 else -math.inf

    def t_of_log_snr(self, lam):
        return 1.0 / (1.0 + math.exp(lam / 2))

    def alpha_sigma(self, t, like):
        return torch.tensor(1.0 - t, dtype=like.dtype), torch.tensor(float(t), dtype=like.dtype)


PROCESSES = {
    "tutorial poly T=10": GaussianDiffusion(make_schedule("poly", 10)),
    "linear T=1000": GaussianDiffusion(make_schedule("linear", 1000)),
    "continuous cosine": ContinuousDiffusion("cosine", 100),
    "continuous linear": ContinuousDiffusion("linear", 100),
    "edm": ContinuousDiffusion("edm", 200),
    "straight path": StraightPath(),
}


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_times_sit_at_the_intended_noise_levels(name, scale):
    process = PROCESSES[name]
    times = levels.noise_times(process, levels.FORWARD_LEVELS, scale)
    sig = [levels.sigma_at(process, t) for t in times]
    assert times[0] == 0 and sig[0] == 0 and times[-1] == process.t_max
    assert all(a < b for a, b in zip(sig, sig[1:]))  # the data dissolve from panel to panel
    assert sig[-1] >= 3 * scale  # the last panel is noise: σ well above the data's scale
    for t, level in zip(times[1:-1], levels.FORWARD_LEVELS, strict=True):
        target = level * scale
        if process.discrete:  # the whole step nearest in log σ, against a search over every step
            best = min(range(1, process.T + 1), key=lambda k: abs(math.log(process.sigma(k) / target)))
            assert t == best and isinstance(t, int)
        else:
            assert levels.sigma_at(process, t) == pytest.approx(target, rel=1e-6)
    if not process.discrete:  # σ triples, then more than triples, as the levels do
        assert sig[2] / sig[1] == pytest.approx(3.0, rel=1e-5) and sig[3] / sig[2] == pytest.approx(10 / 3, rel=1e-5)


def test_the_straight_path_is_read_through_its_own_interface():
    # σ of a straight path is t / (1 − t) (x_t / α = x_0 + t/(1 − t) ε): 0.3 at t = 0.3 / 1.3
    t = levels.time_at_sigma(StraightPath(), 0.3)
    assert t == pytest.approx(0.3 / 1.3, rel=1e-12)
    assert levels.level_label(StraightPath(), t) == f"σ = 0.3, t = {t:.3g}"


def test_levels_a_process_cannot_reach_collapse_to_its_ends():
    # poly at T = 10 starts at σ ≈ 0.01: a level of 0.001 is step 1; levels landing on one step appear once
    process = PROCESSES["tutorial poly T=10"]
    assert levels.noise_times(process, [0.001, 0.0011], 1.0) == [0, 1, 10]
    with pytest.raises(DifflabError, match="positive"):
        levels.time_at_sigma(process, 0.0)


def test_data_scale_is_the_rms_of_the_column_sds():
    x = np.c_[np.random.default_rng(0).normal(0, 2, 4000), np.random.default_rng(1).normal(0, 1, 4000)]
    assert levels.data_scale(x) == pytest.approx(math.sqrt((4 + 1) / 2), rel=0.03)
    assert levels.data_scale(np.ones((5, 3))) == 1.0


@pytest.mark.parametrize("d", DIMS)
def test_forward_at_has_the_moments_of_its_coefficients(d, tmp_path):
    x0 = np.tile(np.linspace(-1, 1, d), (20000, 1))
    xt = viz.forward_at(x0, 0.6, 0.8, seed=1)
    np.testing.assert_allclose(xt.mean(0), 0.6 * x0[0], atol=0.03)
    np.testing.assert_allclose(xt.std(0), 0.8, rtol=0.03)
    steps = [(1.0, 0.0, "clean"), (0.6, 0.8, "half"), (0.01, 1.0, "noise")]
    assert viz.plot_forward_levels(x0[:300], steps, tmp_path / "f.png").stat().st_size > 0
    with pytest.raises(DifflabError, match="α = nan"):
        viz.forward_at(x0, float("nan"), 1.0)


def test_the_runs_figures_take_their_times_by_noise_level(tmp_path, monkeypatch):
    """forward.png and vector_field.png of a discrete and a continuous (EDM) run: panels at the levels' times,
    titled with σ and t."""
    from difflab.config import resolve_config
    from difflab.figures import make_figures
    from difflab.pipeline import train_run
    from difflab.rundir import load_run

    drawn = {}
    monkeypatch.setattr(viz, "plot_forward_levels", lambda x, steps, path, **kw: drawn.setdefault("fwd", steps) and path)
    monkeypatch.setattr(viz, "plot_vector_field", lambda fn, ts, path, **kw: drawn.setdefault("field", (ts, kw)) and path)
    for preset in ("seed", "recommended"):
        drawn.clear()
        cfg = resolve_config(preset, overrides={"data": {"n": 200}, "train": {"steps": 3}})
        train_run(cfg, tmp_path / preset, progress=False)
        make_figures(tmp_path / preset, tmp_path / preset / "figs", kinds=["forward", "field"], n=10)
        run = load_run(tmp_path / preset)
        scale = levels.data_scale(run.scaler.transform(run.train))
        expected = levels.noise_times(run.diffusion, levels.FORWARD_LEVELS, scale)
        alphas = [a for a, _, _ in drawn["fwd"]]
        noise = [s / a if a > 0 else math.inf for a, s, _ in drawn["fwd"]]
        assert alphas[0] == 1.0 and noise[0] == 0.0
        np.testing.assert_allclose(noise[1:], [run.diffusion.sigma(t) for t in expected[1:]], rtol=1e-5)
        assert [title for *_, title in drawn["fwd"]] == [levels.level_label(run.diffusion, t, tex=True)
                                                         for t in expected]
        ts, kw = drawn["field"]
        assert ts == levels.noise_times(run.diffusion, levels.FIELD_LEVELS, scale, clean=False)
        assert levels.sigma_at(run.diffusion, ts[0]) < scale < levels.sigma_at(run.diffusion, ts[-1])
        assert kw["titles"][0].startswith(r"$\sigma$ = ")
