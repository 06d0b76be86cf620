"""Where sampling runs, and what happens when the GPU fails.

``device="auto"`` samples on CUDA when torch sees a card, else on the CPU; if sampling on the card raises (out of
memory, a kernel or driver error), the same points are drawn on the CPU instead, with one warning. A device the
user named (``"cuda"``) is a promise: its failure is a one-line error, not a silent move to the CPU. A seed gives
the same points on the same kind of device; a CPU and a GPU draw different (equally distributed) points.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from difflab.compute import failure_cause, resolve_device, warn_fallback
from difflab.errors import ConfigError, DifflabError

DEVICES = ("auto", "cpu", "cuda")
R = TypeVar("R")


def check_device(device: str) -> torch.device:
    """The device ``device`` names (auto: CUDA if available); an unknown name or an absent CUDA is a one-line
    ConfigError."""
    if device not in DEVICES:
        raise ConfigError(f"--device {device!r}: choose one of: {' | '.join(DEVICES)}")
    return resolve_device(device)


def model_device(model: nn.Module) -> torch.device:
    return next(itertools.chain(model.parameters(), model.buffers())).device  # oracles have only buffers


def model_on(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` itself if it is on ``device`` already, else a copy there (the caller's model stays where it is)."""
    return model if model_device(model) == device else copy.deepcopy(model).to(device)


def on_device(device: str, attempt: Callable[[torch.device], R], *, what: str = "sampling") -> R:
    """``attempt(dev)`` on the device ``device`` names. If it raises on a GPU (anything but a DifflabError or an
    OSError, which are the input's or the disk's and would fail the same on the CPU): with ``device="auto"``, one
    FallbackWarning and ``attempt(cpu)``; with ``device="cuda"``, a one-line DifflabError.

    ``attempt`` must leave nothing half-done when it raises (atomic writes), since it may run twice."""
    dev = check_device(device)
    if dev.type == "cpu":
        return attempt(dev)
    try:
        return attempt(dev)
    except (DifflabError, OSError):
        raise
    except Exception as e:
        if device != "auto":
            raise DifflabError(f"{what} on {dev.type} failed ({failure_cause(e)}); use --device cpu, or --device "
                               "auto to fall back to the CPU") from None
        warn_fallback(f"{what} on {dev.type}", e, instead="sampled on the CPU instead (other points than the GPU "
                      "would draw for this seed, from the same model)", skip="--device cpu skips the attempt.")
        return attempt(torch.device("cpu"))
