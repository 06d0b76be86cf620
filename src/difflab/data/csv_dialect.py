"""How a CSV file separates its values: commas, or (as spreadsheets in many locales write it) semicolons with
decimal commas, or tabs. Read with the wrong separator, ``a;b`` / ``1,5;2,3`` is one text column with one level per
row; :func:`csv_options` looks at the first lines and picks the separator that splits every one of them into the
same number of fields, and decimal commas where the separator is not a comma.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

SEPARATORS = (",", ";", "\t", "|")  # in order of preference when more than one fits
SNIFF_BYTES = 64 * 1024
SNIFF_LINES = 50
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+([eE][+-]?\d+)?$")
_THOUSANDS_DOT = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+,\d+$")  # 1.234,5: dots only count next to a decimal comma


def _head(path: Path) -> list[str]:
    with open(path, "rb") as f:
        raw = f.read(SNIFF_BYTES)
    text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(raw) == SNIFF_BYTES and lines:  # the last line may be cut
        lines = lines[:-1]
    return [line for line in lines if line.strip()][:SNIFF_LINES]


def _fields(lines: list[str], sep: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep))


def csv_options(path: str | Path) -> dict[str, Any]:
    """``pandas.read_csv`` options for ``path``: ``sep`` (and ``decimal=","``, ``thousands="."`` where the values
    are written so); {} for an ordinary comma-separated file."""
    lines = _head(Path(path))
    if len(lines) < 2:
        return {}
    for sep in SEPARATORS:
        rows = _fields(lines, sep)
        widths = {len(r) for r in rows}
        if len(widths) == 1 and widths.pop() > 1:
            break
    else:
        return {}
    if sep == ",":
        return {}
    values = [v.strip() for r in rows[1:] for v in r]
    options: dict[str, Any] = {"sep": sep}
    if any(_DECIMAL_COMMA.match(v) for v in values) or any(_THOUSANDS_DOT.match(v) for v in values):
        options["decimal"] = ","
        if any(_THOUSANDS_DOT.match(v) for v in values):
            options["thousands"] = "."
    return options
