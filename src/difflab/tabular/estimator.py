"""A scikit-learn / SDV style estimator over difflab's pipeline: ``fit`` a table, ``sample`` rows like it.

:class:`TabularDiffusion` turns its constructor arguments into a run config (a preset with overrides), prepares the
table in memory (:func:`difflab.data.prepare.prepare_frame`, keeping column kinds and dtypes), trains with
:func:`difflab.pipeline.train_run` into a run directory and samples with :func:`difflab.sample.sample_frame`. The
run directory is the estimator's saved form: ``save`` copies it, ``load`` reads it back, and ``difflab sample`` /
``difflab evaluate`` work on it like on any run.
"""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from difflab.config import RunConfig, resolve_config
from difflab.data.prepare import prepare_frame
from difflab.errors import ConfigError, DataError, DifflabError
from difflab.io import read_json, write_json
from difflab.pipeline import train_run
from difflab.rundir import Run, load_run
from difflab.sample import sample_frame
from difflab.signals import temp_folder

ESTIMATOR_FILE = "estimator.json"  # in the run directory: what type fit() was given, to give the same back

# Constructor argument → (config section, key). ``width`` and ``depth`` go into model.options.
_KNOBS: dict[str, tuple[str, str]] = {
    "steps": ("train", "steps"), "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
    "ema": ("train", "ema"), "seed": ("train", "seed"), "device": ("train", "device"),
    "T": ("diffusion", "T"), "schedule": ("diffusion", "schedule"), "model": ("model", "name"),
    "scaler": ("data", "scaler"), "encoding": ("data", "encoding"), "categorical": ("data", "categorical"),
    "integer": ("data", "integer"), "continuous": ("data", "continuous"), "missing": ("data", "missing"),
    "holdout": ("data", "holdout"), "sampler": ("sample", "sampler"), "sample_steps": ("sample", "steps"),
    "condition": ("data", "condition"), "label_dropout": ("train", "label_dropout"), "select": ("train", "select"),
}
_PARAMS = ("preset", *_KNOBS, "width", "depth")


class TabularDiffusion:
    """A diffusion model of a table: ``fit(X)`` on a DataFrame (or a 2-D array), ``sample(n)`` new rows of the same
    columns and dtypes.

    Every argument is a knob of difflab's run config; None keeps the preset's value. Column kinds are detected from
    the data (numbers, whole numbers, booleans, categories, constants) and can be named: ``categorical=["city"]``.

    Args:
        preset: starting recipe, "table" (difflab's for tables), "recommended" or "seed".
        steps, batch_size, lr, ema, seed, device: training (``seed`` fixes the weights, batches and noise).
        T, schedule: the diffusion; model, width, depth: the network ("mlp" with its width and depth).
        scaler: numbers to model units, "quantile" | "minmax" | "standard" | "none".
        encoding: categorical columns as Gaussian features, "onehot" or "bits" (analog bits), or diffused by a
            discrete process beside the numbers' Gaussian one, "multinomial" or "masked" (absorbing state).
        categorical, integer, continuous: column names whose kind to set instead of detecting it.
        missing: "error" (missing values are refused) or "category" (modelled as their own level).
        holdout: fraction of rows kept out of training (so ``difflab evaluate`` has real rows to compare with).
        sampler, sample_steps: how ``sample`` draws ("ddpm", "ddim", "dpm++"; model calls).
        condition: a column to condition on (categorical, or few whole numbers): the network's class label, so that
            ``sample(n, where={column: value}, guidance=w)`` draws rows of one class (classifier-free guidance,
            Ho & Salimans 2022); label_dropout: the share of training rows shown without their label (default 0.1).
        select: the weights to keep, "last" or "heldout" (the step whose samples are no nearer to the training rows
            than the held-out rows are; needs ``holdout`` > 0).

    Example:
        >>> import numpy as np, pandas as pd
        >>> from difflab import TabularDiffusion
        >>> rng = np.random.default_rng(0)
        >>> df = pd.DataFrame({"height": rng.normal(170, 10, 200), "age": rng.integers(18, 90, 200),
        ...                    "smoker": rng.random(200) < 0.3, "city": rng.choice(["Bern", "Oslo", "Pisa"], 200)})
        >>> model = TabularDiffusion(steps=300, seed=0).fit(df)
        >>> rows = model.sample(5, seed=1)
        >>> list(rows.columns) == list(df.columns) and rows.dtypes.equals(df.dtypes)
        True
        >>> bool(rows["city"].isin(["Bern", "Oslo", "Pisa"]).all() and rows["age"].between(18, 89).all())
        True
        >>> by_city = TabularDiffusion(steps=300, seed=0, condition="city").fit(df)
        >>> set(by_city.sample(5, seed=1, where={"city": "Oslo"}, guidance=1.0)["city"])
        {'Oslo'}
    """

    def __init__(
        self, *, preset: str = "table", steps: int | None = None, batch_size: int | None = None,
        lr: float | None = None, ema: float | None = None, seed: int = 0, device: str = "auto",
        T: int | None = None, schedule: str | None = None, model: str | None = None, width: int | None = None,
        depth: int | None = None, scaler: str | None = None, encoding: str | None = None,
        categorical: list[str] | None = None, integer: list[str] | None = None,
        continuous: list[str] | None = None, missing: str = "error", holdout: float = 0.0,
        sampler: str | None = None, sample_steps: int | None = None, condition: str | None = None,
        label_dropout: float | None = None, select: str | None = None,
    ) -> None:
        self.preset, self.steps, self.batch_size, self.lr, self.ema = preset, steps, batch_size, lr, ema
        self.seed, self.device, self.T, self.schedule, self.model = seed, device, T, schedule, model
        self.width, self.depth, self.scaler, self.encoding = width, depth, scaler, encoding
        self.categorical, self.integer, self.continuous = categorical, integer, continuous
        self.missing, self.holdout, self.sampler, self.sample_steps = missing, holdout, sampler, sample_steps
        self.condition, self.label_dropout, self.select = condition, label_dropout, select

    # -- scikit-learn's parameter protocol ---------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, by name (``deep`` is accepted for scikit-learn and has no effect)."""
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params: Any) -> TabularDiffusion:
        """Set constructor arguments by name; an unknown name is a ConfigError. A fitted model stays as it is until
        the next ``fit``."""
        unknown = [k for k in params if k not in _PARAMS]
        if unknown:
            raise ConfigError(f"unknown parameter {unknown[0]!r} of TabularDiffusion; valid: {', '.join(_PARAMS)}")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def config(self, source: str = "DataFrame") -> RunConfig:
        """The run config the current parameters give (validated; a bad value is a one-line ConfigError)."""
        over: dict[str, dict[str, Any]] = {"data": {"source": source}}
        for name, (section, key) in _KNOBS.items():
            over.setdefault(section, {})[key] = getattr(self, name)
        cfg = resolve_config(self.preset, overrides=over, labels={f"{s}.{k}": n for n, (s, k) in _KNOBS.items()})
        options = {k: v for k, v in (("width", self.width), ("depth", self.depth)) if v is not None}
        if options:
            cfg = cfg.model_copy(update={"model": cfg.model.model_copy(
                update={"options": {**cfg.model.options, **options}})})
        return cfg

    # -- fit, sample, save, load --------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame | np.ndarray, y: None = None, *, progress: bool = False) -> TabularDiffusion:
        """Train on the rows of ``X`` (``y`` is ignored: a target is one of the table's columns). Returns self."""
        frame, output = _as_frame(X)
        cfg = self.config(f"<{output['type']}>")
        data = prepare_frame(frame, cfg.data, as_table=True)
        folder = temp_folder("estimator")  # named by pid: swept by a later fit if this process is killed
        self._cleanup = weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
        run = train_run(cfg, folder / "run", progress=progress, data=data)
        write_json(run.path / ESTIMATOR_FILE, output)
        self.run_, self.output_ = run, output
        return self

    def sample(self, n: int, *, seed: int = 0, where: dict[str, Any] | None = None,
               guidance: float | None = None) -> pd.DataFrame | np.ndarray:
        """``n`` new rows: a DataFrame of the fitted columns and dtypes, or an array of the fitted array's dtype.
        Fitted with a ``condition``: ``where={column: value}`` gives rows of that class (default: classes drawn
        from the training frequencies), ``guidance`` the classifier-free guidance weight w ≥ 0 (default 0)."""
        run = self._fitted()
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError(f"n must be a positive integer, got {n!r}")
        frame = sample_frame(run, int(n), seed=seed, sampler=self.sampler, steps=self.sample_steps, where=where,
                             guidance=guidance)
        if self.output_["type"] == "ndarray":
            return frame.to_numpy(dtype=self.output_["dtype"]) if self.output_["dtype"] != "object" \
                else frame.to_numpy(dtype=object)
        return frame

    def impute(self, X: pd.DataFrame | np.ndarray, *, draws: int = 1, seed: int = 0, **options: Any
               ) -> pd.DataFrame | np.ndarray | list[pd.DataFrame | np.ndarray]:
        """``X`` with its missing cells (NaN, None) drawn from the model given each row's observed cells; the
        observed cells come back as they are. ``draws`` = M > 1 gives a list of M completed tables (multiple
        imputation). ``options``: ``resample`` and ``jump`` (RePaint's U and j), sampler settings
        (:func:`difflab.impute.impute_frame`)."""
        from difflab.impute import impute_frame

        frame, _ = _as_frame(X, verb="impute", min_rows=1)
        frames = impute_frame(self._fitted(), frame, draws=draws, seed=seed, source="X",
                              **{"sampler": self.sampler, "steps": self.sample_steps, **options})
        if self.output_["type"] == "ndarray":
            frames = [f.to_numpy(dtype=self.output_["dtype"] if self.output_["dtype"] != "object" else object)
                      for f in frames]
        return frames[0] if draws == 1 else frames

    def save(self, path: str | Path) -> Path:
        """Copy the fitted run directory to ``path`` (new, or an empty folder); returns the path."""
        run, path = self._fitted(), Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise DifflabError(f"{path}: exists and is not an empty folder; save to a new path")
        staging = path.with_name(f".{path.name}.saving")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            shutil.copytree(run.path, staging, ignore=shutil.ignore_patterns("checkpoint.safetensors"))
            if path.exists():
                path.rmdir()
            staging.rename(path)  # the folder appears whole or not at all
        except OSError as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise DifflabError(f"{path}: cannot save ({e.strerror or e})") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> TabularDiffusion:
        """A fitted estimator from a run directory written by :meth:`save` (or by ``difflab train``)."""
        run = load_run(path)
        cfg = run.config
        est = cls(preset=cfg.preset or "table", steps=cfg.train.steps, batch_size=cfg.train.batch_size,
                  lr=cfg.train.lr, ema=cfg.train.ema, seed=cfg.train.seed, device=cfg.train.device,
                  T=cfg.diffusion.T, schedule=cfg.diffusion.schedule, model=cfg.model.name,
                  width=cfg.model.options.get("width"), depth=cfg.model.options.get("depth"),
                  scaler=cfg.data.scaler, encoding=cfg.data.encoding, categorical=cfg.data.categorical,
                  integer=cfg.data.integer, continuous=cfg.data.continuous, missing=cfg.data.missing,
                  holdout=cfg.data.holdout, sampler=cfg.sample.sampler, sample_steps=cfg.sample.steps,
                  condition=cfg.data.condition, label_dropout=cfg.train.label_dropout, select=cfg.train.select)
        file = Path(path) / ESTIMATOR_FILE
        est.run_ = run
        est.output_ = read_json(file) if file.exists() else {"type": "DataFrame"}
        return est

    def _fitted(self) -> Run:
        if not hasattr(self, "run_"):
            raise DifflabError("this TabularDiffusion is not fitted yet; call fit(X) first")
        return self.run_

    def __repr__(self) -> str:
        given = {k: v for k, v in self.get_params().items() if v is not None}
        return f"TabularDiffusion({', '.join(f'{k}={v!r}' for k, v in given.items())})"


def _as_frame(X: Any, *, verb: str = "fit", min_rows: int = 2) -> tuple[pd.DataFrame, dict[str, str]]:
    """The rows of ``X`` as a DataFrame, and how to give samples back: as a DataFrame, or an array of X's dtype."""
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 0 or len(X) < min_rows:
            raise DataError(f"{verb} needs a table of at least {min_rows} rows and 1 column, got shape {X.shape}")
        if len(set(map(str, X.columns))) != X.shape[1]:
            raise DataError(f"{verb} needs distinct column names")
        return X.set_axis([str(c) for c in X.columns], axis=1).reset_index(drop=True), {"type": "DataFrame"}
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[1] == 0 or arr.shape[0] < min_rows:
        raise DataError(f"{verb} needs a 2-D array of at least {min_rows} rows and 1 column, got shape {arr.shape}")
    frame = pd.DataFrame(arr, columns=[f"x{j}" for j in range(arr.shape[1])])
    return frame, {"type": "ndarray", "dtype": str(arr.dtype)}
