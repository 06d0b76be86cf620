"""Hostile labels in a real browser (headless Chromium, every network request failing): column names and grid values
that are markup render as text on the report and on a sweep's results.html, and the pages ask for nothing over the
network. Before issue 18 Plotly drew them as markup: a live link, a restyled label that fetched a URL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_report_browser import open_page

from difflab.config import resolve_config
from difflab.pipeline import train_run
from difflab.report.run_page import write_report
from difflab.sweep import report as sweep_report

IMG = "<img src=x onerror=alert(1)>"
LINK = '<a href="https://example.com/">click</a>'
BEACON = '<span style="background-image:url(https://example.com/beacon.png)">x</span>'

# What the reader's browser did with the labels: markup elements made, styles that load URLs, requests made, and
# whether the labels' own characters are drawn as text.
PROBE_JS = """
const texts = Array.from(document.querySelectorAll('svg text')).map(t => t.textContent);
return {
  images: document.querySelectorAll('img').length,
  links: document.querySelectorAll('svg a').length,
  url_styles: Array.from(document.querySelectorAll('svg [style]'))
      .filter(e => e.getAttribute('style').includes('url(')).length,
  requests: performance.getEntriesByType('resource').map(e => e.name),
  shown: arguments[0].map(label => texts.some(t => t.includes(label))),
};
"""


@pytest.fixture(scope="module")
def hostile_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The report of a run whose columns are named IMG and BEACON, and a results.html whose grid values are
    LINK and BEACON."""
    root = tmp_path_factory.mktemp("hostile-pages")
    x = np.random.default_rng(0).normal(size=(150, 2))
    header = ",".join('"' + h.replace('"', '""') + '"' for h in (IMG, BEACON))
    data = root / "t.csv"
    data.write_text(header + "\n" + "\n".join(f"{a:.5f},{b:.5f}" for a, b in x) + "\n", encoding="utf-8")
    cfg = resolve_config("seed", overrides={"data": {"source": str(data)}, "train": {"steps": 20},
                                            "sample": {"sampler": "ddim", "steps": 5}})
    run = train_run(cfg, root / "run", progress=False).path
    sweep = root / "sweep"
    cells = []
    for i, label in enumerate((LINK, BEACON)):
        (sweep / "cells" / f"c{i}").mkdir(parents=True)
        (sweep / "cells" / f"c{i}" / "result.json").write_text(json.dumps({"status": "ok", "metrics": {
            "w1": {"value": 0.1, "floor": 0.05, "ratio": 2.0 + i}}, "train_seconds": 1.0}))
        cells.append({"id": f"c{i}", "values": {"data.source": label}, "seed": 0})
    (sweep / "sweep.json").write_text(json.dumps({"spec": {"source": "grid.toml", "evaluate": {
        "n": 10, "repeats": 1, "metrics": ["w1"], "elbo": False}}, "keys": ["data.source"], "cells": cells}))
    return {"report": write_report(run, root / "report.html", n=100, eval_n=20, repeats=1),
            "sweep": sweep_report.write_html(sweep)}


@pytest.mark.parametrize(("page", "labels"), [("report", [IMG, BEACON]), ("sweep", [LINK, BEACON])])
def test_hostile_labels_render_as_text_and_fetch_nothing(browser, hostile_pages, page, labels):
    open_page(browser, hostile_pages[page])  # every figure drawn, no console error (a failed fetch would be one)
    seen = browser.execute_script(PROBE_JS, labels)
    assert seen["images"] == 0 and seen["links"] == 0 and seen["url_styles"] == 0, seen
    assert seen["requests"] == [], seen["requests"]
    assert all(seen["shown"]), seen  # the labels' characters, drawn as text


def test_report_says_it_holds_training_rows_unless_no_data(hostile_pages, tmp_path):
    text = hostile_pages["report"].read_text(encoding="utf-8")
    assert "holds up to 120 of the run&#x27;s real training rows" in text  # 150 rows, 20 % held out
    assert '"name":"data"' in text and "training data" in text
    run = hostile_pages["report"].parent / "run"
    quiet = write_report(run, tmp_path / "quiet.html", n=60, eval_n=20, repeats=1, no_data=True)
    page = quiet.read_text(encoding="utf-8")
    assert "holds no training rows" in page and "real training rows" not in page
    assert '"name":"data"' not in page and "training data" not in page  # no trace of training rows is drawn
