"""The report in a real headless browser (Debian's chromium): it loads with no request leaving the
file, nothing fails, nothing is logged as an error, and every chart is a rendered image."""

from __future__ import annotations

import json

import pytest

from chromium import CHROMIUM, IMAGES_JS, Chromium, page_problems

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is not installed: `apt-get install -y chromium` (Debian) to run the browser test",
)


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=1280, height=1000) as b:
        yield b


@pytest.mark.slow
def test_the_report_loads_offline_with_every_chart_rendered(browser, report, expected_charts):
    url = report.html_path.resolve().as_uri()
    problems = page_problems(browser.open(url))
    assert problems["requests"][0] == url
    assert problems["outside"] == [], "the page asked for something outside itself"
    assert problems["failed"] == []
    assert problems["exceptions"] == [] and problems["console_errors"] == [] and problems["log_errors"] == []
    # Every request other than the page itself is one of its embedded images.
    assert all(u.startswith("data:image/png;base64,") for u in problems["requests"][1:])

    images = json.loads(browser.evaluate(IMAGES_JS))
    assert [i["id"] for i in images] == [f"chart-{c}" for c in expected_charts]
    for img in images:
        assert img["complete"] and img["scheme"] == "data", img
        assert img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
        assert img["renderedWidth"] > 0, img
    text = browser.evaluate("document.body.innerText")
    assert "Synthetic sample data, not market prices" in text
    assert f"the night of {report.as_of.isoformat()}" in text


def test_the_check_sees_a_page_that_reaches_out(browser, tmp_path):
    """The same check on a page that does fetch: it must fail there, or it proves nothing above."""
    page = tmp_path / "leaky.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://cdn.invalid/x.css"></head>'
        '<body><img id="chart-x" src="http://127.0.0.1:9/x.png"></body></html>'
    )
    problems = page_problems(browser.open(page.resolve().as_uri()))
    assert set(problems["outside"]) == {"https://cdn.invalid/x.css", "http://127.0.0.1:9/x.png"}
    assert len(problems["failed"]) == 2
    images = json.loads(browser.evaluate(IMAGES_JS))
    assert images[0]["naturalWidth"] == 0
