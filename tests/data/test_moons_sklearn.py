"""The moons recipe is scikit-learn's make_moons, point for point, without importing sklearn to train."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_moons

from difflab.data import get_dataset


@pytest.mark.parametrize("n", [1, 2, 3, 10, 999, 1000])
@pytest.mark.parametrize("seed", [0, 1, 12345, 2**32 - 1])
def test_moons_recipe_is_sklearns_make_moons(n: int, seed: int) -> None:
    expected = make_moons(n_samples=n, noise=None, shuffle=True, random_state=seed)[0]
    got = get_dataset("moons").recipe(n, seed)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
