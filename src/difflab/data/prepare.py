"""A run's training data made ready: loaded, held-out rows set aside (files), the scaler fitted on the rest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from difflab.config import DataConfig
from difflab.data.scalers import Scaler, make_scaler
from difflab.data.sources import holdout_split, load_data
from difflab.data.toy import ToyDataset
from difflab.errors import DataError


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


def prepare_data(cfg: DataConfig) -> PreparedData:
    """Load the source, set aside held-out rows of a file, fit the scaler on the training rows only."""
    ds = load_data(cfg.source, columns=cfg.columns, n=cfg.n, seed=cfg.seed)
    train, heldout = ds.x, None
    if ds.toy is None and cfg.holdout > 0:
        tr, te = holdout_split(len(ds.x), cfg.holdout, cfg.seed)
        if len(tr) < 2:
            raise DataError(f"{cfg.source}: too few rows ({len(ds.x)}) to keep {cfg.holdout:.0%} held out")
        train, heldout = ds.x[tr], ds.x[te]
    try:
        scaler = make_scaler(cfg.scaler).fit(train, columns=ds.columns)
    except DataError as e:  # e.g. a constant column: name the file it came from
        raise DataError(f"{cfg.source}: {e}") from None
    return PreparedData(train, heldout, ds.columns, ds.toy, scaler)
