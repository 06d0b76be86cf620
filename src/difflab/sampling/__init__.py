"""Samplers sharing one signature, time grids, and the batched/streaming front end."""

from difflab.sampling.grids import GRIDS, make_grid
from difflab.sampling.samplers import SAMPLERS, get_sampler, sample_ddim, sample_ddpm, sample_dpmpp_2m

__all__ = ["GRIDS", "SAMPLERS", "get_sampler", "make_grid", "sample_ddim", "sample_ddpm", "sample_dpmpp_2m"]
