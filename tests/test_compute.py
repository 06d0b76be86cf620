"""CPU thread choice: restored after use, idle cores only, measured from /proc/stat."""

from __future__ import annotations

import pytest
import torch

from difflab.compute import cpu_threads


def test_cpu_threads_restores() -> None:
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_default_threads_uses_idle_cores_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large work gets the cores other processes leave idle; small work one thread."""
    from difflab import compute

    with cpu_threads(4):
        for idle, want in [(3.9, 4), (2.8, 3), (1.4, 1), (0.0, 1)]:
            monkeypatch.setattr(compute, "idle_cores", lambda idle=idle: idle)
            assert compute.default_threads(22_000, 1000) == want
        assert compute.default_threads(22_000, 100) == 1  # 2·10⁶ multiply-adds: not worth a second thread
    with cpu_threads(2):
        monkeypatch.setattr(compute, "idle_cores", lambda: 4.0)
        assert compute.default_threads(22_000, 1000) == 2  # never more than torch may use


def test_idle_cores_from_cpu_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle share of the CPU time in the window, times the core count; the load average where /proc is missing."""
    import os

    from difflab import compute

    samples = iter([(1000, 4000), (1030, 4040)])  # 30 of 40 jiffies idle
    monkeypatch.setattr(compute, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(compute, "_IDLE_CACHE", [])
    assert compute.idle_cores(window=0.0) == pytest.approx(1.5)
    assert compute.idle_cores(window=0.0) == pytest.approx(1.5)  # cached: no new sample drawn
    monkeypatch.setattr(compute, "_IDLE_CACHE", [])
    monkeypatch.setattr(compute, "_cpu_times", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.7, 0.5, 0.5))
    assert compute.idle_cores(window=0.0) == pytest.approx(1.3)
