"""Data: 2-D toy distributions, numeric tables from files, per-column scalers and hold-out splits.

:mod:`difflab.data.prepare` readies a run's data (it needs torch, which the rest of this package does not).
"""

from difflab.data.files import KNOWN_EXTENSIONS, read_table
from difflab.data.scalers import (
    SCALERS,
    IdentityScaler,
    MinMaxScaler,
    Scaler,
    StandardScaler,
    make_scaler,
    scaler_from_dict,
)
from difflab.data.sources import TOY_COLUMNS, Dataset, holdout_split, load_data
from difflab.data.toy import DATASETS, GaussianMixture, ToyDataset, get_dataset, list_datasets

__all__ = [
    "DATASETS",
    "KNOWN_EXTENSIONS",
    "SCALERS",
    "TOY_COLUMNS",
    "Dataset",
    "GaussianMixture",
    "IdentityScaler",
    "MinMaxScaler",
    "Scaler",
    "StandardScaler",
    "ToyDataset",
    "get_dataset",
    "holdout_split",
    "list_datasets",
    "load_data",
    "make_scaler",
    "read_table",
    "scaler_from_dict",
]
