"""Size limits, checked before anything is allocated: a typo (``--steps 2000000000``, ``width = 30000``, a text ID
column of 30 000 rows as 30 000 one-hot features) is refused in one line instead of taking the machine's memory.

Each limit has a default that is far above what difflab's recipes use, and the message names the environment
variable that raises it (``DIFFLAB_MAX_STEPS=…``); ``DIFFLAB_ALLOW_LARGE=1`` lifts every limit at once, for when a
large job is meant. The limits are checked where the size is first known: in the config (:func:`check_run_config`),
when a table's columns are encoded, when an array file's header is read (:func:`check_array_header`), when a
command is asked for ``--n`` points, and when a sweep's grid is expanded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from difflab.errors import DifflabError

ALLOW_ALL = "DIFFLAB_ALLOW_LARGE"
SEED_MAX = 2**63 - 1  # the largest seed that torch, numpy and Python's random all take


class LimitError(DifflabError):
    """A size above one of difflab's limits; the message says how to raise the limit."""


@dataclass(frozen=True)
class Limit:
    """A named bound on one size: ``default``, and what is counted (for the message)."""

    name: str
    default: int
    what: str

    @property
    def env(self) -> str:
        return f"DIFFLAB_MAX_{self.name.upper()}"

    def value(self) -> float:
        """The limit in force: the environment's ``DIFFLAB_MAX_<NAME>`` if set, else the default; infinite under
        ``DIFFLAB_ALLOW_LARGE=1``."""
        if os.environ.get(ALLOW_ALL, "").strip().lower() in ("1", "true", "yes"):
            return math.inf
        raw = os.environ.get(self.env)
        if raw is None or not raw.strip():
            return self.default
        try:
            return max(int(float(raw)), 0)
        except (ValueError, OverflowError):
            raise LimitError(f"{self.env}={raw!r}: expected a whole number") from None


LIMITS: dict[str, Limit] = {lim.name: lim for lim in (
    Limit("rows", 20_000_000, "rows of training data"),
    Limit("features", 2_000, "features per table"),
    Limit("steps", 20_000_000, "training steps"),
    Limit("width", 16_384, "network width"),
    Limit("depth", 512, "network depth"),
    Limit("params", 200_000_000, "network parameters"),
    Limit("T", 100_000, "diffusion steps T"),
    Limit("samples", 200_000_000, "samples per command"),
    Limit("points", 200_000, "points drawn with their trajectories"),
    Limit("eval_n", 2_000_000, "points per sample of a metric"),
    Limit("repeats", 1_000, "repeats of a metric"),
    Limit("cells", 20_000, "cells of a sweep grid"),
    Limit("workers", 1_024, "worker processes"),
    Limit("threads", 1_024, "CPU threads"),
    Limit("array_bytes", 8 * 2**30, "bytes of an array file"),
)}


def _human(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} bytes"


def check(name: str, value: int | float, *, label: str, memory: float | None = None, hint: str = "") -> None:
    """Refuse ``value`` above the limit ``name``, in one line that names ``label`` (the option or input),
    the limit, what it would allocate (``memory``, bytes, when known), ``hint`` and how to raise it."""
    lim = LIMITS[name]
    bound = lim.value()
    if value <= bound:
        return
    size = f" (about {_human(memory)})" if memory else ""
    hint = f"; {hint}" if hint else ""
    raise LimitError(f"{label} {int(value):,}{size} is more than difflab's limit for {lim.what} ({int(bound):,}){hint}; "
                     f"if this is meant, raise the limit with {lim.env}={int(value)} (or {ALLOW_ALL}=1 for every "
                     "limit)")


def check_seed(seed: Any, *, label: str = "--seed") -> None:
    """A seed must be a whole number in 0 .. 2^63 − 1 (torch and numpy refuse others with a traceback)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise DifflabError(f"{label} {seed!r}: a seed must be a whole number from 0 to {SEED_MAX}")


def mlp_parameters(dim: int, width: int, depth: int, emb_dim: int = 32, out_dim: int | None = None) -> int:
    """Parameters of difflab's residual MLP (:class:`difflab.models.mlp.ResMLP`), counted without building it: the
    time MLP, the input layer, ``depth`` blocks (LayerNorm and two width×width layers) and the output."""
    time_mlp = emb_dim * width + width + width * width + width
    block = 2 * width + 2 * (width * width + width)
    return time_mlp + dim * width + width + depth * block + 2 * width + width * (out_dim or dim) + (out_dim or dim)


def check_network(name: str, options: dict[str, Any], dim: int = 2) -> None:
    """A network's options before it is built: whole numbers ≥ 1, and width, depth and the parameter count within
    their limits (the parameters take 4 bytes each, 16 with AdamW's moments and the gradient)."""
    if name != "mlp":
        return
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DifflabError(f"model option {key} = {value!r}: expected a whole number of at least 1")
    if options.get("emb_dim", 32) % 2:
        raise DifflabError(f"model option emb_dim = {options['emb_dim']}: the time embedding is cosines and sines in "
                           "pairs; give an even number")
    width, depth = options.get("width", 128), options.get("depth", 3)
    check("width", width, label="model option width =")
    check("depth", depth, label="model option depth =")
    params = mlp_parameters(dim, width, depth, options.get("emb_dim", 32))
    check("params", params, label=f"a network of width {width} and depth {depth}: its parameters,",
          memory=16.0 * params)


def check_run_config(cfg: Any) -> None:
    """Every size a run's config fixes before its data is read: toy rows, steps, T, threads, the network, seeds."""
    if cfg.data.n is not None:
        check("rows", cfg.data.n, label="--n", memory=16.0 * cfg.data.n)
    check("steps", cfg.train.steps, label="--steps", memory=4.0 * cfg.train.steps)
    check("T", cfg.diffusion.T, label="--T")
    if cfg.train.threads is not None:
        check("threads", cfg.train.threads, label="train.threads =")
    check_seed(cfg.train.seed, label="--seed")
    check_seed(cfg.data.seed, label="data.seed")
    check_network(cfg.model.name, cfg.model.options)


def check_array_header(path: Any, shape: tuple[int, ...], itemsize: int, file_size: int) -> None:
    """An array file's header, before its data is read: a shape whose data the file cannot hold is a corrupt
    file, and a shape above the limit is refused (numpy would allocate it first)."""
    count = math.prod(shape)
    need = count * itemsize
    if need > file_size:
        raise DifflabError(f"{path}: corrupt array file: its header claims shape {shape} ({_human(need)}), the file "
                           f"holds {_human(file_size)}")
    check("array_bytes", need, label=f"{path}: an array of shape {shape} takes", memory=need)
