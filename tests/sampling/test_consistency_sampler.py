"""Multistep consistency sampling (Song et al. 2023, Alg. 1) and the network calls each sampler makes, counted."""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import Prediction
from difflab.sampling import JUMP_SAMPLERS, SAMPLERS, get_sampler, make_grid
from difflab.sampling.budgets import BUDGETS, budget_choice, calls_for_steps, steps_for_calls
from helpers import GaussianOracle, continuous, diffusion


def test_one_call_is_the_denoisers_x0_and_later_calls_see_renoised_points(dim: int) -> None:
    d = continuous("linear")
    c = torch.linspace(-1.0, 1.0, dim)
    seen: list[tuple[float, torch.Tensor]] = []

    def denoise(xt: torch.Tensor, t: float) -> Prediction:  # a constant consistency function: f ≡ c
        seen.append((t, xt.clone()))
        return Prediction(eps=torch.zeros_like(xt), x0=c.expand_as(xt).clone())

    ts = make_grid(d, 4, "trailing")
    x_T = torch.randn(20_000, dim, generator=torch.Generator().manual_seed(0))
    out = get_sampler("consistency")(denoise, x_T, d, ts, generator=torch.Generator().manual_seed(1))
    assert [t for t, _ in seen] == ts[:-1]  # K calls, at the grid's times
    assert torch.equal(seen[0][1], x_T) and torch.equal(out, c.expand_as(out))
    for t, xt in seen[1:]:  # x_τ = α_τ f + σ_τ z (Alg. 1 with ε at σ̄ = 0)
        a, s = (float(v) for v in d.alpha_sigma(t, xt))
        torch.testing.assert_close(xt.mean(0), a * c, atol=4 * s / 20_000**0.5, rtol=0)
        torch.testing.assert_close(xt.std(0), torch.full((dim,), s), rtol=0.03, atol=0)


def test_one_step_with_an_exact_denoiser_is_its_posterior_mean(dim: int, gaussian_problem) -> None:
    mu, s = gaussian_problem
    d = diffusion("linear", 100)
    oracle = GaussianOracle(d, mu, s)
    x_T = torch.randn(500, dim)
    out = get_sampler("consistency")(oracle, x_T, d, make_grid(d, 1))
    torch.testing.assert_close(out, oracle(x_T, 100).x0)


@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if s != "ode" and s not in JUMP_SAMPLERS])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_calls_for_steps_counts_the_network_calls(sampler: str, steps: int) -> None:
    d = diffusion("linear", 100)
    oracle = GaussianOracle(d, torch.zeros(2), torch.ones(2))
    calls = []

    def counted(xt: torch.Tensor, t: float) -> Prediction:
        calls.append(t)
        return oracle(xt, t)

    get_sampler(sampler)(counted, torch.randn(64, 2), d, make_grid(d, steps, "karras"),
                         generator=torch.Generator().manual_seed(0))
    assert len(calls) == calls_for_steps(sampler, steps)
    assert calls_for_steps(sampler, steps_for_calls(sampler, len(calls))) <= len(calls)


def test_budget_choice_takes_the_largest_budget_within_the_calls() -> None:
    assert set(BUDGETS) == {1, 2, 4, 10, 20}
    for calls in (1, 2, 3, 4, 9, 10, 19, 20, 50):
        sampler, grid, steps = budget_choice(calls) or ("", "", 0)
        first = BUDGETS[max(b for b in BUDGETS if b <= calls)][0]
        assert (sampler, grid) == (first.sampler, first.grid)
        assert calls_for_steps(sampler, steps) <= calls < calls_for_steps(sampler, steps + 1)
    # where the best pair does not fit, the next one is taken
    best = BUDGETS[4][0]
    picked = budget_choice(4, lambda s, g, k: (s, g) != (best.sampler, best.grid)) or ("", "", 0)
    assert picked[:2] == (BUDGETS[4][1].sampler, BUDGETS[4][1].grid)
    assert budget_choice(4, lambda s, g, k: False) is None
    with pytest.raises(ValueError):
        budget_choice(0)
