"""Screenshots of a written report for the README: docs/report-*.png.

    .venv/bin/smallcaps demo --home /tmp/reporthome
    .venv/bin/smallcaps report --home /tmp/reporthome
    .venv/bin/python tests/report/screenshots.py /tmp/reporthome/report/latest/index.html

Each shot is one part of the page in a 1280 px wide headless chromium (the browser test's client).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from chromium import Chromium, page_problems  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs"

# file name -> (first element, last element): the shot spans from the top of one to the bottom of the other.
SHOTS = {
    "report-headlines.png": ("body", "#headlines"),
    "report-relative-strength.png": ("#relative-strength", "#relative-strength"),
    "report-index.png": ("#fig-index-rut", "#fig-index-rut"),
    "report-cohorts.png": ("#fig-cohort-performance-russell2000", "#fig-cohort-performance-russell2000"),
    "report-sectors.png": ("#fig-sector-returns-russell2000", "#fig-sector-returns-russell2000"),
    "report-data-quality.png": ("#data-quality", "#data-quality"),
}
MAX_HEIGHT_PX = 1400


def main(html: Path, out: Path = DOCS) -> list[Path]:
    written = []
    with Chromium(width=1280, height=1000) as browser:
        problems = page_problems(browser.open(html.resolve().as_uri()))
        bad = {k: v for k, v in problems.items() if v and k != "requests"}
        if bad:
            raise SystemExit(f"the page did not load cleanly: {bad}")
        for name, (first, last) in SHOTS.items():
            box = json.loads(browser.evaluate(
                "JSON.stringify((() => {"
                f"const a = document.querySelector({json.dumps(first)}).getBoundingClientRect();"
                f"const b = document.querySelector({json.dumps(last)}).getBoundingClientRect();"
                "return {y: a.top + window.scrollY, bottom: b.bottom + window.scrollY}; })())"
            ))
            height = min(box["bottom"] - box["y"] + 8, MAX_HEIGHT_PX)
            written.append(browser.screenshot(out / name, {"x": 0, "y": box["y"], "width": 1280, "height": height}))
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for path in main(Path(sys.argv[1])):
        print(f"{path} ({path.stat().st_size // 1024} KB)")
