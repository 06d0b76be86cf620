"""Run directories: everything needed to sample, evaluate or plot a trained model later.

Layout of a run directory::

    config.json             the resolved RunConfig
    data.json               columns, source, sizes, the scaler's fitted parameters
    schedule.json           β_0..β_T
    train.npy, heldout.npy  the training rows and held-out truth (file data), in data units
    model.safetensors       the weights to sample with (EMA when on), metadata: architecture
    checkpoint.safetensors  weights, optimizer, RNG and loss log for --resume
    loss.csv                step, loss
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

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
from difflab.errors import DataError, DifflabError, RunDirError
from difflab.io import atomic_open, read_json, write_json
from difflab.models import build_model
from difflab.training.checkpoint import load_weights, save_weights
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
    scaler = make_scaler(cfg.data.scaler).fit(train, columns=ds.columns)
    return PreparedData(train, heldout, ds.columns, ds.toy, scaler)


def build_diffusion(cfg: RunConfig) -> GaussianDiffusion:
    d = cfg.diffusion
    return GaussianDiffusion(make_schedule(d.schedule, d.T, betas=d.betas, **d.schedule_options))


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


def _save_npy(path: Path, x: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        np.save(f, np.asarray(x, dtype=np.float64), allow_pickle=False)


def _write_loss(path: Path, losses: list[float]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("step,loss\n")
        f.writelines(f"{i + 1},{v:.6g}\n" for i, v in enumerate(losses))


def train_run(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> Run:
    """Train ``cfg`` into the run directory ``out`` (``resume``: continue the checkpoint there to cfg.train.steps)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DifflabError(f"{out}: exists and is not a folder")
    if not resume and (out / FILES["model"]).exists():
        raise DifflabError(f"{out}: already holds a trained run; use --resume to continue it or another --out")
    data = prepare_data(cfg)
    diffusion = build_diffusion(cfg)
    dim = len(data.columns)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left as it was
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model.name, dim, diffusion.T, **cfg.model.options)
    trainer = Trainer(model, diffusion, data.scaled, cfg.train, parameterization=cfg.diffusion.parameterization)
    meta = _arch(cfg, dim, diffusion.T, data.columns)
    if resume:
        tensors, saved = load_weights(out / FILES["checkpoint"])
        if saved.get("dim") != dim:
            raise RunDirError(f"{out}: checkpoint was trained on D={saved.get('dim')} columns, data has {dim}")
        if saved.get("T") != diffusion.T or saved.get("model") != cfg.model.name:
            raise RunDirError(f"{out}: checkpoint's model/T differ from the config; resume with the run's config")
        try:
            trainer.load_state_tensors(tensors, int(saved["step"]))
        except (KeyError, RuntimeError) as e:
            raise RunDirError(f"{out}: checkpoint does not match the model ({str(e).splitlines()[0][:100]})") from None
    else:
        out.mkdir(parents=True, exist_ok=True)
    write_json(out / FILES["config"], cfg.model_dump(mode="json"))
    write_json(out / FILES["schedule"], diffusion.schedule.to_dict())
    _save_data(out, cfg, data)

    def checkpoint(tr: Trainer) -> None:
        save_weights(out / FILES["checkpoint"], tr.state_tensors(), {**meta, "step": tr.step_count})

    seconds = trainer.fit(progress=progress, on_checkpoint=checkpoint)
    eval_model = trainer.eval_model().cpu().eval()
    save_weights(out / FILES["model"], eval_model.state_dict(), {**meta, "step": trainer.step_count, "seconds": seconds})
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
    info = read_json(path / FILES["data"])
    try:
        schedule = Schedule.from_dict(read_json(path / FILES["schedule"]))
        scaler = scaler_from_dict(info["scaler"])
        columns = list(info["columns"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunDirError(f"{path}: corrupt run metadata ({e})") from None
    tensors, meta = load_weights(path / FILES["model"])
    model = build_model(meta.get("model", cfg.model.name), len(columns), schedule.T, **meta.get("options", {}))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise RunDirError(f"{path}: weights do not fit the model ({str(e).splitlines()[0][:100]})") from None
    model = model.to(device).eval()
    train = _load_npy(path / FILES["train"])
    heldout = _load_npy(path / FILES["heldout"]) if (path / FILES["heldout"]).exists() else None
    toy = get_dataset(info["toy"]) if info.get("toy") else None
    return Run(path, cfg, columns, scaler, GaussianDiffusion(schedule), model, toy, train, heldout,
               float(meta.get("seconds", math.nan)))


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path}: corrupt array file ({e})") from None
