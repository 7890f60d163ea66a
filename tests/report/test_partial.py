"""The report on a partial warehouse: it draws what exists and says plainly what is absent.

A copy of the session's sample snapshot with one universe and one index removed: the S&P 600
universe has no cohort or sector rows, and ^SP600 no index rows (so the pairs with it have none).
Before the fix, the cohort composition chart (panels sharing their date axis, one of them empty)
failed with matplotlib's IndexError, as did the relative-strength chart of an index-only warehouse.
"""

from __future__ import annotations

import re
import shutil
from html import unescape
from pathlib import Path

import duckdb
import pytest
from PIL import Image
from typer.testing import CliRunner

from smallcaps.cli import app
from report import write_report
from ground.settings import Settings

# Runs a flow: every test reads the snapshot the backfill flow built (conftest.py snapshot_home).
pytestmark = pytest.mark.slow


def partial_home(snapshot_home: Path, target: Path, statements: list[str]) -> Path:
    (target / "published").mkdir(parents=True)
    snapshot = target / "published" / "smallcaps.duckdb"
    shutil.copyfile(snapshot_home / "published" / "smallcaps.duckdb", snapshot)
    con = duckdb.connect(str(snapshot))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()
    return target


def absent_items(text: str, section: str) -> list[str]:
    block = re.search(rf'<div class="absent" id="absent-{section}">(.*?)</div>', text, re.S)
    return [unescape(li) for li in re.findall(r"<li>(.*?)</li>", block.group(1))] if block else []


@pytest.fixture(scope="module")
def without_sp600(snapshot_home, tmp_path_factory) -> Path:
    return partial_home(
        snapshot_home,
        tmp_path_factory.mktemp("partial"),
        [
            *(f"DELETE FROM {t} WHERE universe = 'sp600'"
              for t in ("marts.cohort_composition", "marts.cohort_performance", "marts.sector_daily")),
            "DELETE FROM marts.index_daily WHERE symbol = '^SP600'",
            "DELETE FROM marts.relative_performance WHERE '^SP600' IN (lead_symbol, lag_symbol)",
        ],
    )  # fmt: skip


def test_a_missing_universe_and_index_are_named_not_drawn(without_sp600, expected_charts, window):
    start, end = window
    r = write_report(Settings(home=without_sp600))
    assert [p.stem for p in r.png_paths] == [c for c in expected_charts if "sp600" not in c]
    text = r.html_path.read_text(encoding="utf-8")
    assert absent_items(text, "indexes") == [
        f"S&P SmallCap 600 (^SP600): no rows in marts.index_daily between {start} and {end}"
    ]
    rs = absent_items(text, "relative-strength")
    assert [item.split(":")[0] for item in rs] == [
        "Russell 2000 vs S&P SmallCap 600 (^RUT/^SP600)", "S&P SmallCap 600 vs S&P 500 (^SP600/^GSPC)",
    ]  # fmt: skip
    assert all("no ^SP600 rows in marts.index_daily" in item for item in rs)
    for section in ("cohort-performance", "cohort-composition", "sectors"):
        assert any(item.startswith("S&P 600 (sp600)") for item in absent_items(text, section)), section
    every = [item for section in ("relative-strength", "indexes", "cohort-performance", "cohort-composition", "sectors",
                                  "vix") for item in absent_items(text, section)]  # fmt: skip
    assert not any("russell2000" in item or "^RUT)" in item for item in every)
    # The chart that still has two pairs without rows says so on the image itself.
    rs_png = next(p for p in r.png_paths if p.stem == "relative-strength")
    with Image.open(rs_png) as im:
        assert "no rows, not drawn: ^RUT/^SP600, ^SP600/^GSPC" in im.info["Description"]
    assert "Not drawn, no data:" in r.markdown and "S&P 600 (sp600)" in r.markdown
    assert any(a.startswith("Sector returns: S&P 600 (sp600)") for a in r.absent)


def test_cli_lists_what_was_not_drawn(without_sp600):
    result = CliRunner().invoke(app, ["report", "--home", str(without_sp600)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("not drawn: Index closes, record closes and RSI-14: S&P SmallCap 600 (^SP600)") for line in lines)
    assert sum(line.startswith("chart: ") for line in lines) == 8


def test_an_index_only_snapshot(snapshot_home, tmp_path):
    # What a csv folder of index files gives: no members, no cohorts, no sectors.
    home = partial_home(
        snapshot_home,
        tmp_path,
        [f"DELETE FROM {t}" for t in ("marts.cohort_composition", "marts.cohort_performance", "marts.sector_daily")],
    )
    r = write_report(Settings(home=home))
    assert [p.stem for p in r.png_paths] == [
        "relative-strength", "index-rut", "index-gspc", "index-sp600", "index-ixic", "vix",
    ]  # fmt: skip
    text = r.html_path.read_text(encoding="utf-8")
    for universe in ("Russell 2000 (russell2000)", "S&P 600 (sp600)"):
        assert any(universe in item and "no members" in item for item in absent_items(text, "cohort-performance"))
    assert r.dq_status == "warning"
    assert "no rows: marts.cohort_composition, marts.cohort_performance, marts.sector_daily" in text
