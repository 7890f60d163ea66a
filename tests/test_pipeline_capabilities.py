"""The pipeline's steps follow what a source can do (sources.base.Capabilities), whatever its name:
each case runs one step with the capability on and off under the same settings."""

from __future__ import annotations

from datetime import date

import polars as pl

from pipeline import checks, load_run, planning
from ground.settings import Settings
from sources.base import FAILURES_SCHEMA, Fetched
from warehouse.db import connect

from test_pipeline import bars, put

NIGHT = date(2025, 3, 5)


def test_a_nightly_asks_for_no_session_before_the_sources_first(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    put(con, "raw.index_bars", bars("^RUT", date(2025, 3, 4)))
    # The settings name a source whose first session is not 2025-03-03 (and sample_start says
    # 2024): only the capability passed decides.
    settings = Settings(home=tmp_path, source="yahoo", overlap_sessions=5)
    unbounded = planning.plan_nightly(con, settings, NIGHT, first_date=None)
    bounded = planning.plan_nightly(con, settings, NIGHT, first_date=date(2025, 3, 3))
    # Five sessions before 2025-03-04: Feb 25, 26, 27, 28, Mar 3.
    assert unbounded.bars_start == date(2025, 2, 25)
    assert bounded.bars_start == date(2025, 3, 3)
    assert bounded.holdings_start == unbounded.holdings_start == date(2025, 3, 3)


def _batch_without_sp600_holdings() -> checks.Batch:
    fetched = Fetched(
        bars=bars("^RUT", NIGHT),
        failures=pl.DataFrame([("sp600", "holdings", "HTTP 503 Service Unavailable")], schema=FAILURES_SCHEMA, orient="row"),
    )
    return checks.split(fetched, ["^RUT"], asked={"bars": ["^RUT"]})


def test_a_missing_holdings_snapshot_is_warned_about_only_for_a_complete_source():
    plan = planning.Plan("nightly", NIGHT, NIGHT, NIGHT, ["^RUT"], ["sp600"])
    batch = _batch_without_sp600_holdings()
    assert checks.check_fetched(batch, "anysource", plan, is_complete=True) == [
        "anysource: no holdings snapshot for sp600 (HTTP 503 Service Unavailable); its membership is not updated this time"
    ]
    # A source that holds what its user brought (a csv folder without holdings files): no warning.
    assert checks.check_fetched(batch, "anysource", plan, is_complete=False) == []


def test_only_a_complete_source_holds_a_night_that_lacks_indexes_and_members(tmp_path):
    settings = Settings(home=tmp_path, source="csv", csv_path=tmp_path)  # the name says csv; the capability decides
    con = load_run.open_warehouse(settings)
    batch = _batch_without_sp600_holdings()
    held = checks.check_completeness(con, settings, NIGHT, batch, is_complete=True)
    assert held is not None and "^GSPC" in held  # no bar of the night for the other indexes
    assert checks.check_completeness(con, settings, NIGHT, batch, is_complete=False) is None
