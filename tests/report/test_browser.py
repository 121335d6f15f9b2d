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


# A4 portrait less the report's 12 mm print margins: 186 mm at 96 px per inch.
A4_PRINT_WIDTH = round(186 / 25.4 * 96)


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory):
    """The widest tables a run makes: five models, two group columns with long values, every section of text."""
    from conftest import DBVAE, LABELS, UNIFORM, make_run, predictions_table

    from debias.report import write_report

    groups = ["a-rather-long-attribute-value"] * 4 + ["another-long-attribute-value"] * 6
    models = {"uniform": UNIFORM, "dbvae": DBVAE, "sampler": UNIFORM, "oracle": DBVAE, "a_model_of_ones_own": LABELS}
    predictions = predictions_table(models, LABELS, groups).assign(attr_Wearing_Necktie=[0, 1] * 25)
    run = make_run(tmp_path_factory.mktemp("wide") / "run", predictions, ["g", "Wearing_Necktie"])
    return write_report(run, resamples=100)


@pytest.mark.parametrize("which", ["tiny_report", "wide_report"])
def test_report_fits_1280_px_and_a4(browser, which, request):
    report = request.getfixturevalue(which)
    screen = inspect_page(report, browser=browser, width=1280)
    assert screen.scroll_width <= screen.inner_width == 1280
    assert screen.overflow <= 1, f"something sticks out of the page by {screen.overflow:.0f} px"
    paper = inspect_page(report, browser=browser, width=A4_PRINT_WIDTH, print_media=True)
    assert paper.scroll_width <= paper.inner_width == A4_PRINT_WIDTH
    assert paper.overflow <= 1, f"something sticks out of the printed page by {paper.overflow:.0f} px"


def test_compare_page_renders_offline_and_fits(browser, tiny_run, tmp_path):
    import shutil

    from debias.report import write_comparison

    again = tmp_path / "again"
    shutil.copytree(tiny_run, again)
    page = write_comparison([tiny_run, again], tmp_path / "compare.html", resamples=100)
    result = inspect_page(page, browser=browser)
    assert result.title.startswith("Run comparison")
    assert result.console_errors == [] and result.exceptions == []
    assert result.requests == [], "the comparison must not fetch anything"
    assert result.scroll_width <= result.inner_width and result.overflow <= 1
