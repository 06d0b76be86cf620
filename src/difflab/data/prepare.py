"""A run's training data made ready: loaded, held-out rows set aside, column kinds decided, the scaler fitted on the
training rows only.

A table whose columns are all plain numbers is prepared exactly as difflab always prepared numeric files: its
features are its columns and the user's scaler sees them all. Any other table (an integer, boolean, categorical or
constant column, or missing values modelled as a level) gets a :class:`~difflab.data.table.TableSpec` that maps its
rows to features and back, and a :class:`~difflab.data.table_scaler.TableScaler`. A table with a condition column
(``cfg.condition``) always gets a spec; the column keeps its features there, and :class:`PreparedData` gives the
network the other features (:attr:`PreparedData.model_input`) and the column's class codes (:attr:`PreparedData.labels`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from difflab.config import DataConfig
from difflab.data.coltypes import EPOCH, check_column_types, check_width, is_temporal
from difflab.data.columns import OVERRIDES, check_values, plan_kinds
from difflab.data.condition import Condition, condition_of, plan_condition
from difflab.data.files import frame_to_array
from difflab.data.layout import Layout, layout_of
from difflab.data.scalers import Scaler, TableScaler, make_scaler
from difflab.data.sources import holdout_split, load_data, load_frame
from difflab.data.table import TableSpec, fit_table
from difflab.data.toy import DATASETS, ToyDataset
from difflab.errors import ConfigError, DataError


@dataclass
class PreparedData:
    """Training rows and held-out rows (files only) as features in data units, the feature names (``columns``),
    the fitted scaler, for a table with other than plain-number columns its spec (None otherwise), and for a
    conditional run its condition column."""

    train: np.ndarray
    heldout: np.ndarray | None
    columns: list[str]
    toy: ToyDataset | None
    scaler: Scaler
    table: TableSpec | None = None
    condition: Condition | None = None

    @property
    def scaled(self) -> torch.Tensor:
        return torch.as_tensor(self.scaler.transform(self.train), dtype=torch.float32)

    @property
    def model_dim(self) -> int:
        """The features the network generates: all but a condition column's."""
        return len(self.columns) - (self.condition.stop - self.condition.start if self.condition else 0)

    @property
    def model_input(self) -> torch.Tensor:
        """The scaled training rows as the network sees them (a condition column's features left out)."""
        x = self.scaled
        return x[:, self.condition.model_columns(x.shape[1])] if self.condition else x

    @property
    def layout(self) -> Layout | None:
        """Which generated features a discrete process diffuses (``--encoding multinomial|masked``), else None."""
        return layout_of(self.table, self.condition)

    @property
    def labels(self) -> torch.Tensor | None:
        """The training rows' class codes (N,) of a conditional run, else None."""
        return torch.as_tensor(self.condition.codes(self.train), dtype=torch.long) if self.condition else None


def prepare_data(cfg: DataConfig) -> PreparedData:
    """Load the source, set aside held-out rows of a table, fit the scaler on the training rows only."""
    if cfg.source in DATASETS:
        if cfg.condition is not None:
            raise ConfigError(f"--condition {cfg.condition}: the toy {cfg.source!r} has no label column; condition a "
                              "table (a .csv/.parquet file or sklearn:NAME) on one of its columns")
        ds = load_data(cfg.source, columns=cfg.columns, n=cfg.n, seed=cfg.seed)
        return PreparedData(ds.x, None, ds.columns, ds.toy, _fit_scaler(cfg, ds.x, ds.columns))
    table = load_frame(cfg.source, columns=cfg.columns, n=cfg.n, seed=cfg.seed)
    return prepare_frame(table.frame, cfg, hints=table.hints)


def prepare_frame(frame: pd.DataFrame, cfg: DataConfig, *, hints: dict[str, str] | None = None,
                  as_table: bool = False) -> PreparedData:
    """Prepare the rows of ``frame`` (``cfg.source`` names it in messages); ``as_table`` keeps a table spec even
    when every column is a plain number (the estimator does, to give back the input's dtypes)."""
    source = cfg.source
    train_rows, held_rows = np.arange(len(frame)), None
    if cfg.holdout > 0:
        train_rows, held_rows = holdout_split(len(frame), cfg.holdout, cfg.seed)
        if len(train_rows) < 2:
            raise DataError(f"{source}: too few rows ({len(frame)}) to keep {cfg.holdout:.0%} held out")
    check_column_types(frame, source=source, declared=[*(cfg.continuous or []), *(cfg.categorical or [])])
    train_frame = frame.iloc[train_rows]
    kinds = plan_kinds(train_frame, {k: getattr(cfg, k) for k in OVERRIDES}, source=source, hints=hints)
    if cfg.condition is not None:
        kinds = plan_condition(train_frame, kinds, cfg.condition, source=source)
    check_values(frame, kinds, source=source, missing=cfg.missing)
    if not as_table and cfg.condition is None and all(k == "continuous" for k in kinds.values()) \
            and not frame.isna().any().any() and not any(is_temporal(frame[c]) for c in frame.columns):
        x = frame_to_array(source, frame)
        heldout = x[held_rows] if held_rows is not None else None
        return PreparedData(x[train_rows], heldout, list(kinds), None, _fit_scaler(cfg, x[train_rows], list(kinds)))
    try:
        spec = fit_table(train_frame, kinds, encoding=cfg.encoding, levels_from=frame,
                         roles={cfg.condition: "condition"} if cfg.condition is not None else None)
    except DataError as e:
        raise DataError(f"{source}: {e}") from None
    check_width(spec, source)  # before the (rows × features) matrix is made
    temporal = [repr(c.name) for c in spec.columns if is_temporal(c.dtype)]
    if temporal:
        spec.notes.append(f"modelled as seconds (datetimes: since {EPOCH}), decoded back: {', '.join(temporal)}")
    constant = [c.name for c in spec.columns if c.kind == "constant"]
    if constant:
        shown = ", ".join(repr(c) for c in constant[:5]) + (f" and {len(constant) - 5} more" if len(constant) > 5 else "")
        spec.notes.append(f"constant in the training rows, repeated in every sample: {shown}")
        warnings.warn(f"{source}: {'column' if len(constant) == 1 else 'columns'} {shown} "
                      f"{'is' if len(constant) == 1 else 'are'} constant in the training rows; every sample repeats "
                      "the value", stacklevel=2)
    train = spec.encode(train_frame, source=source)
    heldout = spec.encode(frame.iloc[held_rows], source=source) if held_rows is not None else None
    numeric = len(spec.features) - len(spec.indicators)
    scaler = TableScaler(make_scaler(cfg.scaler) if numeric else None, spec.indicators, len(spec.features))
    condition = condition_of(spec, cfg.condition, train) if cfg.condition is not None else None
    return PreparedData(train, heldout, spec.features, None, _fit_scaler(cfg, train, spec.features, scaler), spec,
                        condition)


def _fit_scaler(cfg: DataConfig, x: np.ndarray, columns: list[str], scaler: Scaler | None = None) -> Scaler:
    try:
        return (scaler or make_scaler(cfg.scaler)).fit(x, columns=columns)
    except DataError as e:  # e.g. a constant column: name the file it came from
        raise DataError(f"{cfg.source}: {e}") from None
