"""One self-contained HTML page: plotly.js embedded once in the page (no CDN, so it opens with no network),
then sections of Plotly figures, tables and notes. Written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from difflab.escape import html_text
from difflab.io import atomic_open

# No Plotly logo; figures follow the page's width.
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

STYLE = """
body { font-family: Georgia, 'Times New Roman', serif; margin: 0 auto; max-width: 1150px; padding: 1.5em 2em;
       color: #222; background: #fff; }
h1 { font-weight: normal; margin-bottom: 0.2em; }
h2 { font-weight: normal; border-bottom: 1px solid #ccc; margin-top: 1.8em; }
p.note { color: #555; font-style: italic; margin: 0.3em 0 0.6em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.95em; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
th { border-bottom: 2px solid #888; font-weight: normal; }
code { background: #f4f4f4; padding: 0.1em 0.3em; }
nav a { margin-right: 1em; }
"""


@dataclass
class Section:
    """A part of the page: a heading, an optional note (what is shown and why) and its HTML body."""

    title: str
    body: str
    note: str = ""

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")


def figure_html(fig: go.Figure, div_id: str) -> str:
    """The figure as a ``<div>`` and the script that draws it; plotly.js itself comes once from :func:`render_page`.
    Animations wait for the reader (no auto-play)."""
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=PLOTLY_CONFIG,
                       auto_play=False)


def table_html(header: Sequence[str], rows: Sequence[Sequence[object]], *, table_id: str | None = None,
               text_columns: Sequence[int] = ()) -> str:
    """A plain HTML table, every cell escaped; numbers align right, the first column and ``text_columns`` left."""
    ident = f' id="{html_text(table_id)}"' if table_id else ""

    def cell(tag: str, j: int, value: object) -> str:
        cls = ' class="text"' if j in text_columns else ""
        return f"<{tag}{cls}>{html_text(value)}</{tag}>"

    head = "".join(cell("th", j, h) for j, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", j, c) for j, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def paragraph(text: str, cls: str | None = None) -> str:
    """Escaped text in a ``<p>``."""
    open_tag = f'<p class="{cls}">' if cls else "<p>"
    return f"{open_tag}{html_text(text)}</p>"


def render_page(title: str, sections: Sequence[Section], *, intro: Sequence[str] = ()) -> str:
    """The whole page: head with the styles and plotly.js, a title, intro paragraphs, a table of contents and the
    sections. Only the section bodies are raw HTML; titles, notes and intro lines are escaped."""
    nav = " ".join(f'<a href="#{s.anchor}">{html_text(s.title)}</a>' for s in sections)
    parts = [f"<h1>{html_text(title)}</h1>", *(paragraph(line) for line in intro), f"<nav>{nav}</nav>"]
    for s in sections:
        parts.append(f'<section id="{s.anchor}"><h2>{html_text(s.title)}</h2>')
        if s.note:
            parts.append(paragraph(s.note, "note"))
        parts.append(s.body + "</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html_text(title)}</title>\n<style>{STYLE}</style>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n</head>\n<body>\n'
        + "\n".join(parts) + "\n</body>\n</html>\n"
    )


def write_page(path: str | os.PathLike[str], text: str) -> Path:
    """Write the page atomically (a reader never sees half a file)."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
