"""Imputation tests run their small tensors on one CPU thread: a second thread only adds hand-offs there, and on a
busy machine those cost far more than the arithmetic (measured: 20-50x slower on 2 threads at load 12)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from difflab.compute import cpu_threads


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with cpu_threads(1):
        yield
