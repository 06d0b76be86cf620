"""The few-step budget tables by family of run (sampling/budgets.py): a straight-path run reads its own table, every
other process the diffusion one; each table's pairs exist and cost at most their budget."""

from __future__ import annotations

import pytest

from difflab.diffusion import ContinuousDiffusion, GaussianDiffusion, make_schedule
from difflab.sampling import GRIDS, SAMPLERS
from difflab.sampling.budgets import FAMILIES, budget_choice, budget_family, calls_for_steps


def test_each_process_reads_its_familys_table() -> None:
    assert budget_family(ContinuousDiffusion("rectified")) == "straight"
    assert budget_family(ContinuousDiffusion("edm")) == "diffusion"
    assert budget_family(GaussianDiffusion(make_schedule("linear", 100))) == "diffusion"
    assert budget_choice(20, family="straight") == ("heun", "trailing", 10)
    assert budget_choice(20, family="diffusion") == ("dpm++", "logsnr", 20)
    assert budget_choice(3, family="straight") == ("ddim", "trailing", 3)  # the largest budget at most 3: 2's pair
    with pytest.raises(ValueError, match="no budget table for family 'meanflow'"):
        budget_choice(4, family="meanflow")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_pair_is_known_and_within_its_budget(family: str) -> None:
    for budget in FAMILIES[family]:
        sampler, grid, steps = budget_choice(budget, family=family)
        assert sampler in SAMPLERS and grid in GRIDS and calls_for_steps(sampler, steps) <= budget
