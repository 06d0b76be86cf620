"""Run configuration: validated pydantic models, TOML loading and command-line overrides (the presets they start
from are in :mod:`difflab.presets`).

A run's resolved config is saved as ``config.json`` in its run directory; :func:`load_saved_config` reads it back.
Sections mirror the data path: data → diffusion → model → train → sample. Names that live in registries (schedule,
model, sampler) are checked where those registries are, when the run is built (``difflab.assemble.check_config``), so
that this module stays import-light.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from difflab.errors import ConfigError
from difflab.presets import PRESETS

DEFAULT_LABEL_DROPOUT = 0.1  # p_uncond of a conditional run (Ho & Salimans 2022 found 0.1-0.2 best)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataConfig(_Section):
    source: str = Field("moons", description="toy dataset name, sklearn:NAME or a .csv/.parquet/.npy file")
    columns: list[str] | None = Field(None, description="columns of a file to use (default: all)")
    n: int | None = Field(None, ge=2, description="points drawn from a toy dataset (default: its recipe's n)")
    scaler: Literal["minmax", "standard", "none", "quantile"] = Field(
        "minmax", description="fitted on the training data (on a table's numeric features)")
    holdout: float = Field(0.2, ge=0.0, lt=1.0, description="fraction of a file's rows kept out for evaluation")
    seed: int = Field(0, description="seed of the toy recipe and of the held-out split")
    # Column kinds of a table (difflab.data.columns); columns not named here are detected from the data.
    categorical: list[str] | None = Field(None, description="columns to model as categorical")
    integer: list[str] | None = Field(None, description="numeric columns to round to whole numbers")
    continuous: list[str] | None = Field(None, description="numeric columns to keep as plain numbers")
    missing: Literal["error", "category"] = Field("error", description="missing values: an error, or a level")
    encoding: Literal["onehot", "bits", "multinomial", "masked"] = Field(
        "onehot", description="categorical columns: Gaussian features (onehot, bits), or diffused by a discrete "
        "process (multinomial, masked)")
    condition: str | None = Field(None, description="a table column to condition on: the network's class label, "
                                  "not generated (classifier-free guidance, Ho & Salimans 2022)")


class DiffusionConfig(_Section):
    time: Literal["discrete", "continuous"] = Field(
        "discrete", description="discrete: T steps; continuous: t in [0, 1], the network sees the noise level")
    schedule: str = Field("poly", description="schedule name (see difflab.diffusion.schedules/continuous) or 'array'")
    T: int = Field(10, ge=1, le=100_000, description="noisy steps (continuous time: default sampling steps)")
    schedule_options: dict[str, float] = Field(default_factory=dict, description="e.g. {power = 4}")
    betas: list[float] | None = Field(None, description="β_1..β_T for schedule = 'array'")
    zero_terminal_snr: bool = Field(False, description="rescale so that ᾱ_T = 0 (Lin et al. 2023); x0/v/edm only")
    parameterization: Literal["eps", "x0", "v", "score", "mean", "edm", "velocity"] = "eps"
    sigma_data: float = Field(0.5, gt=0, description="the data's std assumed by edm preconditioning")
    variance: Literal["fixed", "learned-range"] = Field(
        "fixed", description="learned-range: the network also outputs the reverse variance (Nichol & Dhariwal 2021)")


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
    cuda_graph: bool = Field(True, description="on CUDA, replay each training step from one CUDA graph")
    noise_sampling: Literal["uniform", "lognormal", "logit-normal"] = Field(
        "uniform", description="continuous time: t ~ U[t_min, 1], ln σ ~ N(p_mean, p_std²) (Karras et al. 2022), or "
        "t = sigmoid(n), n ~ N(logit_mean, logit_std²) (Esser et al. 2024)")
    p_mean: float = Field(-1.2, description="lognormal noise sampling: mean of ln σ")
    p_std: float = Field(1.2, gt=0, description="lognormal noise sampling: std of ln σ")
    logit_mean: float = Field(0.0, description="logit-normal time sampling: mean of logit t")
    logit_std: float = Field(1.0, gt=0, description="logit-normal time sampling: std of logit t")
    coupling: str = Field("none", description="how each batch pairs noise with data: none (independent) | ot "
                          "(minibatch optimal transport, Tong et al. 2023; per class for a conditional run)")
    vlb_weight: float = Field(0.001, ge=0, description="learned variances: λ of L_simple + λ L_vlb")
    vlb_sampling: Literal["uniform", "importance"] = Field(
        "uniform", description="learned variances: t uniform, or importance-sampled by E[L_t²]^½ (N&D 2021, §3.3)")
    select: Literal["last", "heldout"] = Field(
        "last", description="the weights to keep: the last step's, or (heldout) the step whose samples are no nearer "
        "to the training rows than held-out rows are, scored every tenth of training (difflab.pipeline.select)")
    label_dropout: float | None = Field(
        None, ge=0, lt=1, description="conditional runs: share of rows trained with no label (p_uncond; None: "
        f"{DEFAULT_LABEL_DROPOUT}, Ho & Salimans 2022)")
    # One-step models trained from scratch (difflab.training.objectives): a two-time network's average velocity.
    objective: Literal["denoising", "meanflow", "shortcut"] = Field(
        "denoising", description="denoising: the parameterization's target at one time; meanflow (Geng et al. 2025) "
        "or shortcut (Frans et al. 2024): the average velocity over a jump, for 1-4 call sampling (model jump-mlp)")
    jump_share: float = Field(0.25, ge=0, le=1, description="meanflow/shortcut: share of rows with a jump r < t "
                              "(the others train the instantaneous velocity)")
    loss_power: float | None = Field(None, ge=0, description="meanflow/shortcut: p of the adaptive loss weight "
                                     "1/(err + 1e-3)^p (Geng et al. 2025; None: 1 for meanflow, 0 for shortcut)")
    shortcut_steps: int = Field(128, ge=2, description="shortcut: M, the finest step 1/M (a power of two)")
    meanflow_tangent: Literal["sample", "model"] = Field(
        "sample", description="meanflow: the velocity along which d/dt u is taken: the row's ε − x_0 (Geng et al. "
        "2025) or the network's own u(z, t, t) (the same mean, less variance)")

    @field_validator("adam_betas")
    @classmethod
    def _betas_in_unit_interval(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError(f"both Adam betas must lie in [0, 1), got {list(v)}")
        return v


class SampleConfig(_Section):
    sampler: str = Field("ddpm", description="ddpm | ddim | dpm++ | dpm++-sde | heun | heun-sde | ode")
    steps: int | None = Field(None, ge=1, description="jumps K (default T; at most T for discrete time)")
    grid: Literal["trailing", "linspace", "logsnr", "karras", "karras-trailing"] = "trailing"
    eta: float = Field(0.0, ge=0, description="DDIM noise scale")
    variance: Literal["small", "large", "learned"] | None = Field(
        None, description="ddpm reverse variance (default: learned when the model has it, else small)")
    guard: Literal["none", "clip", "threshold"] = Field(
        "none", description="x̂_0 clipped to the data's box, or dynamically thresholded (Saharia et al. 2022)")
    guard_margin: float = Field(0.1, ge=0, description="the box: the training data's range widened by this share")
    options: dict[str, float | str] = Field(default_factory=dict, description="sampler options, e.g. {s_churn = 20}")
    guidance: float | None = Field(None, ge=0, description="conditional runs: classifier-free guidance weight w "
                                   "(None: 0, the plain conditional model)")


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


# Settings that belong to the name they configure: a layer that picks another name starts from the empty value
# unless it gives its own (`--model seed` on the recommended preset must not inherit the mlp's width and depth,
# `--data table.csv` on the seed preset not the 1000 points of its moons).
_DEPENDENT: dict[tuple[str, str], tuple[str, Any]] = {
    ("model", "name"): ("options", {}),
    ("diffusion", "schedule"): ("schedule_options", {}),
    ("data", "source"): ("n", None),
    ("sample", "sampler"): ("options", {}),
}


def _merge(base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v, (*path, k)) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    for (section, name), (dependent, empty) in _DEPENDENT.items():
        if path == (section,) and name in over and over[name] != base.get(name) and dependent not in over:
            out[dependent] = empty
    return out


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, Mapping) else v for k, v in d.items() if v is not None}


def _has(d: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    for part in loc:
        if not isinstance(d, Mapping) or part not in d:
            return False
        d = d[part]
    return True


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _one_line(e: ValidationError, where: str, overrides: Mapping[str, Any] | None = None,
              labels: Mapping[str, str] | None = None) -> ConfigError:
    """The first validation error as one line that names where it came from: a command-line option, or a file."""
    err = e.errors()[0]
    loc = tuple(err["loc"])
    dotted = ".".join(str(p) for p in loc)
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return ConfigError(f"{where}: unknown key '{dotted}'{hint}{more}")
    msg = err["msg"].removeprefix("Value error, ")
    if overrides is not None and _has(overrides, loc[:2]):
        label = (labels or {}).get(".".join(str(p) for p in loc[:2]), dotted)
        return ConfigError(f"{label}: {msg}, got {err.get('input')!r}{more}")
    return ConfigError(f"{where}: {dotted}: {msg}{more}")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML config file; a missing, unreadable or malformed file is a one-line ConfigError."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a TOML config file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None


def resolve_config(
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> RunConfig:
    """Preset (default ``recommended``) ← TOML ``file`` ← ``overrides`` (a nested dict; None values are ignored).

    ``labels`` maps a dotted key of ``overrides`` (``"train.steps"``) to the option the user typed (``"--steps"``),
    so an invalid value is reported under the name the user knows.
    """
    raw = read_toml(file) if file is not None else {}
    name = preset or raw.get("preset") or "recommended"
    if not isinstance(name, str) or name not in PRESETS:
        where = "--preset" if preset else f"{file}: preset"
        raise ConfigError(f"{where}: unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    over = _drop_none(overrides or {})
    merged = _merge(_merge(PRESETS[name], raw), over)
    merged["preset"] = name
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as e:
        raise _one_line(e, str(file) if file else f"preset '{name}'", over, labels) from None


def load_saved_config(raw: Any, where: str) -> RunConfig:
    """Validate a run directory's saved ``config.json`` (already parsed)."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise _one_line(e, where) from None


def merge_config(cfg: RunConfig, overrides: Mapping[str, Any], *, labels: Mapping[str, str] | None = None) -> RunConfig:
    """``cfg`` with non-None ``overrides`` on top, validated (how ``--resume`` applies new options to a saved run)."""
    over = _drop_none(overrides)
    try:
        return RunConfig.model_validate(_merge(cfg.model_dump(mode="python"), over))
    except ValidationError as e:
        raise _one_line(e, "config", over, labels) from None
