"""Shared by the benchmarks: what machine this is, how loaded it is, alternating timed rounds, tables.

Every benchmark times its cases in the same process, one round at a time with the cases in turn (their order
rotating from round to round), drops warm-up rounds, and reports medians: a burst of load from other processes
then hits every case alike instead of one.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from difflab.escape import markdown_table


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(device: str = "cpu") -> str:
    text = f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}"
    if device == "cuda" and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name()}"
    return text


def load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load unknown"
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def resolve(device: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def alternate(
    cases: dict[str, Callable[[], object]], *, rounds: int, warmup: int = 1, device: str = "cpu"
) -> dict[str, list[float]]:
    """Wall seconds of each case per round (after ``warmup`` untimed rounds), cases in rotating order."""
    names = list(cases)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            sync(device)
            start = time.perf_counter()
            cases[name]()
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; floats get 3 significant digits, every cell is escaped (difflab.escape.markdown_table)."""

    def cell(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return markdown_table(headers, [[cell(v) for v in row] for row in rows])


def header(title: str, device: str) -> str:
    return f"## {title}\n\n{machine(device)}; {load()} at start\n"


def write_section(page: os.PathLike[str] | str, section: str, start: str, end: str) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) in the markdown ``page`` in place of the
    text between those markers, or at the end; the rest of the page stays as it is."""
    from pathlib import Path

    page = Path(page)
    text = page.read_text(encoding="utf-8") if page.exists() else ""
    if start in text and end in text:
        text = text[: text.index(start)] + section.rstrip("\n") + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    staging = page.with_name(f".{page.name}.writing")  # written whole, then renamed over the page
    staging.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    os.replace(staging, page)
