"""Time grids for samplers: descending integer steps from T down to 0 (clean data), K jumps in all."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from difflab.errors import ConfigError

GRIDS: dict[str, Callable[[int, int], np.ndarray]] = {
    # Lin et al. 2023, Table 2: "trailing" always starts at t = T, spacing T/K.
    "trailing": lambda T, K: np.round(np.arange(T, 0, -T / K)).astype(np.int64),
    # Evenly spaced from T to 1 inclusive.
    "linspace": lambda T, K: np.round(np.linspace(T, 1, K)).astype(np.int64),
}


def make_grid(T: int, steps: int | None = None, kind: str = "trailing") -> list[int]:
    """Steps ``[T, ..., t_K, 0]``: K = ``steps`` model calls (default T), each grid starting at t = T."""
    K = T if steps is None else int(steps)
    if kind not in GRIDS:
        raise ConfigError(f"unknown time grid '{kind}'; choose one of: {', '.join(GRIDS)}")
    if not 1 <= K <= T:
        raise ConfigError(f"sampling steps must be between 1 and T={T}, got {K}")
    ts = GRIDS[kind](T, K)
    if len(np.unique(ts)) != K or ts[0] != T:
        raise ConfigError(f"time grid '{kind}' with {K} steps of T={T} repeats steps; use another --steps")
    return [int(t) for t in ts] + [0]
