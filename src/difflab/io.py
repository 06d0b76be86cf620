"""Atomic file writes: write to a temporary file in the target's folder, then rename over the target.

A crash or a bad input therefore never leaves a half-written file behind; readers see the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from difflab.errors import DifflabError
from difflab.signals import sweep_stale, temp_prefix


def _check_parent(path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DifflabError(f"{path}: cannot create folder {parent} ({e.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise DifflabError(f"{path}: folder {parent} is not writable")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error (or SIGTERM, SIGHUP:
    :mod:`difflab.signals`) delete it. Its name carries this process's pid, so a later write sweeps it if this
    process is killed outright.

    The temporary name keeps the target's suffix, so libraries that infer a format from it (matplotlib,
    numpy) behave as they would on the real name.
    """
    path = Path(path)
    _check_parent(path)
    suffix = path.suffix or ".tmp"
    sweep_stale(path.parent, path.stem, suffix)  # partial files of an earlier writer that was killed
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.stem), suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file private (0600); give it the mode a plain open() would, under the user's umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces ``path`` only when the block finishes without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON, turning a missing or corrupt file into a one-line :class:`DifflabError`."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DifflabError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DifflabError(f"{path}: not valid JSON ({e})") from None
