"""The local backend: tasks in worker processes on this machine (or in this process with one worker)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from difflab.errors import ConfigError
from difflab.sweep.backends.base import BackendOptions, Record
from difflab.sweep.cells import Task, fail_task, one_line, run_task


def _init_worker() -> None:
    import torch

    from difflab.signals import install

    # N worker processes on N cores: one thread each, or they fight over the cores.
    torch.set_num_threads(1)
    install()  # SIGTERM/SIGHUP to the process group: each worker removes its partial files as it ends


class LocalBackend:
    """A pool of ``options.workers`` processes (default: one per CPU core)."""

    def __init__(self, options: BackendOptions) -> None:
        given = [flag for flag, v in (("--address", options.address), ("--cpus-per-task", options.cpus_per_task),
                                      ("--gpus-per-task", options.gpus_per_task)) if v is not None]
        if given:
            raise ConfigError(f"{given[0]} is an option of --backend ray; the local backend takes --workers")
        self.workers = max(1, options.workers or os.cpu_count() or 1)

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def slots(self) -> int:
        return self.workers

    def check(self, tasks: list[Task]) -> None:
        pass  # a cell this machine cannot run (a GPU cell without a GPU) fails alone, with its own message

    def run(self, tasks: list[Task], record: Record) -> None:
        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                for outcome in run_task(task.jobs, task.batch):
                    record(outcome)
            return
        # spawn, not fork: a forked child of a process that has used torch's thread pools can deadlock.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=ctx,
                                 initializer=_init_worker) as pool:
            futures: dict[Future, Task] = {pool.submit(run_task, t.jobs, t.batch): t for t in tasks}
            try:
                for future in as_completed(futures):
                    try:
                        outcomes = future.result()
                    except BrokenProcessPool as e:  # a worker died (killed, out of memory): its cells failed
                        outcomes = fail_task(futures[future], f"worker process died ({one_line(e)})")
                    for outcome in outcomes:
                        record(outcome)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
