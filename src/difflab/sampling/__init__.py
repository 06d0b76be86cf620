"""Samplers sharing one signature (registered in :mod:`difflab.sampling.registry`), time grids, guards on x̂_0,
and the batched/streaming front end. Importing this package registers every sampler."""

from difflab.sampling import consistency, jumps, ode, samplers, solvers  # noqa: F401  (each module registers its samplers)
from difflab.sampling.grids import GRIDS, make_grid
from difflab.sampling.registry import (
    CALLS_PER_STEP,
    JUMP_SAMPLERS,
    SAMPLERS,
    check_options,
    get_sampler,
    sampler_options,
)
from difflab.sampling.samplers import sample_ddim, sample_ddpm
from difflab.sampling.solvers import sample_dpmpp_2m, sample_dpmpp_2m_sde, sample_heun, sample_heun_sde

__all__ = [
    "CALLS_PER_STEP",
    "GRIDS",
    "JUMP_SAMPLERS",
    "SAMPLERS",
    "check_options",
    "get_sampler",
    "make_grid",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_heun",
    "sample_heun_sde",
    "sampler_options",
]
