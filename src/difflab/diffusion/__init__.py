"""Schedules (discrete and continuous), the forward process and its posterior, parameterizations, denoisers."""

from difflab.diffusion.continuous import CONTINUOUS
from difflab.diffusion.continuous_process import ContinuousDiffusion
from difflab.diffusion.denoiser import Denoiser
from difflab.diffusion.parameterization import (
    PARAMETERIZATIONS,
    DenoiseFn,
    Parameterization,
    Prediction,
    get_parameterization,
)
from difflab.diffusion.process import GaussianDiffusion, Process
from difflab.diffusion.saved import process_from_dict
from difflab.diffusion.schedules import SCHEDULES, Schedule, make_schedule

__all__ = [
    "CONTINUOUS",
    "PARAMETERIZATIONS",
    "SCHEDULES",
    "ContinuousDiffusion",
    "DenoiseFn",
    "Denoiser",
    "GaussianDiffusion",
    "Parameterization",
    "Prediction",
    "Process",
    "Schedule",
    "get_parameterization",
    "make_schedule",
    "process_from_dict",
]
