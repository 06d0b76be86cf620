"""The report's Plotly figures, checked against independent computations: the forward process by simulation, the
schedule by products of (1 − β), the field's arrows against the noise predictor, the loss's moving average by a
plain loop, and every figure for D = 1, 2, 10."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from difflab.diffusion import GaussianDiffusion, make_schedule
from difflab.errors import DifflabError
from difflab.report import points, process

DIMS = [1, 2, 10]
T = 20


def diffusion(T: int = T) -> GaussianDiffusion:
    return GaussianDiffusion(make_schedule("linear", T))


def trajectory(times: list[int], n: int, d: int, seed: int = 0) -> np.ndarray:
    """(K+1, n, d): noise shrinking linearly onto a ring (whatever the sampler; only the bookkeeping matters)."""
    rng = np.random.default_rng(seed)
    end = np.tanh(rng.normal(size=(n, d)))
    start = rng.normal(size=(n, d))
    w = np.linspace(0, 1, len(times))[:, None, None]
    return (1 - w) * start + w * end


def t_of(label: str) -> str:
    """The time in a slider label ``σ 0.186 · t 4``."""
    assert label.startswith("σ ") and " · t " in label, label
    return label.split(" · t ")[1]


def decoded(values: object) -> np.ndarray:
    """A trace's array as numpy (plotly keeps numpy arrays as they are until it writes JSON)."""
    return np.asarray(values, dtype=np.float64)


# --- times and schedule ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 41, 42, 101, 1001])
def test_frame_indices_are_evenly_spread_and_keep_both_ends(n: int) -> None:
    idx = process.frame_indices(n, 41)
    assert idx[0] == 0 and idx[-1] == n - 1 and len(idx) == min(n, 41) and idx == sorted(set(idx))
    gaps = np.diff(idx)
    assert gaps.max() - gaps.min() <= 1  # even spacing, up to rounding


@pytest.mark.parametrize("name", ["poly", "linear", "cosine"])
def test_schedule_curves_are_betas_and_one_minus_the_product_of_alphas(name: str) -> None:
    d = GaussianDiffusion(make_schedule(name, 10))
    t, curves = process.schedule_curves(d)
    betas, var, lam = curves.values()
    la = np.cumsum(np.log1p(-np.asarray(d.schedule.betas[1:], dtype=float)))  # log ᾱ as a sum of logs
    np.testing.assert_allclose(lam[1:], la - np.log(-np.expm1(la)), rtol=1e-6)
    assert list(t) == list(range(11))
    expected = [1.0 - math.prod(1.0 - float(b) for b in d.schedule.betas[1 : s + 1]) for s in range(11)]
    np.testing.assert_allclose(var, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(betas, np.asarray(d.schedule.betas, dtype=float))
    fig = process.schedule_figure(d, name)
    np.testing.assert_allclose(decoded(fig.data[1].y), expected, rtol=1e-12, atol=1e-15)


class ContinuousProcess:
    """A continuous-time process with ᾱ(t) = exp(−5 t²) (closed form), as a continuous schedule gives it."""

    T = 8

    @staticmethod
    def alpha_bar(t: float) -> float:
        return math.exp(-5.0 * t * t)


def test_schedule_curves_of_a_continuous_process_in_closed_form() -> None:
    t, curves = process.schedule_curves(ContinuousProcess())
    var, lam = curves.values()
    assert t[0] == 0 and t[-1] == 1
    np.testing.assert_allclose(var, 1 - np.exp(-5 * t**2), atol=1e-15)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(lam[1:], -5 * t[1:] ** 2 - np.log(-np.expm1(-5 * t[1:] ** 2)), rtol=1e-9)
    assert process.t_label(0.25) == "0.25" and process.t_label(7) == "7" and process.t_label(7.0) == "7"


# --- forward and reverse process under the slider -----------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_process_frames_follow_the_samplers_times_and_states(d: int) -> None:
    times = [20, 16, 12, 8, 4, 0]  # a 5-step grid of T = 20, t_max first
    traj = trajectory(times, 50, d)
    x0 = np.random.default_rng(1).normal(size=(80, d))
    fig = process.process_figure(x0, traj, times, diffusion(), n_show=30)
    slider = fig.layout.sliders[0]
    assert [t_of(s.label) for s in slider.steps] == ["0", "4", "8", "12", "16", "20"]  # increasing t, left to right
    assert slider.steps[0].label == "σ 0 · t 0"
    sig = float(slider.steps[2].label.split()[1])
    assert sig == pytest.approx(math.sqrt((1 - float(diffusion().alpha_bars[8])) / float(diffusion().alpha_bars[8])),
                                rel=1e-2)
    assert slider.active == 0 and len(fig.frames) == 6
    cols = [0] if d == 1 else [0, 1]
    for step, frame in zip(slider.steps, fig.frames, strict=True):
        assert list(step.args[0]) == [frame.name]  # each step shows its own frame
        k = times.index(int(t_of(step.label)))
        rev = frame.data[1]
        got = decoded(rev.x) if d == 1 else np.c_[decoded(rev.x), decoded(rev.y)]
        np.testing.assert_allclose(got.reshape(30, -1), traj[k, :30][:, cols], rtol=1e-6, atol=1e-6)
    # the initial figure is the first frame (t = 0): 30 of the clean training points themselves
    first = decoded(fig.data[0].x)
    assert len(first) == 30 and np.abs(first[:, None] - x0[None, :, 0]).min(axis=1).max() < 1e-6
    assert isinstance(fig.data[0], go.Histogram if d == 1 else go.Scatter)


def test_forward_frames_have_the_moments_of_q_xt_given_x0() -> None:
    """Simulation check of Ho et al. (2020), Eq. 4: from x_0 = c for all points, x_t has mean √ᾱ_t c and variance
    1 − ᾱ_t per column."""
    diff = diffusion()
    times = list(range(T, -1, -1))
    c = np.array([0.8, -0.5])
    x0 = np.tile(c, (4000, 1))
    fig = process.process_figure(x0, trajectory(times, 10, 2), times, diff, n_show=4000, seed=3)
    for step, frame in zip(fig.layout.sliders[0].steps, fig.frames, strict=True):
        t = int(t_of(step.label))
        ab = float(diff.alpha_bars[t])
        xt = np.c_[decoded(frame.data[0].x), decoded(frame.data[0].y)]
        se = math.sqrt(max(1 - ab, 1e-12) / len(xt))
        np.testing.assert_allclose(xt.mean(0), math.sqrt(ab) * c, atol=5 * se + 1e-6)
        np.testing.assert_allclose(xt.var(0), 1 - ab, atol=5 * (1 - ab) * math.sqrt(2 / len(xt)) + 1e-6)


def test_a_long_grid_is_thinned_to_at_most_max_frames() -> None:
    times = list(range(100, -1, -1))
    fig = process.process_figure(np.zeros((20, 2)), trajectory(times, 5, 2), times, diffusion(100))
    labels = [int(t_of(s.label)) for s in fig.layout.sliders[0].steps]
    assert len(labels) <= process.MAX_FRAMES and labels[0] == 0 and labels[-1] == 100
    # spread in noise level, not in steps: on the linear schedule, log σ moves fastest at small t, so the
    # frames crowd there (an even spread in steps would put them 2.5 apart everywhere)
    assert labels[:6] == list(range(6)) and len(labels) > 30
    def gaps(ts: list[int]) -> np.ndarray:
        return np.diff(np.log([process.noise_level(diffusion(100), t) for t in ts if t > 0]))

    target = (gaps([1, 100])[0]) / (process.MAX_FRAMES - 2)  # an even spread in log σ
    assert gaps(labels)[3:].max() < 2 * target  # past the first steps, which are each a large jump in σ
    assert gaps(process.frame_indices(101)).max() > 4 * target  # an even spread in steps is far from it


def test_process_figure_rejects_a_trajectory_without_one_time_per_state() -> None:
    with pytest.raises(DifflabError, match="one time per state"):
        process.process_figure(np.zeros((5, 2)), np.zeros((4, 5, 2)), [10, 5, 0], diffusion())


# --- the field --------------------------------------------------------------------------------------------------


def linear_eps(x: np.ndarray, t: int) -> np.ndarray:
    """A known noise predictor: ε̂(x, t) = x · t / 10 + (0.1, −0.2)."""
    return x * t / 10 + np.array([0.1, -0.2])


def test_arrow_segments_have_shafts_and_head_barbs_of_the_stated_geometry() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 2.0]])
    uv = np.array([[1.0, 0.0], [0.0, -2.0]])
    seg = process.arrow_segments(xy, uv, head=0.3, angle=25.0).reshape(2, 7, 2)
    np.testing.assert_allclose(seg[:, 0], xy)
    np.testing.assert_allclose(seg[:, 1], xy + uv)
    assert np.isnan(seg[:, 2]).all() and np.isnan(seg[:, 6]).all()
    for i in range(2):
        tip = xy[i] + uv[i]
        for barb in (seg[i, 3], seg[i, 5]):
            v = barb - tip
            assert np.isclose(np.linalg.norm(v), 0.3 * np.linalg.norm(uv[i]))
            cos = v @ -uv[i] / (np.linalg.norm(v) * np.linalg.norm(uv[i]))
            assert np.isclose(np.degrees(np.arccos(cos)), 25.0)


def test_field_arrows_are_minus_eps_hat_with_one_scale_for_every_t() -> None:
    times = [20, 15, 10, 5, 0]
    traj = trajectory(times, 30, 2)
    fig = process.field_figure(linear_eps, traj, times, np.zeros((10, 2)), n_paths=4, grid=5, lim=2.0)
    labels = [int(s.label) for s in fig.layout.sliders[0].steps]
    assert labels == [5, 10, 15, 20]  # t = 0 has no field; without the process, labels are the times
    g = np.linspace(-2, 2, 5)
    gx, gy = np.meshgrid(g, g)
    lattice = np.c_[gx.ravel(), gy.ravel()]
    scales = []
    for t, frame in zip(labels, fig.frames, strict=True):
        seg = np.c_[decoded(frame.data[0].x), decoded(frame.data[0].y)].reshape(-1, 7, 2)
        np.testing.assert_allclose(seg[:, 0], lattice, atol=1e-6)
        arrow = seg[:, 1] - seg[:, 0]
        field = -linear_eps(lattice, t)
        s = np.linalg.norm(arrow, axis=1) / np.linalg.norm(field, axis=1)
        np.testing.assert_allclose(s, s[0], rtol=1e-4)  # one scale within the frame ...
        np.testing.assert_allclose(arrow, s[0] * field, rtol=1e-4, atol=1e-6)  # ... along −ε̂
        scales.append(s[0])
        # trajectories from x_T down to t, and their points at t
        k = times.index(t)
        pts = np.c_[decoded(frame.data[2].x), decoded(frame.data[2].y)]
        np.testing.assert_allclose(pts, traj[k, :4], rtol=1e-6)
        lines = np.c_[decoded(frame.data[1].x), decoded(frame.data[1].y)]
        assert len(lines) == 4 * (k + 2)  # k + 1 states and a gap per path
        np.testing.assert_allclose(lines[: k + 1], traj[: k + 1, 0], rtol=1e-6)
    np.testing.assert_allclose(scales, scales[0], rtol=1e-4)  # ... and across frames


@pytest.mark.parametrize("d", [1, 10])
def test_field_is_for_two_columns_only(d: int) -> None:
    with pytest.raises(DifflabError, match="D = 2"):
        process.field_figure(linear_eps, trajectory([2, 1, 0], 5, d), [2, 1, 0], np.zeros((5, d)))


# --- samples against data, loss ---------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_samples_figures_per_width(d: int) -> None:
    rng = np.random.default_rng(0)
    data, samples = rng.normal(size=(300, d)), rng.normal(1.0, 2.0, size=(200, d))
    samples[0] = np.nan  # a diverged row is left out
    figs = points.samples_figures(data, samples, [f"col{j}" for j in range(d)], max_points=250)
    kinds = [sorted({type(tr).__name__ for tr in f.data}) for f in figs]
    if d == 1:
        assert kinds == [["Histogram"]]
    elif d == 2:
        assert kinds == [["Histogram", "Histogram2dContour", "Scatter"]]
        scatter = {tr.name: tr for tr in figs[0].data if isinstance(tr, go.Scatter)}
        np.testing.assert_allclose(np.sort(decoded(scatter["samples"].x)), np.sort(samples[1:, 0]), rtol=1e-6)
    else:
        assert kinds == [["Splom"], ["Histogram"]]
        assert [dim.label for dim in figs[0].data[0].dimensions] == ["col0", "col1", "col2", "col3"]
        assert len([a for a in figs[1].layout.annotations]) == d  # one marginal panel per column (d ≤ 12)
    hists = [tr for f in figs for tr in f.data if isinstance(tr, go.Histogram) and tr.name == "samples"]
    assert hists and all(len(decoded(h.x if h.x is not None else h.y)) == 199 for h in hists)
    assert f"D = {d}" in points.what_is_shown(d)


def test_loss_figure_has_the_bias_corrected_moving_average_and_drops_non_finite() -> None:
    losses = np.r_[np.linspace(2.0, 0.5, 30), np.nan, np.linspace(0.5, 0.4, 9)]
    fig = points.loss_figure(np.arange(1, 41), losses)
    kept = losses[np.isfinite(losses)]
    s, expected = 0.0, []
    for k, v in enumerate(kept, start=1):  # s_k = w s_{k-1} + (1 - w) v_k, reported as s_k / (1 - w^k)
        s = 0.98 * s + 0.02 * v
        expected.append(s / (1 - 0.98**k))
    np.testing.assert_allclose(decoded(fig.data[1].y), expected)
    assert len(decoded(fig.data[0].x)) == 39 and fig.layout.yaxis.type == "log"
    with pytest.raises(DifflabError, match="NaN or inf"):
        points.loss_figure([1, 2], [np.nan, np.inf])


@pytest.mark.parametrize("d", [2, 10])
def test_axes_span_the_bulk_not_a_few_far_out_samples(d: int) -> None:
    rng = np.random.default_rng(0)
    data, samples = rng.normal(size=(500, d)), rng.normal(size=(500, d))
    samples[:3] = 1e3  # a poorly trained model's strays
    fig = points.samples_figures(data, samples)[0]
    ranges = [fig.layout[name].range for name in ("xaxis3", "yaxis3")] if d == 2 else [
        fig.layout[name].range for name in ("xaxis", "yaxis", "xaxis4", "yaxis4")]
    for lo, hi in ranges:
        assert -6 < lo < -2 and 2 < hi < 6  # about the N(0, 1) bulk


def test_process_and_field_of_a_continuous_time_process() -> None:
    """Times in [0, 1] (a continuous schedule): slider labels are the times, x_t uses ᾱ(t) of the process."""
    times = [1.0, 0.5, 0.125, 0.0]
    c = np.array([1.0, -1.0])
    fig = process.process_figure(np.tile(c, (3000, 1)), trajectory(times, 10, 2), times, ContinuousProcess(),
                                 n_show=3000)
    assert [t_of(s.label) for s in fig.layout.sliders[0].steps] == ["0", "0.125", "0.5", "1"]
    last = fig.frames[-1].data[0]  # t = 1: ᾱ = e^-5
    xt = np.c_[decoded(last.x), decoded(last.y)]
    ab = math.exp(-5.0)
    np.testing.assert_allclose(xt.mean(0), math.sqrt(ab) * c, atol=5 * math.sqrt((1 - ab) / 3000))
    field = process.field_figure(lambda x, t: x * t, trajectory(times, 10, 2), times, np.zeros((5, 2)), grid=3,
                                 diffusion=ContinuousProcess())
    labels = [s.label for s in field.layout.sliders[0].steps]
    assert [t_of(lab) for lab in labels] == ["0.125", "0.5", "1"]
    assert labels[-1].startswith(f"σ {math.sqrt(math.expm1(5.0)):.3g} ")  # σ = √((1 − ᾱ)/ᾱ), ᾱ = e^-5
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis2.scaleanchor == "x2"  # moons stay moons
