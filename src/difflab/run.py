"""Run directories: everything needed to sample, evaluate or plot a trained model later.

Layout of a run directory::

    config.json             the resolved RunConfig
    data.json               columns, source, sizes, the scaler's fitted parameters
    schedule.json           β_0..β_T
    train.npy, heldout.npy  the training rows and held-out truth (file data), in data units
    model.safetensors       the weights to sample with (EMA when on), metadata: architecture
    checkpoint.safetensors  weights, optimizer, RNG and loss log for --resume
    loss.csv                step, loss

Everything that can be checked before training (names, the output folder, the data, the checkpoint's shape) is
checked before the first file is written, so a bad input leaves no run directory behind, or an existing one as it was.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from difflab.compute import resolve_device
from difflab.config import RunConfig, load_saved_config
from difflab.data import (
    Scaler,
    ToyDataset,
    get_dataset,
    holdout_split,
    load_data,
    make_scaler,
    scaler_from_dict,
)
from difflab.diffusion import Denoiser, GaussianDiffusion, Schedule, make_schedule
from difflab.errors import ConfigError, DataError, DifflabError, RunDirError
from difflab.io import atomic_open, read_json, write_json
from difflab.models import MODELS, build_model
from difflab.sampling import SAMPLERS
from difflab.sampling.output import check_writable
from difflab.training.checkpoint import load_weights, save_weights
from difflab.training.optim import lr_lambda
from difflab.training.trainer import Trainer

FILES = {
    "config": "config.json",
    "data": "data.json",
    "schedule": "schedule.json",
    "train": "train.npy",
    "heldout": "heldout.npy",
    "model": "model.safetensors",
    "checkpoint": "checkpoint.safetensors",
    "loss": "loss.csv",
}


@dataclass
class PreparedData:
    """Training rows (data units), held-out rows (files only), their scaled tensor and the fitted scaler."""

    train: np.ndarray
    heldout: np.ndarray | None
    columns: list[str]
    toy: ToyDataset | None
    scaler: Scaler

    @property
    def scaled(self) -> torch.Tensor:
        return torch.as_tensor(self.scaler.transform(self.train), dtype=torch.float32)


def prepare_data(cfg: RunConfig) -> PreparedData:
    """Load the source, set aside held-out rows of a file, fit the scaler on the training rows only."""
    ds = load_data(cfg.data.source, columns=cfg.data.columns, n=cfg.data.n, seed=cfg.data.seed)
    train, heldout = ds.x, None
    if ds.toy is None and cfg.data.holdout > 0:
        tr, te = holdout_split(len(ds.x), cfg.data.holdout, cfg.data.seed)
        if len(tr) < 2:
            raise DataError(f"{cfg.data.source}: too few rows ({len(ds.x)}) to keep {cfg.data.holdout:.0%} held out")
        train, heldout = ds.x[tr], ds.x[te]
    try:
        scaler = make_scaler(cfg.data.scaler).fit(train, columns=ds.columns)
    except DataError as e:  # e.g. a constant column: name the file it came from
        raise DataError(f"{cfg.data.source}: {e}") from None
    return PreparedData(train, heldout, ds.columns, ds.toy, scaler)


def build_diffusion(cfg: RunConfig, *, warn: bool = True) -> GaussianDiffusion:
    d = cfg.diffusion
    return GaussianDiffusion(make_schedule(d.schedule, d.T, betas=d.betas, warn=warn, **d.schedule_options))


def check_names(cfg: RunConfig) -> None:
    """Check the names that live in registries (schedule, model, sampler, device) without loading any data."""
    build_diffusion(cfg, warn=False)
    if cfg.model.name not in MODELS:
        raise ConfigError(f"unknown model '{cfg.model.name}'; choose one of: {', '.join(MODELS)}")
    if cfg.sample.sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{cfg.sample.sampler}'; choose one of: {', '.join(SAMPLERS)}")
    resolve_device(cfg.train.device)


def _arch(cfg: RunConfig, dim: int, T: int, columns: list[str]) -> dict[str, Any]:
    return {
        "model": cfg.model.name,
        "dim": dim,
        "T": T,
        "options": cfg.model.options,
        "parameterization": cfg.diffusion.parameterization,
        "columns": columns,
    }


@dataclass
class Run:
    """A trained run, loaded: call :meth:`denoiser` and sample, or read its data and config."""

    path: Path
    config: RunConfig
    columns: list[str]
    scaler: Scaler
    diffusion: GaussianDiffusion
    model: nn.Module
    toy: ToyDataset | None
    train: np.ndarray
    heldout: np.ndarray | None
    seconds: float = math.nan

    @property
    def dim(self) -> int:
        return len(self.columns)

    def denoiser(self) -> Denoiser:
        return Denoiser(self.model.eval(), self.diffusion, self.config.diffusion.parameterization)


def _save_data(out: Path, cfg: RunConfig, data: PreparedData) -> None:
    write_json(
        out / FILES["data"],
        {
            "source": cfg.data.source,
            "toy": data.toy.name if data.toy else None,
            "columns": data.columns,
            "n_train": len(data.train),
            "n_heldout": 0 if data.heldout is None else len(data.heldout),
            "scaler": data.scaler.to_dict(),
        },
    )
    _save_npy(out / FILES["train"], data.train)
    if data.heldout is not None:
        _save_npy(out / FILES["heldout"], data.heldout)
    else:  # a resumed run may have switched from a file to a toy
        (out / FILES["heldout"]).unlink(missing_ok=True)


def _save_npy(path: Path, x: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        np.save(f, np.asarray(x, dtype=np.float64), allow_pickle=False)


def _write_loss(path: Path, losses: list[float]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("step,loss\n")
        f.writelines(f"{i + 1},{v:.6g}\n" for i, v in enumerate(losses))


def _check_out(out: Path, resume: bool) -> None:
    """Refuse an --out that would overwrite something that is not a fresh or resumable difflab run."""
    if out.exists() and not out.is_dir():
        raise DifflabError(f"{out}: exists and is not a folder")
    if resume:
        if not (out / FILES["checkpoint"]).exists():
            raise RunDirError(f"{out}: no {FILES['checkpoint']} to resume from")
        return
    if (out / FILES["model"]).exists():
        raise DifflabError(f"{out}: already holds a trained run; use --resume to continue it or another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / FILES["config"]).exists():
        raise DifflabError(f"{out}: folder is not empty and not a difflab run; choose a new or empty --out")
    check_writable(out)


def _check_checkpoint(out: Path, saved: Any, meta: dict[str, Any], cfg: RunConfig) -> int:
    """The checkpoint's step, after checking that it was made by this network on data of this width."""
    if not isinstance(saved, dict) or not isinstance(saved.get("step"), int):
        raise RunDirError(f"{out}: {FILES['checkpoint']} has no step count; it is not a difflab checkpoint")
    if saved.get("dim") != meta["dim"]:
        raise RunDirError(f"{out}: the checkpoint was trained on D={saved.get('dim')} columns, the data has "
                          f"D={meta['dim']} ({cfg.data.source})")
    for key in ("model", "T", "options", "parameterization"):
        if saved.get(key) != meta[key]:
            raise RunDirError(f"{out}: the checkpoint's {key} is {saved.get(key)!r}, the config's {meta[key]!r}; "
                              "resume with the run's own settings")
    if saved["step"] > cfg.train.steps:
        raise ConfigError(f"--steps {cfg.train.steps} is less than the {saved['step']} steps {out} already has; "
                          "give --steps at least that to resume")
    planned = saved.get("planned_steps", saved["step"])
    if isinstance(planned, int) and planned != cfg.train.steps:
        # A learning rate that depends on the total (cosine after the warm-up) took other values so far than
        # it would have on the way to the new total.
        before, now = lr_lambda(cfg.train.model_copy(update={"steps": planned})), lr_lambda(cfg.train)
        if any(before(i) != now(i) for i in range(saved["step"])):
            warnings.warn(f"{out}: the {cfg.train.lr_schedule} learning-rate schedule was planned for {planned} "
                          f"steps; continuing it on the curve for {cfg.train.steps} steps is not the same as "
                          "training that long straight", stacklevel=3)
    return saved["step"]


def _oracle_run(cfg: RunConfig, out: Path, data: PreparedData, diffusion: GaussianDiffusion) -> Run:
    """Write a run whose model is an exact denoiser computed from the data; loss.csv holds its one measured loss."""
    if cfg.diffusion.parameterization != "eps":
        raise ConfigError(f"model '{cfg.model.name}' predicts ε; use --parameterization eps")
    model = MODELS[cfg.model.name].from_data(data, diffusion)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"options": model.options})})
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / FILES["config"], cfg.model_dump(mode="json"))
    write_json(out / FILES["schedule"], diffusion.schedule.to_dict())
    _save_data(out, cfg, data)
    meta = _arch(cfg, len(data.columns), diffusion.T, data.columns)
    save_weights(out / FILES["model"], model.state_dict(), {**meta, "step": 0, "seconds": 0.0})
    _write_loss(out / FILES["loss"], [model.denoising_loss(data.scaled, seed=cfg.train.seed)])
    return Run(out, cfg, data.columns, data.scaler, diffusion, model.eval(), data.toy, data.train, data.heldout, 0.0)


def train_run(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> Run:
    """Train ``cfg`` into the run directory ``out`` (``resume``: continue the checkpoint there to cfg.train.steps).

    Continuing a run gives the same weights as training to the same step count straight, as long as the learning
    rate does not depend on the total (constant schedule, or a warm-up not yet finished).
    """
    out = Path(out)
    _check_out(out, resume)
    check_names(cfg)
    data = prepare_data(cfg)
    diffusion = build_diffusion(cfg)
    dim = len(data.columns)
    if hasattr(MODELS[cfg.model.name], "from_data"):  # an oracle (difflab.models.oracles): nothing to train
        return _oracle_run(cfg, out, data, diffusion)
    meta = _arch(cfg, dim, diffusion.T, data.columns)
    if resume:
        tensors, saved = load_weights(out / FILES["checkpoint"])
        step = _check_checkpoint(out, saved, meta, cfg)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left as it was
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model.name, dim, diffusion.T, **cfg.model.options)
    trainer = Trainer(model, diffusion, data.scaled, cfg.train, parameterization=cfg.diffusion.parameterization)
    earlier = 0.0
    if resume:
        try:
            trainer.load_state_tensors(tensors, step)
        except (KeyError, RuntimeError, ValueError) as e:
            raise RunDirError(f"{out}: checkpoint does not fit the model ({str(e).splitlines()[0][:100]})") from None
        earlier = float(saved.get("seconds", 0.0))
    else:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DifflabError(f"{out}: cannot create the run directory ({e.strerror})") from None
    write_json(out / FILES["config"], cfg.model_dump(mode="json"))
    write_json(out / FILES["schedule"], diffusion.schedule.to_dict())
    _save_data(out, cfg, data)

    def checkpoint(tr: Trainer) -> None:
        elapsed = earlier + time.perf_counter() - start
        save_weights(out / FILES["checkpoint"], tr.state_tensors(),
                     {**meta, "step": tr.step_count, "planned_steps": cfg.train.steps, "seconds": elapsed})

    start = time.perf_counter()
    seconds = earlier + trainer.fit(progress=progress, on_checkpoint=checkpoint)
    eval_model = trainer.eval_model().cpu().eval()
    save_weights(out / FILES["model"], eval_model.state_dict(),
                 {**meta, "step": trainer.step_count, "seconds": seconds})
    _write_loss(out / FILES["loss"], trainer.losses())
    return Run(out, cfg, data.columns, data.scaler, diffusion, eval_model, data.toy, data.train, data.heldout, seconds)


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Load a finished run directory; missing or corrupt files give a one-line RunDirError."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: run directory not found")
    for key in ("config", "data", "schedule", "model", "train"):
        if not (path / FILES[key]).exists():
            raise RunDirError(f"{path}: missing {FILES[key]}; not a finished difflab run")
    cfg = load_saved_config(read_json(path / FILES["config"]), str(path / FILES["config"]))
    schedule = _read_meta(path / FILES["schedule"], Schedule.from_dict)
    scaler, columns, toy = _read_meta(path / FILES["data"], lambda d: (
        scaler_from_dict(d["scaler"]), [str(c) for c in d["columns"]],
        get_dataset(d["toy"]) if d.get("toy") else None))
    if scaler.n_features != len(columns):
        raise RunDirError(f"{path / FILES['data']}: corrupt: {len(columns)} columns but a scaler for "
                          f"{scaler.n_features}")
    if schedule.T < 1 or not np.all(np.isfinite(schedule.betas)):
        raise RunDirError(f"{path / FILES['schedule']}: corrupt: not a schedule of finite β_0..β_T")
    tensors, meta = load_weights(path / FILES["model"])
    meta = meta if isinstance(meta, dict) else {}
    if meta.get("T", schedule.T) != schedule.T or meta.get("columns", columns) != columns:
        raise RunDirError(f"{path / FILES['model']}: saved for T={meta.get('T')} and columns {meta.get('columns')}, "
                          f"but the run has T={schedule.T} and columns {columns}; it belongs to another run")
    try:
        model = build_model(meta.get("model", cfg.model.name), len(columns), schedule.T, **meta.get("options", {}))
        model.load_state_dict(tensors)
    except (RuntimeError, ConfigError, TypeError) as e:
        raise RunDirError(f"{path}: weights do not fit the model ({str(e).splitlines()[0][:100]})") from None
    model = model.to(device).eval()
    train = _load_npy(path / FILES["train"], len(columns))
    heldout = _load_npy(path / FILES["heldout"], len(columns)) if (path / FILES["heldout"]).exists() else None
    return Run(path, cfg, columns, scaler, GaussianDiffusion(schedule), model, toy, train, heldout,
               float(meta.get("seconds", math.nan)))


def _read_meta(path: Path, parse: Callable[[Any], Any]) -> Any:
    """Parse a run's JSON file with ``parse``; any shape it does not expect is a one-line RunDirError."""
    try:
        return parse(read_json(path))
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as e:
        raise RunDirError(f"{path}: corrupt ({type(e).__name__}: {str(e).splitlines()[0][:100]})") from None


def _load_npy(path: Path, dim: int) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise RunDirError(f"{path}: corrupt array file ({str(e).split('. ')[0][:100]})") from None
    if x.ndim != 2 or x.shape[1] != dim:
        raise RunDirError(f"{path}: expected an array of shape (rows, {dim}), found {x.shape}")
    return x
