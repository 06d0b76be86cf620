"""Where a sweep's tasks run: a registry of execution backends behind one interface (:class:`Backend`).

``local`` (the default) runs tasks in a pool of processes on this machine and needs nothing beyond difflab;
``ray`` runs each task as a Ray task on a local Ray or a cluster (``pip install 'difflab[ray]'``). Both run the
same :class:`~difflab.sweep.cells.Task` through :func:`~difflab.sweep.cells.run_task`, so they write the same
cell folders; :mod:`difflab.sweep.runner` plans the tasks and collects the outcomes.
"""

from __future__ import annotations

from collections.abc import Callable

from difflab.errors import ConfigError
from difflab.sweep.backends.base import Backend, BackendOptions, Record
from difflab.sweep.backends.local import LocalBackend
from difflab.sweep.backends.ray_cluster import RayBackend

BACKENDS: dict[str, Callable[[BackendOptions], Backend]] = {"local": LocalBackend, "ray": RayBackend}


def open_backend(name: str, options: BackendOptions) -> Backend:
    """The backend ``name`` with ``options`` (not yet started: use it as a context manager)."""
    if name not in BACKENDS:
        raise ConfigError(f"--backend {name!r}: expected one of {', '.join(BACKENDS)}")
    return BACKENDS[name](options)


__all__ = ["BACKENDS", "Backend", "BackendOptions", "Record", "open_backend"]
