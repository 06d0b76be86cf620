"""Run directories: the files that hold everything needed to sample, evaluate or plot a trained model later.

Layout of a run directory::

    config.json             the resolved RunConfig
    data.json               columns (the model's features), source, sizes, the scaler's fitted parameters, and for a
                            table with other than plain-number columns its spec ("table": kinds, levels, encoding)
    schedule.json           the process: β_0..β_T (discrete), or a continuous schedule's name and options
    train.npy, heldout.npy  the training rows and held-out truth (file data), as features in data units
    condition.json          a conditional run's condition column: vocabulary (levels in code order), training rows
                            and share per class, where its features sit (difflab.data.condition)
    model.safetensors       the weights to sample with (EMA when on), metadata: architecture
    checkpoint.safetensors  weights, optimizer, RNG and loss log for --resume
    loss.csv                step, loss
    distill.json            a distilled student's teacher (path and config), method, settings and seconds
                            (difflab.distill; its checkpoint is distill-checkpoint.safetensors)
    select.json             with --select heldout: the candidate steps scored on the held-out rows and the one kept
                            (difflab.pipeline.select)

This module is the format: writing the files (:func:`write_run_files`, :func:`write_loss`), refusing an output that
is not a run (:func:`check_out`), and reading a finished run back (:func:`load_run`). What fills a run directory,
training, lives above it in :mod:`difflab.pipeline`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from difflab.arrays import load_npy
from difflab.assemble import build_network, denoiser, network_shape
from difflab.config import RunConfig, load_saved_config
from difflab.data import Scaler, ToyDataset, get_dataset, scaler_from_dict
from difflab.data.condition import Condition
from difflab.data.layout import Layout, layout_of
from difflab.data.prepare import PreparedData
from difflab.data.table import TableSpec
from difflab.diffusion import Denoiser, Process, process_from_dict
from difflab.errors import ConfigError, DifflabError, RunDirError
from difflab.integrity import (
    FINGERPRINT,
    check_fingerprint,
    check_meta,
    check_scaler_dict,
    check_schedule_dict,
    fingerprint,
)
from difflab.io import atomic_open, read_json, write_json
from difflab.lock import LOCK_FILE, reading
from difflab.sampling.output import check_writable
from difflab.weights import load_weights, save_weights

FILES = {
    "config": "config.json",
    "data": "data.json",
    "schedule": "schedule.json",
    "train": "train.npy",
    "heldout": "heldout.npy",
    "condition": "condition.json",
    "model": "model.safetensors",
    "checkpoint": "checkpoint.safetensors",
    "loss": "loss.csv",
    "distill": "distill.json",
    "select": "select.json",
}


def arch_meta(cfg: RunConfig, dim: int, T: int, columns: list[str], *, classes: int = 0) -> dict[str, Any]:
    """What a weights file was made for: the network (name, options, width ``dim`` of what it generates, and its
    ``classes`` when conditional), the process's T and time, and how its output is read (parameterization,
    variance)."""
    return {
        **({"classes": classes} if classes else {}),
        "model": cfg.model.name,
        "dim": dim,
        "T": T,
        "time": cfg.diffusion.time,
        "options": cfg.model.options,
        "parameterization": cfg.diffusion.parameterization,
        "variance": cfg.diffusion.variance,
        "columns": columns,
    }


@dataclass
class Run:
    """A trained run, loaded: call :meth:`denoiser` and sample, or read its data and config."""

    path: Path
    config: RunConfig
    columns: list[str]
    scaler: Scaler
    diffusion: Process
    model: nn.Module
    toy: ToyDataset | None
    train: np.ndarray
    heldout: np.ndarray | None
    seconds: float = math.nan
    table: TableSpec | None = None  # a table's columns, when its features are not simply its columns
    condition: Condition | None = None  # a conditional run's class-label column (its features are not generated)

    @property
    def dim(self) -> int:
        return len(self.columns)

    @property
    def model_dim(self) -> int:
        """The features the network generates: all but a condition column's."""
        return self.dim - (self.condition.stop - self.condition.start if self.condition else 0)

    @property
    def layout(self) -> Layout | None:
        """Which generated features a discrete process diffuses (``--encoding multinomial|masked``), else None."""
        return layout_of(self.table, self.condition)

    def denoiser(self) -> Denoiser:
        """The network's denoiser over whole feature rows; a conditional run has none (its network generates the
        other features given the class): use :meth:`network_denoiser`."""
        if self.condition is not None:
            raise ConfigError(f"{self.path} is conditioned on {self.condition.column!r}: its network generates the "
                              "other columns given the class, and the ELBO and likelihood of whole rows are not built "
                              "for it")
        return self.network_denoiser()

    def network_denoiser(self) -> Denoiser:
        """The denoiser of the features the network generates (for a conditional run: no label unless asked,
        :meth:`~difflab.diffusion.denoiser.Denoiser.given`); a run with discretely diffused columns has none (its
        network also predicts their levels: :mod:`difflab.mixed` samples it)."""
        if self.layout is not None:
            raise ConfigError(f"{self.path}: its columns {', '.join(self.layout.names)} are diffused by "
                              f"{self.layout.process} diffusion; the ELBO, likelihoods and vector fields are built "
                              "for Gaussian runs only (train with --encoding onehot or bits for them)")
        return denoiser(self.config, self.model, self.diffusion)


def save_data(out: Path, cfg: RunConfig, data: PreparedData) -> None:
    write_json(
        out / FILES["data"],
        {
            "source": cfg.data.source,
            "toy": data.toy.name if data.toy else None,
            "columns": data.columns,
            "n_train": len(data.train),
            "n_heldout": 0 if data.heldout is None else len(data.heldout),
            "scaler": data.scaler.to_dict(),
            **({"table": data.table.to_dict()} if data.table is not None else {}),
        },
    )
    save_npy(out / FILES["train"], data.train)
    if data.heldout is not None:
        save_npy(out / FILES["heldout"], data.heldout)
    else:  # a resumed run may have switched from a file to a toy
        (out / FILES["heldout"]).unlink(missing_ok=True)
    if data.condition is not None:
        write_json(out / FILES["condition"], data.condition.to_dict())
    else:
        (out / FILES["condition"]).unlink(missing_ok=True)


def save_npy(path: Path, x: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        np.save(f, np.asarray(x, dtype=np.float64), allow_pickle=False)


def write_loss(path: Path, losses: list[float]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("step,loss\n")
        f.writelines(f"{i + 1},{v:.6g}\n" for i, v in enumerate(losses))


def read_loss(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, losses) from a run's loss.csv (``step,loss`` rows); a missing or malformed file is a RunDirError."""
    path = Path(path)
    try:
        arr = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path}: cannot read the loss log ({str(e).splitlines()[0][:100]})") from None
    if arr.shape[0] == 0 or arr.shape[1] != 2:
        raise RunDirError(f"{path}: expected rows of 'step,loss', found shape {arr.shape}")
    return arr[:, 0], arr[:, 1]


def check_out(out: Path, resume: bool) -> None:
    """Refuse an --out that would overwrite something that is not a fresh or resumable difflab run."""
    if out.exists() and not out.is_dir():
        raise DifflabError(f"{out}: exists and is not a folder")
    if resume:
        if not (out / FILES["checkpoint"]).exists():
            raise RunDirError(f"{out}: no {FILES['checkpoint']} to resume from")
        return
    if (out / FILES["model"]).exists():
        raise DifflabError(f"{out}: already holds a trained run; use --resume to continue it or another --out")
    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()) and not (out / FILES["config"]).exists():
        raise DifflabError(f"{out}: folder is not empty and not a difflab run; choose a new or empty --out")
    check_writable(out)


def write_run_files(out: Path, cfg: RunConfig, data: PreparedData, diffusion: Process) -> None:
    """config.json, schedule.json, data.json and the data arrays: everything but the weights and the loss."""
    if data.table is not None:  # a table spec JSON cannot hold fails here, before the first file is written
        json.dumps(data.table.to_dict())
    write_json(out / FILES["config"], cfg.model_dump(mode="json"))
    write_json(out / FILES["schedule"], diffusion.to_dict())
    save_data(out, cfg, data)


def save_model(out: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """model.safetensors, with the fingerprint of the run's files in its metadata (:mod:`difflab.integrity`):
    write it after config.json, data.json and schedule.json."""
    save_weights(out / FILES["model"], tensors, {**meta, FINGERPRINT: fingerprint(out)})


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Load a finished run directory; missing or corrupt files give a one-line RunDirError."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: run directory not found")
    with reading(path):  # not while another process writes it (difflab.lock)
        return _load_run(path, device)


def _load_run(path: Path, device: str) -> Run:
    for key in ("config", "data", "schedule", "model", "train"):
        if not (path / FILES[key]).exists():
            raise RunDirError(f"{path}: missing {FILES[key]}; not a finished difflab run")
    cfg = load_saved_config(read_json(path / FILES["config"]), str(path / FILES["config"]))
    process = _read_meta(path / FILES["schedule"],
                         lambda d: process_from_dict(check_schedule_dict(path / FILES["schedule"], d)))
    check_scaler_dict(path / FILES["data"], read_json(path / FILES["data"]))
    scaler, columns, toy, table = _read_meta(path / FILES["data"], lambda d: (
        scaler_from_dict(d["scaler"]), [str(c) for c in d["columns"]],
        get_dataset(d["toy"]) if d.get("toy") else None, TableSpec.from_dict(d["table"]) if "table" in d else None))
    if scaler.n_features != len(columns) or (table is not None and table.features != columns):
        raise RunDirError(f"{path / FILES['data']}: corrupt: {len(columns)} columns but a scaler for "
                          f"{scaler.n_features}" + (f" and a table of {len(table.features)} features" if table else ""))
    if process.T < 1 or (process.discrete and not np.all(np.isfinite(process.schedule.betas))):
        raise RunDirError(f"{path / FILES['schedule']}: corrupt: not a schedule of finite β_0..β_T")
    condition = _read_condition(path, cfg, columns)
    dim = len(columns) - (condition.stop - condition.start if condition else 0)
    tensors, meta = load_weights(path / FILES["model"])
    meta = meta if isinstance(meta, dict) else {}
    shape = network_shape(cfg, process, dim)
    if meta.get("T", shape["T"]) != shape["T"] or meta.get("columns", columns) != columns:
        raise RunDirError(f"{path / FILES['model']}: saved for T={meta.get('T')} and columns {meta.get('columns')}, "
                          f"but the run has T={shape['T']} and columns {columns}; it belongs to another run")
    check_meta(path, path / FILES["model"], meta, cfg)
    check_fingerprint(path, path / FILES["model"], meta)
    try:
        classes = {"n_classes": condition.n_classes} if condition else {}
        model = build_network(meta.get("model", cfg.model.name), dim, shape["T"], out_dim=shape["out_dim"],
                              options=meta.get("options", {}), layout=layout_of(table, condition), **classes)
        model.load_state_dict(tensors)
    except (RuntimeError, ConfigError, TypeError) as e:
        raise RunDirError(f"{path}: weights do not fit the model ({str(e).splitlines()[0][:100]})") from None
    model = model.to(device).eval()
    train = _load_npy(path / FILES["train"], len(columns))
    heldout = _load_npy(path / FILES["heldout"], len(columns)) if (path / FILES["heldout"]).exists() else None
    return Run(path, cfg, columns, scaler, process, model, toy, train, heldout,
               float(meta.get("seconds", math.nan)), table, condition)


def _read_condition(path: Path, cfg: RunConfig, columns: list[str]) -> Condition | None:
    """A conditional run's condition.json, checked against its config and features; None for other runs."""
    if cfg.data.condition is None:
        return None
    file = path / FILES["condition"]
    if not file.exists():
        raise RunDirError(f"{path}: missing {FILES['condition']}; the run was trained with --condition "
                          f"{cfg.data.condition}")
    condition = _read_meta(file, Condition.from_dict)
    if condition.column != cfg.data.condition or condition.stop > len(columns):
        raise RunDirError(f"{file}: corrupt: condition {condition.column!r} on features {condition.start}:"
                          f"{condition.stop} does not fit the run ({cfg.data.condition!r}, {len(columns)} features)")
    return condition


def _read_meta(path: Path, parse: Callable[[Any], Any]) -> Any:
    """Parse a run's JSON file with ``parse``; any shape it does not expect is a one-line RunDirError."""
    try:
        return parse(read_json(path))
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as e:
        raise RunDirError(f"{path}: corrupt ({type(e).__name__}: {str(e).splitlines()[0][:100]})") from None


def _load_npy(path: Path, dim: int) -> np.ndarray:
    x = load_npy(path)  # its header checked first: a claimed shape the file cannot hold is refused unallocated
    if x.ndim != 2 or x.shape[1] != dim:
        raise RunDirError(f"{path}: expected an array of shape (rows, {dim}), found {x.shape}")
    return x
