"""Where a computation runs: the device, how many CPU threads suit it, and what to say when a GPU path falls back.

Small networks on a CPU are a special case: torch's threads meet in a barrier after every operation, and on a
machine whose other cores are busy a thread that is not scheduled stalls the others (benchmarks/RESULTS.md). The
thread count is still chosen from the network's size and the machine alone, never from the load, so that a config
trains the same model whatever else runs.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import torch

from difflab.errors import ConfigError, FallbackWarning


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA device is available; use --device cpu")
    return torch.device(name)


SMALL_WORK = 10_000_000  # multiply-adds per step (parameters × rows) below which one thread is faster
MAX_THREADS = 2  # the most threads measured to pay for difflab's networks (a 2-core machine; benchmarks/RESULTS.md)


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity (``os.sched_getaffinity``; elsewhere ``os.cpu_count()``),
    at most torch's own thread setting (``OMP_NUM_THREADS``, ``torch.set_num_threads``; a sweep's worker process
    sets 1). A property of the machine and the process, never of the current load."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, torch.get_num_threads()))


def default_threads(n_params: int, batch: int, cores: int | None = None) -> int:
    """Torch threads (or the fast step's lanes) for a CPU step of ``n_params`` × ``batch`` multiply-adds: one below
    :data:`SMALL_WORK`, else the usable cores (:func:`usable_cores`, or ``cores``), at most :data:`MAX_THREADS`.

    A function of the network's size and the machine only, so that one config gives one model: a rule that
    followed the idle cores trained another model whenever another process was busy (issue 17). Measured on a
    2-core AMD EPYC (benchmarks/RESULTS.md): below ~10⁷ multiply-adds a second thread's hand-offs cost more than
    it computes; the residual MLP of the recommended recipe (1.2·10⁵ parameters × 256 rows) and the tutorial's
    network at its full batch (2.3·10⁴ × 1000) run faster on two. More than two were not measured."""
    if n_params * batch < SMALL_WORK:
        return 1
    return max(1, min(cores or usable_cores(), MAX_THREADS))


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the block, then restore it."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def failure_cause(error: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters), to name a failure in one line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def warn_fallback(path: str, error: BaseException, *, instead: str, skip: str) -> None:
    """One :class:`~difflab.errors.FallbackWarning`: ``path`` failed with ``error``, difflab does ``instead``, and
    ``skip`` says how to turn the failed path off. (The CLI prints it as ``warning: …``.)"""
    warnings.warn(f"{path} failed ({failure_cause(error)}); {instead}. {skip}", FallbackWarning, stacklevel=3)
