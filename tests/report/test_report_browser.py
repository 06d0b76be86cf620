"""The pages in a real browser: headless Chromium (Debian's) opens each from file:// with every network request
failing, every figure renders, no console errors, the sliders and the metric selector change what is drawn when
moved with the mouse, and a screenshot is not blank. One browser for the module; runs are the 50-step fixtures."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from difflab.report.run_page import write_report
from difflab.rundir import load_run
from difflab.sample import trajectory_times
from difflab.sweep import report as sweep_report

pytestmark = pytest.mark.slow  # a headless browser opens every page


def t_of(label: str) -> str:
    """The time in a slider label ``σ 0.186 · t 4`` (or the shown ``noise level σ 0.186 · t 4``)."""
    return label.split(" · t ")[1]


PROBE = "difflab-console-probe"
# What a figure looks like to the reader: the slider's position and label, and the drawn marks (SVG) of every trace.
STATE_JS = """
const gd = document.getElementById(arguments[0]);
const slider = gd._fullLayout.sliders && gd._fullLayout.sliders[0];
const label = Array.from(gd.querySelectorAll('.slider-container text')).map(t => t.textContent)
    .find(text => text.startsWith('noise level '));
const marks = Array.from(gd.querySelectorAll('.scatterlayer .trace, .barlayer .trace'))
    .map(t => t.innerHTML).join('|');
return {active: slider ? slider.active : null, label: label || null, marks: marks,
        steps: slider ? slider.steps.map(s => s.label) : null, visible: gd._fullData.map(t => t.visible)};
"""


@pytest.fixture(scope="module")
def pages(runs: dict[int, Path], sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The report of the D = 2 run (process and field) and of the D = 1 run (histograms), and the sweep's page."""
    root = tmp_path_factory.mktemp("pages")
    small = {"n": 300, "eval_n": 100, "repeats": 1, "floor_pairs": 2}
    return {"D2": write_report(runs[2], root / "d2.html", **small),
            "D1": write_report(runs[1], root / "d1.html", **small),
            "sweep": sweep_report.write_html(sweep_dir)}


def open_page(driver, path: Path) -> list[str]:  # noqa: ANN001
    """Load ``path`` from file://, wait until every figure is drawn; return the plot ids. The console must hold no
    error (a probe logged here shows that errors would be seen)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.as_uri())
    ids = WebDriverWait(driver, 60).until(lambda d: d.execute_script("""
        const gds = Array.from(document.querySelectorAll('.js-plotly-plot'));
        return document.readyState === 'complete' && gds.length && gds.every(g => g._fullLayout && g._fullData)
            ? gds.map(g => g.id) : null;"""))
    driver.execute_script(f"console.error('{PROBE}')")
    logs = driver.get_log("browser")
    assert any(PROBE in e["message"] for e in logs), logs
    errors = [e["message"] for e in logs if e["level"] == "SEVERE" and PROBE not in e["message"]]
    assert not errors, errors
    return ids


def state(driver, plot_id: str) -> dict:  # noqa: ANN001
    return driver.execute_script(STATE_JS, plot_id)


def drag_slider(driver, plot_id: str, fraction: float) -> None:  # noqa: ANN001
    """Drag the slider's grip with the mouse by ``fraction`` of its rail."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    gd = driver.find_element(By.ID, plot_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", gd)
    rail = gd.find_element(By.CSS_SELECTOR, ".slider-rail-rect")
    grip = gd.find_element(By.CSS_SELECTOR, ".slider-grip-rect")
    ActionChains(driver).click_and_hold(grip).move_by_offset(int(fraction * rail.rect["width"]), 0).release().perform()


def wait_changed(driver, plot_id: str, before: dict) -> dict:  # noqa: ANN001
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 10).until(
        lambda d: (s := state(d, plot_id))["marks"] != before["marks"] and s["active"] != before["active"] and s)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)


def changed(a: bytes, b: bytes) -> float:
    """Share of pixels whose grey level differs by more than 60 between two screenshots (cropped to one size: an
    element's box may round to a pixel more or less after scrolling)."""
    pa, pb = pixels(a), pixels(b)
    h, w = min(pa.shape[0], pb.shape[0]), min(pa.shape[1], pb.shape[1])
    return float((np.abs(pa[:h, :w] - pb[:h, :w]) > 60).mean())


def assert_not_blank(png: bytes) -> None:
    """Something is drawn: a good share of pixels is not white (Plotly's plot area is light grey-blue) and the grey
    levels vary (text, marks); a blank page is uniformly 255."""
    px = pixels(png)
    ink = (px < 250).mean()
    assert ink > 0.2 and px.std() > 10, (ink, px.std())


@pytest.mark.parametrize("page", ["D2", "D1"])
def test_run_report_slider_moves_the_process_through_t(browser, pages: dict[str, Path], runs: dict[int, Path],
                                                      page: str) -> None:
    ids = open_page(browser, pages[page])
    assert ids[0] == "process" and ("field" in ids) == (page == "D2")
    before = state(browser, "process")
    times = sorted(trajectory_times(load_run(runs[int(page[1:])])))  # the sampler's grid, in increasing t
    assert [t_of(s) for s in before["steps"]] == [str(t) for t in times]  # labels "σ … · t …", by noise level
    assert before["active"] == 0 and before["label"] == "noise level σ 0 · t 0" and before["marks"]
    shot = browser.find_element("id", "process").screenshot_as_png
    drag_slider(browser, "process", 0.6)
    after = wait_changed(browser, "process", before)
    assert 0 < after["active"] < len(times) and after["label"] == f"noise level {before['steps'][after['active']]}"
    assert t_of(after["label"]) == str(times[after["active"]])
    moved = browser.find_element("id", "process").screenshot_as_png
    assert changed(moved, shot) > 0.002  # the drawing changed, not only the data
    assert_not_blank(browser.get_screenshot_as_png())


def test_field_slider_moves_arrows_and_trajectories(browser, pages: dict[str, Path]) -> None:
    open_page(browser, pages["D2"])
    before = state(browser, "field")
    assert [t_of(s) for s in before["steps"]] == ["2", "4", "6", "8", "10"]  # t > 0 of the grid
    assert before["label"].startswith("noise level σ ") and t_of(before["label"]) == "2"
    drag_slider(browser, "field", 1.0)  # to the right end: t = T
    after = wait_changed(browser, "field", before)
    assert t_of(after["label"]) == "10" and after["active"] == 4
    assert_not_blank(browser.find_element("id", "field").screenshot_as_png)


def test_sweep_page_metric_selector_switches_the_figure(browser, pages: dict[str, Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert open_page(browser, pages["sweep"]) == ["results"]
    gd = browser.find_element(By.ID, "results")
    before = state(browser, "results")
    assert before["visible"] == [True, True, False, False]  # w1 shown, energy hidden
    shot = gd.screenshot_as_png
    assert_not_blank(shot)
    gd.find_element(By.CSS_SELECTOR, ".updatemenu-header-group").click()  # open the selector ...
    options = WebDriverWait(browser, 10).until(
        lambda d: gd.find_elements(By.CSS_SELECTOR, ".updatemenu-dropdown-button"))
    next(o for o in options if o.text.strip() == "energy").click()  # ... and pick the other metric
    after = WebDriverWait(browser, 10).until(
        lambda d: (s := state(d, "results"))["visible"] != before["visible"] and s)
    assert after["visible"] == [False, False, True, True]
    assert changed(gd.screenshot_as_png, shot) > 0.002
    assert browser.execute_script("return document.getElementById('results').layout.xaxis.title.text") == \
        "energy / noise floor"
