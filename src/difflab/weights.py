"""Weights files: named tensors in one safetensors file (no pickle), with JSON metadata.

Everything that is not a tensor goes into the file's string metadata as JSON under the key ``difflab``. The file is
written atomically, so a run directory holds either the previous file or the new one, never half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

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
