"""Shared fixtures of the report tests: tiny trained runs (D = 1, 2, 10) and a headless Chromium."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from difflab.compute import cpu_threads
from difflab.config import resolve_config
from difflab.pipeline import train_run
from difflab.sweep import load_grid, run_sweep

STEPS = 50
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# The flags that work in this sandbox; --host-resolver-rules makes every network request fail, so a page that
# renders proves that it needs no network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000", "--host-resolver-rules=MAP * ~NOTFOUND"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small tensors only: one thread is faster, and much faster on a busy 2-core machine."""
    with cpu_threads(1):
        yield


def write_csv(path: Path, x: np.ndarray) -> Path:
    np.savetxt(path, x, delimiter=",", header=",".join(f"c{j}" for j in range(x.shape[1])), comments="")
    return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """One run per width, the tutorial's recipe trained for 50 steps: D = 2 on moons; D = 1 and 10 on tables
    (offset and scaled, so data units differ from the scaled space) that keep 20 % held out; sampled with 5 DDIM
    steps of T = 10."""
    root = tmp_path_factory.mktemp("report-runs")
    rng = np.random.default_rng(0)
    out: dict[int, Path] = {}
    with cpu_threads(1):
        for d in (1, 2, 10):
            data = {"source": "moons", "n": 300} if d == 2 else {
                "source": str(write_csv(root / f"t{d}.csv", 100 + rng.normal(0, 1, (300, d)) * np.arange(1, d + 1))),
                "holdout": 0.2}
            cfg = resolve_config("seed", overrides={"data": data, "train": {"steps": STEPS},
                                                    "sample": {"sampler": "ddim", "steps": 5}})
            out[d] = train_run(cfg, root / f"D{d}", progress=False).path
    return out


GRID = """
preset = "seed"
seeds = [0, 1]

[data]
n = 200

[train]
steps = 20

[grid]
"diffusion.T" = [3, 5]

[evaluate]
n = 100
repeats = 1
metrics = ["w1", "energy"]
"""


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 values of T × 2 seeds, trained in this process."""
    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "grid.toml").write_text(GRID, encoding="utf-8")
    run_sweep(load_grid(tmp / "grid.toml"), tmp / "out", workers=1, echo=lambda s: None, echo_err=lambda s: None)
    return tmp / "out"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium (Debian's, driven by Selenium through Debian's chromedriver) per test module, with the
    console log captured. Skipped only where Chromium is missing and this is not CI; in CI that is a failure."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed (`make test` installs Debian's chromium, chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="difflab-chromium-")
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
