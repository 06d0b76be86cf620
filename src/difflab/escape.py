"""Text that comes from users (column names, labels, file names, grid values), made safe for each place difflab
shows it: one function per output format, applied where such text enters that format.

- :func:`html_text` — HTML pages and every string Plotly draws. Plotly renders a subset of HTML in titles, axis and
  tick labels, legend names and hover text (``<a href>``, ``<span style>``, ``<br>``, ``<b>``): a label like
  ``<a href="https://x">click</a>`` would become a live link, ``<span style="font-size:900px">`` would restyle the page.
  With ``<``, ``>`` and ``&`` as entities (which Plotly decodes for display) the characters themselves are drawn.
- :func:`markdown_text` — Markdown (a sweep's results.md, the docs pages benchmarks write). Markdown passes raw HTML
  through (``<img src=x onerror=…>`` runs wherever it is rendered with HTML), and ``|`` ends a table cell, ``[…](…)``
  makes a link, ``*``, ``_``, `````, ``~`` change the text. HTML characters become entities, the others get a
  backslash (CommonMark escapes any ASCII punctuation that way), and line breaks become spaces.
- :func:`terminal_text` — text printed to a terminal. Control characters (ESC starts sequences that recolour,
  retitle, clear or rewrite the screen; BEL, backspace, carriage return overwrite what was printed), the C1 controls
  and the bidirectional overrides ("Trojan Source", CVE-2021-42574) are shown as Python escapes (``\\x1b``, ``\\u202e``).
  :class:`SafeStream` applies it to everything the command line prints, keeping the newlines, tabs and carriage
  returns of difflab's own progress output.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any, TextIO

# Bidirectional embeddings, overrides and isolates, and the marks: they reorder how the rest of a line is displayed.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def _visible(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _unsafe(ch: str, keep: str) -> bool:
    return ch not in keep and (unicodedata.category(ch) == "Cc" or ch in _BIDI)


def terminal_text(text: str, *, keep: str = "") -> str:
    """``text`` with every control character (C0, DEL, C1) and bidirectional control shown as an escape; the
    characters in ``keep`` (e.g. ``"\\n"``) pass as they are."""
    if text.isprintable() and not any(ch in _BIDI for ch in text):  # the usual case, at C speed
        return text
    return "".join(_visible(ch) if _unsafe(ch, keep) else ch for ch in text)


def one_line(text: str) -> str:
    """``text`` on one line: control characters made visible (:func:`terminal_text`), runs of whitespace as one
    space."""
    return " ".join(terminal_text(text, keep="\n\t").split())


def html_text(value: Any) -> str:
    """``str(value)`` for HTML and Plotly: ``<``, ``>``, ``&`` and quotes as entities, control characters visible.
    Quotes are numeric entities (``&#34;``): Plotly decodes only a few named ones (``&lt;``, ``&gt;``, ``&amp;``) and
    any numeric one, and would draw ``&quot;`` as it stands."""
    return html.escape(terminal_text(str(value)), quote=True).replace("&quot;", "&#34;")


def markdown_text(value: Any) -> str:
    """``str(value)`` as literal text inside Markdown (also inside a table cell): one line, HTML characters as
    entities, Markdown's own punctuation backslash-escaped."""
    text = html.escape(" ".join(terminal_text(str(value), keep="\n\t\r").split()), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)


def markdown_table(header: list[Any], rows: list[list[Any]], *, escaped: bool = False) -> str:
    """A Markdown (GitHub) table of ``header`` and ``rows``, every cell escaped by :func:`markdown_text` (unless
    ``escaped``: the caller escaped the text in each cell and added its own markup)."""
    text = str if escaped else markdown_text

    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(text(c) for c in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *(line(r) for r in rows)])


class SafeStream:
    """A text stream that writes :func:`terminal_text` of everything to ``stream`` (keeping newline, tab and
    carriage return, which progress bars use); every other attribute is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(terminal_text(text, keep="\n\t\r"))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
