"""The diffusion in t as interactive figures: the forward process next to the reverse samples, the learned field
−ε̂(x, t) with trajectories, each under a slider over noise level (positions spread evenly in log σ, labelled with
σ and t), and the schedule (β_t, 1 − ᾱ_t, the log-SNR λ_t).

Everything the report computes from the schedule and the sampler's time grid is in this module, so a new kind of
schedule or sampler needs changes here only. Points are in the scaled space, where the diffusion runs.
Notation: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Ho et al. 2020, Eq. 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from difflab.errors import DifflabError
from difflab.viz import panels, reverse_field
from difflab.viz.levels import format_sigma

# Slider positions at most; a longer time grid is thinned evenly, always keeping its first and last step.
MAX_FRAMES = 41
DATA_COLOR, MODEL_COLOR, PATH_COLOR = "rgba(120,120,120,0.55)", "#1f77b4", "#d62728"


def alpha_bar_at(diffusion: object, t: float) -> float:
    """ᾱ_t of a run's process at time t: a whole step 0..T of a discrete schedule, or any time of a process that
    gives ``alpha_bar(t)`` (continuous time)."""
    fn = getattr(diffusion, "alpha_bar", None)
    if callable(fn):
        return float(fn(t))
    return float(np.asarray(diffusion.alpha_bars, dtype=np.float64)[int(t)])  # type: ignore[attr-defined]


def coefficients(diffusion: object, t: float) -> tuple[float, float]:
    """(α_t, σ̃_t) of x_t = α_t x_0 + σ̃_t ε: the process's own (``alpha_sigma``: a straight path's are (1 − t, t)),
    else (√ᾱ_t, √(1 − ᾱ_t)) from ``alpha_bar``."""
    if t > 0 and hasattr(diffusion, "alpha_sigma"):
        a, s = diffusion.alpha_sigma(t, torch.zeros((), dtype=torch.float64))  # type: ignore[attr-defined]
        return float(a), float(s)
    ab = alpha_bar_at(diffusion, t)
    return math.sqrt(ab), math.sqrt(max(0.0, 1.0 - ab))


def noise_level(diffusion: object, t: float) -> float:
    """σ_t = σ̃_t / α_t, the noise level of x_t / α_t = x_0 + σ_t ε (0 at t = 0, ∞ where the signal is gone)."""
    a, s = coefficients(diffusion, t)
    return s / a if a > 0 else math.inf


def level_label(diffusion: object, t: float) -> str:
    """A slider position: the noise level first, then the time (``σ 0.186 · t 0.00232``)."""
    return f"σ {format_sigma(noise_level(diffusion, t))} · t {t_label(t)}"


def level_indices(diffusion: object, times: Sequence[float], max_frames: int = MAX_FRAMES) -> list[int]:
    """At most ``max_frames`` indices into ``times``, evenly spread in log σ (not in steps: a grid uniform in t
    spends most of its steps where the data are long gone), always with both ends."""
    if len(times) <= max_frames:
        return list(range(len(times)))
    with np.errstate(divide="ignore"):
        logs = np.log([noise_level(diffusion, t) for t in times])
    finite = np.flatnonzero(np.isfinite(logs))
    picked = {0, len(times) - 1}
    if len(finite):
        for target in np.linspace(logs[finite].min(), logs[finite].max(), max_frames - 2):
            picked.add(int(finite[np.argmin(np.abs(logs[finite] - target))]))
    return sorted(picked)


def schedule_curves(diffusion: object) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The schedule as (t, {label: values}): β_t, 1 − ᾱ_t and the log-SNR λ_t at t = 0..T for a discrete schedule
    (from its ``betas`` and ``alpha_bars``, float64); 1 − ᾱ(t) and λ(t) on 201 times in [0, 1] otherwise."""
    if hasattr(diffusion, "betas"):
        betas = np.asarray(diffusion.betas, dtype=np.float64)
        alpha_bars = np.asarray(diffusion.alpha_bars, dtype=np.float64)  # type: ignore[attr-defined]
        with np.errstate(divide="ignore"):
            lam = np.log(alpha_bars) - np.log1p(-alpha_bars)
        return np.arange(len(betas)), {"β<sub>t</sub>: noise added per step": betas,
                                       "1 − ᾱ<sub>t</sub>: total noise variance": 1.0 - alpha_bars,
                                       "λ<sub>t</sub> = log ᾱ − log(1 − ᾱ): log-SNR": lam}
    t = np.linspace(0.0, 1.0, 201)
    ab = np.array([alpha_bar_at(diffusion, u) for u in t])
    with np.errstate(divide="ignore"):
        return t, {"1 − ᾱ(t): total noise variance": 1.0 - ab, "λ(t) = log ᾱ − log(1 − ᾱ)": np.log(ab) - np.log1p(-ab)}


def t_label(t: float) -> str:
    """A time as the slider shows it: a whole step as is, a continuous time to 3 significant digits."""
    return str(int(t)) if float(t).is_integer() else f"{t:.3g}"


def frame_indices(n: int, max_frames: int = MAX_FRAMES) -> list[int]:
    """At most ``max_frames`` indices into 0..n-1, evenly spread, always with 0 and n-1."""
    if n <= max_frames:
        return list(range(n))
    return sorted({int(i) for i in np.round(np.linspace(0, n - 1, max_frames))})


def _check(traj: np.ndarray, times: Sequence[int]) -> np.ndarray:
    tr = np.asarray(traj, dtype=np.float64)
    if tr.ndim != 3 or len(tr) != len(times) or len(tr) < 2:
        raise DifflabError(f"trajectory: expected shape (K+1, n, D) with one time per state ({len(times)}), "
                           f"got {tr.shape}")
    return tr


def _animate(names: list[str], duration: int) -> list[object]:
    return [names, {"mode": "immediate", "frame": {"duration": duration, "redraw": True},
                    "transition": {"duration": 0}}]


def add_t_slider(fig: go.Figure, names: list[str], labels: list[str], *, active: int,
                 plays: Sequence[tuple[str, list[str]]]) -> None:
    """A slider over the frames ``names`` (in increasing t; ``labels`` are their times) and, left of it, one play
    button per (label, order of frames)."""
    steps = [{"method": "animate", "label": lab, "args": _animate([n], 0)} for n, lab in zip(names, labels)]
    left = 0.16 * len(plays)  # room for the buttons
    fig.update_layout(
        sliders=[{"active": active, "steps": steps, "currentvalue": {"prefix": "noise level "}, "x": left,
                  "len": 1 - left, "pad": {"t": 50}}],
        updatemenus=[{"type": "buttons", "direction": "left", "showactive": False, "x": 0.0, "y": 0,
                      "xanchor": "left", "yanchor": "top", "pad": {"t": 60},
                      "buttons": [{"label": label, "method": "animate", "args": _animate(order, 200)}
                                  for label, order in plays]}],
    )


def _points(x: np.ndarray, color: str, name: str, *, size: float = 4, showlegend: bool = True) -> go.Scatter:
    return go.Scatter(x=x[:, 0].astype(np.float32), y=x[:, 1].astype(np.float32), mode="markers", name=name,
                      marker={"size": size, "color": color}, showlegend=showlegend)


def _hist(x: np.ndarray, color: str, name: str, bins: dict[str, float]) -> go.Histogram:
    return go.Histogram(x=x[:, 0].astype(np.float32), xbins=bins, histnorm="probability density", name=name,
                        marker={"color": color}, autobinx=False)


def process_figure(x0: np.ndarray, traj: np.ndarray, times: Sequence[float], diffusion: object, *,
                   seed: int = 0, n_show: int = 400, columns: Sequence[str] | None = None) -> go.Figure:
    """Left: training points ``x0`` noised to x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, one ε per point for every t (seed
    ``seed``), so a point can be followed; right: the sampler's state at the same t, from ``traj`` (K+1, n, D)
    whose state k is at time ``times[k]`` (t_max first, 0 last). One slider moves both through the sampler's
    times. D = 1: histograms; D ≥ 2: the first two columns."""
    tr = _check(traj, times)
    x = panels.subsample(panels.as_points(x0, "x0"), n_show, seed)
    rev = tr[:, :n_show]
    idx = sorted(level_indices(diffusion, times), key=lambda k: times[k])  # increasing noise, left to right
    eps = np.random.default_rng(seed).standard_normal(x.shape)
    fwd = [a * x + s * eps for a, s in (coefficients(diffusion, times[k]) for k in idx)]  # Ho et al. 2020, Eq. 4
    names = list(columns) if columns else [f"x{i + 1}" for i in range(x.shape[1])]
    cols = (0,) if x.shape[1] == 1 else (0, 1)
    lims = panels.limits([f[:, cols] for f in fwd] + [rev[k][:, cols] for k in idx], pad=0.05)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        "forward: x<sub>t</sub> ~ q(x<sub>t</sub> | x<sub>0</sub>), training data",
        "reverse: the sampler's x<sub>t</sub>"))
    if len(cols) == 1:
        size = float(lims[0, 1] - lims[0, 0]) / 40
        bins = {"start": float(lims[0, 0]), "end": float(lims[0, 1]), "size": size}
        make = [lambda a: _hist(a, DATA_COLOR, "forward", bins), lambda a: _hist(a, MODEL_COLOR, "reverse", bins)]
        edges = np.arange(bins["start"], bins["end"] + size, size)
        top = max(np.histogram(a[:, 0], edges, density=True)[0].max() for a in [*fwd, *(rev[k] for k in idx)])
        y_axis = {"range": [0, 1.05 * top], "title_text": "density"}
    else:
        make = [lambda a: _points(a, DATA_COLOR, "forward"), lambda a: _points(a, MODEL_COLOR, "reverse")]
        y_axis = {"range": list(lims[1]), "title_text": f"{names[1]} (scaled)"}
    for c in (1, 2):
        fig.update_xaxes(range=list(lims[0]), title_text=f"{names[0]} (scaled)", row=1, col=c)
        fig.update_yaxes(**y_axis, row=1, col=c)
        if len(cols) == 2:  # equal aspect: the moons stay moons, not ovals
            fig.update_yaxes(scaleanchor="x" if c == 1 else "x2", scaleratio=1, row=1, col=c)
    frames = [go.Frame(name=str(i), data=[make[0](f[:, cols]), make[1](rev[k][:, cols])], traces=[0, 1])
              for i, (f, k) in enumerate(zip(fwd, idx, strict=True))]
    fig.add_trace(frames[0].data[0], row=1, col=1)
    fig.add_trace(frames[0].data[1], row=1, col=2)
    fig.frames = frames
    order = [f.name for f in frames]
    add_t_slider(fig, order, [level_label(diffusion, times[k]) for k in idx], active=0,
                 plays=[("▶ noise 0 → T", order), ("▶ denoise T → 0", order[::-1])])
    fig.update_layout(height=520, showlegend=False, margin={"t": 40, "b": 40})
    return fig


def arrow_segments(xy: np.ndarray, uv: np.ndarray, *, head: float = 0.3, angle: float = 25.0) -> np.ndarray:
    """Arrows from ``xy`` to ``xy + uv`` as one polyline, (7·n, 2): shaft, gap, head barbs, gap (NaN = gap)."""
    tip = xy + uv
    back = -head * uv
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    left = tip + np.c_[c * back[:, 0] - s * back[:, 1], s * back[:, 0] + c * back[:, 1]]
    right = tip + np.c_[c * back[:, 0] + s * back[:, 1], -s * back[:, 0] + c * back[:, 1]]
    gap = np.full_like(xy, np.nan)
    return np.stack([xy, tip, gap, left, tip, right, gap], axis=1).reshape(-1, 2)


def _polylines(paths: np.ndarray) -> np.ndarray:
    """(steps, m, 2) paths as one polyline with NaN gaps between them."""
    gap = np.full((1, paths.shape[1], 2), np.nan)
    return np.concatenate([paths, gap]).transpose(1, 0, 2).reshape(-1, 2)


def field_figure(eps_fn: Callable[[np.ndarray, int], np.ndarray], traj: np.ndarray, times: Sequence[int],
                 background: np.ndarray, *, n_paths: int = 8, grid: int = 17,
                 lim: float | None = None, diffusion: object = None) -> go.Figure:
    """−ε̂(x, t) on a ``grid`` × ``grid`` lattice over [−lim, lim]² (the direction the reverse mean moves x_t,
    Ho et al. 2020, Eq. 11) under a slider over the sampler's times t ≥ 1, with ``n_paths`` reverse trajectories
    drawn from x_T down to t and their points at t. One arrow scale for every t, so magnitudes compare. D = 2."""
    tr = _check(traj, times)
    if tr.shape[2] != 2:
        raise DifflabError(f"the vector field is drawn for D = 2; this run has D = {tr.shape[2]}")
    bg = panels.as_points(background, "background")
    if lim is None:  # the tutorial's [-1.5, 1.5] for data in [-1, 1]; wider for wider data
        lim = max(1.5, 1.15 * float(np.quantile(np.abs(bg), 0.995)))
    picks = frame_indices(len(tr)) if diffusion is None else level_indices(diffusion, times)
    idx = sorted((k for k in picks if times[k] > 0), key=lambda k: times[k])
    if not idx:
        raise DifflabError("the time grid has no time t > 0 to draw the field at")
    ts = [times[k] for k in idx]
    xy, fields = reverse_field(eps_fn, ts, lim=lim, grid=grid)
    norms = np.concatenate([np.linalg.norm(f, axis=1) for f in fields])
    ref = float(np.nanpercentile(norms, 95)) if np.isfinite(norms).any() else 1.0
    scale = 0.9 * (2 * lim / (grid - 1)) / max(ref, 1e-12)  # the 95th-percentile arrow spans 0.9 grid spacings
    paths = tr[:, :n_paths]

    def traces(k: int, field: np.ndarray) -> list[go.Scatter]:
        seg = arrow_segments(xy, scale * field).astype(np.float32)
        lines = _polylines(paths[: k + 1]).astype(np.float32)
        return [go.Scatter(x=seg[:, 0], y=seg[:, 1], mode="lines", name="−ε̂(x, t)",
                           line={"color": "rgba(40,40,40,0.8)", "width": 1.2}),
                go.Scatter(x=lines[:, 0], y=lines[:, 1], mode="lines", name="trajectories from x<sub>T</sub>",
                           line={"color": PATH_COLOR, "width": 1}, opacity=0.6),
                _points(paths[k], PATH_COLOR, "x<sub>t</sub> on those trajectories", size=7)]

    frames = [go.Frame(name=str(i), data=traces(k, f), traces=[1, 2, 3])
              for i, (k, f) in enumerate(zip(idx, fields, strict=True))]
    fig = go.Figure([_points(panels.subsample(bg, 1000, 0), DATA_COLOR, "training data", size=3),
                     *frames[0].data])
    fig.frames = frames
    order = [f.name for f in frames]
    labels = [t_label(t) if diffusion is None else level_label(diffusion, t) for t in ts]
    add_t_slider(fig, order, labels, active=0, plays=[("▶ denoise", order[::-1])])
    pad = 0.05 * lim
    fig.update_xaxes(range=[-lim - pad, lim + pad], title_text="x₁ (scaled)")
    fig.update_yaxes(range=[-lim - pad, lim + pad], title_text="x₂ (scaled)", scaleanchor="x", scaleratio=1)
    fig.update_layout(height=640, legend={"orientation": "h", "y": 1.08}, margin={"t": 60, "b": 40})
    return fig


def schedule_figure(diffusion: object, name: str = "") -> go.Figure:
    """The schedule's curves (:func:`schedule_curves`) against t, one panel each."""
    t, curves = schedule_curves(diffusion)
    mode = "lines+markers" if len(t) <= 31 else "lines"
    fig = make_subplots(rows=1, cols=len(curves), subplot_titles=list(curves))
    for c, (label, values) in enumerate(curves.items(), start=1):
        keep = np.isfinite(values)
        fig.add_trace(go.Scatter(x=t[keep], y=values[keep], mode=mode, name=label), row=1, col=c)
        fig.update_xaxes(title_text="t", row=1, col=c)
    fig.update_layout(height=380, showlegend=False, title={"text": name, "x": 0.5} if name else None,
                      margin={"t": 60, "b": 40})
    return fig
