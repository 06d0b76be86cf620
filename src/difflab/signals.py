"""Interrupted work leaves nothing behind: SIGTERM and SIGHUP end a command the way Ctrl-C does, and partial files
of a process that died anyway are swept by the next one.

Python's default for SIGTERM and SIGHUP ends the process at once, so no ``finally`` runs and a file being written
under a temporary name (:func:`difflab.io.atomic_path`) stays behind. :func:`terminating_cleanly` turns both signals
into a :class:`Terminated` exception (a ``BaseException``, like ``KeyboardInterrupt``), so every cleanup on the way
out runs: temporary files are deleted, locks released, a worker pool shut down.

A process killed outright (SIGKILL, out of memory, a power cut) cleans nothing. Its temporary names therefore carry
its pid and host (:func:`temp_prefix`), and the next write to the same target deletes those whose process is gone
(:func:`sweep_stale`); temporary folders (:func:`temp_folder`) are swept the same way.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)
_MARK = "difflab-"
_OWNER = re.compile(r"difflab-(?:[a-z]+-)?(\d+)-([0-9a-f]{6})[.-]")


class Terminated(BaseException):
    """The process was asked to end by a signal; raised in the main thread so cleanups run."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


def _raise(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminating_cleanly() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM and SIGHUP raise :class:`Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def install() -> None:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` for the rest of the process (a worker process's start)."""
    for s in SIGNALS:
        signal.signal(s, _raise)


# --- names of partial files, and sweeping stale ones -------------------------------------------------------------


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def temp_prefix(stem: str) -> str:
    """The prefix of a temporary file next to ``stem``'s target: ``.<stem>.difflab-<pid>-<host>.``."""
    return f".{stem}.{_MARK}{os.getpid()}-{_host()}."


def _owner(name: str) -> tuple[int, str] | None:
    """(pid, host) from a name made with :func:`temp_prefix` or :func:`temp_folder`, or None."""
    found = _OWNER.search(name)
    return (int(found[1]), found[2]) if found else None


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            return next(float(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None


def _started_at(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from /proc; None where that is not known."""
    boot = _boot_time()
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()
        return None if boot is None else boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, since: float) -> bool:
    """Whether process ``pid`` still runs and is the one that was there at time ``since`` (a pid reused by a later
    process is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _started_at(pid)
    return started is None or started <= since + 1.0


def is_stale(path: Path) -> bool:
    """Whether ``path`` is a temporary file or folder of a process on this host that is gone."""
    owner = _owner(path.name)
    if owner is None or owner[1] != _host():
        return False
    try:
        since = path.lstat().st_mtime
    except OSError:
        return False
    return not _alive(owner[0], since)


def sweep_stale(folder: Path, stem: str, suffix: str) -> None:
    """Delete the stale temporary files of the target ``stem``+``suffix`` in ``folder``."""
    pattern = f".{glob.escape(stem)}.{_MARK}*{glob.escape(suffix)}"
    for path in folder.glob(pattern):
        if is_stale(path):
            with contextlib.suppress(OSError):
                path.unlink()


def temp_folder(kind: str) -> Path:
    """A new temporary folder ``difflab-<kind>-…`` in the system's temporary folder, after deleting those of the
    same kind whose process is gone."""
    root = Path(tempfile.gettempdir())
    for path in root.glob(f"{_MARK}{glob.escape(kind)}-*"):
        if path.is_dir() and is_stale(path):
            shutil.rmtree(path, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{_MARK}{kind}-{os.getpid()}-{_host()}-"))
