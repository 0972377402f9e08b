"""The report in a real headless Chromium: loads from disk, no console errors, links resolve.

Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`)
and the `selenium` package. Without them the test is skipped, except under CI (`CI` set),
where a missing browser is a failure. Set `STEMSWEEP_UPDATE_DOCS=1` to also write the
screenshot to docs/report.png for the README.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from orchestrator.report import ReportResult, build_report
from orchestrator.report.sample import write_sample_tree

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report.png"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1360,1500",
)


def _missing() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="stemsweep-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    """A demo-shaped report: three projects, all twelve models, short songs, built from the
    relative path `out/demo` as `make demo` would."""
    base = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(base)
        tree = write_sample_tree(Path("out/demo"), seconds=2.0)
        result = build_report([tree])
    return dataclasses.replace(result, html=base / result.html)


def file_path(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return Path(url2pathname(parsed.path))


def test_report_opens_from_disk_without_errors_and_every_link_resolves(
    browser: Any, report: ReportResult
) -> None:
    """Loads over file:// with no console error or network fetch; all audio and images resolve."""
    browser.get(report.html.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert "Which model separates" in browser.title + browser.page_source

    sources = browser.execute_script(
        "return Array.from(document.querySelectorAll('audio')).map(a => a.src)"
    )
    assert len(sources) >= report.entries
    missing = [src for src in sources if not file_path(src).is_file()]
    assert not missing
    assert browser.execute_script(
        "return Array.from(document.querySelectorAll('audio'))"
        ".every(a => a.getAttribute('preload') === 'none' && a.controls)"
    )
    broken_images = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src)"
    )
    assert not broken_images
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)"
    )
    assert all(name.startswith(("file:", "data:")) for name in resources), resources

    # Sort the stem table by SDR: the first row then holds the highest SDR.
    browser.execute_script(
        "Array.from(document.querySelectorAll('table.sortable th'))"
        ".find(th => th.textContent.trim() === 'SDR').click()"
    )
    values = browser.execute_script(
        "var t = document.querySelector('table.sortable');"
        "var i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.startsWith('SDR'));"
        "return Array.from(t.tBodies[0].rows).map(r => parseFloat(r.cells[i].dataset.v))"
    )
    assert values[0] == max(values)

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors


def test_screenshot_of_the_report(browser: Any, report: ReportResult) -> None:
    """A screenshot of the top of the report is saved next to it (and to docs/ on request)."""
    browser.get(report.html.as_uri())
    shot = report.html.parent / "screenshot.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("STEMSWEEP_UPDATE_DOCS"):
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
