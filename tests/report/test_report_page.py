"""`difflab report` end to end (D = 1, 2, 10): one self-contained page with every section, the metrics of
`evaluate_run`, notes for D ≠ 2 and for runs without truth, one-line errors with nothing written; the sweep's
results.html; the demo's reports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from difflab.cli import app
from difflab.config import resolve_config
from difflab.evaluation.report import evaluate_run
from difflab.evaluation.uncertainty import format_ratio
from difflab.pipeline import train_run
from difflab.report import results
from difflab.report.run_page import build_report, write_report
from difflab.sweep import report as sweep_report

runner = CliRunner()
SMALL = {"n": 200, "eval_n": 100, "repeats": 2, "floor_pairs": 4}  # --n, --eval-n, --repeats, --floor-pairs
SECTIONS = ["Forward and reverse process", "The learned field −ε̂(x, t)", "Samples against data",
            "Metrics against the noise floor", "Training loss", "Noise schedule"]


def write_csv(path: Path, x: np.ndarray) -> Path:
    np.savetxt(path, x, delimiter=",", header=",".join(f"c{j}" for j in range(x.shape[1])), comments="")
    return path


def plot_ids(page: str) -> list[str]:
    return re.findall(r'<div id="([\w-]+)" class="plotly-graph-div"', page)


def table_cells(page: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


@pytest.mark.slow
@pytest.mark.parametrize("d", [1, 2, 10])
def test_report_page_is_self_contained_with_every_section(runs: dict[int, Path], tmp_path: Path, d: int) -> None:
    out = tmp_path / "page.html"
    r = runner.invoke(app, ["report", str(runs[d]), "--out", str(out), "--n", "200", "--eval-n", "100",
                            "--repeats", "1", "--floor-pairs", "2"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == f"wrote {out}"
    page = out.read_text(encoding="utf-8")
    # plotly.js inside the page, nothing fetched: no <script src>, <link> or <img src> anywhere
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|<img\b", page)
    assert page.count("<script") == 1 + len(plot_ids(page)) and len(page) > 3_000_000
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    ids = plot_ids(page)
    expected = ["process", *(["field"] if d == 2 else []), "samples-0", *(["samples-1"] if d > 2 else []), "loss",
                "schedule"]
    assert ids == expected
    if d != 2:
        assert f"drawn for D = 2 only; this run has D = {d}" in page
        assert ("as histograms" if d == 1 else f"pairs of the first 4 of {d} columns") in page


def test_report_metrics_are_those_of_evaluate_run_with_the_same_settings(runs: dict[int, Path]) -> None:
    page = build_report(runs[2], **SMALL, seed=3)
    rep = evaluate_run(runs[2], n=100, repeats=2, floor_pairs=4, seed=3)
    rows = table_cells(page, "metrics")
    assert [row[0] for row in rows] == ["w1", "energy", "mmd", "swd", "c2st"]
    for name, _, value, floor, ratio, draws, pairs in rows:
        assert np.isclose(float(value), rep[name]["value"], rtol=1e-3)
        assert np.isclose(float(floor), rep[name]["floor"], rtol=1e-3)
        assert ratio == format_ratio(rep[name]["ratio"], rep[name]["ratio_se"]) and " ± " in ratio
        assert (draws, pairs) == ("2", "4")
    assert "toy &#x27;moons&#x27; (i.i.d. sampler)" in page and "Memorisation" in page


def test_report_lowers_n_to_the_held_out_rows_and_notes_a_run_without_truth(runs: dict[int, Path],
                                                                           tmp_path: Path) -> None:
    page = build_report(runs[10], **SMALL)  # 60 held-out rows: two disjoint samples of at most 30
    assert "n lowered to 30: the run keeps 60 held-out rows" in page and len(table_cells(page, "metrics")) == 5
    data = write_csv(tmp_path / "t.csv", np.random.default_rng(0).normal(size=(100, 3)))
    cfg = resolve_config("seed", overrides={"data": {"source": str(data), "holdout": 0.0}, "train": {"steps": 5}})
    train_run(cfg, tmp_path / "none", progress=False)
    page = build_report(tmp_path / "none", **SMALL)
    assert "keeps no true points" in page and 'id="metrics"' not in page


def test_report_default_path_and_python_api(runs: dict[int, Path]) -> None:
    path = write_report(runs[1], **SMALL)
    assert path == runs[1] / "report.html" and path.stat().st_size > 3_000_000


@pytest.mark.parametrize(("args", "fragment"), [
    (["--out", "{tmp}/page.txt"], "expected an .html file"),
    (["--out", "{tmp}"], "is a folder"),
    (["--n", "0"], "--n must be at least 1"),
    (["--eval-n", "1"], "--eval-n must be at least 2"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--floor-pairs", "1"], "--floor-pairs must be at least 2"),
    (["--out", "/proc/difflab/page.html"], "/proc/difflab/page.html"),
])
def test_bad_input_is_one_line_and_writes_nothing(runs: dict[int, Path], tmp_path: Path, args: list[str],
                                                  fragment: str) -> None:
    before = sorted(os.listdir(runs[2]))
    r = runner.invoke(app, ["report", str(runs[2]), *[a.format(tmp=tmp_path) for a in args]])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], r.stderr
    assert sorted(os.listdir(runs[2])) == before and os.listdir(tmp_path) == []


def test_missing_or_broken_run_is_one_line_and_writes_nothing(runs: dict[int, Path], tmp_path: Path) -> None:
    r = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "run directory not found" in r.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in runs[2].iterdir():
        if f.is_file():
            (broken / f.name).write_bytes(f.read_bytes())
    (broken / "loss.csv").write_text("step,loss\n1,2,3\n")
    r = runner.invoke(app, ["report", str(broken)])
    assert r.exit_code == 2 and "loss.csv" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    partial = [p for p in os.listdir(broken) if p.startswith(".") and p != ".difflab.lock"]  # (the run's own lock)
    assert not (broken / "report.html").exists() and not partial


def test_report_is_listed_in_the_help_without_importing_plotly() -> None:
    code = ("import sys\nfrom difflab.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('plotly imported' if 'plotly' in sys.modules else 'plotly not imported')")
    for args, text in ((["--help"], "report"), (["report", "--help"], "--eval-n")):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout
        assert text in out and out.strip().endswith("plotly not imported"), out


# --- the sweep's page ---------------------------------------------------------------------------------------------

def test_sweep_writes_results_html_with_mean_and_sd_over_seeds(sweep_dir: Path, monkeypatch) -> None:
    page = (sweep_dir / "results.html").read_text(encoding="utf-8")
    assert plot_ids(page) == ["results"] and not re.search(r"<script[^>]*\bsrc=", page)
    md_rows = [[c.strip() for c in line.strip("|").split("|")]
               for line in (sweep_dir / "results.md").read_text().splitlines() if line.startswith("| 3") or
               line.startswith("| 5")]
    assert table_cells(page, "summary") == md_rows and len(md_rows) == 2
    # the figure's numbers, against mean and sd (ddof = 1) computed here from results.csv
    seen = {}
    monkeypatch.setattr(results, "write_page", lambda path, text: seen.setdefault("page", text) and path)
    captured = {}
    real = results.results_figure
    monkeypatch.setattr(results, "results_figure", lambda labels, series: captured.update(
        labels=labels, series=series) or real(labels, series))
    sweep_report.write_html(sweep_dir)
    df = pd.read_csv(sweep_dir / "results.csv")
    assert captured["labels"] == ["T=3", "T=5"]
    for metric in ("w1", "energy"):
        s = captured["series"][metric]
        for i, T in enumerate((3, 5)):
            vals = df[df["diffusion.T"] == T][f"{metric}_ratio"].to_numpy()
            assert len(vals) == 2
            assert np.isclose(s.means[i], vals.mean()) and np.isclose(s.sds[i], vals.std(ddof=1))
            np.testing.assert_allclose(np.sort(s.per_seed[i]), np.sort(vals))


def test_results_figure_selector_shows_one_metric_with_clipped_log_error_bars() -> None:
    series = {"w1": results.MetricSeries([1.5, 2.0, np.inf], [0.5, 3.0, np.nan], [np.array([1.0, 2.0])] * 3),
              "mmd": results.MetricSeries([4.0, 1.0, 2.0], [np.nan, 0.1, 0.2], [np.array([4.0])] * 3)}
    fig = results.results_figure(["a", "b", "c"], series)
    menu = fig.layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == ["w1", "mmd"]
    assert [tr.visible for tr in fig.data] == [True, True, False, False]
    assert list(menu.buttons[1].args[0]["visible"]) == [False, False, True, True]
    mean_w1 = fig.data[1]
    assert list(mean_w1.y) == ["a", "b"]  # the diverged (inf) mean has no place on a log axis
    np.testing.assert_allclose(mean_w1.error_x.array, [0.5, 3.0])
    np.testing.assert_allclose(mean_w1.error_x.arrayminus, [0.5, 0.9 * 2.0])  # mean − sd ≤ 0: stops at mean / 10
    assert fig.layout.xaxis.type == "log" and json.loads(fig.to_json())  # serialisable


@pytest.mark.slow
def test_demo_writes_and_prints_both_reports(tmp_path: Path, monkeypatch) -> None:
    import difflab.config
    import difflab.demo

    tiny = {"data": {"n": 200}, "train": {"steps": 5}, "diffusion": {"T": 20}}
    for name in ("seed", "recommended"):
        monkeypatch.setitem(difflab.config.PRESETS, name, difflab.config._merge(difflab.config.PRESETS[name], tiny))
    monkeypatch.setattr(difflab.demo, "N_EVAL", 100)
    monkeypatch.setattr(difflab.demo, "make_figures", lambda run_dir, out, **kw: [out / "x"])
    lines: list[str] = []
    res = difflab.demo.run_demo(tmp_path / "demo", progress=False, echo=lines.append)
    for name in ("seed", "recommended"):
        path = tmp_path / "demo" / name / "report.html"
        assert res[name]["report"] == path and path.stat().st_size > 3_000_000
        assert any(line.startswith(f"[{name}] interactive report") and line.endswith(str(path)) for line in lines)
