"""Time grids against their definitions, written out here: every grid's shape on discrete and continuous processes
(zero terminal SNR included), logsnr uniform in λ (Lu et al. 2022), karras as Karras et al. 2022, eq. 5 (ρ = 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from difflab.diffusion import ContinuousDiffusion, GaussianDiffusion, make_schedule
from difflab.sampling import GRIDS, make_grid
from difflab.sampling.grids import distinct_steps


def ab_linear_vp(t: float) -> float:
    return math.exp(-0.1 * t - 0.5 * 19.9 * t * t)  # Song et al. 2021, eq. 33


GRID_PROCESSES = {
    "ho-1000": lambda: GaussianDiffusion(make_schedule("linear", 1000)),
    "cosine-100": lambda: GaussianDiffusion(make_schedule("cosine", 100)),
    "zsnr-linear-1000": lambda: GaussianDiffusion(make_schedule("linear", 1000, zero_snr=True)),
    "linear-vp": lambda: ContinuousDiffusion("linear"),
    "cosine": lambda: ContinuousDiffusion("cosine"),
    "edm": lambda: ContinuousDiffusion("edm"),
    "zsnr-cosine": lambda: ContinuousDiffusion("cosine", zero_terminal_snr=True),
    "zsnr-linear-vp": lambda: ContinuousDiffusion("linear", zero_terminal_snr=True),
    "rectified": lambda: ContinuousDiffusion("rectified"),
}


@pytest.mark.parametrize("K", [1, 2, 7, 50])
@pytest.mark.parametrize("kind", list(GRIDS))
@pytest.mark.parametrize("process", list(GRID_PROCESSES))
def test_grid_shape(process: str, kind: str, K: int) -> None:
    """Every grid starts at t_max, falls strictly, ends at 0 after K jumps; discrete grids are whole steps in
    1..T, continuous ones lie in [t_min, 1]. No grid refuses a K ≤ T: a discrete grid uniform in another variable
    has its collisions moved apart (:func:`distinct_steps`)."""
    d = GRID_PROCESSES[process]()
    ts = make_grid(d, K, kind)
    assert len(ts) == K + 1 and ts[0] == d.t_max and ts[-1] == 0
    assert all(a > b for a, b in zip(ts, ts[1:]))
    inner = ts[:-1]
    if d.discrete:
        assert all(type(t) is int and 1 <= t <= d.T for t in inner)
    else:
        assert all(isinstance(t, float) and d.t_min - 1e-12 <= t <= 1.0 for t in inner)


@pytest.mark.parametrize(("rounded", "T", "expected"), [
    ([10, 6, 3, 1, 1, 1], 10, [10, 6, 4, 3, 2, 1]),    # piled at the small end: pushed up, one step apart
    ([10, 9, 9, 9, 2], 10, [10, 9, 8, 7, 2]),           # piled in the middle: the later ones move down
    ([10, 10, 10, 1], 10, [10, 9, 8, 1]),               # piled at T
    ([5, 4, 3, 2, 1], 5, [5, 4, 3, 2, 1]),              # K = T: every step
    ([1000, 500, 100, 1], 1000, [1000, 500, 100, 1]),   # already distinct: unchanged
])
def test_distinct_steps_moves_only_the_collisions(rounded: list[int], T: int, expected: list[int]) -> None:
    assert list(distinct_steps(np.array(rounded), T)) == expected


@pytest.mark.parametrize("K", [2, 5, 9, 10])
@pytest.mark.parametrize("kind", ["logsnr", "karras", "karras-trailing"])
def test_short_discrete_schedule_gets_distinct_steps(kind: str, K: int) -> None:
    """The tutorial's T = 10: a grid dense near t = 0 rounds many times onto steps 1 and 2; it still makes K calls
    at distinct steps, and K = T is every step."""
    d = GaussianDiffusion(make_schedule("poly", 10))
    ts = make_grid(d, K, kind)[:-1]
    assert len(set(ts)) == K and ts[0] == 10 and min(ts) >= 1
    if K == 10:
        assert ts == list(range(10, 0, -1))


def test_discrete_karras_and_logsnr_grids_exist_for_few_steps() -> None:
    d = GaussianDiffusion(make_schedule("linear", 1000))
    for kind in ("logsnr", "karras"):
        ts = make_grid(d, 10, kind)
        assert ts[0] == 1000 and ts[-2] == 1 and len(set(ts)) == 11


@pytest.mark.parametrize("process", ["linear-vp", "cosine", "edm", "zsnr-cosine", "rectified"])
def test_logsnr_grid_is_uniform_in_log_snr(process: str) -> None:
    """λ(t_i) = linspace(λ(t_max), λ(t_min), K): the first time is t_max itself (λ = −∞ with zero terminal SNR and
    on the straight path, where the spacing starts from EDM's σ_max = 80, λ = −2 ln 80)."""
    d = GRID_PROCESSES[process]()
    K = 30
    ts = make_grid(d, K, "logsnr")[:-1]
    lams = np.array([d.log_snr(t) for t in ts])
    lo = d.log_snr(1.0) if math.isfinite(d.log_snr(1.0)) else -2.0 * math.log(80.0)
    expected = np.linspace(lo, d.log_snr(d.t_min), K)
    np.testing.assert_allclose(lams[1:], expected[1:], rtol=0, atol=1e-4)  # t_of_log_snr's accuracy
    assert ts[0] == 1.0


def karras_sigmas(s_max: float, s_min: float, K: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022, eq. 5: σ_i = (σ_max^{1/ρ} + i/(N − 1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ."""
    i = np.arange(K)
    return (s_max ** (1 / rho) + i / (K - 1) * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho


@pytest.mark.parametrize("K", [5, 18, 40])
def test_karras_grid_is_eq_5(K: int) -> None:
    """On EDM's schedule the grid's times are Karras's σ_i / 80 with σ_max = 80, σ_min = 0.002, ρ = 7; on the
    linear VP schedule the VE noise levels σ = √((1 − ᾱ)/ᾱ) of its times follow eq. 5 between σ(1) and σ(t_min)."""
    ts = np.array(make_grid(ContinuousDiffusion("edm"), K, "karras")[:-1])
    np.testing.assert_allclose(ts * 80.0, karras_sigmas(80.0, 0.002, K), rtol=5e-5)  # λ to 1e-4: σ to 5e-5
    d = ContinuousDiffusion("linear")
    ts = make_grid(d, K, "karras")[:-1]
    sig = lambda t: math.sqrt((1 - ab_linear_vp(t)) / ab_linear_vp(t))  # noqa: E731
    got = np.array([sig(t) for t in ts])
    np.testing.assert_allclose(got, karras_sigmas(sig(1.0), sig(d.t_min), K), rtol=5e-5)


@pytest.mark.parametrize("T", [10, 100, 997, 1000])
def test_trailing_grid_has_K_jumps_for_every_K(T: int) -> None:
    """Every K ≤ T gives K distinct whole steps T = t_0 > ... > t_{K−1} ≥ 1 and round(T (K − i)/K) each (a float
    arange with step T/K once gave K + 1 times for 27 044 pairs K ≤ T ≤ 1000, e.g. T = 100, K = 29)."""
    from fractions import Fraction

    d = GaussianDiffusion(make_schedule("linear", T))
    for K in range(1, T + 1):
        ts = make_grid(d, K, "trailing")
        assert len(ts) == K + 1 and ts[-1] == 0
        assert ts[:-1] == [round(Fraction(T * (K - i), K)) for i in range(K)], K
