"""Oracle denoisers against closed forms, finite differences of an independent density, and by their samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax

from difflab.compute import cpu_threads
from difflab.config import resolve_config
from difflab.data import GaussianMixture, get_dataset
from difflab.diffusion import Denoiser, GaussianDiffusion, make_schedule
from difflab.errors import ConfigError
from difflab.evaluation import evaluate_samples, nearest_neighbour_ratio
from difflab.models import MODELS, build_model
from difflab.models import oracles as oracles_module
from difflab.models.oracles import EmpiricalOracle, MixtureOracle
from difflab.pipeline import train_run
from difflab.rundir import FILES, load_run
from difflab.sample import sample_run
from difflab.sampling.api import generate


@pytest.fixture(autouse=True)
def one_thread():
    """Every op here is on a few thousand rows, where torch's thread start-up costs more than it saves (the
    trainer's rule, ``default_threads``); on a busy 2-core machine two threads make these tests 5-20x slower."""
    with cpu_threads(1):
        yield


def random_mixture(dim: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and full (correlated) covariances of a random K-component mixture."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(0.0, 1.0, (k, dim))
    a = rng.normal(0.0, 0.4, (k, dim, dim))
    cov = a @ np.transpose(a, (0, 2, 1)) + 0.05 * np.eye(dim)
    return w, mu, cov


def _diffusion(name: str = "linear", T: int = 100) -> GaussianDiffusion:
    return GaussianDiffusion(make_schedule(name, T, warn=False))


def test_single_gaussian_is_the_conditional_mean(dim) -> None:
    """K = 1: x̂_0 = μ + √ᾱ Σ (ᾱ Σ + (1 − ᾱ) I)⁻¹ (x_t − √ᾱ μ) by Gaussian conditioning, ε̂ = (x_t − √ᾱ x̂_0)/√(1 − ᾱ)."""
    w, mu, cov = random_mixture(dim, 1, seed=dim)
    d = _diffusion()
    oracle = MixtureOracle.of(w, mu, cov, d)
    x = np.random.default_rng(0).normal(0.0, 1.5, (6, dim))
    for t in (1, 10, 50, 100):
        ab = float(d.alpha_bars[t])
        gain = math.sqrt(ab) * cov[0] @ np.linalg.inv(ab * cov[0] + (1 - ab) * np.eye(dim))
        x0 = mu[0] + (x - math.sqrt(ab) * mu[0]) @ gain.T
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        pred = oracle.predict(torch.as_tensor(x), t)
        np.testing.assert_allclose(pred.x0.numpy(), x0, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(pred.eps.numpy(), eps, rtol=1e-7, atol=1e-8)
        out = oracle(torch.as_tensor(x, dtype=torch.float32), torch.full((6,), t))
        assert out.dtype == torch.float32
        np.testing.assert_allclose(out.numpy(), eps, rtol=1e-5, atol=1e-5)


def test_mixture_eps_is_the_scaled_score(dim) -> None:
    """Tweedie: E[ε | x_t] = −√(1 − ᾱ) ∇ log p_t(x_t), with p_t the mixture of N(√ᾱ μ_k, ᾱ Σ_k + (1 − ᾱ) I),
    differentiated numerically through data.toy's GaussianMixture.log_prob; and x̂_0 = (x_t − √(1 − ᾱ) ε̂)/√ᾱ."""
    w, mu, cov = random_mixture(dim, 3, seed=10 + dim)
    d = _diffusion("cosine", 50)
    oracle = MixtureOracle.of(w, mu, cov, d)
    x = np.random.default_rng(1).normal(0.0, 1.0, (5, dim))
    h = 1e-5
    for t in (3, 20, 45):
        ab = float(d.alpha_bars[t])
        noisy = GaussianMixture(w, math.sqrt(ab) * mu, ab * cov + (1 - ab) * np.eye(dim))
        grad = np.stack([(noisy.log_prob(x + h * e) - noisy.log_prob(x - h * e)) / (2 * h) for e in np.eye(dim)], 1)
        pred = oracle.predict(torch.as_tensor(x), t)
        np.testing.assert_allclose(pred.eps.numpy(), -math.sqrt(1 - ab) * grad, rtol=1e-5, atol=1e-6)
        x0 = (x - math.sqrt(1 - ab) * pred.eps.numpy()) / math.sqrt(ab)
        np.testing.assert_allclose(pred.x0.numpy(), x0, rtol=1e-8, atol=1e-9)


def test_rows_may_have_different_steps(dim) -> None:
    w, mu, cov = random_mixture(dim, 2, seed=3)
    d = _diffusion()
    for oracle in (MixtureOracle.of(w, mu, cov, d), EmpiricalOracle.of(mu, d)):
        x = torch.randn(4, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        ts = torch.tensor([1, 7, 60, 100])
        together = oracle(x, ts)
        for i, t in enumerate(ts.tolist()):
            assert torch.allclose(together[i], oracle(x[i : i + 1], t)[0], rtol=1e-12, atol=1e-12)


def test_empirical_is_a_softmax_over_training_points(dim, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against scipy's softmax of −‖x_t − √ᾱ x_i‖² / (2(1 − ᾱ)) on full distances; chunking changes nothing."""
    rng = np.random.default_rng(dim)
    pts, x = rng.normal(0.0, 1.0, (40, dim)), rng.normal(0.0, 1.0, (9, dim))
    d = _diffusion()
    oracle = EmpiricalOracle.of(pts, d)
    for t in (5, 40, 100):
        ab = float(d.alpha_bars[t])
        dist2 = ((x[:, None, :] - math.sqrt(ab) * pts[None]) ** 2).sum(2)
        x0 = softmax(-dist2 / (2 * (1 - ab)), axis=1) @ pts
        pred = oracle.predict(torch.as_tensor(x), t)
        np.testing.assert_allclose(pred.x0.numpy(), x0, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(pred.eps.numpy(), (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab), rtol=1e-8)
    monkeypatch.setattr(oracles_module, "CHUNK_ELEMENTS", 7)  # one query row per chunk
    np.testing.assert_allclose(oracle.predict(torch.as_tensor(x), 40).x0.numpy(),
                               softmax(-((x[:, None] - math.sqrt(float(d.alpha_bars[40])) * pts[None]) ** 2).sum(2)
                                       / (2 * (1 - float(d.alpha_bars[40]))), axis=1) @ pts, rtol=1e-9, atol=1e-11)


def test_empirical_at_small_t_returns_the_nearest_training_point(dim) -> None:
    rng = np.random.default_rng(dim)
    spread = {1: np.linspace(-3, 3, 60)[:, None], 2: 0.5 * np.stack(np.meshgrid(range(8), range(8)), -1).reshape(-1, 2)}
    pts = spread.get(dim, rng.normal(0.0, 1.0, (60, dim)))  # at least 0.1 apart; the noise's std is 0.01
    d = _diffusion("linear", 1000)  # 1 − ᾱ_1 = 1e-4
    t = 1
    ab = float(d.alpha_bars[t])
    idx = rng.integers(0, len(pts), 200)
    xt = math.sqrt(ab) * pts[idx] + math.sqrt(1 - ab) * rng.normal(size=(200, dim))
    nearest = np.argmin(((xt[:, None] - math.sqrt(ab) * pts[None]) ** 2).sum(2), axis=1)
    assert (nearest == idx).all()  # the points are far apart on the scale of the noise
    x0 = EmpiricalOracle.of(pts, d).predict(torch.as_tensor(xt), t).x0.numpy()
    np.testing.assert_allclose(x0, pts[idx], atol=1e-6)


def test_mixture_in_scaled_space_is_the_pushed_forward_density() -> None:
    """The scaled mixture's density at s(x) equals the toy mixture's at x divided by |det J| (change of
    variables), checked with log_prob on both sides."""
    toy = get_dataset("8gaussians")
    run_cfg = resolve_config(overrides={"model": {"name": "oracle"}, "data": {"source": "8gaussians", "n": 500}})
    from difflab.assemble import build_process as build_diffusion
    from difflab.data.prepare import prepare_data

    data = prepare_data(run_cfg.data)
    oracle = MixtureOracle.from_data(data, build_diffusion(run_cfg))
    scaled = GaussianMixture(oracle.weights.numpy(), oracle.means.numpy(), oracle.covs.numpy())
    x = toy.iid(100, 0)
    np.testing.assert_allclose(scaled.log_prob(data.scaler.transform(x)),
                               toy.mixture.log_prob(x) - data.scaler.log_abs_det_jacobian(), rtol=1e-10)


def test_oracle_loss_is_below_a_moment_matched_gaussians() -> None:
    """E[ε | x_t] has the least mean squared error of any ε-predictor: the mixture oracle's denoising loss is below
    that of the exact denoiser of a single Gaussian with the mixture's mean and covariance."""
    w, mu, cov = random_mixture(2, 4, seed=7)
    d = _diffusion("cosine", 100)
    x = torch.as_tensor(GaussianMixture(w, mu, cov).sample(4000, 1))
    m = (w[:, None] * mu).sum(0)
    c = (w[:, None, None] * (cov + np.einsum("ki,kj->kij", mu - m, mu - m))).sum(0)
    exact = MixtureOracle.of(w, mu, cov, d).denoising_loss(x, seed=2)
    gaussian = MixtureOracle.of([1.0], m[None], c[None], d).denoising_loss(x, seed=2)
    assert 0 < exact < gaussian - 0.01


@pytest.mark.parametrize(("schedule", "T", "sampler", "steps"), [("cosine", 100, "ddpm", None),
                                                                  ("linear", 1000, "dpm++", 100)])
@pytest.mark.slow
def test_mixture_oracle_run_reproduces_8gaussians(tmp_path, schedule, T, sampler, steps) -> None:
    """`train --model oracle` writes a run without training; its samples are as close to fresh i.i.d. points as
    another i.i.d. sample is (W1 ratio near 1), while a wrong oracle (every component twice as wide) is not."""
    cfg = resolve_config(overrides={"model": {"name": "oracle"}, "data": {"source": "8gaussians"},
                                    "diffusion": {"schedule": schedule, "T": T}})
    run = load_run(train_run(cfg, tmp_path / "r", progress=False).path)
    assert not (tmp_path / "r" / FILES["checkpoint"]).exists()
    x, _ = sample_run(run, 2000, seed=1, sampler=sampler, steps=steps)
    floor = {"floor_pairs": 4, "reference_key": "test:8gaussians"}  # the second call reads the first's floor
    ratio = evaluate_samples(x, run.toy.iid, n=1000, repeats=2, metrics=["w1"], seed=0, **floor)["w1"]["ratio"]
    assert ratio < 1.3
    wide = MixtureOracle.of(run.model.weights, run.model.means, 4 * run.model.covs, run.diffusion)
    xw, _ = generate(Denoiser(wide, run.diffusion), run.diffusion, 2000, 2, sampler=sampler, steps=steps, seed=1)
    xw = run.scaler.inverse_transform(xw.double().numpy())
    assert evaluate_samples(xw, run.toy.iid, n=1000, repeats=2, metrics=["w1"], seed=0, **floor)["w1"]["ratio"] > 1.5


@pytest.mark.slow
def test_empirical_oracle_samples_copy_training_points(tmp_path) -> None:
    cfg = resolve_config(overrides={"model": {"name": "oracle-empirical"}, "data": {"source": "8gaussians", "n": 200},
                                    "diffusion": {"schedule": "linear", "T": 1000}})
    run = load_run(train_run(cfg, tmp_path / "r", progress=False).path)
    x, _ = sample_run(run, 500, seed=0, sampler="ddpm")
    mem = nearest_neighbour_ratio(x, run.train, run.toy.iid(500, 3), n=500)
    assert mem["ratio"] < 0.1


def test_runs_save_the_buffers_shapes_and_reload(tmp_path) -> None:
    for name, key, size in (("oracle", "n_components", 8), ("oracle-empirical", "n_points", 300)):
        cfg = resolve_config(overrides={"model": {"name": name}, "data": {"source": "8gaussians", "n": 300}})
        run = train_run(cfg, tmp_path / name, progress=False)
        loaded = load_run(tmp_path / name)
        assert loaded.config.model.options == {key: size}
        x = torch.randn(50, 2)
        t = torch.randint(1, run.diffusion.T + 1, (50,))
        assert torch.equal(loaded.model(x, t), run.model(x, t))
        rows = (tmp_path / name / FILES["loss"]).read_text().splitlines()
        assert rows[0] == "step,loss" and len(rows) == 2 and 0 < float(rows[1].split(",")[1]) < 1
        assert isinstance(build_model(name, 2, 10, **{key: 3}), MODELS[name])


def test_oracle_needs_a_mixture_and_fixed_variances(tmp_path) -> None:
    cfg = resolve_config(overrides={"model": {"name": "oracle"}, "data": {"source": "moons"}})
    with pytest.raises(ConfigError, match="oracle-empirical"):
        train_run(cfg, tmp_path / "moons", progress=False)
    assert not (tmp_path / "moons").exists()
    cfg = resolve_config(overrides={"model": {"name": "oracle"}, "data": {"source": "blobs"},
                                    "diffusion": {"time": "discrete", "schedule": "cosine", "T": 50,
                                                  "variance": "learned-range"}})
    with pytest.raises(ConfigError, match="no variances to learn"):
        train_run(cfg, tmp_path / "v", progress=False)
    assert not (tmp_path / "v").exists()
