"""Real tables shipped with scikit-learn, as ``--data sklearn:NAME``: the features under scikit-learn's own names and
the prediction target as a column ``target``, so that a generated row is a whole labelled row.

The target of a classification set is categorical (its class codes 0..K-1); that of a regression set is a number.
The data files come with scikit-learn itself: nothing is downloaded. diabetes is loaded in its original units
(``scaled=False``: age in years, sex coded 1/2, ...), not scikit-learn's default mean-centred, norm-scaled copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from difflab.errors import ConfigError

PREFIX = "sklearn:"
TARGET = "target"


@dataclass(frozen=True)
class SklearnSet:
    """A scikit-learn loader (``sklearn.datasets.<loader>``), its task and a one-line description."""

    name: str
    loader: str
    task: str  # "classification" | "regression"
    description: str
    options: dict[str, Any] = field(default_factory=dict)


SKLEARN_SETS: dict[str, SklearnSet] = {
    s.name: s
    for s in (
        SklearnSet("iris", "load_iris", "classification", "150 iris flowers, 4 measurements, 3 species"),
        SklearnSet("wine", "load_wine", "classification", "178 wines, 13 chemical measurements, 3 cultivars"),
        SklearnSet("breast_cancer", "load_breast_cancer", "classification",
                   "569 tumours, 30 cell-nucleus features, malignant or benign"),
        SklearnSet("diabetes", "load_diabetes", "regression",
                   "442 patients, 10 baseline variables in original units, disease progression after a year",
                   {"scaled": False}),
        SklearnSet("digits", "load_digits", "classification",
                   "1797 handwritten digits, 64 pixel intensities 0..16, the digit 0..9"),
    )
}


def is_sklearn_source(source: str) -> bool:
    return source.startswith(PREFIX)


def get_sklearn_set(source: str) -> SklearnSet:
    """The set named by ``sklearn:NAME``; an unknown name is a ConfigError listing the choices."""
    name = source.removeprefix(PREFIX)
    try:
        return SKLEARN_SETS[name]
    except KeyError:
        choices = ", ".join(PREFIX + n for n in SKLEARN_SETS)
        raise ConfigError(f"unknown scikit-learn data set {source!r}; choose one of: {choices}") from None


def load_sklearn_frame(source: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The whole table of ``sklearn:NAME`` (features, then ``target``) and the kinds it declares for its columns
    ({"target": "categorical"} for a classification set)."""
    spec = get_sklearn_set(source)
    from sklearn import datasets  # sklearn takes seconds to import

    bunch = getattr(datasets, spec.loader)(as_frame=True, **spec.options)
    frame = bunch.frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    hints = {TARGET: "categorical"} if spec.task == "classification" else {}
    return frame.reset_index(drop=True), hints


def list_sklearn_sets() -> list[tuple[str, str]]:
    """(``sklearn:NAME``, one-line description with the task) for every set, in registry order."""
    return [(PREFIX + s.name, f"{s.description} ({s.task})") for s in SKLEARN_SETS.values()]
