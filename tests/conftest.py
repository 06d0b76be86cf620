"""Shared fixtures: small Gaussian problems with closed-form answers."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

DIMS = [1, 2, 10]


def pytest_configure(config: pytest.Config) -> None:
    # The noise-floor cache of this session: hermetic (never the user's ~/.cache), shared by the tests that
    # evaluate the same toy at the same n, so each floor is estimated once per run of the suite.
    # Under pytest-xdist the workers inherit the controller's folder (set before they start), so that they share it.
    shared = os.environ.get("DIFFLAB_TEST_CACHE") if os.environ.get("PYTEST_XDIST_WORKER") else None
    os.environ["DIFFLAB_CACHE_DIR"] = shared or tempfile.mkdtemp(prefix="difflab-test-cache-")
    os.environ["DIFFLAB_TEST_CACHE"] = os.environ["DIFFLAB_CACHE_DIR"]
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core: a second torch thread each would oversubscribe
        os.environ["OMP_NUM_THREADS"] = "1"  # the CLI's subprocesses too
        torch.set_num_threads(1)


@pytest.fixture(params=DIMS, ids=lambda d: f"D{d}")
def dim(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture
def gaussian_problem(dim: int):
    g = torch.Generator().manual_seed(dim)
    mu = torch.randn(dim, generator=g) * 0.5
    s = 0.2 + torch.rand(dim, generator=g)
    return mu, s


@pytest.fixture
def one_thread():
    """One torch thread for tests of tiny networks and exact Gaussian denoisers: on a busy 2-core machine a second
    thread made a float64 sqrt of 3000 numbers take 30 ms instead of 7 µs (difflab.compute.default_threads)."""
    from difflab.compute import cpu_threads

    with cpu_threads(1):
        yield
