"""Schedules: the tutorial's numbers, shared invariants of every schedule, and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from difflab.diffusion.schedules import SCHEDULES, make_schedule
from difflab.errors import ConfigError

# ../shared/tutorial/settings.md, "Numbers for T = 10"
TUTORIAL_BETA = [0, 1e-4, 0.0015, 0.0078, 0.0246, 0.060, 0.1245, 0.2306, 0.3935, 0.6302, 0.9606]
TUTORIAL_ONE_MINUS_AB = [0, 1e-4, 0.0016, 0.0094, 0.0338, 0.0918, 0.2048, 0.3882, 0.6289, 0.8628, 0.9946]
TUTORIAL_LINEAR_ONE_MINUS_AB = [0, 0.099, 0.277, 0.492, 0.693, 0.845, 0.937, 0.981, 0.996, 0.9996, 1.0]


def test_poly_matches_tutorial_table() -> None:
    s = make_schedule("poly", 10)
    assert s.betas.dtype == np.float64
    np.testing.assert_allclose(s.betas, TUTORIAL_BETA, atol=6e-5)
    np.testing.assert_allclose(1 - s.alpha_bars, TUTORIAL_ONE_MINUS_AB, atol=6e-5)
    assert s.betas[-1] == pytest.approx(0.99**4)


def test_seed_linear_matches_tutorial_table() -> None:
    s = make_schedule("seed-linear", 10)
    np.testing.assert_allclose(1 - s.alpha_bars, TUTORIAL_LINEAR_ONE_MINUS_AB, atol=6e-4)


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("T", [1, 10, 100, 1000])
def test_every_schedule_invariants(name: str, T: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = make_schedule(name, T)
    ab = s.alpha_bars
    assert s.T == T and len(s.betas) == T + 1
    assert s.betas[0] == 0.0 and ab[0] == 1.0
    assert np.all((s.betas[1:] > 0) & (s.betas[1:] < 1))
    assert np.all(np.diff(ab) <= 0), "ᾱ must not increase"
    alive = ab[:-1] > 1e-12  # seed-linear's ᾱ underflows to 0 at large T
    assert np.all(np.diff(ab)[alive] < 0), "ᾱ must decrease strictly while it is representable"


def test_ho_linear_at_1000_and_rescaled() -> None:
    s = make_schedule("linear", 1000)
    assert s.betas[1] == pytest.approx(1e-4) and s.betas[-1] == pytest.approx(0.02)
    s10 = make_schedule("linear", 10)
    assert s10.betas[1] == pytest.approx(1e-2) and s10.betas[-1] == pytest.approx(0.999)  # 0.02·100 clipped
    for T in (10, 100, 1000):
        assert make_schedule("linear", T).alpha_bars[-1] < 1e-2


def test_cosine_alpha_bar_closed_form() -> None:
    T, s_ = 50, 0.008
    f = lambda t: math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2  # noqa: E731
    ab = make_schedule("cosine", T).alpha_bars
    for t in range(0, T - 2):  # the last steps are clipped at β = 0.999
        assert ab[t] == pytest.approx(f(t) / f(0), rel=1e-12)


def test_sigmoid_endpoints() -> None:
    ab = make_schedule("sigmoid", 100).alpha_bars
    assert ab[0] == 1.0 and ab[-1] < 1e-3


def test_poly_power_option() -> None:
    np.testing.assert_allclose(make_schedule("poly", 10, power=2).betas, np.linspace(0, 0.99, 11) ** 2)


def test_array_schedule_with_or_without_beta0() -> None:
    a = make_schedule("array", 3, betas=[0.1, 0.5, 0.9], warn=False)
    b = make_schedule("array", 3, betas=[0.0, 0.1, 0.5, 0.9], warn=False)
    np.testing.assert_array_equal(a.betas, [0, 0.1, 0.5, 0.9])
    np.testing.assert_array_equal(a.betas, b.betas)


def test_warns_when_alpha_bar_T_is_large() -> None:
    with pytest.warns(UserWarning, match="ᾱ_T"):
        make_schedule("array", 10, betas=[0.01] * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_schedule("poly", 10)  # the tutorial's ends at ᾱ_T ≈ 0.0054: no warning


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("nope", {}, "unknown schedule 'nope'"),
        ("array", {}, "needs a list of betas"),
        ("array", {"betas": [0.1, 1.5]}, r"must lie in \(0, 1\)"),
        ("array", {"betas": [0.1, float("nan")]}, r"must lie in \(0, 1\)"),
        ("poly", {"bogus": 1.0}, "bad options"),
    ],
)
def test_bad_schedules(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_schedule(name, 10, **kwargs)


def test_round_trip_dict() -> None:
    from difflab.diffusion.schedules import Schedule

    s = make_schedule("cosine", 20)
    s2 = Schedule.from_dict(s.to_dict())
    np.testing.assert_array_equal(s.betas, s2.betas)
    assert s2.name == "cosine"
