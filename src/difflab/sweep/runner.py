"""Running a sweep: cells in parallel worker processes, finished cells skipped, every outcome kept on disk.

Layout of a sweep directory::

    sweep.json              the grid as run: spec, command-line changes, the cells
    cells/<cell id>/        a run directory (see difflab.rundir), plus
        result.json         metrics, ELBO, timings; written last and atomically: the cell is done when it exists
        failed.json         the one-line error of the last failed attempt (removed when the cell succeeds)
    results.csv, results.md, results.png      tables and figure (difflab.sweep.report)

A cell without ``result.json`` starts over from scratch. A done cell whose evaluation settings changed is only
re-evaluated (its model is loaded, not retrained). Cells that ``difflab.pipeline.train_many`` can train together
(same ``sweep_key``) go to one worker as one ``train_many`` call when that module is installed.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from difflab.errors import ConfigError, DataError, DifflabError
from difflab.io import read_json, write_json
from difflab.sweep.grid import Cell, GridSpec, expand, get_dotted

RESULT, FAILED, SWEEP = "result.json", "failed.json", "sweep.json"
# The sampler's generator gets seed + offset so its noise is not the stream that trained the same cell.
SAMPLE_SEED_OFFSET = 10_000
Echo = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """A cell as sent to a worker process (plain data, picklable). ``train`` False: the model exists already."""

    id: str
    path: str
    config: dict[str, Any]
    values: dict[str, Any]
    seed: int
    evaluate: dict[str, Any]
    train: bool


@dataclass
class SweepSummary:
    """What one call of :func:`run_sweep` did."""

    out: Path
    total: int
    skipped: int = 0
    ok: int = 0
    diverged: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        return (f"sweep: {self.total} cells: {self.skipped} done before, {self.ok} ok, {self.diverged} diverged, "
                f"{len(self.failed)} failed -> {self.out / 'results.md'}")


# --- one cell, inside a worker -----------------------------------------------------------------------------------


def one_line(e: BaseException) -> str:
    """A user error's message as is; anything else as ``Type: first line`` (a cell's failure in the CSV)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = text if isinstance(e, DifflabError) else f"{type(e).__name__}: {text}".rstrip(": ")
    return text[:300]


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
    from difflab.sample import sample_run

    n, repeats, metrics = evaluate["n"], evaluate["repeats"], list(evaluate["metrics"])
    start = time.perf_counter()
    samples, _ = sample_run(run, n, seed=seed + SAMPLE_SEED_OFFSET)
    sample_s = time.perf_counter() - start
    bad = int((~np.isfinite(samples)).any(axis=1).sum())
    reference, n_eval = _reference(run, n)
    if bad:
        status = f"diverged: {bad} of {len(samples)} samples not finite"
        scores = {m: {"value": math.inf, "floor": math.nan, "ratio": math.inf} for m in metrics}
    else:
        status = "ok"
        scores = evaluate_samples(samples, reference, n=n_eval, repeats=repeats, metrics=metrics, seed=seed)
    elbo = _elbo(run, n, seed) if evaluate.get("elbo") else None
    return {"status": status, "metrics": scores, "eval_n": n_eval, "elbo": elbo,
            "sample_seconds": sample_s, "eval_seconds": time.perf_counter() - start - sample_s}


def _start_over(path: Path) -> None:
    """An unfinished cell (crashed or interrupted) is trained again from nothing."""
    if path.exists():
        shutil.rmtree(path)


def _train(job: Job) -> Any:
    from difflab.config import load_saved_config
    from difflab.pipeline import train_run

    _start_over(Path(job.path))
    return train_run(load_saved_config(job.config, job.id), job.path, progress=False)


def _finish(job: Job, trained: Any, batched: int, notes: list[str]) -> dict[str, Any]:
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


def run_task(jobs: list[Job], use_batch: bool) -> list[dict[str, Any]]:
    """A worker's unit of work: one cell, or a group trained together by ``train_many`` and evaluated each."""
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
                runs = pipeline.train_many([load_saved_config(j.config, j.id) for j in todo], [Path(j.path) for j in todo],
                                  progress=False)
                trained = {j.id: r for j, r in zip(todo, runs, strict=True)}
            except Exception as e:  # the whole group failed to train; each of its cells says so
                trained = {j.id: e for j in todo}
        notes = [str(w.message) for w in caught]
    return [_finish(j, trained.get(j.id), len(todo) if j.id in trained else 1, notes if j.id in trained else [])
            for j in jobs]


def _init_worker() -> None:
    import torch

    # N worker processes on N cores: one thread each, or they fight over the cores.
    torch.set_num_threads(1)


# --- planning, in the parent ---------------------------------------------------------------------------------------


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in dict.fromkeys([*a, *b]):
            diff = _first_difference(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
            if diff:
                return diff
        return None
    return None if a == b else f"{prefix} was {a!r}, now {b!r}"


def plan_jobs(cells: list[Cell], out: Path, evaluate: dict[str, Any]) -> tuple[list[Job], int]:
    """Jobs for the cells not yet done, and the number already done (result.json with the same settings).

    A done cell whose config differs from the grid's is an error: its results would be mixed with new ones.
    """
    jobs, done = [], 0
    for cell in cells:
        path = out / "cells" / cell.id
        config = cell.config.model_dump(mode="json")
        train = True
        if (path / RESULT).exists():
            saved = read_json(path / RESULT)
            diff = _first_difference(saved.get("config"), config)
            if diff:
                raise ConfigError(f"{path}: finished with another config ({diff}); use a new --out or delete the cell")
            if saved.get("evaluate") == evaluate:
                done += 1
                continue
            train = False
        jobs.append(Job(cell.id, str(path), config, cell.values, cell.seed, evaluate, train))
    return jobs, done


def _batch_key_fn() -> Callable[[Any], Hashable | None]:
    from difflab import pipeline  # torch and the trainers: imported when a sweep plans its tasks, not for --help

    return pipeline.sweep_key


def plan_tasks(jobs: list[Job], *, batch: bool, workers: int) -> list[tuple[list[Job], bool]]:
    """Tasks for the pool: groups of ≥ 2 cells with the same batch key (split so every worker gets work), else
    single cells. With ``batch`` False every cell is its own task."""
    if not batch:
        return [([j], False) for j in jobs]
    from difflab.config import load_saved_config

    key_fn = _batch_key_fn()
    groups: dict[Hashable, list[Job]] = {}
    singles: list[Job] = []
    for j in jobs:
        key = key_fn(load_saved_config(j.config, j.id)) if j.train else None
        (singles if key is None else groups.setdefault(key, [])).append(j)
    big = [g for g in groups.values() if len(g) >= 2]
    singles += [j for g in groups.values() if len(g) < 2 for j in g]
    tasks: list[tuple[list[Job], bool]] = []
    for g in big:
        parts = max(1, min(math.ceil(workers / len(big)), len(g) // 2))
        tasks += [(g[i::parts], True) for i in range(parts)]
    return tasks + [([j], False) for j in singles]


def _progress(outcome: dict[str, Any], i: int, total: int, metrics: list[str]) -> str:
    rec = outcome.get("record")
    if rec is None:
        return f"[{i}/{total}] {outcome['id']}: {outcome['status']}"
    scores = "  ".join(f"{m} {rec['metrics'][m]['ratio']:.3g}x" for m in metrics)
    return f"[{i}/{total}] {outcome['id']}: {rec['status']}  {scores}  (train {rec['train_seconds']:.1f} s)"


def _write_plan(out: Path, spec: GridSpec, cells: list[Cell]) -> None:
    write_json(out / SWEEP, {
        "spec": spec.to_dict(), "keys": spec.keys,
        "cells": [{"id": c.id, "values": {k: get_dotted(c.config, k) for k in spec.keys}, "seed": c.seed}
                  for c in cells],
    })


def run_sweep(
    spec: GridSpec,
    out: str | Path,
    *,
    workers: int | None = None,
    batch: bool = True,
    echo: Echo = print,
    echo_err: Echo = lambda s: print(s, file=sys.stderr),
) -> SweepSummary:
    """Run every cell of ``spec`` not already done into ``out``; write the tables and the figure.

    Args:
        workers: worker processes (default ``os.cpu_count()``); 1 runs the cells in this process.
        batch: train compatible cells together when ``difflab.pipeline`` can.
        echo, echo_err: where progress lines and failure lines go.
    """
    from difflab.sweep import report

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DifflabError(f"{out}: exists and is not a folder")
    cells = expand(spec)  # every cell is resolved and checked before anything runs
    evaluate = spec.evaluate.to_dict()
    jobs, done = plan_jobs(cells, out, evaluate)
    summary = SweepSummary(out, len(cells), skipped=done)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    _write_plan(out, spec, cells)
    workers = max(1, workers or os.cpu_count() or 1)
    tasks = plan_tasks(jobs, batch=batch, workers=workers)
    if done:
        echo(f"{done} of {len(cells)} cells done before; running {len(jobs)}")

    finished = 0

    def record(outcome: dict[str, Any]) -> None:
        nonlocal finished
        finished += 1
        status = outcome["status"]
        if status.startswith("failed"):
            summary.failed[outcome["id"]] = status.removeprefix("failed: ")
            echo_err(f"failed: {outcome['id']}: {summary.failed[outcome['id']]}")
        else:
            summary.ok += status == "ok"
            summary.diverged += status != "ok"
        echo(_progress(outcome, finished, len(jobs), list(spec.evaluate.metrics)))
        report.write_tables(out)

    try:
        if workers == 1 or len(tasks) <= 1:
            for task_jobs, use_batch in tasks:
                for outcome in run_task(task_jobs, use_batch):
                    record(outcome)
        else:
            _run_pool(tasks, min(workers, len(tasks)), record)
    finally:
        report.write_results(out)
    return summary


def _run_pool(tasks: list[tuple[list[Job], bool]], workers: int, record: Callable[[dict[str, Any]], None]) -> None:
    # spawn, not fork: a forked child of a process that has used torch's thread pools can deadlock.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        futures: dict[Future, list[Job]] = {pool.submit(run_task, jobs, b): jobs for jobs, b in tasks}
        try:
            for future in as_completed(futures):
                try:
                    outcomes = future.result()
                except BrokenProcessPool as e:  # a worker died (killed, out of memory): its cells failed
                    outcomes = []
                    for j in futures[future]:
                        message = f"worker process died ({one_line(e)})"
                        write_json(Path(j.path) / FAILED, {"cell": j.id, "error": message})
                        outcomes.append({"id": j.id, "status": f"failed: {message}"})
                for outcome in outcomes:
                    record(outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
