"""One writer per run directory (or sweep directory), and no reader while it writes.

The lock is ``fcntl.flock`` on the file ``.difflab.lock`` inside the folder: a writer holds it exclusively for as
long as it writes (:func:`writing`), a reader holds it shared while it reads the run's files (:func:`reading`). The
kernel releases a flock when its process dies however it dies, so a lock file left by a dead process is stale by
construction: the next writer's ``flock`` simply succeeds. Two processes that find the same stale lock cannot both
take it over — ``flock`` on one open file is atomic, so exactly one of them gets it and the other is told who. The
file is never deleted while a run lives (a writer that deleted it could let a third process lock a new file of the
same name while a second still holds the old one); a writer that fails before writing anything removes the lock
file and the folder it created, so a refused command leaves nothing behind.

The lock file holds one JSON line naming the holder (pid, host, command, since when), which is what a second writer
or a reader sees in its one-line error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from difflab.errors import DifflabError

LOCK_FILE = ".difflab.lock"
_HELD: dict[str, int] = {}  # folders whose lock this process holds (a nested writer or reader there goes ahead)


def _key(folder: Path) -> str:
    return os.path.realpath(folder)


class LockedError(DifflabError):
    """The folder is being written by another process."""


def holder_info() -> dict[str, object]:
    """Who this process is, as the lock file records it."""
    command = shlex.join(["difflab", *sys.argv[1:]]) if sys.argv and "difflab" in sys.argv[0] else \
        shlex.join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]])
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:200],
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def describe_holder(lock: Path) -> str:
    """The holder recorded in ``lock`` as words, for an error message."""
    try:
        info = json.loads(lock.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process (it has not said which yet)"
    return (f"pid {info.get('pid')} on {info.get('host', '?')} ({info.get('command', '?')}, since "
            f"{info.get('since', '?')})")


def _flock(fd: int, mode: int) -> bool:
    """Try to take a flock without waiting: True if taken, False if another process holds it."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):  # a file system without locks: go unlocked
            return True
        raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (a folder removed and made again does not)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _only_lock(folder: Path) -> bool:
    try:
        return [p.name for p in folder.iterdir()] == [LOCK_FILE]
    except OSError:
        return False


@contextlib.contextmanager
def writing(folder: str | os.PathLike[str], what: str = "run") -> Iterator[Path]:
    """Hold ``folder``'s lock exclusively (creating the folder if needed) while the block writes into it.

    Another writer, or a reader in the middle of reading, gives a one-line :class:`LockedError` naming it. If the
    block fails and the folder holds nothing but the lock file, the lock file (and the folder, if this call made
    it) is removed again."""
    folder = Path(folder)
    if _HELD.get(_key(folder)):
        yield folder
        return
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DifflabError(f"{folder}: cannot create the folder ({e.strerror})") from None
    lock = folder / LOCK_FILE
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise DifflabError(f"{lock}: cannot create the lock file ({e.strerror})") from None
        if not _flock(fd, fcntl.LOCK_EX):
            os.close(fd)
            raise LockedError(f"{folder}: this {what} is in use by {describe_holder(lock)}; wait until it ends, or "
                              "use another folder")
        if _same_file(fd, lock):
            break
        os.close(fd)  # the file was replaced between open and flock: lock the one that is there now
    before = os.fstat(fd)
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(holder_info()) + "\n").encode())
    key = _key(folder)
    _HELD[key] = 1
    try:
        yield folder
    except BaseException:
        if _only_lock(folder):
            _drop(folder, lock, made)
        raise
    finally:
        _HELD.pop(key, None)
        with contextlib.suppress(OSError):  # released: no holder to name, and the file's times as they were
            os.ftruncate(fd, 0)
            os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.close(fd)


def _drop(folder: Path, lock: Path, made: bool) -> None:
    with contextlib.suppress(OSError):
        lock.unlink()
        if made:
            folder.rmdir()


@contextlib.contextmanager
def reading(folder: str | os.PathLike[str], what: str = "run") -> Iterator[None]:
    """Hold ``folder``'s lock shared while the block reads it: a writer at work there gives a one-line
    :class:`LockedError` naming it, and no writer can start until the block ends. A folder without a lock file
    (written before difflab had locks, or read-only) is read without one."""
    lock = Path(folder) / LOCK_FILE
    if _HELD.get(_key(Path(folder))):  # this process writes it: it reads its own files
        yield
        return
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        if not _flock(fd, fcntl.LOCK_SH):
            raise LockedError(f"{folder}: this {what} is being written by {describe_holder(lock)}; read it when "
                              "that ends")
        yield
    finally:
        os.close(fd)


def check_free(folder: str | os.PathLike[str], what: str = "run") -> None:
    """Refuse, in one line, a folder that a writer holds now (before removing or replacing it)."""
    with reading(folder, what):
        pass
