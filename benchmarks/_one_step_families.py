"""The one-step families (MeanFlow, shortcut models) as entries of a few-calls benchmark's registry of families:
for each, a function that trains a run directory for a toy and a seed within a budget of CPU seconds, and the
sampling settings (sampler, grid, steps) that spend a given number of network calls.

The budget is met by measuring: the family's trainer takes ``CALIBRATION`` steps (after a warm-up) on the toy's
rows, timed with ``time.process_time`` in this process, and the run is then trained from scratch for as many steps
as the budget buys at that rate, less the share the recipe's fixed costs take (data, checkpoints, the saved model),
``OVERHEAD``. The steps never exceed the preset's own (its recipe was measured at that length).

    from _one_step_families import FAMILIES, train_within
    run, cpu = train_within("meanflow", "moons", 0, out_dir, cpu_seconds=60.0)
    x, _ = sample_run(run, 10_000, **FAMILIES["meanflow"].sampling(calls=2))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflab.assemble import build_process
from difflab.config import resolve_config
from difflab.data.prepare import prepare_data
from difflab.pipeline import train_run
from difflab.pipeline.single import initial_model, make_trainer

CALIBRATION, WARMUP = 100, 10
OVERHEAD = 0.08  # the share of a run's CPU seconds outside its steps (measured on the default recipe: 4-8 %)


@dataclass(frozen=True)
class Family:
    """A one-step family: its preset and overrides; it samples K calls as K jumps of ``sampler`` on ``grid``."""

    name: str
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    sampler: str = "jumps"
    grid: str = "trailing"

    def config(self, toy: str, seed: int, steps: int | None = None) -> Any:
        train = {**self.overrides.get("train", {}), "seed": seed, **({"steps": steps} if steps else {})}
        return resolve_config(self.preset, overrides={**self.overrides, "data": {"source": toy}, "train": train})

    def sampling(self, calls: int) -> dict[str, Any]:
        """``sample_run`` settings for ``calls`` network calls: that many jumps (one call each)."""
        return {"sampler": self.sampler, "grid": self.grid, "steps": calls}


FAMILIES: dict[str, Family] = {
    "meanflow": Family("meanflow", "meanflow"),
    "shortcut": Family("shortcut", "shortcut"),
}


def seconds_per_step(family: Family, toy: str, seed: int) -> float:
    """CPU seconds of one training step of the family's recipe on the toy (``CALIBRATION`` steps, process time)."""
    cfg = family.config(toy, seed)
    data = prepare_data(cfg.data)
    process = build_process(cfg)
    trainer = make_trainer(cfg, initial_model(cfg, process, data.model_dim), process, data.model_input)
    for _ in range(WARMUP):
        trainer.step()
    start = time.process_time()
    for _ in range(CALIBRATION):
        trainer.step()
    return (time.process_time() - start) / CALIBRATION


def train_within(name: str, toy: str, seed: int, out: Path, cpu_seconds: float) -> tuple[Any, float]:
    """Train family ``name`` on ``toy`` with ``seed`` into ``out`` within ``cpu_seconds`` of training; returns the run
    and the CPU seconds it took (the calibration's are not counted: it is a measurement, not training)."""
    family = FAMILIES[name]
    per_step = seconds_per_step(family, toy, seed)
    own = family.config(toy, seed).train.steps
    steps = max(1, min(own, int(cpu_seconds * (1.0 - OVERHEAD) / per_step)))
    start = time.process_time()
    run = train_run(family.config(toy, seed, steps), out, progress=False)
    return run, time.process_time() - start
