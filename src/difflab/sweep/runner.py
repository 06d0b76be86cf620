"""Planning and running a sweep: which cells are left, how they group into tasks, and their outcomes collected.

Layout of a sweep directory::

    sweep.json              the grid as run: spec, command-line changes, the cells
    cells/<cell id>/        a run directory (see difflab.rundir), plus
        result.json         metrics, ELBO, timings; written last and atomically: the cell is done when it exists
        failed.json         the one-line error of the last failed attempt (removed when the cell succeeds)
    results.csv, results.md, results.png      tables and figure (difflab.sweep.report)

A cell without ``result.json`` starts over from scratch. A done cell whose evaluation settings changed is only
re-evaluated (its model is loaded, not retrained). Cells that ``difflab.pipeline.train_many`` can train together
(same ``sweep_key``) go to one worker as one ``train_many`` call. What a worker does with a task is
:mod:`difflab.sweep.cells`; where the tasks run (a local process pool, Ray) is :mod:`difflab.sweep.backends`.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflab.errors import ConfigError, DifflabError
from difflab.evaluation.uncertainty import format_ratio
from difflab.io import read_json, write_json
from difflab.limits import check
from difflab.lock import LOCK_FILE, writing
from difflab.sweep.backends import BackendOptions, open_backend
from difflab.sweep.cells import RESULT, Job, Outcome, Task
from difflab.sweep.grid import Cell, GridSpec, expand, get_dotted

SWEEP = "sweep.json"
Echo = Callable[[str], None]


@dataclass
class SweepSummary:
    """What one call of :func:`run_sweep` did."""

    out: Path
    total: int
    skipped: int = 0
    ok: int = 0
    diverged: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        return (f"sweep: {self.total} cells: {self.skipped} done before, {self.ok} ok, {self.diverged} diverged, "
                f"{len(self.failed)} failed, {len(self.refused)} refused -> {self.out / 'results.md'}")


# --- planning, in the parent ---------------------------------------------------------------------------------------


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in dict.fromkeys([*a, *b]):
            diff = _first_difference(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
            if diff:
                return diff
        return None
    return None if a == b else f"{prefix} was {a!r}, now {b!r}"


def plan_jobs(cells: list[Cell], out: Path, evaluate: dict[str, Any], *,
              force: bool = False) -> tuple[list[Job], int]:
    """Jobs for the cells not yet done, and the number already done (result.json with the same settings).

    A done cell whose config differs from the grid's is an error: its results would be mixed with new ones; with
    ``force`` it is trained again.
    """
    jobs, done = [], 0
    for cell in cells:
        if cell.refused:
            continue
        path = out / "cells" / cell.id
        config = cell.config.model_dump(mode="json")
        train = True
        if (path / RESULT).exists():
            saved = read_json(path / RESULT)
            diff = _first_difference(saved.get("config"), config)
            if diff and not force:
                raise ConfigError(f"{path}: finished with another config ({diff}); use a new --out (or --force to "
                                  "train it again)")
            if diff:
                jobs.append(Job(cell.id, str(path), config, cell.values, cell.seed, evaluate, True))
                continue
            if saved.get("evaluate") == evaluate:
                done += 1
                continue
            train = False
        jobs.append(Job(cell.id, str(path), config, cell.values, cell.seed, evaluate, train))
    return jobs, done


def _batch_key_fn() -> Callable[[Any], Hashable | None]:
    from difflab import pipeline  # torch and the trainers: imported when a sweep plans its tasks, not for --help

    return pipeline.sweep_key


def plan_tasks(jobs: list[Job], *, batch: bool, workers: int) -> list[Task]:
    """Tasks for the backend: groups of ≥ 2 cells with the same batch key (split so that each of ``workers``
    slots gets work), else single cells. With ``batch`` False every cell is its own task."""
    if not batch:
        return [Task([j], False) for j in jobs]
    from difflab.config import load_saved_config

    key_fn = _batch_key_fn()
    groups: dict[Hashable, list[Job]] = {}
    singles: list[Job] = []
    for j in jobs:
        key = key_fn(load_saved_config(j.config, j.id)) if j.train else None
        (singles if key is None else groups.setdefault(key, [])).append(j)
    big = [g for g in groups.values() if len(g) >= 2]
    singles += [j for g in groups.values() if len(g) < 2 for j in g]
    tasks: list[Task] = []
    for g in big:
        parts = max(1, min(math.ceil(workers / len(big)), len(g) // 2))
        tasks += [Task(g[i::parts], True) for i in range(parts)]
    return tasks + [Task([j], False) for j in singles]


def _progress(outcome: dict[str, Any], i: int, total: int, metrics: list[str]) -> str:
    rec = outcome.get("record")
    if rec is None:
        return f"[{i}/{total}] {outcome['id']}: {outcome['status']}"
    scores = "  ".join(f"{m} {format_ratio(rec['metrics'][m]['ratio'], rec['metrics'][m].get('ratio_se'), suffix='x')}"
                       for m in metrics)
    return f"[{i}/{total}] {outcome['id']}: {rec['status']}  {scores}  (train {rec['train_seconds']:.1f} s)"


def _write_plan(out: Path, spec: GridSpec, cells: list[Cell]) -> None:
    write_json(out / SWEEP, {
        "spec": spec.to_dict(), "keys": spec.keys,
        "cells": [{"id": c.id, "values": {k: get_dotted(c.config, k) for k in spec.keys}, "seed": c.seed,
                   **({"refused": c.refused} if c.refused else {})} for c in cells],
    })


def run_sweep(
    spec: GridSpec,
    out: str | Path,
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    cpus_per_task: float | None = None,
    gpus_per_task: float | None = None,
    batch: bool = True,
    force: bool = False,
    echo: Echo = print,
    echo_err: Echo = lambda s: print(s, file=sys.stderr),
) -> SweepSummary:
    """Run every cell of ``spec`` not already done into ``out``; write the tables and the figure.

    Args:
        backend: where the tasks run, a name in :data:`difflab.sweep.backends.BACKENDS` (``local``, ``ray``).
        workers, address, cpus_per_task, gpus_per_task: the backend's settings
            (:class:`~difflab.sweep.backends.BackendOptions`; each backend refuses the others' settings).
        batch: train compatible cells together (one task per group).
        force: write into a folder that holds something else, or a sweep of another grid, replacing its results
            (otherwise refused, :func:`check_sweep_out`).
        echo, echo_err: where progress lines and failure lines go.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DifflabError(f"{out}: exists and is not a folder")
    if workers is not None:
        check("workers", workers, label="--workers")
    cells = expand(spec)  # every cell is resolved and checked before anything runs
    check_sweep_out(out, cells, force=force)
    with writing(out, "sweep"):  # one sweep at a time in a folder (difflab.lock)
        check_sweep_out(out, cells, force=force)
        return _run_locked(spec, out, cells, backend=backend, options=BackendOptions(
            workers=workers, address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task),
            batch=batch, force=force, echo=echo, echo_err=echo_err)


def check_sweep_out(out: Path, cells: list[Cell], *, force: bool) -> None:
    """Refuse, unless ``force``, an --out that holds something other than a sweep, or a sweep of another grid
    whose finished cells this grid would leave out of results.csv and results.md."""
    if force or not out.is_dir():
        return
    if not (out / SWEEP).exists():
        if any(p.name != LOCK_FILE for p in out.iterdir()):
            raise DifflabError(f"{out}: folder is not empty and holds no sweep; choose a new or empty --out (or "
                               "--force to write the sweep into it)")
        return
    try:
        before = [c["id"] for c in read_json(out / SWEEP)["cells"]]
    except (KeyError, TypeError):
        raise DifflabError(f"{out / SWEEP}: corrupt; choose a new --out (or --force to replace it)") from None
    ids = {c.id for c in cells}
    lost = [cid for cid in before if cid not in ids and (out / "cells" / str(cid) / RESULT).exists()]
    if lost:
        raise DifflabError(f"{out}: holds a sweep of another grid; the results of {len(lost)} finished cell(s) not in "
                           f"this grid (e.g. {lost[0]}) would leave its results; use a new --out (or --force to "
                           "replace them)")


def _run_locked(spec: GridSpec, out: Path, cells: list[Cell], *, backend: str, options: BackendOptions,
                batch: bool, force: bool, echo: Echo, echo_err: Echo) -> SweepSummary:
    from difflab.sweep import report

    evaluate = spec.evaluate.to_dict()
    jobs, done = plan_jobs(cells, out, evaluate, force=force)
    engine = open_backend(backend, options)
    summary = SweepSummary(out, len(cells), skipped=done, refused={c.id: c.refused for c in cells if c.refused})
    for cid, why in summary.refused.items():
        echo_err(f"refused: {cid}: {why}")
    finished = 0

    def record(outcome: Outcome) -> None:
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

    # Ray starts only when there is work; a backend that cannot start (no cluster at --address) or cannot hold a
    # task (a GPU cell, no GPU) fails before anything is written.
    with engine if jobs else contextlib.nullcontext():
        tasks = plan_tasks(jobs, batch=batch, workers=engine.slots()) if jobs else []
        if tasks:
            engine.check(tasks)
        (out / "cells").mkdir(parents=True, exist_ok=True)
        _write_plan(out, spec, cells)
        if done:
            echo(f"{done} of {len(cells)} cells done before; running {len(jobs)}")
        try:
            if tasks:
                engine.run(tasks, record)
        finally:
            report.write_results(out)
    return summary
