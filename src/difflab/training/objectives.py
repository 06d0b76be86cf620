"""Training objectives by the name of ``[train] objective``: what a training step regresses the network on.

``denoising`` is every diffusion and flow-matching model's loss (:mod:`difflab.training.objective`: each
parameterization's target at one time); ``meanflow`` and ``shortcut`` train a two-time network's average velocity
over a jump t → r on the straight path, for sampling in one or a few calls without a teacher (MeanFlow, Geng et al.
2025, :mod:`difflab.training.meanflow`; shortcut models, Frans et al. 2024, :mod:`difflab.training.shortcut`). Each
takes (process, parameterization, train config, device, learned_variance=...) and has ``draw``, ``loss`` and the
checkpoint's ``state_tensors``/``load_state_tensors``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from difflab.errors import ConfigError
from difflab.training.meanflow import MeanFlow
from difflab.training.objective import Objective
from difflab.training.shortcut import Shortcut

OBJECTIVES: dict[str, Callable[..., Any]] = {"denoising": Objective, "meanflow": MeanFlow, "shortcut": Shortcut}
# Objectives whose network takes a jump (t, h = t − r): they need a two-time model (difflab.models.jump_mlp).
TWO_TIME = ("meanflow", "shortcut")


def make_objective(name: str, *args: Any, **kwargs: Any) -> Any:
    """The objective ``name`` built with the trainer's arguments."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective '{name}'; choose one of: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name](*args, **kwargs)
