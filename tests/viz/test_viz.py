"""Tests for difflab.viz: every figure is a valid image for D = 1, 2, 10, helpers match closed forms,
and a failing plot leaves neither the target nor a temporary file behind."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.animation import PillowWriter
from matplotlib.figure import Figure
from PIL import Image

from difflab import viz
from difflab.errors import DataError, DifflabError
from difflab.viz import panels, style

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T = 10
DIMS = [1, 2, 10]


@pytest.fixture(autouse=True)
def low_dpi(monkeypatch):
    monkeypatch.setattr(style, "DPI", 30)


def moons(n: int, d: int = 2, seed: int = 0) -> np.ndarray:
    """Two interleaved arcs scaled to [-1, 1] (moons-like); extra columns for d > 2 are Gaussian noise."""
    rng = np.random.default_rng(seed)
    th = rng.uniform(0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(th), 1 - np.cos(th))
    y = np.where(upper, np.sin(th), 0.5 - np.sin(th))
    p = np.c_[x, y] + 0.05 * rng.standard_normal((n, 2))
    p = 2 * (p - p.min(0)) / (p.max(0) - p.min(0)) - 1
    if d == 1:
        return p[:, :1]
    return np.hstack([p, rng.standard_normal((n, d - 2))]) if d > 2 else p


def alpha_bars(t_max: int = T) -> np.ndarray:
    betas = np.r_[0.0, np.linspace(0.01, 0.5, t_max)]
    return np.cumprod(1 - betas)


def trajectory(k: int, n: int, d: int, seed: int = 0) -> np.ndarray:
    """(k+1, n, d): noise shrinking linearly onto moons-like end points."""
    rng = np.random.default_rng(seed)
    end, start = moons(n, d, seed), rng.standard_normal((n, d))
    w = np.linspace(0, 1, k + 1)[:, None, None]
    return (1 - w) * start + w * end


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] > 50 and im.size[1] > 50


def only_file(folder, name: str) -> None:
    """``name`` is the only entry in ``folder`` (no temporary files left behind)."""
    assert sorted(p.name for p in folder.iterdir()) == [name]


# --- points -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_plot_data_writes_png(tmp_path, d):
    cols = [f"c{i}" for i in range(d)]
    out = viz.plot_data(moons(300, d), tmp_path / "data.png", columns=cols, title="moons", max_points=200)
    assert out == tmp_path / "data.png"
    assert_png(out)
    only_file(tmp_path, "data.png")


@pytest.mark.parametrize("d", DIMS)
def test_plot_samples_writes_png(tmp_path, d):
    out = viz.plot_samples(moons(200, d, seed=1), moons(200, d), tmp_path / "s.png", title="samples")
    assert_png(out)


def test_plot_samples_skips_nonfinite_rows_and_rejects_all_nonfinite(tmp_path):
    s = moons(100)
    s[:5] = np.nan
    assert_png(viz.plot_samples(s, moons(100), tmp_path / "ok.png"))
    with pytest.raises(DataError, match="samples"):
        viz.plot_samples(np.full((10, 2), np.inf), moons(100), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_points_input_errors(tmp_path):
    with pytest.raises(DataError, match="samples: expected width D=2"):
        viz.plot_samples(moons(50, 3), moons(50, 2), tmp_path / "s.png")
    with pytest.raises(DataError, match="columns: expected 2 names"):
        viz.plot_data(moons(50), tmp_path / "d.png", columns=["a"])
    with pytest.raises(DataError, match="data: expected a non-empty"):
        viz.plot_data(np.zeros((0, 2)), tmp_path / "d.png")
    assert list(tmp_path.iterdir()) == []


def test_limits_match_tutorial_axes_for_data_in_unit_box():
    x = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.5]])
    np.testing.assert_allclose(panels.limits([x]), [[-1.5, 1.5], [-1.5, 1.5]])


def test_panel_columns_pairs_of_first_four():
    assert panels.panel_columns(1) == [(0,)]
    assert panels.panel_columns(2) == [(0, 1)]
    assert panels.panel_columns(3) == [(0, 1), (0, 2), (1, 2)]
    assert len(panels.panel_columns(10)) == 6 and max(max(c) for c in panels.panel_columns(10)) == 3


# --- forward process --------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_forward_points_t0_is_data(d):
    x0 = moons(50, d)
    np.testing.assert_array_equal(viz.forward_points(x0, alpha_bars(), 0, seed=3), x0)


@pytest.mark.parametrize("d", DIMS)
def test_forward_points_moments_match_closed_form(d):
    # x0 = c (constant): x_t ~ N(sqrt(abar) c, (1 - abar) I); simulated for abar ~ 0 and abar = 0.3.
    n = 20000
    x0 = np.full((n, d), 0.7)
    for ab_t in (1e-8, 0.3):
        ab = np.array([1.0, 0.9, ab_t])
        xt = viz.forward_points(x0, ab, 2, seed=1)
        np.testing.assert_allclose(xt.mean(0), np.sqrt(ab_t) * 0.7, atol=0.04)
        np.testing.assert_allclose(xt.std(0), np.sqrt(1 - ab_t), rtol=0.04)


def test_forward_points_seeded():
    x0, ab = moons(20), alpha_bars()
    a, b, c = (viz.forward_points(x0, ab, 5, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_forward_rejects_bad_steps(tmp_path):
    with pytest.raises(DifflabError, match="ts: expected integer steps in 0..10"):
        viz.plot_forward(moons(20), alpha_bars(), [0, 11], tmp_path / "f.png")
    with pytest.raises(DifflabError, match="alpha_bars"):
        viz.forward_points(moons(20), np.array([1.0, 1.5]), 1)


@pytest.mark.parametrize("d", DIMS)
def test_plot_forward_writes_png(tmp_path, d):
    assert_png(viz.plot_forward(moons(150, d), alpha_bars(), [0, 2, T], tmp_path / "f.png", n_points=60))
    if d == 2:
        assert_png(viz.plot_forward(moons(150, d), alpha_bars(), [0, T], tmp_path / "g.png", lim=1.5))


# --- trajectories, vector field, schedules ----------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_plot_trajectories_writes_png(tmp_path, d):
    tr = trajectory(T, 80, d)
    out = viz.plot_trajectories(tr, tmp_path / "t.png", ts=list(range(T, -1, -1)), n_show=10, title="reverse")
    assert_png(out)


def test_plot_trajectories_rejects_wrong_step_labels(tmp_path):
    with pytest.raises(DifflabError, match="ts: expected 4 step labels"):
        viz.plot_trajectories(trajectory(3, 10, 2), tmp_path / "t.png", ts=[3, 2, 1])


class RecordingEps:
    """A fake noise predictor: eps_hat(x, t) = x * t / 10, recording every call."""

    def __init__(self):
        self.calls: list[tuple[tuple[int, ...], int]] = []

    def __call__(self, x: np.ndarray, t: int) -> np.ndarray:
        self.calls.append((x.shape, t))
        return x * t / 10


def test_plot_vector_field_calls_eps_fn_for_each_t(tmp_path):
    eps = RecordingEps()
    out = viz.plot_vector_field(eps, [3, T], tmp_path / "v.png", trajectory=trajectory(T, 5, 2)[:, 0], T=T)
    assert_png(out)
    assert eps.calls == [((225, 2), 3), ((225, 2), T)]


def test_reverse_field_is_minus_eps_on_lattice():
    xy, fields = viz.reverse_field(RecordingEps(), [2, 5], lim=1.0, grid=3)
    assert sorted(set(xy[:, 0])) == [-1.0, 0.0, 1.0] and len(xy) == 9
    np.testing.assert_allclose(fields[0], -0.2 * xy)
    np.testing.assert_allclose(fields[1], -0.5 * xy)


@pytest.mark.parametrize("d", [1, 3, 10])
def test_plot_vector_field_needs_2d(tmp_path, d):
    with pytest.raises(DifflabError, match=f"vector field plots need 2-D data; this run has D={d}"):
        viz.plot_vector_field(RecordingEps(), [3], tmp_path / "v.png", dim=d)
    with pytest.raises(DifflabError, match=f"this run has D={d}"):
        viz.plot_vector_field(RecordingEps(), [3], tmp_path / "v.png", trajectory=np.zeros((T + 1, d)))
    assert list(tmp_path.iterdir()) == []


def test_plot_vector_field_checks_eps_shape_and_t(tmp_path):
    with pytest.raises(DifflabError, match="eps_fn: expected an array of shape"):
        viz.plot_vector_field(lambda x, t: x[:, :1], [3], tmp_path / "v.png")
    with pytest.raises(DifflabError, match="ts: expected integer steps in 1..10"):
        viz.plot_vector_field(RecordingEps(), [0], tmp_path / "v.png", T=T)


def test_failing_eps_fn_leaves_nothing(tmp_path):
    def broken(x, t):
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded"):
        viz.plot_vector_field(broken, [3], tmp_path / "v.png")
    assert list(tmp_path.iterdir()) == []


def test_schedule_curves_match_products():
    betas = np.r_[0.0, np.linspace(0.05, 0.4, 7)]
    u, b, var = viz.schedule_curves(betas)
    prods = [np.prod([1 - betas[s] for s in range(t + 1)]) for t in range(8)]
    np.testing.assert_allclose(var, 1 - np.array(prods))
    assert u[0] == 0 and u[-1] == 1 and var[0] == 0
    np.testing.assert_array_equal(b, betas)


def test_plot_schedules_writes_png_and_checks_betas(tmp_path):
    scheds = {"linear": np.r_[0, np.linspace(1e-4, 0.2, T)], "T=50": np.r_[0, np.linspace(0.01, 0.2, 50) ** 2]}
    assert_png(viz.plot_schedules(scheds, tmp_path / "s.png"))
    with pytest.raises(DifflabError, match="schedule 'bad'"):
        viz.plot_schedules({"bad": np.array([0.1, 0.2])}, tmp_path / "b.png")
    with pytest.raises(DifflabError, match="schedule 'one'"):
        viz.plot_schedules({"one": np.array([0.0, 1.0])}, tmp_path / "b.png")


# --- training loss ----------------------------------------------------------------------------------------


def test_ema_matches_weighted_average():
    v = np.random.default_rng(0).random(50)
    w = 0.9
    k = np.arange(1, 51)
    # Closed form: s_k = sum_j (1 - w) w^(k - j) v_j / (1 - w^k).
    expected = [np.sum((1 - w) * w ** (kk - np.arange(1, kk + 1)) * v[:kk]) / (1 - w**kk) for kk in k]
    np.testing.assert_allclose(viz.ema(v, w), expected)
    np.testing.assert_allclose(viz.ema(np.full(20, 3.0), 0.98), 3.0)
    np.testing.assert_array_equal(viz.ema(v, 0.0), v)
    with pytest.raises(DifflabError, match="smooth"):
        viz.ema(v, 1.0)


def test_plot_loss_writes_png(tmp_path):
    steps = np.arange(1, 301)
    loss = 0.3 + np.exp(-steps / 50) + 0.05 * np.random.default_rng(0).random(300)
    assert_png(viz.plot_loss(steps, loss, tmp_path / "l.png", title="loss"))
    loss[10] = np.nan
    loss[20] = -1.0  # not positive: linear axis instead of log
    assert_png(viz.plot_loss(steps, loss, tmp_path / "m.png", smooth=0.5))
    with pytest.raises(DifflabError, match="losses"):
        viz.plot_loss(steps[:5], loss[:4], tmp_path / "x.png")
    with pytest.raises(DifflabError, match="NaN or inf"):
        viz.plot_loss(steps[:3], [np.nan] * 3, tmp_path / "x.png")


# --- animation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_animate_reverse_has_k_plus_1_frames(tmp_path, d):
    k = 4
    out = viz.animate_reverse(trajectory(k, 60, d), tmp_path / "r.gif", data=moons(100, d), dpi=30)
    assert out.read_bytes()[:6] == b"GIF89a"
    with Image.open(out) as im:
        assert im.n_frames == k + 1
    only_file(tmp_path, "r.gif")


@pytest.mark.parametrize("d", DIMS)
def test_a_long_trajectory_is_shown_in_at_most_max_frames_from_noise_to_samples(tmp_path, monkeypatch, d):
    import difflab.viz.animate as animate

    shown: list[int] = []
    title = animate._frame_title
    monkeypatch.setattr(animate, "_frame_title", lambda i, k: shown.append(int(i)) or title(i, k))
    out = viz.animate_reverse(trajectory(200, 30, d), tmp_path / "r.gif", lim=2.0, dpi=30, max_frames=11)
    with Image.open(out) as im:
        assert im.n_frames == 11
    assert shown == list(range(0, 201, 20))  # x_T first, the samples last, evenly between


def test_animate_failure_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def grab_then_fail(self, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")

    monkeypatch.setattr(PillowWriter, "grab_frame", grab_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        viz.animate_reverse(trajectory(3, 20, 2), tmp_path / "r.gif", lim=2.0, dpi=30)
    assert list(tmp_path.iterdir()) == []


# --- atomic writes and global state -----------------------------------------------------------------------


def test_save_failure_leaves_nothing(tmp_path, monkeypatch):
    def half_write(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(PNG_MAGIC)
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_write)
    with pytest.raises(OSError, match="disk full"):
        viz.plot_data(moons(50), tmp_path / "d.png")
    assert list(tmp_path.iterdir()) == []


def test_missing_parent_is_created_and_file_parent_is_an_error(tmp_path):
    assert_png(viz.plot_data(moons(50), tmp_path / "a" / "b" / "d.png"))
    (tmp_path / "plain").write_text("not a folder")
    with pytest.raises(DifflabError, match="cannot create folder"):
        viz.plot_data(moons(50), tmp_path / "plain" / "sub" / "d.png")
    assert (tmp_path / "plain").read_text() == "not a folder"


def test_figure_helper_and_no_global_style_change(tmp_path):
    before = dict(matplotlib.rcParams)
    fig, axes = viz.figure(2, 3)
    assert axes.shape == (2, 3) and isinstance(fig, Figure)
    assert not axes[0, 0].spines["top"].get_visible() and axes[0, 0].spines["left"].get_visible()
    assert_png(viz.save(fig, tmp_path / "f.png", dpi=20))
    viz.plot_data(moons(50), tmp_path / "d.png")
    assert dict(matplotlib.rcParams) == before


def _legend(fig: Figure) -> dict[str, object]:
    """Legend text -> the artist it labels."""
    legend = fig.legends[0]
    return {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)}


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("ts", [None, [10, 7, 3, 0]], ids=["default", "grid"])
def test_trajectory_legend_starts_at_T_and_ends_at_0(d, ts):
    """The reverse process starts from x_T at t = T (traj[0]) and ends at the samples, t = 0 (traj[-1])."""
    k = T if ts is None else len(ts) - 1
    tr = trajectory(k, 12, d)
    fig = viz.process.trajectories_figure(tr, ts=ts, n_show=5)
    labels = _legend(fig)
    assert set(labels) >= {f"start $x_T$ (t = {T})", "end $x_0$ (t = 0)"}, labels
    # The labelled markers sit on the trajectory's first and last states (2-D: their points; 1-D: their values).
    ax = fig.axes[0]
    start = next(c for c in ax.collections if c.get_label() == f"start $x_T$ (t = {T})").get_offsets()
    end = next(c for c in ax.collections if c.get_label() == "end $x_0$ (t = 0)").get_offsets()
    col = slice(0, 2) if d > 1 else slice(1, 2)  # 1-D: (step index, value)
    np.testing.assert_allclose(start[:, col], tr[0, :5, : 2 if d > 1 else 1])
    np.testing.assert_allclose(end[:, col], tr[-1, :5, : 2 if d > 1 else 1])


def test_run_trajectories_figure_labels_the_samplers_first_step(tmp_path, monkeypatch):
    """trajectories.png of a run sampled with 4 DDIM steps of T = 10: the start is x_T at t = 10, the end t = 0."""
    from difflab.config import resolve_config
    from difflab.figures import make_figures
    from difflab.pipeline import train_run
    from difflab.rundir import load_run

    cfg = resolve_config("seed", overrides={"data": {"n": 100}, "train": {"steps": 5},
                                            "sample": {"sampler": "ddim", "steps": 4}})
    train_run(cfg, tmp_path / "run", progress=False)
    drawn: list[Figure] = []
    monkeypatch.setattr(viz.process, "save", lambda fig, path: drawn.append(fig) or path)
    make_figures(tmp_path / "run", tmp_path / "figs", kinds=["trajectories"], n=20)
    sigma = load_run(tmp_path / "run").diffusion.sigma(10)
    start = f"start $x_T$ ($\\sigma$ = {sigma:.3g}, t = 10)"
    assert set(_legend(drawn[0])) == {"all samples", start, "end $x_0$ (t = 0)"}  # ddim: deterministic already
    # a stochastic sampler (the seed recipe's ancestral one) gets the ODE's paths from the same starts beside its own
    cfg = resolve_config("seed", overrides={"data": {"n": 100}, "train": {"steps": 5}})
    train_run(cfg, tmp_path / "ddpm", progress=False)
    make_figures(tmp_path / "ddpm", tmp_path / "figs2", kinds=["trajectories"], n=20)
    legend = _legend(drawn[1])
    assert set(legend) == {"all samples", "sampler's paths", "ODE paths (ddim, η = 0), same $x_T$", start,
                           "end $x_0$ (t = 0)"}
    lines = drawn[1].axes[0].get_lines()
    ode = [ln.get_xydata() for ln in lines if ln.get_linestyle() == "--"]
    own = [ln.get_xydata() for ln in lines if ln.get_linestyle() == "-"]
    assert len(ode) == len(own) == 6 and all(len(p) == 11 for p in ode)  # T = 10 steps each
    np.testing.assert_allclose([p[0] for p in ode], [p[0] for p in own])  # the same x_T
    assert not np.allclose([p[-1] for p in ode], [p[-1] for p in own])  # different ends
