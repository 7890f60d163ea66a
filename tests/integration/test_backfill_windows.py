"""A long backfill from a free source runs as one load per window of years, each fetched, gated,
merged and derived on its own, and only the last published: the derived tables equal those of the
same backfill in one go, and the run's summary counts every window."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.backfill import backfill, backfill_windows, combine_summaries
from ground.registry import DATASETS
from warehouse.db import content_checksums

pytestmark = pytest.mark.slow

START = date(2024, 11, 1)
END = date(2025, 2, 14)


def test_windows_follow_calendar_years_and_end_on_sessions():
    assert backfill_windows(date(2016, 11, 1), date(2026, 11, 27), 3) == [
        (date(2016, 11, 1), date(2018, 12, 31)),
        (date(2019, 1, 1), date(2021, 12, 31)),
        (date(2022, 1, 1), date(2024, 12, 31)),
        (date(2025, 1, 1), date(2026, 11, 27)),
    ]
    assert backfill_windows(START, END, 0) == [(START, END)]
    assert backfill_windows(date(2024, 1, 2), date(2026, 11, 27), 3) == [(date(2024, 1, 2), date(2026, 11, 27))]
    # 2005-12-30 is the last session of 2005 (the 31st is a Saturday).
    assert backfill_windows(date(2005, 6, 1), date(2006, 3, 1), 1) == [(date(2005, 6, 1), date(2005, 12, 30)), (date(2006, 1, 1), date(2006, 3, 1))]


def test_the_summary_of_several_windows_counts_all_of_them():
    one = {"load_id": "a", "status": "succeeded", "sessions": 3, "rows_in": 10, "rows_quarantined": 1, "first_session": "2024-11-01",
           "tables": {"raw.index_bars": {"rows_in": 10, "inserted": 10, "changed": 0}}, "warnings": ["w1", "w2"], "quarantined": ["q1"]}
    two = {"load_id": "b", "status": "succeeded", "sessions": 2, "rows_in": 7, "rows_quarantined": 0, "first_session": "2025-01-01",
           "tables": {"raw.index_bars": {"rows_in": 7, "inserted": 6, "changed": 1}}, "warnings": ["w2"], "quarantined": [],
           "published_path": "p"}
    got = combine_summaries([one, two])
    assert got["load_id"] == "b" and got["load_ids"] == ["a", "b"] and got["published_path"] == "p"
    assert (got["sessions"], got["rows_in"], got["rows_quarantined"], got["first_session"]) == (5, 17, 1, "2024-11-01")
    assert got["tables"] == {"raw.index_bars": {"rows_in": 17, "inserted": 16, "changed": 1}}
    assert got["warnings"] == ["w1", "w2"] and got["quarantined"] == ["q1"]


@pytest.fixture(scope="module")
def homes(tmp_path_factory) -> dict[str, Path]:
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMALLCAPS_SAMPLE_COMPANIES", "2500")
        mp.setenv("SMALLCAPS_SAMPLE_START", "2024-10-01")
        mp.setenv("SMALLCAPS_WRITE_REPORT", "false")
        for years in (0, 1):
            home = tmp_path_factory.mktemp(f"windows-{years}")
            mp.setenv("SMALLCAPS_BACKFILL_WINDOW_YEARS", str(years))
            out[str(years)] = (home, backfill(start=START, end=END, source="sample", home=str(home)))
    return out


def test_a_backfill_by_windows_derives_what_one_load_derives(homes):
    (one_home, one), (win_home, win) = homes["0"], homes["1"]
    assert one["status"] == win["status"] == "succeeded"
    assert len(win["load_ids"]) == 2 and "load_ids" not in one
    assert win["as_of"] == one["as_of"] == END.isoformat() and win["published_path"]
    assert win["sessions"] == one["sessions"] and win["tables"]["raw.index_bars"]["inserted"] == one["tables"]["raw.index_bars"]["inserted"]
    cons = [duckdb.connect(str(h / "warehouse.duckdb"), read_only=True) for h in (one_home, win_home)]
    try:
        loads = cons[1].execute("SELECT status, start_date, end_date FROM meta.loads ORDER BY started_at").fetchall()
        assert loads == [("merged", START, date(2024, 12, 31)), ("succeeded", date(2025, 1, 1), END)]
        # Only the last window published.
        assert cons[1].execute("SELECT count(*) FROM meta.publishes").fetchone()[0] == 1
        # Derived tables are equal. Not compared: core.equity_returns and raw.equity_bars, because a
        # member that left in the first window is a former member in the second, priced only while
        # an anchor needs it (as on any night), where one load prices everyone it held in the range.
        tables = ["raw.index_bars", "raw.holdings", *(d.name for d in DATASETS if d.name != "core.equity_returns")]
        assert content_checksums(cons[0], tables) == content_checksums(cons[1], tables)
    finally:
        for c in cons:
            c.close()
