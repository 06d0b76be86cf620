"""CPU thread choice: restored after use; a function of the work's size and the usable cores, never of the load."""

from __future__ import annotations

import os

import pytest
import torch

from difflab.compute import cpu_threads


def test_cpu_threads_restores() -> None:
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_default_threads_from_size_and_cores_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small work gets one thread; large work the usable cores, at most MAX_THREADS; never the load."""
    from difflab import compute

    assert compute.default_threads(22_000, 100, cores=8) == 1  # 2·10⁶ multiply-adds: not worth a second thread
    assert compute.default_threads(22_000, 1000, cores=1) == 1
    assert compute.default_threads(22_000, 1000, cores=2) == 2
    assert compute.default_threads(121_000, 256, cores=16) == compute.MAX_THREADS
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    with cpu_threads(4):
        assert compute.usable_cores() == 4
        assert compute.default_threads(22_000, 1000) == min(4, compute.MAX_THREADS)
    with cpu_threads(1):  # a process told to use one thread (a sweep's worker) gets one
        assert compute.usable_cores() == 1 and compute.default_threads(22_000, 1000) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    with cpu_threads(4):  # a process pinned to one core gets one
        assert compute.usable_cores() == 1


def test_default_threads_ignores_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing the load changes is read: the load average and /proc/stat may say anything."""
    from difflab import compute

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    with cpu_threads(2):
        want = compute.default_threads(22_000, 1000)
        monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
        real_open = open

        def busy_proc_stat(path, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
            if str(path).startswith("/proc"):
                raise AssertionError(f"the thread rule read {path}")
            return real_open(path, *a, **k)

        monkeypatch.setattr("builtins.open", busy_proc_stat)
        assert compute.default_threads(22_000, 1000) == want == 2
