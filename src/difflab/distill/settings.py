"""The settings of one distillation, validated (pydantic), saved in the student's ``distill.json``.

Defaults were chosen by measurement on the 10 toys with difflab's recommended recipe as teacher
(``benchmarks/few_step.py``, ``docs/quality.md``), within the budget of the teacher's own training time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from difflab.errors import ConfigError

METHODS = ("progressive", "consistency", "reflow")
DEVICES = ("auto", "cpu", "cuda")
# Steps per round (progressive: per halving; consistency: its one round) when not given.
DEFAULT_ROUND_STEPS = {"progressive": 250, "consistency": 1500, "reflow": 2000}
# reflow: the (ε, x_0) pairs drawn per round, and the jumps of the ODE sampler that draws them (Heun: 2 calls a jump)
DEFAULT_PAIRS = 10_000
DEFAULT_PAIR_STEPS = 32
# The grid a consistency student is sampled on, for a continuous and a discrete process (multistep consistency
# sampling re-noises to its times; uniform in t is uniform in σ for EDM's schedule, where 4 calls then re-noise to
# σ = 60, 40, 20; karras ends at σ_min, where f(x, σ_min) = x by the boundary condition: a wasted call).
CONSISTENCY_GRID = {False: "karras-trailing", True: "trailing"}
# The command-line option behind each setting, to name it in error messages.
LABELS = {"method": "--method", "steps": "--steps", "teacher_steps": "--teacher-steps", "round_steps":
          "--round-steps", "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed", "intervals": "--intervals",
          "solver": "--solver", "ema": "--ema", "checkpoint_every": "--checkpoint-every", "rounds": "--rounds",
          "pairs": "--pairs"}


class DistillSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["progressive", "consistency", "reflow"] = Field("progressive",
                                                                    description="progressive | consistency | reflow")
    steps: int = Field(4, ge=1, description="network calls K of the student's sampler")
    teacher_steps: int | None = Field(None, ge=1, description="progressive: the teacher's DDIM steps N = K·2^r "
                                      "(default: the largest at most the teacher's steps and 64); reflow: the jumps "
                                      f"of the ODE sampler that draws the pairs (default {DEFAULT_PAIR_STEPS})")
    round_steps: int | None = Field(None, ge=1, description="optimizer steps per round (default: per method)")
    batch_size: int = Field(256, ge=1)
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate, decayed linearly to 0 within each round")
    seed: int = Field(0, description="seed of the batches, times and noise")
    intervals: int = Field(18, ge=2, description="consistency: jumps of the teacher's ODE grid (Song et al.: 18)")
    solver: Literal["heun", "ddim", "ode"] = Field("heun", description="consistency: the teacher's ODE step (heun "
                                                   "| ddim); reflow: the sampler of the pairs (heun | ddim | ode)")
    rounds: int = Field(1, ge=1, description="reflow: rounds k of k-rectified flow (Liu et al. 2022)")
    pairs: int = Field(DEFAULT_PAIRS, ge=2, description="reflow: (ε, x_0) pairs drawn from the teacher per round")
    ema: float = Field(0.95, ge=0, lt=1, description="consistency: decay μ of the target network")
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints (and one per round)")

    @property
    def steps_per_round(self) -> int:
        return self.round_steps or DEFAULT_ROUND_STEPS[self.method]


def make_settings(values: Mapping[str, Any]) -> DistillSettings:
    """Settings from ``values`` (None values dropped); an invalid one is a one-line ConfigError naming its option."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return DistillSettings.model_validate(given)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "settings"
        label = LABELS.get(key, key)
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"distill: unknown setting '{key}'; known: {', '.join(DistillSettings.model_fields)}"
                              ) from None
        raise ConfigError(f"{label}: {err['msg']}, got {err.get('input')!r}") from None
