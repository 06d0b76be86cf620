"""User text (column names, file names, grid values) reaches HTML, Plotly, Markdown and the terminal escaped, once
per format (difflab.escape). Before issue 18 a label could become markup in the report and results.html, raw HTML
in results.md, and a terminal escape sequence on the screen. (The report in a real browser: tests/report.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hostile_helpers import cli, train_tiny, write_csv

from difflab.escape import SafeStream, html_text, markdown_table, markdown_text, terminal_text
from difflab.report.run_page import build_report
from difflab.sweep import report as sweep_report

IMG = "<img src=x onerror=alert(1)>"
LINK = '<a href="https://example.com/">click</a>'
STYLE = '<span style="background:url(https://example.com/beacon.png)">x</span>'
HOSTILE = [IMG, LINK, STYLE, "a|b*c_[d](e)`f`~g\\h#", "\x1b[2J\x1b]0;title\x07\u202eevil"]


def _unescape_json(text: str) -> str:
    """The page as the browser's JSON parser reads it (``\\u003c`` is ``<``)."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)


def test_escape_functions_against_expected_text():
    assert html_text(IMG) == "&lt;img src=x onerror=alert(1)&gt;"
    assert html_text('"&\'') == "&#34;&amp;&#x27;"  # numeric quotes: Plotly decodes those, not &quot;
    assert markdown_text(IMG) == "&lt;img src=x onerror=alert(1)&gt;"
    assert markdown_text("a|b*c_[d](e)`f`~g\\h#") == r"a\|b\*c\_\[d\](e)\`f\`\~g\\h\#"
    assert markdown_text("two\nlines") == "two lines"
    assert terminal_text("\x1b[2J\x07\u202eok\ttab") == "\\x1b[2J\\x07\\u202eok\\x09tab"
    assert terminal_text("plain ünïcode ×") == "plain ünïcode ×"
    table = markdown_table(["key | x"], [[IMG]])
    assert table.splitlines() == [r"| key \| x |", "|---|", "| &lt;img src=x onerror=alert(1)&gt; |"]


def test_safe_stream_keeps_progress_controls():
    written = []

    class Sink:
        def write(self, s: str) -> int:
            written.append(s)
            return len(s)

    SafeStream(Sink()).write("\r 50%|##| \x1b[31mred\n")
    assert written == ["\r 50%|##| \\x1b[31mred\n"]


def _fake_sweep(out: Path, labels: list[str]) -> Path:
    """A sweep directory as difflab.sweep writes it, one finished cell per hostile value of data.source."""
    cells = []
    for i, label in enumerate(labels):
        cid = f"cell{i}"
        cells.append({"id": cid, "values": {"data.source": label}, "seed": 0})
        (out / "cells" / cid).mkdir(parents=True)
        (out / "cells" / cid / "result.json").write_text(json.dumps({
            "status": "ok", "metrics": {"w1": {"value": 0.1, "floor": 0.05, "ratio": 2.0 + i}},
            "train_seconds": 1.0, "sample_seconds": 0.1, "eval_seconds": 0.1, "batched": 1}))
    spec = {"source": f"grid {IMG}.toml", "evaluate": {"n": 10, "repeats": 1, "metrics": ["w1"], "elbo": False},
            "changes": [f"data.source = {LINK}"]}
    (out / "sweep.json").write_text(json.dumps({"spec": spec, "keys": ["data.source"], "cells": cells}))
    return out


def test_results_md_and_html_carry_no_markup(tmp_path):
    out = _fake_sweep(tmp_path / "sweep", HOSTILE)
    sweep_report.write_tables(out)
    md = (out / "results.md").read_text(encoding="utf-8")
    for raw in ("<img", "<a ", "<span", "\x1b", "[d](e)", "`f`"):
        assert raw not in md, raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and r"a\|b\*c" in md
    # each table row still has its columns: no '|' of a label split a cell
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len({line.count(" | ") - line.count(r"\| ") for line in rows}) == 1
    page = _unescape_json(sweep_report.write_html(out).read_text(encoding="utf-8"))
    body = page[page.index("<body>"):]
    for raw in (IMG, LINK, STYLE, "\x1b"):
        assert raw not in body, raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run on a D = 2 table whose column names are markup."""
    root = tmp_path_factory.mktemp("hostile-names")
    rows = np.random.default_rng(0).normal(size=(120, 2))
    data = write_csv(root / "t.csv", [f'"{IMG}"', f'"{STYLE.replace(chr(34), chr(34) * 2)}"'], rows)
    return train_tiny(root / "run", data=data)


def test_report_page_carries_no_markup(hostile_run):
    page = _unescape_json(build_report(hostile_run, n=50, eval_n=10, repeats=1))
    body = page[page.index("<body>"):]
    assert IMG not in body and STYLE not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


def test_terminal_sequences_are_printed_as_escapes(run_dir, tmp_path):
    """A file name with escape sequences: the success line shows them escaped, and so does an error."""
    out = tmp_path / "s\x1b[2J\x1b]0;pwned\x07.csv"
    result = cli("sample", run_dir, "--n", 5, "--out", out)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;pwned\\x07" in result.stdout and out.exists()  # (click itself drops CSI codes off a terminal)
    result = cli("sample", run_dir, "--n", 5, "--out", tmp_path / "\x1b]0;x\x07.txt")
    assert result.exit_code == 2 and "\x1b" not in result.stderr and "\\x1b]0;x" in result.stderr
