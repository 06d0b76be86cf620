"""What every execution backend of a sweep offers: how many tasks it runs at once, and running a list of tasks
while handing each cell's outcome back as it arrives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from difflab.sweep.cells import Outcome, Task

Record = Callable[[Outcome], None]


@dataclass(frozen=True)
class BackendOptions:
    """Settings of the backends; each backend refuses the ones that are not its own (None: not given).

    Attributes:
        workers: local: worker processes (default: the number of CPU cores); 1 runs the tasks in this process.
        address: ray: the cluster to join (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); default: join the local
            Ray instance if one runs, else start one for this sweep.
        cpus_per_task: ray: CPUs Ray reserves for each task (default 1); also its torch threads.
        gpus_per_task: ray: GPUs Ray reserves for each task, fractions allowed (default: 1 for cells on
            ``train.device = "cuda"``, and for ``"auto"`` when the cluster has GPUs; else 0).
    """

    workers: int | None = None
    address: str | None = None
    cpus_per_task: float | None = None
    gpus_per_task: float | None = None


class Backend(Protocol):
    """An execution backend, used as a context manager: ``with BACKENDS[name](options) as b: b.run(...)``."""

    def slots(self) -> int:
        """Tasks that run at the same time (the planner splits batched groups so that each slot has work)."""
        ...

    def check(self, tasks: list[Task]) -> None:
        """Raise a one-line :class:`~difflab.errors.ConfigError` for a task this backend could never run."""
        ...

    def run(self, tasks: list[Task], record: Record) -> None:
        """Run every task; call ``record`` with each cell's outcome as it arrives. A task whose worker dies is
        recorded as its cells failing (with failed.json written), and the others go on. Interrupted (an exception
        in ``record``, Ctrl-C), it stops the tasks still running before it raises."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...
