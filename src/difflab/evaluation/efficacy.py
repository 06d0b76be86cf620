"""Machine-learning efficacy ("train on synthetic, test on real"): is a model fitted to generated rows as good at
predicting a target as one fitted to the real training rows?

Both models are scikit-learn random forests with the same settings and seed; both are scored on the same held-out
real rows, which neither saw. The score is macro-averaged F1 for a categorical or boolean target (every class
counts equally; TabDDPM reports F1 too) and R² for a number. ``ratio`` = synthetic-trained score / real-trained
score: 1 means the generated rows carry everything the real ones teach about the target.

Features are the table's other columns, numbers as they are and labels one-hot (a forest needs no scaling).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from difflab.data.table import TableSpec
from difflab.errors import ConfigError, DataError

FOREST_TREES = 100
CLASSIFICATION_KINDS = ("boolean", "categorical")


def task_of(spec: TableSpec, target: str) -> str:
    """"classification" for a label target, "regression" for a number; a constant target is an error."""
    kind = spec.column(target).kind
    if kind == "constant":
        raise DataError(f"target column {target!r} is constant; there is nothing to predict")
    return "classification" if kind in CLASSIFICATION_KINDS else "regression"


def _xy(frame: pd.DataFrame, features: TableSpec, target: str, task: str, source: str) -> tuple[np.ndarray, Any]:
    x = features.encode(frame, source=source) if features.columns else np.zeros((len(frame), 0))
    col = frame[target]
    y = col.astype(object).where(col.notna(), None).astype(str).to_numpy() if task == "classification" \
        else col.to_numpy(dtype=np.float64)
    return x, y


def ml_efficacy(
    synthetic: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, *, spec: TableSpec, target: str, seed: int = 0,
) -> dict[str, Any]:
    """Score a forest fitted to ``synthetic`` and one fitted to ``train`` on ``test`` (all three rows of ``spec``'s
    table), for predicting ``target``. Returns ``task``, ``score`` (the metric's name), ``synthetic``, ``real``,
    ``ratio`` (inf if the real score is 0 and the synthetic one positive), ``target``, ``n_train``, ``n_test``."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.metrics import f1_score, r2_score

    task = task_of(spec, target)
    others = [c for c in spec.columns if c.name != target and c.kind != "constant"]
    if not others:
        raise ConfigError(f"ML efficacy needs columns besides the target {target!r}")
    features = replace(spec, columns=others, encoding="onehot")
    if len(test) < 2:
        raise DataError(f"ML efficacy needs at least 2 held-out rows, got {len(test)}")
    scores = {}
    for name, rows in (("synthetic", synthetic), ("real", train)):
        x, y = _xy(rows, features, target, task, name)
        x_test, y_test = _xy(test, features, target, task, "held-out rows")
        if task == "classification":
            model = RandomForestClassifier(n_estimators=FOREST_TREES, random_state=seed, n_jobs=1).fit(x, y)
            scores[name] = float(f1_score(y_test, model.predict(x_test), average="macro", zero_division=0.0))
        else:
            model = RandomForestRegressor(n_estimators=FOREST_TREES, random_state=seed, n_jobs=1).fit(x, y)
            scores[name] = float(r2_score(y_test, model.predict(x_test)))
    real, synth = scores["real"], scores["synthetic"]
    ratio = synth / real if real > 0 else (1.0 if synth == real else float("inf") if synth > 0 else float("nan"))
    return {"task": task, "score": "macro F1" if task == "classification" else "R²", "synthetic": synth,
            "real": real, "ratio": ratio, "target": target, "n_train": len(train), "n_synthetic": len(synthetic),
            "n_test": len(test)}
