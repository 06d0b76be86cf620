"""Whether a run directory's files still belong together: the weights, and the config, scaler and schedule they were
trained with.

Training stores a *fingerprint* in the weights' metadata: a SHA-256 of what decides how the network's output is
read and turned into data — the config's data (but its source path), diffusion and model sections, data.json (the
fitted scaler, the columns, a table's spec; but its source path), schedule.json and condition.json — as they were
written next to the weights. :func:`check_fingerprint` recomputes it when the run is loaded, so an edited
``parameterization`` in config.json, a tampered scaler in data.json or a schedule of another run is refused in one
line instead of sampling wrong numbers with exit status 0. Runs written before fingerprints existed are checked on
what their metadata records (:func:`check_meta`). :func:`check_schedule_dict` and :func:`check_scaler_dict` refuse
values no training writes (β outside [0, 1], a T above the limit, a NaN scaler) before anything is built from them.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from difflab.errors import RunDirError
from difflab.io import read_json
from difflab.limits import check

FINGERPRINT = "fingerprint"
# The files whose content the fingerprint covers, and the keys of each left out (a source path may be moved).
_COVERED = {"config.json": ("preset", "train", "sample"), "data.json": ("source",), "schedule.json": (),
            "condition.json": ()}
_CONFIG_LEFT_OUT = {"data": ("source",)}


def _canonical(name: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    kept = {k: v for k, v in raw.items() if k not in _COVERED[name]}
    if name == "config.json":
        kept = {k: ({kk: vv for kk, vv in v.items() if kk not in _CONFIG_LEFT_OUT.get(k, ())}
                    if isinstance(v, dict) else v) for k, v in kept.items()}
    return kept


def fingerprint(folder: str | Path) -> str:
    """The SHA-256 (hex) of the covered files of the run in ``folder``, as they are on disk now."""
    folder = Path(folder)
    parts = {}
    for name in _COVERED:
        path = folder / name
        parts[name] = _canonical(name, read_json(path)) if path.exists() else None
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_fingerprint(folder: Path, weights: Path, meta: dict[str, Any]) -> None:
    """Refuse a run whose config, scaler or schedule changed after its weights were trained (runs without a
    fingerprint, written before difflab stored one, pass)."""
    saved = meta.get(FINGERPRINT)
    if saved is None:
        return
    if saved != fingerprint(folder):
        raise RunDirError(f"{weights}: trained with other settings than the run's config.json, data.json or "
                          "schedule.json now hold (a setting edited since, or the weights or files of another run); "
                          "sampling would be wrong: restore the files, or train again")


# What the weights' metadata records, against the config key it must equal (every run written since arch_meta).
_META_KEYS = {"model": ("model", "name"), "options": ("model", "options"),
              "parameterization": ("diffusion", "parameterization"), "variance": ("diffusion", "variance"),
              "time": ("diffusion", "time")}


def check_meta(folder: Path, weights: Path, meta: dict[str, Any], config: Any) -> None:
    """Refuse a config.json whose network or parameterization is not the one the weights were trained as."""
    for key, (section, field) in _META_KEYS.items():
        if key not in meta:
            continue
        value = getattr(getattr(config, section), field)
        if meta[key] != value:
            raise RunDirError(f"{folder}/config.json: {section}.{field} is {value!r}, but {weights.name} was trained "
                              f"with {meta[key]!r}; restore the setting (or train again with the new one)")


def _finite_numbers(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    return True


def check_scaler_dict(path: Path, raw: Any) -> None:
    """A data.json whose scaler holds NaN or infinite parameters is corrupt (fitting never writes one)."""
    scaler = raw.get("scaler") if isinstance(raw, dict) else None
    if not _finite_numbers(scaler):
        raise RunDirError(f"{path}: corrupt: the scaler's parameters are not all finite numbers")


def check_schedule_dict(path: Path, raw: Any) -> Any:
    """schedule.json before a process is built from it: T a whole number within the limit, and (discrete time)
    β_0..β_T finite numbers in [0, 1]. Returns ``raw``."""
    if not isinstance(raw, dict):
        raise RunDirError(f"{path}: corrupt: expected a JSON object")
    T = raw.get("T")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise RunDirError(f"{path}: corrupt: T must be a whole number of at least 1, got {T!r}")
    check("T", T, label=f"{path}: T =")
    if raw.get("time", "discrete") == "continuous":
        if not _finite_numbers(raw.get("options") or {}):
            raise RunDirError(f"{path}: corrupt: the schedule's options are not all finite numbers")
        return raw
    betas = raw.get("betas")
    if not isinstance(betas, list) or len(betas) != T + 1:
        raise RunDirError(f"{path}: corrupt: expected {T + 1} values β_0..β_T, found "
                          f"{len(betas) if isinstance(betas, list) else type(betas).__name__}")
    bad = next((b for b in betas if isinstance(b, bool) or not isinstance(b, int | float) or not 0.0 <= b <= 1.0),
               None)
    if bad is not None or any(isinstance(b, float) and math.isnan(b) for b in betas):
        raise RunDirError(f"{path}: corrupt: every β_t must be a number in [0, 1], found {bad!r}")
    return raw
