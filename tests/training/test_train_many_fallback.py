"""train_many falls back to training its members one by one when the batched trainer fails.

The failures a GPU could raise (out of memory when the batched trainer is built, a kernel error part-way through
training) are simulated on the CPU; each member's run directory must then be the one train_run writes, file for
file, bit for bit. A bad input is not a GPU failure: it stays an error, and nothing is written."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import difflab.pipeline.many as many
from difflab.compute import cpu_threads
from difflab.config import resolve_config
from difflab.errors import ConfigError, FallbackWarning
from difflab.pipeline import train_many, train_run
from difflab.rundir import FILES
from difflab.training.stacked import StackedTrainer
from difflab.weights import load_weights


@pytest.fixture(autouse=True)
def _one_thread():
    with cpu_threads(1):
        yield


def _configs(tmp_path: Path, dim: int, model: str = "seed") -> list:
    """Two members on a D-column table (seed 0 and 1, different learning rates)."""
    x = np.random.default_rng(dim).normal(size=(120, dim))
    source = tmp_path / f"table{dim}.npy"
    np.save(source, x)
    options = {"options": {"width": 16, "depth": 1}} if model == "mlp" else {}
    return [resolve_config("seed", overrides={
        "data": {"source": str(source)}, "diffusion": {"T": 10}, "model": {"name": model, **options},
        "train": {"steps": 9, "device": "cpu", "seed": s, "lr": 1e-2 / (1 + s), "ema": 0.9}}) for s in range(2)]


def _oom(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def _kernel_error_at_step(step: int):  # noqa: ANN202
    original, calls = StackedTrainer.apply_update, []

    def apply_update(self) -> None:  # noqa: ANN001
        calls.append(1)
        if len(calls) == step:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        original(self)

    return apply_update


def _same_run_dir(got: Path, ref: Path) -> None:
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in ref.iterdir())
    for name in ("model", "checkpoint"):
        if (ref / FILES[name]).exists():
            (a, meta_a), (b, meta_b) = load_weights(got / FILES[name]), load_weights(ref / FILES[name])
            assert a.keys() == b.keys() and {k: v for k, v in meta_a.items() if k != "seconds"} == {
                k: v for k, v in meta_b.items() if k != "seconds"}
            for k in a:
                assert a[k].equal(b[k]), (name, k)
    for name in ("loss", "config", "data", "schedule"):
        assert (got / FILES[name]).read_bytes() == (ref / FILES[name]).read_bytes(), name
    np.testing.assert_array_equal(np.load(got / FILES["train"]), np.load(ref / FILES["train"]))


@pytest.mark.parametrize("failure", ["build", "mid-training"])
def test_failed_batch_trains_the_members_one_by_one(tmp_path: Path, dim: int, failure: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cfgs = _configs(tmp_path, dim)
    refs = [train_run(c, tmp_path / f"ref{s}", progress=False) for s, c in enumerate(cfgs)]
    if failure == "build":
        monkeypatch.setattr(many, "_batched_trainer", _oom)
    else:
        monkeypatch.setattr(StackedTrainer, "apply_update", _kernel_error_at_step(5))
    outs = [tmp_path / f"m{s}" for s in range(2)]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        runs = train_many(cfgs, outs)
    ours = [str(w.message) for w in record if issubclass(w.category, FallbackWarning)]
    assert len(ours) == 1 and "batched training of 2 runs failed (RuntimeError: CUDA" in ours[0]
    assert "one by one" in ours[0] and "\n" not in ours[0]
    for s, (run, ref) in enumerate(zip(runs, refs, strict=True)):
        _same_run_dir(outs[s], tmp_path / f"ref{s}")
        for k, v in ref.model.state_dict().items():
            assert run.model.state_dict()[k].equal(v), k


def test_fallback_keeps_checkpoint_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """checkpoint=False holds on the fallback path too: no checkpoint.safetensors."""
    cfgs = _configs(tmp_path, 2, model="mlp")
    monkeypatch.setattr(many, "_batched_trainer", _oom)
    with pytest.warns(FallbackWarning):
        train_many(cfgs, [tmp_path / "a", tmp_path / "b"], checkpoint=False)
    for out in ("a", "b"):
        names = {p.name for p in (tmp_path / out).iterdir()}
        assert FILES["model"] in names and FILES["checkpoint"] not in names


def test_bad_input_is_an_error_not_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DifflabError raised while building the batch is the user's problem: it propagates, nothing is written."""
    cfgs = _configs(tmp_path, 2)

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ConfigError("train_many: members must share one network architecture")

    monkeypatch.setattr(many, "make_trainer", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        with pytest.raises(ConfigError, match="one network architecture"):
            train_many(cfgs, [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
