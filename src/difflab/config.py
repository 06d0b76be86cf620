"""Run configuration: validated pydantic models, presets, TOML loading and command-line overrides.

A run's resolved config is saved as ``config.json`` in its run directory; ``RunConfig.model_validate`` reads it
back. Sections mirror the data path: data → diffusion → model → train → sample.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from difflab.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataConfig(_Section):
    source: str = Field("moons", description="toy dataset name or a .csv/.parquet/.npy file")
    columns: list[str] | None = Field(None, description="columns of a file to use (default: all)")
    n: int | None = Field(None, ge=2, description="points drawn from a toy dataset (default: its recipe's n)")
    scaler: Literal["minmax", "standard", "none"] = Field("minmax", description="fitted on the training data")
    holdout: float = Field(0.2, ge=0.0, lt=1.0, description="fraction of a file's rows kept out for evaluation")
    seed: int = Field(0, description="seed of the toy recipe and of the held-out split")


class DiffusionConfig(_Section):
    schedule: str = Field("poly", description="schedule name (see difflab.diffusion.schedules) or 'array'")
    T: int = Field(10, ge=1, le=100_000, description="number of noisy steps")
    schedule_options: dict[str, float] = Field(default_factory=dict, description="e.g. {power = 4}")
    betas: list[float] | None = Field(None, description="β_1..β_T for schedule = 'array'")
    parameterization: Literal["eps", "x0", "v"] = "eps"


class ModelConfig(_Section):
    name: str = Field("seed", description="network name: seed | mlp")
    options: dict[str, int] = Field(default_factory=dict, description="e.g. {width = 128, depth = 3}")


class TrainConfig(_Section):
    steps: int = Field(5000, ge=1)
    batch_size: int | None = Field(None, ge=1, description="None = full batch (the tutorial)")
    lr: float = Field(1e-2, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup: int = Field(0, ge=0, description="linear warm-up steps")
    ema: float | None = Field(None, gt=0, lt=1, description="EMA decay of the weights, e.g. 0.999")
    grad_clip: float | None = Field(None, gt=0, description="max global gradient norm")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    checkpoint_every: int = Field(1000, ge=1)
    threads: int | None = Field(None, ge=1, description="CPU threads (default: chosen for the model's size)")


class SampleConfig(_Section):
    sampler: str = Field("ddpm", description="ddpm | ddim | dpm++")
    steps: int | None = Field(None, ge=1, description="model calls K ≤ T (default T)")
    grid: Literal["trailing", "linspace"] = "trailing"
    eta: float = Field(0.0, ge=0, description="DDIM noise scale")
    variance: Literal["small", "large"] = Field("small", description="ddpm reverse variance")


class RunConfig(_Section):
    preset: str | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str | None) -> str | None:
        if v is not None and v not in PRESETS:
            raise ValueError(f"unknown preset '{v}'; choose one of: {', '.join(PRESETS)}")
        return v


# The tutorial's recipe, exactly (Elflein 2022; ../shared/tutorial/settings.md).
SEED: dict[str, Any] = {
    "data": {"source": "moons", "scaler": "minmax"},
    "diffusion": {"schedule": "poly", "T": 10, "parameterization": "eps"},
    "model": {"name": "seed"},
    "train": {"steps": 5000, "batch_size": None, "lr": 1e-2, "weight_decay": 1e-4, "lr_schedule": "constant"},
    "sample": {"sampler": "ddpm", "variance": "small"},
}

# difflab's recommended recipe, chosen from measurements (benchmarks/quality_vs_time.py, benchmarks/RESULTS.md).
RECOMMENDED: dict[str, Any] = {
    "data": {"source": "moons", "scaler": "minmax"},
    "diffusion": {"schedule": "cosine", "T": 100, "parameterization": "eps"},
    "model": {"name": "mlp", "options": {"width": 128, "depth": 3}},
    "train": {
        "steps": 5000,
        "batch_size": 256,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "lr_schedule": "cosine",
        "warmup": 100,
        "ema": 0.995,
    },
    "sample": {"sampler": "ddpm", "variance": "small"},
}

PRESETS: dict[str, dict[str, Any]] = {"seed": SEED, "recommended": RECOMMENDED}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _one_line(e: ValidationError, where: str) -> ConfigError:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return ConfigError(f"{where}: {loc}: {msg}{more}")


def resolve_config(
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Preset (default ``recommended``) ← TOML file ← overrides (nested dict, None values ignored)."""
    raw: dict[str, Any] = {}
    if file is not None:
        path = Path(file)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
    name = preset or raw.get("preset") or "recommended"
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}")
    merged = _merge(PRESETS[name], raw)
    merged = _merge(merged, _drop_none(overrides or {}))
    merged["preset"] = name
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as e:
        raise _one_line(e, str(file) if file else "config") from None


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def load_saved_config(raw: dict[str, Any], where: str) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise _one_line(e, where) from None
