"""Progress output that suits where it goes: a live bar on a terminal, a few plain lines in a log file.

A tqdm bar redraws itself with a carriage return many times a second. On a terminal that is one line; written to a
file or a pipe (a batch job's log, CI) every redraw stays, thousands per run. Off a terminal :func:`progress_bar`
therefore writes a plain line only when another ~10 % of the work is done or 30 s have passed since the last line,
whichever comes first, and one at the end: about ten lines for a short run, one per 30 s for a long one.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

LINE_FRACTION = 0.1  # off a terminal: a line per this share of the total
LINE_SECONDS = 30.0  # ... or after this long without one


class Progress(Protocol):
    """What the training loops call: tqdm's ``update``, ``set_postfix`` and ``close``."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, **values: Any) -> Any: ...

    def close(self) -> Any: ...


class NoProgress:
    """Progress turned off: every call does nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress:
    """Plain lines ``desc: n/total (p%) s elapsed, key=value`` when ``LINE_FRACTION`` of the total more is done or
    ``LINE_SECONDS`` passed since the last line, and a last line on :meth:`close` if anything happened since."""

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        desc: str = "",
        stream: TextIO,
        every: float = LINE_FRACTION,
        seconds: float = LINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.n, self.desc, self.stream = total, initial, desc, stream
        self.seconds, self.clock = seconds, clock
        self.every = max(1, math.ceil(total * every))
        self.start = self._last_t = clock()
        self._last_n = initial
        self.postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if self.n - self._last_n >= self.every or now - self._last_t >= self.seconds:
            self._line(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.n != self._last_n:
            self._line(self.clock())

    def _line(self, now: float) -> None:
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        tail = f", {self.postfix}" if self.postfix else ""
        prefix = f"{self.desc}: " if self.desc else ""
        self.stream.write(f"{prefix}{self.n}/{self.total}{share} {now - self.start:.1f} s{tail}\n")
        self.stream.flush()
        self._last_n, self._last_t = self.n, now


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def progress_bar(
    total: int, *, initial: int = 0, desc: str = "", enabled: bool = True, stream: TextIO | None = None
) -> Progress:
    """A progress display for ``total`` units of work, ``initial`` of them already done, on ``stream`` (stderr):
    tqdm's bar on a terminal, :class:`LineProgress` elsewhere, :class:`NoProgress` when not ``enabled``."""
    if not enabled:
        return NoProgress()
    stream = sys.stderr if stream is None else stream
    if not is_terminal(stream):
        return LineProgress(total, initial=initial, desc=desc, stream=stream)
    from tqdm.auto import tqdm  # on demand: only a terminal needs it

    return tqdm(total=total, initial=initial, desc=desc, leave=False, file=stream)
