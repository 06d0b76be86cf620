"""The tiny grid the sweep tests share (2 T × 2 scalers × 2 seeds of the tutorial's recipe, 20 steps each)."""

from __future__ import annotations

from pathlib import Path

TINY = """
preset = "seed"
seeds = [0, 1]

[data]
n = 200

[train]
steps = 20

[grid]
"diffusion.T" = [3, 5]
"data.scaler" = ["minmax", "standard"]

[evaluate]
n = 100
repeats = 2
metrics = ["w1", "energy"]
"""


def write(tmp: Path, text: str, name: str = "grid.toml") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def quiet(_: str) -> None:
    pass
