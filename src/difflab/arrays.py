"""Reading .npy files whose header is checked first: numpy allocates the shape the header claims before it reads a
byte of data, so a 100-byte file that claims shape (10¹², 2) would ask for 16 TB. :func:`load_npy` reads the header,
refuses a shape the file cannot hold or one above :mod:`difflab.limits`' ``array_bytes``, then loads (no pickle).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from difflab.errors import DifflabError
from difflab.limits import check_array_header

_READ_HEADER = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def npy_header(path: str | os.PathLike[str]) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy file's header, checked against the file's size and the limit; a file that is not
    a .npy array is a one-line error."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = _READ_HEADER.get(version)
            if read is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = read(f)
            data_size = os.fstat(f.fileno()).st_size - f.tell()
    except (OSError, ValueError, EOFError, SyntaxError, TypeError) as e:
        reason = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
        raise DifflabError(f"{path}: corrupt array file, cannot read it ({reason})") from None
    if dtype.hasobject:
        raise DifflabError(f"{path}: cannot read an array of Python objects (dtype {dtype}); difflab reads numbers only")
    check_array_header(path, tuple(int(s) for s in shape), dtype.itemsize, data_size)
    return shape, dtype


def load_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """The array in ``path`` after :func:`npy_header` has checked it (never unpickles)."""
    npy_header(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DifflabError(f"{path}: corrupt array file ({str(e).split('. ')[0][:100]})") from None
