"""Sampling at scale: streaming chunk by chunk gives the in-memory result, files get every row, and evaluating the
network in cache-sized blocks changes nothing but speed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difflab.compute import cpu_threads
from difflab.diffusion import Denoiser
from difflab.models import build_model
from difflab.sampling.api import blocked, generate, generate_chunks
from difflab.sampling.output import write_chunks
from helpers import diffusion as make_diffusion

N = 100_000
CHUNK = 30_000  # 4 chunks, the last one partial


@pytest.fixture(autouse=True)
def _one_thread():
    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def seed_denoiser():
    torch.manual_seed(0)
    d = make_diffusion("poly", 10)
    return Denoiser(build_model("seed", 2, 10).eval(), d), d


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_streaming_1e5_points_equals_in_memory(tmp_path, seed_denoiser, suffix: str) -> None:
    denoise, d = seed_denoiser
    in_memory, _ = generate(denoise, d, N, 2, seed=7, chunk_size=CHUNK)
    sizes = []

    def chunks():
        for x, traj in generate_chunks(denoise, d, N, 2, seed=7, chunk_size=CHUNK):
            assert traj is None  # no trajectory kept unless asked
            sizes.append(len(x))
            yield x.numpy()

    path = write_chunks(tmp_path / f"s{suffix}", chunks(), n=N, columns=["x", "y"])
    assert sizes == [CHUNK, CHUNK, CHUNK, N - 3 * CHUNK]
    if suffix == ".npy":
        got = np.load(path)
        np.testing.assert_array_equal(got, in_memory.numpy().astype(np.float64))
    else:
        got = np.loadtxt(path, delimiter=",", skiprows=1)
        assert path.read_text().splitlines()[0] == "x,y"
        np.testing.assert_allclose(got, in_memory.numpy(), rtol=1e-7, atol=1e-7)  # %.8g in text
    assert got.shape == (N, 2) and np.isfinite(got).all()


def test_block_size_and_threads_do_not_change_the_points(seed_denoiser) -> None:
    denoise, d = seed_denoiser
    whole, _ = generate(denoise, d, 5000, 2, seed=3, chunk_size=5000, block=None)
    for block, threads in [(1000, 1), (1024, 2), (4999, 2)]:
        with cpu_threads(threads):
            part, _ = generate(denoise, d, 5000, 2, seed=3, chunk_size=5000, block=block)
        torch.testing.assert_close(part, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("workers", [1, 2])
def test_blocked_equals_whole_call(dim: int, workers: int) -> None:
    """Both outputs of a Prediction are assembled row-for-row, for a block size that does not divide n, with
    blocks in turn or on two threads at once."""
    torch.manual_seed(dim)
    d = make_diffusion("cosine", 50)
    denoise = Denoiser(build_model("mlp", dim, 50, width=32, depth=2).eval(), d, "v")
    x = torch.randn(1000, dim)
    whole, part = denoise(x, 17), blocked(denoise, 300, workers=workers)(x, 17)
    torch.testing.assert_close(part.eps, whole.eps, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(part.x0, whole.x0, rtol=1e-5, atol=1e-6)


def test_trajectory_only_when_asked(seed_denoiser) -> None:
    denoise, d = seed_denoiser
    x, traj = generate(denoise, d, 500, 2, seed=1, chunk_size=200, trajectory=True)
    assert traj is not None and traj.shape == (11, 500, 2)
    torch.testing.assert_close(traj[-1], x)
