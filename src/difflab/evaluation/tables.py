"""The checks a synthetic table is judged by, on rows: per-column distances, correlations, piling at range ends and
ML efficacy, each next to what real rows score; and the common ground the distance metrics need.

Generated and real rows are compared as tables (:class:`~difflab.data.table.TableSpec` decodes a run's features),
so runs that encode categories differently (one-hot, analog bits) are measured alike. The *evaluation matrix* of
rows is numbers as they are, labels one-hot, missing-value flags; the distance metrics (W1, energy, MMD, SWD) and
distance to closest record run on it, by default after standardising every column by the reference's mean and sd.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from difflab.data.table import ColumnSpec, TableSpec
from difflab.evaluation.efficacy import ml_efficacy
from difflab.evaluation.marginals import (
    NUMBER_KINDS,
    column_distances,
    correlation_difference,
    piled_at_bounds,
)


def numeric_spec(columns: list[str]) -> TableSpec:
    """The spec of a table of plain numbers (a numeric run, a sample file): every column continuous."""
    return TableSpec([ColumnSpec(c, "continuous", "float64") for c in columns])


def evaluation_matrix(frame: pd.DataFrame, spec: TableSpec, *, source: str = "rows") -> np.ndarray:
    """Numbers as they are, labels one-hot, missing-value flags: the (N, D') matrix distances are taken on."""
    return spec.with_encoding("onehot").encode(frame, source=source)


class Standardiser:
    """x → (x - mean) / sd with the mean and sd of ``reference`` (a column constant there is only centred)."""

    def __init__(self, reference: np.ndarray) -> None:
        self.mean = reference.mean(axis=0)
        sd = reference.std(axis=0)
        self.sd = np.where(sd > 0, sd, 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.sd


def _kinds(spec: TableSpec) -> dict[str, str]:
    return {c.name: c.kind for c in spec.columns}


def _summary(per_column: dict[str, dict[str, Any]], floor: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not per_column:
        return {}
    worst = max(per_column, key=lambda c: per_column[c]["value"])
    return {
        "mean": float(np.mean([v["value"] for v in per_column.values()])),
        "floor": float(np.mean([v["value"] for v in floor.values()])),
        "worst": worst, "worst_stat": per_column[worst]["stat"], "worst_value": per_column[worst]["value"],
        "worst_floor": floor[worst]["value"],
        "per_column": {c: {**v, "floor": floor[c]["value"]} for c, v in per_column.items()},
    }


def table_checks(
    synthetic: pd.DataFrame, real: pd.DataFrame, reference: pd.DataFrame, spec: TableSpec, *,
    target: str | None = None, seed: int = 0, train: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Compare ``synthetic`` rows with the ``reference`` rows (held-out real rows), next to the same numbers for
    ``real`` rows (training rows, or other real rows) of the same count against the same reference.

    Uses the first len(``real``) synthetic rows. Returns ``columns`` (per-column KS / TV with floors, their mean
    and the worst column), ``correlation`` (mean |Δ corr| and floor), ``piled`` (per number column the share of
    synthetic and of reference rows at or beyond the range of ``train`` (default ``real``); the worst excess), and
    with a ``target`` ``efficacy`` (:func:`~difflab.evaluation.efficacy.ml_efficacy` trained on ``real`` rows).
    """
    synthetic = synthetic.iloc[: len(real)].reset_index(drop=True)
    train = real if train is None else train
    kinds = _kinds(spec)
    out: dict[str, Any] = {"n_synthetic": len(synthetic), "n_real": len(real), "n_reference": len(reference)}
    out["columns"] = _summary(column_distances(synthetic, reference, kinds), column_distances(real, reference, kinds))
    ref_m = evaluation_matrix(reference, spec, source="reference rows")
    out["correlation"] = {"value": correlation_difference(evaluation_matrix(synthetic, spec), ref_m),
                          "floor": correlation_difference(evaluation_matrix(real, spec), ref_m)}
    numbers = [c for c, k in kinds.items() if k in NUMBER_KINDS]
    if numbers:
        bounds = train[numbers].to_numpy(dtype=np.float64)
        low, high = np.nanmin(bounds, axis=0), np.nanmax(bounds, axis=0)
        gen = piled_at_bounds(synthetic[numbers].to_numpy(dtype=np.float64), low, high)
        ref = piled_at_bounds(reference[numbers].to_numpy(dtype=np.float64), low, high)
        worst = int(np.argmax(gen - ref))
        out["piled"] = {"worst": numbers[worst], "synthetic": float(gen[worst]), "reference": float(ref[worst]),
                        "per_column": {c: {"synthetic": float(g), "reference": float(r)}
                                       for c, g, r in zip(numbers, gen, ref)}}
    if target is not None:
        out["efficacy"] = ml_efficacy(synthetic, real, reference, spec=spec, target=target, seed=seed)
    return out


def format_checks(checks: dict[str, Any]) -> list[str]:
    """The row checks as text lines, each number next to what real rows score."""
    lines = []
    sizes = (f"{checks['n_synthetic']} samples and {checks['n_real']} real rows (the floor) vs "
             f"{checks['n_reference']} reference rows")
    c = checks.get("columns")
    if c:
        lines.append(f"per column, {sizes}: mean KS/TV {c['mean']:.3f} (floor {c['floor']:.3f}); worst "
                     f"{c['worst']!r} {c['worst_stat'].upper()} {c['worst_value']:.3f} (floor {c['worst_floor']:.3f})")
    r = checks["correlation"]
    lines.append(f"correlations: mean |Δ corr| {r['value']:.3f} (floor {r['floor']:.3f})")
    p = checks.get("piled")
    if p:
        lines.append(f"at a training min or max: worst {p['worst']!r}, {p['synthetic']:.1%} of samples vs "
                     f"{p['reference']:.1%} of reference rows")
    e = checks.get("efficacy")
    if e:
        lines.append(f"ML efficacy (random forest predicting {e['target']!r}, {e['score']} on {e['n_test']} reference "
                     f"rows): trained on samples {e['synthetic']:.3f} vs on real rows {e['real']:.3f}, "
                     f"ratio {e['ratio']:.3f}")
    return lines
