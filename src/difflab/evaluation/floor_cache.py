"""A disk cache of noise floors: the per-pair values of one metric between independent true samples.

A floor depends only on the true data (``reference``), the sample size n, the metric and the seed that picks the
pairs, so it is estimated once and reused by every evaluation with the same four (a sweep's cells, a report and an
``evaluate`` of the same toy). Entries live in ``floors/`` under difflab's cache folder: ``$DIFFLAB_CACHE_DIR`` if
set, else ``$XDG_CACHE_HOME/difflab``, else ``~/.cache/difflab``. Each is one JSON file named by a hash of its key; the key, stored inside too, holds
:data:`FLOOR_VERSION`, so changing how floors are computed (a metric's definition, the pairs rule) only needs a new
version: old entries no longer match and are recomputed. Files are written atomically (temporary name, then
rename), so two processes filling the same entry at once leave one whole file, never a torn one.

A few entries ship with difflab (:data:`SHIPPED_DIR`, written by ``scripts/ship_floors.py``): the floors of the
demo's evaluation (moons, n = 2000, seed 0), which on a fresh machine cost about 95 s of the demo's first run. They
are read when the cache has no entry, and match only while their key (version included) does.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from difflab.errors import DifflabError
from difflab.io import write_json

# Bump whenever a metric, the pair draws or the stopping rule of the floor change: old entries then miss.
FLOOR_VERSION = "floor-1"
ENV_DIR = "DIFFLAB_CACHE_DIR"
SHIPPED_DIR = Path(__file__).parent / "shipped_floors"


def cache_dir() -> Path:
    """Where floors are kept: ``floors/`` under ``$DIFFLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/difflab``, else
    ``~/.cache/difflab``."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]) / "floors"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "difflab" / "floors"


def array_key(points: np.ndarray) -> str:
    """A reference array's identity: the SHA-256 of its float64 values and shape (same rows, same key)."""
    a = np.ascontiguousarray(points, dtype=np.float64)
    digest = hashlib.sha256(repr(a.shape).encode())
    digest.update(a.tobytes())
    return f"array:{digest.hexdigest()[:32]}"


def toy_key(name: str, raw_units: bool) -> str:
    """A toy's i.i.d. sampler as a cache key: in data units, or standardised (by a draw that the seed fixes)."""
    return f"toy:{name}:{'raw' if raw_units else 'standardised'}"


def floor_key(reference: str, n: int, metric: str, seed: int, rule: str) -> dict[str, Any]:
    """The full key of one entry: what the floor depends on, the rule that chose its pairs, and the version."""
    return {"reference": reference, "n": int(n), "metric": metric, "seed": int(seed), "rule": rule,
            "version": FLOOR_VERSION}


def entry_name(key: dict[str, Any]) -> str:
    text = json.dumps(key, sort_keys=True)
    return f"{key['metric']}-n{key['n']}-{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"


def _path(key: dict[str, Any]) -> Path:
    return cache_dir() / entry_name(key)


def load(key: dict[str, Any]) -> list[float] | None:
    """The cached per-pair floor values of ``key`` (else the shipped ones), or None (no entry, another version, an
    unreadable file)."""
    return _read(_path(key), key) or _read(SHIPPED_DIR / entry_name(key), key)


def _read(path: Path, key: dict[str, Any]) -> list[float] | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("values"), list):
        return None
    values = entry["values"]
    return [float(v) for v in values] if values and all(isinstance(v, int | float) for v in values) else None


def store(key: dict[str, Any], values: list[float]) -> None:
    """Write an entry atomically; a cache folder that cannot be written is skipped (the floor is still used)."""
    try:
        write_json(_path(key), {"key": key, "values": [float(v) for v in values]})
    except (DifflabError, OSError):
        pass
