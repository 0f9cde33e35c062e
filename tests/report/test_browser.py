"""The report as a reader sees it: opened in headless Chromium (Debian's `chromium` and `chromium-driver`, driven
through Selenium) with networking off. The page is measured from the test side (WebDriver's execute_script), so
the report itself stays free of scripts.

Skipped where the browser is not installed, but CI installs it and sets SCALELAB_REQUIRE_BROWSER=1, so that the
test can never be skipped there. The same checks run on any report and can keep its screenshot:
    SCALELAB_REPORT_HTML=report.html SCALELAB_REPORT_FIT=fits/demo.json \\
    SCALELAB_REPORT_SCREENSHOT=docs/report-screenshot.png pytest -q tests/report/test_browser.py
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from scalelab.fit.results import load_fit

from .page_parser import Page
from .test_report import FIGURES, _ci, _e_cell, study  # noqa: F401  (study: the fixture, reused here)

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WINDOW = (1000, 1400)  # a small laptop window: the screenshot is this wide
ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-dev-shm-usage",  # containers have a small /dev/shm
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
    # networking off twice over: every request goes to a closed port, and DevTools emulates being offline
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
]

FIGURE_SIZES = """return [...document.querySelectorAll('figure')].map(f => {
  const v = f.querySelector('svg, img'), r = v ? v.getBoundingClientRect() : {width: 0, height: 0};
  const drawn = !v ? null
    : v.tagName === 'IMG' ? [v.naturalWidth, v.naturalHeight] : [v.getBBox().width, v.getBBox().height];
  return {id: f.id, width: r.width, height: r.height, drawn: drawn};
});"""
FIT_TABLE = """const t = [...document.querySelectorAll('section#fits table')]
  .find(t => t.rows.length && t.rows[0].cells[0].innerText === 'group');
return t && {width: t.getBoundingClientRect().width, rows: [...t.rows].map(r => [...r.cells].map(c => c.innerText))};"""


def require_browser():
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromium-driver", DRIVER)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if not missing:
        return
    why = f"headless Chromium not installed: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"
    if os.environ.get("SCALELAB_REQUIRE_BROWSER"):
        pytest.fail(f"{why}, and SCALELAB_REQUIRE_BROWSER is set")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    yield driver
    driver.quit()


def visit(driver, url: str) -> dict:
    """Open URL and return what the browser logged for it: console entries and every URL it requested."""
    driver.get_log("browser"), driver.get_log("performance")  # drop entries of earlier pages
    driver.get(url)
    events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    requested = {e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"}
    return dict(console=driver.get_log("browser"), requested=requested)


@pytest.fixture(scope="module")
def seen(request, browser):
    """One visit to the report: what the browser logged, each figure's size, the fit table's text, a screenshot."""
    if os.environ.get("SCALELAB_REPORT_HTML"):
        path = Path(os.environ["SCALELAB_REPORT_HTML"]).resolve()
        fit_path = os.environ.get("SCALELAB_REPORT_FIT") or pytest.fail("set SCALELAB_REPORT_FIT: the report's fit")
        fit, figures = load_fit(fit_path), Page(path.read_text(encoding="utf-8")).figure_ids
    else:
        s = request.getfixturevalue("study")
        path, fit, figures = Path(s["folder"]) / "out" / "report.html", s["fit"], FIGURES
    log = visit(browser, path.as_uri())
    png = browser.get_screenshot_as_png()
    if os.environ.get("SCALELAB_REPORT_SCREENSHOT"):
        Path(os.environ["SCALELAB_REPORT_SCREENSHOT"]).write_bytes(png)
    return dict(
        log,
        uri=path.as_uri(),
        title=browser.title,
        fit=fit,
        expected_figures=figures,
        figures=browser.execute_script(FIGURE_SIZES),
        fit_table=browser.execute_script(FIT_TABLE),
        screenshot=png,
    )


def test_renders_offline_without_console_errors(seen):
    assert seen["title"].startswith("Study report: ")
    assert [e for e in seen["console"] if e["level"] == "SEVERE"] == []
    assert seen["requested"] == {seen["uri"]}  # the file itself, nothing else


def test_an_external_resource_would_be_caught(browser, tmp_path):
    """The control: with the same browser, a page that needs the network logs an error, so the check above can fail."""
    page = tmp_path / "external.html"
    page.write_text('<!doctype html><title>x</title><img alt="x" src="https://example.com/x.png">')
    log = visit(browser, page.as_uri())
    assert "https://example.com/x.png" in log["requested"]
    (error,) = [e for e in log["console"] if e["level"] == "SEVERE"]
    assert "https://example.com/x.png" in error["message"] and "net::ERR_" in error["message"]


def test_every_figure_is_drawn_with_a_size(seen):
    assert [f["id"] for f in seen["figures"]] == seen["expected_figures"]
    for f in seen["figures"]:
        assert f["width"] > 100 and f["height"] > 50, f  # laid out on the page
        assert f["drawn"] and min(f["drawn"]) > 0, f  # and its content drawn (an image decoded)


def test_fit_table_as_rendered_holds_the_fits_numbers(seen):
    table = seen["fit_table"]
    assert table and table["width"] > 0, "no fit table (first column 'group') in section#fits"
    head, body = table["rows"][0], {r[0]: dict(zip(table["rows"][0], r)) for r in table["rows"][1:]}
    assert head[:3] == ["group", "form", "E"]
    assert set(body) == {g.name for g in seen["fit"]}
    for g in seen["fit"]:
        row = body[g.name]
        assert row["E"] == _e_cell(g)
        assert row["alpha|gamma"] == _ci(g, "alpha")
        assert row["beta"] == _ci(g, "beta")
        assert row["a"] == _ci(g, "a", derived=True)
        assert row["pts"] == str(g.n_points) and row["runs"] == str(g.n_runs)


def test_screenshot_is_not_blank(seen):
    from PIL import Image  # matplotlib's own dependency

    img = Image.open(io.BytesIO(seen["screenshot"])).convert("L")
    assert img.width == WINDOW[0]
    pixels = np.asarray(img, dtype=float)
    assert pixels.std() > 20, pixels.std()  # a blank or single-colour page has none
    assert (pixels < 100).mean() > 0.005  # dark text on the page
    assert (pixels > 200).mean() > 0.5  # on a light background
