"""Schedules, the forward process and its posterior, and parameterizations."""

from difflab.diffusion.parameterization import (
    PARAMETERIZATIONS,
    DenoiseFn,
    Denoiser,
    Prediction,
    get_parameterization,
)
from difflab.diffusion.process import GaussianDiffusion
from difflab.diffusion.schedules import SCHEDULES, Schedule, make_schedule

__all__ = [
    "PARAMETERIZATIONS",
    "SCHEDULES",
    "DenoiseFn",
    "Denoiser",
    "GaussianDiffusion",
    "Prediction",
    "Schedule",
    "get_parameterization",
    "make_schedule",
]
