"""One task of a sweep, as a worker runs it: train a cell (or a group of compatible cells at once), evaluate it,
and leave its outcome on disk (``result.json`` written last and atomically, or ``failed.json``).

Everything here runs where the backend puts it (this process, a local worker process, a Ray worker on another
machine) and takes and returns plain data, so every backend sends the same :class:`Task` and gets back the same
outcomes. The planning around it is :mod:`difflab.sweep.runner`; the backends are :mod:`difflab.sweep.backends`.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from difflab.errors import DataError, DifflabError
from difflab.io import write_json
from difflab.lock import check_free

RESULT, FAILED = "result.json", "failed.json"
# The sampler's generator gets seed + offset so its noise is not the stream that trained the same cell.
SAMPLE_SEED_OFFSET = 10_000
Outcome = dict[str, Any]


@dataclass(frozen=True)
class Job:
    """A cell as sent to a worker (plain data, picklable). ``train`` False: the model exists already."""

    id: str
    path: str
    config: dict[str, Any]
    values: dict[str, Any]
    seed: int
    evaluate: dict[str, Any]
    train: bool


class Task(NamedTuple):
    """A worker's unit of work: one cell, or (``batch`` True) a group trained together by ``train_many``."""

    jobs: list[Job]
    batch: bool


def one_line(e: BaseException) -> str:
    """A user error's message as is; anything else as ``Type: first line`` (a cell's failure in the CSV)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = text if isinstance(e, DifflabError) else f"{type(e).__name__}: {text}".rstrip(": ")
    return text[:300]


def fail_task(task: Task, message: str) -> list[Outcome]:
    """The outcomes of a task whose worker never answered (it died, or its node did): each cell failed, said in
    its failed.json. Called where the backend learns of it; the folder is the same one the worker wrote to."""
    outcomes = []
    for j in task.jobs:
        write_json(Path(j.path) / FAILED, {"cell": j.id, "error": message})
        outcomes.append({"id": j.id, "status": f"failed: {message}"})
    return outcomes


def _reference(run: Any, n: int) -> tuple[Any, int]:
    """The truth to compare with: the toy's i.i.d. sampler, or the held-out rows of a file (n capped to half)."""
    if run.toy is not None:
        return run.toy.iid, n
    if run.heldout is None or len(run.heldout) < 4:
        raise DataError(f"{run.config.data.source}: no held-out rows to evaluate against; set data.holdout > 0")
    return run.heldout, min(n, len(run.heldout) // 2)


def _elbo(run: Any, n: int, seed: int) -> dict[str, float] | None:
    """The negative ELBO in nats/dim (data units) on n fresh true points, or None without the likelihood module."""
    try:
        from difflab.evaluation.likelihood import elbo
    except ModuleNotFoundError as e:
        if e.name != "difflab.evaluation.likelihood":
            raise
        return None
    import torch

    points = run.toy.iid(n, seed) if run.toy is not None else run.heldout[:n]
    x = torch.as_tensor(run.scaler.transform(points), dtype=torch.float32)
    r = elbo(run.denoiser(), run.diffusion, x, scaler_logdet=run.scaler.log_abs_det_jacobian(),
             generator=torch.Generator().manual_seed(seed))
    return {"nats_per_dim": float(r["nats_per_dim"]), "stderr": float(r["stderr"])}


def evaluate_run(run: Any, evaluate: dict[str, Any], seed: int) -> dict[str, Any]:
    """Sample n points from ``run`` and measure them against the truth next to the noise floor; the repeats draw
    new true samples (the generated sample varies with the cell's seed, across the seeds of a combination).

    Samples that are not finite (a sampler that blew up) make every metric infinite and the status ``diverged``:
    such a recipe is worse than any finite one, and averaging it away would hide that.
    """
    from difflab.evaluation import evaluate_samples
    from difflab.evaluation.floor_cache import toy_key
    from difflab.sample import sample_run

    n, repeats, metrics = evaluate["n"], evaluate["repeats"], list(evaluate["metrics"])
    start = time.perf_counter()
    # n fresh points per repeat, so the ratio's standard error counts the model's sampling noise too
    samples, _ = sample_run(run, n * repeats, seed=seed + SAMPLE_SEED_OFFSET)
    sample_s = time.perf_counter() - start
    bad = int((~np.isfinite(samples)).any(axis=1).sum())
    reference, n_eval = _reference(run, n)
    if bad:
        status = f"diverged: {bad} of {len(samples)} samples not finite"
        scores = {m: {"value": math.inf, "floor": math.nan, "ratio": math.inf, "ratio_se": math.nan}
                  for m in metrics}
    else:
        status = "ok"
        # the floor is shared by every cell of one toy, n and seed: estimated once, then read from the cache
        key = toy_key(run.toy.name, raw_units=True) if run.toy is not None else None
        scores = evaluate_samples(samples, reference, n=n_eval, repeats=repeats, metrics=metrics, seed=seed,
                                  reference_key=key)
    elbo = _elbo(run, n, seed) if evaluate.get("elbo") else None
    return {"status": status, "metrics": scores, "eval_n": n_eval, "elbo": elbo,
            "sample_seconds": sample_s, "eval_seconds": time.perf_counter() - start - sample_s}


def _start_over(path: Path) -> None:
    """An unfinished cell (crashed or interrupted) is trained again from nothing; not one that a process (a worker
    of a sweep that is still running elsewhere) writes now."""
    if path.exists():
        check_free(path)
        shutil.rmtree(path)


def _train(job: Job) -> Any:
    from difflab.config import load_saved_config
    from difflab.pipeline import train_run

    _start_over(Path(job.path))
    return train_run(load_saved_config(job.config, job.id), job.path, progress=False)


def _finish(job: Job, trained: Any, batched: int, notes: list[str]) -> Outcome:
    """Train (unless given), evaluate, write result.json last; on any error write failed.json instead.
    ``notes``: warnings already raised for this cell (while its group trained)."""
    from difflab.rundir import load_run

    path = Path(job.path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if isinstance(trained, BaseException):
                raise trained
            run = trained if trained is not None else (_train(job) if job.train else load_run(path))
            measured = evaluate_run(run, job.evaluate, job.seed)
        except Exception as e:  # a cell's crash is reported, and the sweep goes on
            message = one_line(e)
            write_json(path / FAILED, {"cell": job.id, "error": message})
            return {"id": job.id, "status": f"failed: {message}"}
    record = {
        "cell": job.id, "values": job.values, "seed": job.seed, **measured,
        "train_seconds": float(run.seconds), "batched": batched,
        "warnings": sorted({*notes, *(str(w.message) for w in caught)}),
        "config": job.config, "evaluate": job.evaluate,
    }
    (path / FAILED).unlink(missing_ok=True)
    write_json(path / RESULT, record)
    return {"id": job.id, "status": record["status"], "record": record}


def run_task(jobs: list[Job], use_batch: bool) -> list[Outcome]:
    """Run one :class:`Task` (given as its two fields): one cell, or a group trained together by ``train_many``
    and evaluated each. Every cell's outcome comes back, failures included; nothing but a dying process escapes."""
    trained: dict[str, Any] = {}
    notes: list[str] = []
    todo = [j for j in jobs if j.train]
    together = use_batch and len(todo) >= 2
    if together:
        from difflab import pipeline
        from difflab.config import load_saved_config

        for j in todo:
            _start_over(Path(j.path))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                runs = pipeline.train_many([load_saved_config(j.config, j.id) for j in todo],
                                           [Path(j.path) for j in todo], progress=False)
                trained = {j.id: r for j, r in zip(todo, runs, strict=True)}
            except Exception as e:  # the whole group failed to train; each of its cells says so
                trained = {j.id: e for j in todo}
        notes = [str(w.message) for w in caught]
    return [_finish(j, trained.get(j.id), len(todo) if j.id in trained else 1, notes if j.id in trained else [])
            for j in jobs]
