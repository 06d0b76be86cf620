"""Where a computation runs: the device, how many CPU threads suit it, and what to say when a GPU path falls back.

Small networks on a CPU are a special case: torch's threads meet in a barrier after every operation, and on a
machine whose other cores are busy a thread that is not scheduled stalls the others (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import os
import time
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


_IDLE_CACHE: list[float] = []  # [time measured, idle cores]


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores since boot, from /proc/stat (Linux); None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user..steal


def idle_cores(window: float = 0.05) -> float:
    """Cores that other processes leave free now: idle CPU time over a ``window`` of seconds times the core count
    (Linux; elsewhere the core count minus the 1-minute load average). Reused for 2 s after a measurement."""
    now = time.monotonic()
    if _IDLE_CACHE and now - _IDLE_CACHE[0] < 2.0:
        return _IDLE_CACHE[1]
    cores = os.cpu_count() or 1
    before = _cpu_times()
    if before is not None:
        time.sleep(window)
        after = _cpu_times()
        total = after[1] - before[1] if after else 0
        idle = cores * (after[0] - before[0]) / total if after and total > 0 else float(cores)
    else:
        try:
            idle = cores - os.getloadavg()[0]
        except (OSError, AttributeError):
            idle = float(cores)
    _IDLE_CACHE[:] = [now, idle]
    return idle


def default_threads(n_params: int, batch: int) -> int:
    """Torch threads for a CPU step of ``n_params`` × ``batch`` multiply-adds: one, unless the work is large enough
    to share and other processes leave cores idle (:func:`idle_cores`); then the idle cores, at most torch's own
    thread count.

    Measured on a 2-core AMD EPYC shared with other processes (benchmarks/RESULTS.md): for the tutorial's network
    (2·10⁷ multiply-adds per step) two threads made a step ~1.5x faster while the other core was idle, and 5-20x
    slower while another process used it: every matrix product ends in a barrier where one thread waits for the
    other to be scheduled again. Below ~10⁷ the barriers cost more than the second core gives even on an idle
    machine."""
    if n_params * batch < 10_000_000:
        return 1
    return max(1, min(torch.get_num_threads(), int(idle_cores() + 0.5)))  # round: 1.6 idle cores -> 2


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
