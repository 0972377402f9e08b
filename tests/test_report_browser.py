"""The report in a real headless Chromium: loads from disk, no console errors, links resolve,
and a scripted listener takes the blind test, exports the ratings and folds them back.

Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`)
and the `selenium` package. Without them the test is skipped, except under CI (`CI` set),
where a missing browser is a failure. Set `STEMSWEEP_UPDATE_DOCS=1` to also write the
screenshot to docs/report.png for the README.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from orchestrator.report import ReportResult, build_report
from orchestrator.report.sample import write_sample_tree
from orchestrator.simulator.models import MODELS

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
# How long a page may take to load: well under a second on a quiet machine, more on a busy one.
PAGE_READY_SECONDS = 60


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
        tree = write_sample_tree(Path("out/demo"), seconds=2.0, original_in_tree=True)
        result = build_report([tree])
    return dataclasses.replace(result, html=base / result.html)


def open_page(browser: Any, url: str | None = None) -> None:
    """Open `url` (None: reload the page), then wait until the page and everything it loads
    are loaded (`document.readyState` is `complete`); a page not loaded after
    PAGE_READY_SECONDS fails the test."""
    from selenium.webdriver.support.ui import WebDriverWait

    if url is None:
        browser.refresh()
    else:
        browser.get(url)
    WebDriverWait(browser, PAGE_READY_SECONDS, poll_frequency=0.05).until(
        lambda driver: driver.execute_script("return document.readyState") == "complete",
        f"the page was not loaded after {PAGE_READY_SECONDS}s",
    )


def file_path(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return Path(url2pathname(parsed.path))


def test_report_opens_from_disk_without_errors_and_every_link_resolves(
    browser: Any, report: ReportResult
) -> None:
    """Loads over file:// with no console error or network fetch; all audio and images resolve."""
    open_page(browser, report.html.as_uri())
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
    open_page(browser, report.html.as_uri())
    shot = report.html.parent / "screenshot.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("STEMSWEEP_UPDATE_DOCS"):
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)


def severe(browser: Any) -> list[Any]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def listener_score(item: dict[str, Any], sdr: dict[tuple[str, str, str], float], trial: Any) -> int:
    """What the scripted listener hears: the hidden reference perfect, the anchor bad, each
    model by its SDR on that song (5 points a dB)."""
    if item["role"] == "reference":
        return 100
    if item["role"] == "anchor":
        return 10
    return max(0, min(100, round(5 * sdr[(trial["project"], item["model"], trial["type"])])))


def test_a_blind_listener_rates_reveals_exports_and_the_ratings_fold_back(
    browser: Any, report: ReportResult, tmp_path: Path
) -> None:
    """Names stay hidden until revealed; slider ratings (by keyboard) survive a reload,
    export as a file, and `build_report(ratings=...)` ranks the models as they were rated."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    open_page(browser, report.html.as_uri())
    browser.execute_script("localStorage.clear()")
    open_page(browser)
    blind = browser.find_element(By.ID, "blind")
    hidden_text = blind.text
    assert "Reveal all names" in hidden_text
    assert not [m for m in MODELS if m in hidden_text]
    sources = [a.get_attribute("src") for a in blind.find_elements(By.TAG_NAME, "audio")]
    assert sources and not [s for s in sources if any(m in s for m in MODELS)]

    data = json.loads(browser.find_element(By.ID, "listening-data").get_attribute("textContent"))
    measured = json.loads(report.html.with_suffix(".json").read_text())
    sdr = {(e["project"], e["model"], e["type"]): e["sdr"] for e in measured["entries"]}
    expected: dict[tuple[str, str], int] = {}
    for trial in data["trials"]:
        for item in trial["items"]:
            score = listener_score(item, sdr, trial)
            slider = blind.find_element(
                By.CSS_SELECTOR,
                f'input[data-trial="{trial["id"]}"][data-code="{item["code"]}"]',
            )
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
            slider.send_keys(Keys.HOME + Keys.ARROW_RIGHT * score)
            expected[(trial["id"], item["code"])] = score
    browser.find_element(By.ID, "listener").send_keys("robot")
    total = sum(len(t["items"]) for t in data["trials"])
    progress = browser.find_element(By.ID, "listen-progress").text
    assert progress == f"{total} of {total} excerpts rated"

    open_page(browser)  # the ratings are kept in the browser
    first, code = data["trials"][0]["id"], data["trials"][0]["items"][0]["code"]
    kept = browser.find_element(By.CSS_SELECTOR, f'input[data-trial="{first}"][data-code="{code}"]')
    assert int(kept.get_attribute("value")) == expected[(first, code)]
    assert not [m for m in MODELS if m in browser.find_element(By.ID, "blind").text]

    browser.find_element(By.ID, "reveal-all").click()
    for trial in data["trials"]:
        for item in trial["items"]:
            cell = browser.find_element(
                By.CSS_SELECTOR, f'[data-trial-card="{trial["id"]}"] [data-name="{item["code"]}"]'
            )
            label = {"reference": "hidden reference", "anchor": "low anchor"}.get(item["role"])
            assert cell.get_attribute("textContent") == (label or item["model"])
    assert any(m in browser.find_element(By.ID, "blind").text for m in MODELS)

    browser.find_element(By.ID, "export-ratings").click()
    exported = downloads / "stemsweep-ratings-robot.json"
    deadline = time.monotonic() + 20
    while not exported.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    document = json.loads(exported.read_text())
    assert document["format"] == "stemsweep-ratings" and document["listener"] == "robot"
    given = {(t["trial"], r["code"]): r["score"] for t in document["trials"] for r in t["ratings"]}
    assert given == expected

    folded = build_report(
        [report.html.parent.parent], output=tmp_path / "rated", ratings=[exported]
    )
    result = json.loads(folded.json.read_text())["ratings"]
    assert result["listeners"] == ["robot"] and result["excluded"] == []
    for ranking in result["rankings"]:
        mine = {}
        for trial in data["trials"]:
            if trial["type"] == ranking["type"]:
                for item in trial["items"]:
                    if item["role"] == "model":
                        mine.setdefault(item["model"], []).append(
                            expected[(trial["id"], item["code"])]
                        )
        means = {m: sum(v) / len(v) for m, v in mine.items()}
        order = sorted(means, key=lambda m: (-means[m], m))
        assert [row["model"] for row in ranking["rows"]] == order
        assert ranking["reference_mean"] == 100 and ranking["anchor_mean"] == 10
    assert not severe(browser)


def test_long_model_names_are_readable_in_the_matrix_and_charts(
    browser: Any, tmp_path: Path
) -> None:
    """An 80-character model name wraps in the matrix instead of spilling into the next
    column, and appears whole, over several lines, in the chart labels."""
    import numpy as np
    import soundfile as sf

    long_name = "vendor_" + "_".join(["very_long_model_name"] * 3) + "_v2_final_2025_release"
    assert len(long_name) > 80
    root = tmp_path / "out"
    t = np.arange(44100) / 44100
    tone = 0.2 * np.sin(2 * np.pi * 330 * t)
    for model, noise in ((long_name, 0.01), ("short_a", 0.02), ("short_b", 0.05)):
        stem = tone + np.random.default_rng(len(model)).standard_normal(len(t)) * noise
        (root / model / "song").mkdir(parents=True)
        sf.write(root / model / "song" / "vocals.wav", np.stack([stem, stem], 1), 44100)
    (root / "_references" / "song").mkdir(parents=True)
    sf.write(root / "_references" / "song" / "vocals.wav", np.stack([tone, tone], 1), 44100)
    result = build_report([root])
    open_page(browser, result.html.as_uri())
    overflow = browser.execute_script(
        "return Array.from(document.querySelectorAll('th.model'))"
        ".filter(th => th.scrollWidth > th.clientWidth + 1).map(th => th.textContent)"
    )
    assert not overflow
    labels = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg.chart text.label'))"
        ".map(t => [t.textContent, t.getBBox().x])"
    )
    assert [long_name, True] in [[text, x >= 0] for text, x in labels]
    assert not severe(browser)
