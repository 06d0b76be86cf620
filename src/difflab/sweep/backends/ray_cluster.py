"""The Ray backend: every task (a cell, or a group of cells trained together) is a Ray task with its own CPU and
GPU reservation, on a local Ray instance or on a cluster (https://docs.ray.io).

The workers write the cells' folders themselves, so the sweep directory must be on a file system that every node
sees at the same path (paths are sent absolute); each task also runs in the driver's working folder when its
machine has it, so that relative data paths in the configs name the same files. The driver only plans, collects
the outcomes and writes the tables. Ray is an optional dependency: ``pip install 'difflab[ray]'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import Any

from difflab.errors import ConfigError, DifflabError
from difflab.sweep.backends.base import BackendOptions, Record
from difflab.sweep.cells import Job, Outcome, Task, fail_task, one_line, run_task

INSTALL = "--backend ray needs Ray, an optional extra of difflab: pip install 'difflab[ray]'"
# One more try when a worker or its node dies (a lost node, a pre-empted machine); a cell that kills its worker
# every time is then reported failed. Exceptions inside a cell never reach Ray: run_task reports them.
MAX_RETRIES = 1
CANCEL_WAIT_S = 30.0  # the most an interrupted sweep waits for its cancelled tasks to end


def run_on_worker(jobs: list[Job], batch: bool, *, threads: int, cwd: str) -> list[Outcome]:
    """The body of every Ray task: :func:`run_task` with torch on the task's CPUs, in the driver's folder."""
    import torch

    torch.set_num_threads(threads)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    return run_task(jobs, batch)


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError as e:
        if e.name != "ray":
            raise
        raise DifflabError(INSTALL) from None
    return ray


def _failure(e: BaseException) -> str:
    """One line for a task that Ray could not finish: the worker's own exception when there is one."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        return f"ray task failed ({one_line(cause)})"
    return f"ray worker died ({one_line(e)})"


class RayBackend:
    """Tasks as Ray tasks; joins ``options.address`` (or starts a local Ray) unless Ray is already initialised."""

    def __init__(self, options: BackendOptions) -> None:
        if options.workers is not None:
            raise ConfigError("--workers is an option of the local backend; with --backend ray as many tasks run at "
                              "once as the cluster has CPUs (see --cpus-per-task)")
        self.ray = _import_ray()
        self.cpus_per_task = 1.0 if options.cpus_per_task is None else float(options.cpus_per_task)
        self.gpus_per_task = options.gpus_per_task
        if self.cpus_per_task <= 0 or (self.gpus_per_task is not None and self.gpus_per_task < 0):
            raise ConfigError("--cpus-per-task must be > 0 and --gpus-per-task >= 0")
        self.address = options.address
        self.started = False

    def __enter__(self) -> RayBackend:
        ray = self.ray
        if not ray.is_initialized():
            where = f"join the Ray cluster at {self.address}" if self.address else "start or join a local Ray"
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)
            except Exception as e:  # ConnectionError, ValueError, RuntimeError: Ray's own words, on one line
                raise DifflabError(f"--backend ray: cannot {where}: {one_line(e)}") from None
            self.started = True
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        self.cpus = sum(n.get("CPU", 0.0) for n in nodes)
        self.gpus = sum(n.get("GPU", 0.0) for n in nodes)
        self.node_most = {r: max((n.get(r, 0.0) for n in nodes), default=0.0) for r in ("CPU", "GPU")}
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.ray.shutdown()

    def resources(self, task: Task) -> tuple[float, float]:
        """(num_cpus, num_gpus) for a task; its cells share one device setting (a batched group has one key)."""
        device = task.jobs[0].config["train"]["device"]
        if self.gpus_per_task is not None:
            return self.cpus_per_task, self.gpus_per_task
        wants_gpu = device == "cuda" or (device == "auto" and self.gpus > 0)
        return self.cpus_per_task, 1.0 if wants_gpu else 0.0

    def slots(self) -> int:
        slots = max(1, int(self.cpus // self.cpus_per_task))
        gpus_each = 1.0 if self.gpus_per_task is None else self.gpus_per_task
        if self.gpus > 0 and gpus_each > 0:
            slots = min(slots, max(1, int(self.gpus // gpus_each)))
        return slots

    def check(self, tasks: list[Task]) -> None:
        """A task that no node can hold would wait for ever: say so before anything runs."""
        for cpus, gpus in {self.resources(t) for t in tasks}:
            for name, want in (("CPU", cpus), ("GPU", gpus)):
                if want > self.node_most[name]:
                    hint = " (train.device = 'cuda'?; set --gpus-per-task)" if name == "GPU" else ""
                    raise ConfigError(f"--backend ray: a task needs {want:g} {name}s but the largest node of the "
                                      f"cluster has {self.node_most[name]:g}{hint}")

    def run(self, tasks: list[Task], record: Record) -> None:
        ray = self.ray
        remote = ray.remote(run_on_worker)
        threads = max(1, int(self.cpus_per_task))
        cwd = os.getcwd()
        pending: dict[Any, Task] = {}
        try:
            for task in tasks:
                cpus, gpus = self.resources(task)
                jobs = [dataclasses.replace(j, path=os.path.abspath(j.path)) for j in task.jobs]
                name = jobs[0].id + (f" (+{len(jobs) - 1} cells)" if len(jobs) > 1 else "")
                ref = remote.options(num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES, name=name).remote(
                    jobs, task.batch, threads=threads, cwd=cwd)
                pending[ref] = task
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    task = pending.pop(ref)
                    try:
                        outcomes = ray.get(ref)
                    except ray.exceptions.RayError as e:  # the worker died, or run_task itself could not run
                        outcomes = fail_task(task, _failure(e))
                    for outcome in outcomes:
                        record(outcome)
        except BaseException:  # interrupted: stop what still runs (its cells start over next time)
            for ref in pending:
                ray.cancel(ref, force=True)
            # and wait until those workers are gone: a killed worker still holds its cell's run lock until its
            # process ends, and a sweep resumed at once would find the cell locked (measured under a busy test run)
            with contextlib.suppress(Exception):
                ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_WAIT_S)
            raise
