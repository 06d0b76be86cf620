"""A process rebuilt from what a run directory saved of it (``schedule.json``)."""

from __future__ import annotations

from difflab.diffusion.continuous_process import ContinuousDiffusion
from difflab.diffusion.process import GaussianDiffusion, Process
from difflab.diffusion.schedules import Schedule


def process_from_dict(d: dict[str, object]) -> Process:
    """Rebuild a process from its ``to_dict()`` (a run's schedule.json; files without "time" are discrete)."""
    if d.get("time", "discrete") == "continuous":
        return ContinuousDiffusion(str(d["name"]), int(d["T"]), zero_terminal_snr=bool(d.get("zero_terminal_snr")),
                                   **dict(d.get("options") or {}))
    return GaussianDiffusion(Schedule.from_dict(d))
