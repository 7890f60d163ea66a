"""The chart cache: a chart is drawn again when a row it reads changes, and only then.

Each case copies the session's sample snapshot and a warm cache into a fresh home, changes one mart
value that one chart draws, and writes the report again: that chart alone is redrawn (its PNG
differs), every other one comes from the cache byte for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from report import write_report
from ground.settings import Settings

# Runs a flow: every test reads the snapshot the backfill flow built (conftest.py snapshot_home).
pytestmark = pytest.mark.slow


def _home_copy(source: Path, target: Path, *, with_cache: bool = True) -> Path:
    (target / "published").mkdir(parents=True)
    shutil.copyfile(source / "published" / "smallcaps.duckdb", target / "published" / "smallcaps.duckdb")
    if with_cache:
        shutil.copytree(source / "report" / ".chart-cache", target / "report" / ".chart-cache")
    return target


def _pngs(report) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in report.png_paths}


@pytest.fixture(scope="module")
def warm(snapshot_home, tmp_path_factory):
    """A home whose cache holds every chart of the night, and the PNGs of that first report."""
    # Not the snapshot home's cache: the backfill flow wrote its report there, filling it.
    home = _home_copy(snapshot_home, tmp_path_factory.mktemp("cache-warm"), with_cache=False)
    first = write_report(Settings(home=home))
    return home, first, _pngs(first)


def test_the_same_night_again_reuses_every_chart_and_redraw_gives_the_same_bytes(warm, expected_charts):
    home, first, pngs = warm
    assert first.charts_reused == 0
    again = write_report(Settings(home=home))
    assert again.charts_reused == len(expected_charts) == len(again.png_paths)
    assert _pngs(again) == pngs
    # Drawing is deterministic, so what the cache hands back is what drawing would give tonight.
    redrawn = write_report(Settings(home=home), redraw=True)
    assert redrawn.charts_reused == 0
    assert _pngs(redrawn) == pngs


@pytest.mark.parametrize(
    ("statement", "chart_id"),
    [
        ("UPDATE marts.index_daily SET close = close * 1.01 WHERE symbol = '^GSPC' "
         "AND session_date = (SELECT max(session_date) FROM marts.index_daily)", "index-gspc"),
        ("UPDATE marts.index_daily SET close = close + 3 WHERE symbol = '^VIX' "
         "AND session_date = (SELECT max(session_date) FROM marts.index_daily)", "vix"),
        ("UPDATE marts.relative_performance SET streak = streak + 7 WHERE lead_symbol = '^RUT' AND lag_symbol = '^GSPC' "
         "AND session_date = (SELECT max(session_date) FROM marts.relative_performance)", "relative-strength"),
        ("UPDATE marts.cohort_performance SET return_equal_weight = return_equal_weight + 0.05 "
         "WHERE universe = 'sp600' AND cohort = 'profitable'", "cohort-performance-sp600"),
        ("UPDATE marts.cohort_composition SET share_of_weight = 0.5 WHERE universe = 'russell2000' "
         "AND cohort = 'profitable'", "cohort-composition"),
        ("UPDATE marts.sector_daily SET return_equal_weight = 0.2 WHERE universe = 'russell2000' "
         "AND session_date = (SELECT max(session_date) FROM marts.sector_daily) "
         "AND sector = (SELECT min(sector) FROM marts.sector_daily)", "sector-returns-russell2000"),
    ],
)  # fmt: skip
def test_a_changed_input_redraws_its_chart_only(warm, tmp_path, statement, chart_id, expected_charts):
    home, _, pngs = warm
    changed = _home_copy(home, tmp_path)
    con = duckdb.connect(str(changed / "published" / "smallcaps.duckdb"))
    try:
        assert con.execute(statement).fetchone()[0] > 0, "the statement changed no row"
    finally:
        con.close()
    r = write_report(Settings(home=changed))
    after = _pngs(r)
    assert after.keys() == pngs.keys()
    assert [c for c in expected_charts if after[c] != pngs[c]] == [chart_id]
    assert r.charts_reused == len(expected_charts) - 1


def test_the_cache_keeps_its_newest_entries(warm, tmp_path, expected_charts):
    from report.cache import ChartCache

    home, _, _ = warm
    changed = _home_copy(home, tmp_path)
    cache = ChartCache(changed / "report" / ".chart-cache")
    entries = sorted(cache.folder.glob("*.json"))
    assert len(entries) == len(expected_charts)
    cache.prune(keep=4)
    assert len(list(cache.folder.glob("*.json"))) == 4
    # A damaged entry is a miss: the chart is drawn again and the entry replaced.
    for entry in cache.folder.glob("*.json"):
        entry.write_text("{not json", "utf-8")
    r = write_report(Settings(home=changed))
    assert r.charts_reused == 0
    again = write_report(Settings(home=changed))
    assert again.charts_reused == len(r.png_paths)
