"""Networks by name. A builder takes (dim, T, **options) and returns an nn.Module mapping (x_t (B, D), t (B,)) →
(B, D)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from difflab.errors import ConfigError
from difflab.models.jump_mlp import JumpMLP
from difflab.models.mlp import ResMLP, sinusoidal_embedding
from difflab.models.oracles import DESCRIPTIONS as ORACLE_DESCRIPTIONS
from difflab.models.oracles import ORACLES, EmpiricalOracle, MixtureOracle
from difflab.models.seed import SeedMLP

# Exact denoisers (oracles) are built from the data by `difflab train --model oracle`, not trained.
MODELS: dict[str, Callable[..., nn.Module]] = {"seed": SeedMLP, "mlp": ResMLP, "jump-mlp": JumpMLP, **ORACLES}
DESCRIPTIONS = {
    "seed": "the tutorial's MLP: one-hot(t−1) → Linear(T,1), (D+1)→100→100→100→20→D, LeakyReLU",
    "mlp": "residual MLP with a sinusoidal time embedding (options: width, depth, emb_dim)",
    "jump-mlp": "the residual MLP with a second time, the jump's length: an average velocity for one-step models "
                "(MeanFlow, shortcut; options: width, depth, emb_dim)",
    **ORACLE_DESCRIPTIONS,
}


def build_model(name: str, dim: int, T: int, *, out_dim: int | None = None, **options: Any) -> nn.Module:
    """Instantiate network ``name`` for D = ``dim`` columns and T steps (T = 0: continuous time); ``out_dim``: the
    output width when it is not D (2D for learned variances)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}")
    if out_dim is not None and out_dim != dim:
        options = {**options, "out_dim": out_dim}
    try:
        return MODELS[name](dim, T, **options)
    except TypeError as e:
        raise ConfigError(f"model '{name}': bad options {options} ({e})") from None


__all__ = ["MODELS", "EmpiricalOracle", "JumpMLP", "MixtureOracle", "ResMLP", "SeedMLP", "build_model", "sinusoidal_embedding"]
