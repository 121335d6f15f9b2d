"""The report opens in a real headless Chromium: no console errors, no requests, every image decodes."""

import os
from pathlib import Path

import pytest
from chromium import find_chromium, inspect_page

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser():
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium on PATH and none could be installed (.ci/run installs Debian's `chromium` with apt-get)"
        )
    return path


def test_report_loads_cleanly_in_chromium(browser, tiny_report, tmp_path):
    page = inspect_page(tiny_report, browser=browser)
    assert page.title.startswith("Fairness report")
    assert page.console_errors == [] and page.exceptions == []
    assert page.requests == [], "the report must not fetch anything"
    assert len(page.images) >= 3 + 2 * 16 + 6
    assert all(ok and width > 0 for ok, width, _ in page.images), page.images
    assert page.screenshot.startswith(PNG_SIGNATURE)
    # Keep the screenshot where a person can look at it.
    folder = Path(os.environ.get("DEBIAS_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.png").write_bytes(page.screenshot)
    assert (folder / "report.png").stat().st_size > 10_000


def test_report_prints(browser, tiny_report):
    page = inspect_page(tiny_report, browser=browser, print_media=True, pdf=True)
    assert page.console_errors == [] and page.exceptions == []
    assert page.pdf.startswith(b"%PDF")
