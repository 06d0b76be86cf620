"""Checkpoints as one safetensors file (no pickle): weights, EMA, optimizer moments, RNG state, loss log.

Everything that is not a tensor goes into the file's string metadata as JSON. The file is written atomically, so a
run directory holds either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from difflab.errors import RunDirError
from difflab.io import atomic_path


def save_weights(path: Path, tensors: dict[str, Tensor], meta: dict[str, Any] | None = None) -> None:
    """Save named tensors (contiguous CPU copies) with JSON metadata under the key ``difflab``."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={"difflab": json.dumps(meta or {})})


def load_weights(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load tensors and metadata; a missing or corrupt file is a one-line RunDirError."""
    if not path.exists():
        raise RunDirError(f"{path}: file not found")
    try:
        tensors = load_file(str(path))

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("difflab", "{}"))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: corrupt weights file ({str(e).splitlines()[0][:120]})") from None
    return tensors, meta


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, Tensor]:
    """AdamW's per-parameter state (step, exp_avg, exp_avg_sq) keyed ``optim.{index}.{name}``."""
    out: dict[str, Tensor] = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            # a copy of a view (the direct AdamW call keeps the step counters as views of one tensor): safetensors
            # stores only tensors that own their memory
            out[f"optim.{i}.{k}"] = (v.clone() if v._base is not None else v) if torch.is_tensor(v) else torch.tensor(v)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def model_tensors(model: nn.Module, prefix: str = "") -> dict[str, Tensor]:
    return {prefix + k: v for k, v in model.state_dict().items()}


def strip(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
