"""difflab: diffusion models on low-dimensional data.

``from difflab import TabularDiffusion`` gives the table estimator; it is imported on first use, so that
``import difflab`` (and the command line's start-up) stays light.
"""

from typing import Any

__all__ = ["TabularDiffusion"]


def __getattr__(name: str) -> Any:
    if name == "TabularDiffusion":
        from difflab.tabular import TabularDiffusion

        return TabularDiffusion
    raise AttributeError(f"module 'difflab' has no attribute {name!r}")
