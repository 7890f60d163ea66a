"""The gate on a matrix of corruptions: blocked or not, which rows are quarantined and why, the
message, and that the clean rows are exactly the others. Plus overrides, the held rows
of a blocked load, and the time on 1.5M equity bars."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from datetime import date, datetime
from typing import Callable

import numpy as np
import polars as pl
import pytest

from ground import calendar
from expectations.gate import QUARANTINE_SCHEMA, RESULTS_SCHEMA, held_rows, row_key
from tests.helpers.matrix import first_of_each_kind
from test_suites import (
    AS_OF,
    FUTURE,
    SAT,
    SESSIONS,
    cohort_composition,
    cohort_performance,
    corporate_actions,
    dup_row,
    equity_bars,
    fundamentals,
    holdings,
    index_bars,
    index_daily,
    relative_performance,
    run,
    sector_daily,
    set_at,
)


@dataclass
class Corruption:
    id: str
    table: str
    make: Callable[[], pl.DataFrame]
    outcome: str  # blocked | quarantined (rows set aside, the rest loads) | loads (a warning at most)
    message: str  # must appear in an error (blocked), a quarantine message, or a warning
    bad_keys: set[str] | None = None  # row keys that must be quarantined (None: every row)
    repeated: bool = False  # the bad key's first row is clean (an identical copy was set aside)


def _k(*parts) -> str:
    return "|".join(str(p) for p in parts)


MATRIX = [
    Corruption("nan_close", "raw.equity_bars", lambda: set_at(equity_bars(), 3, close=float("nan")),
               "blocked", "close_not_null failed for 1 of 30 rows, e.g. SMP0001 2025-03-06 close=NaN", {_k("SMP0001", SESSIONS[3])}),
    Corruption("negative_close", "raw.equity_bars", lambda: set_at(equity_bars(), 12, close=-4.0, low=-5.0),
               "blocked", "close_positive failed for 1 of 30 rows, e.g. SMP0002 2025-03-05 close=-4", {_k("SMP0002", SESSIONS[2])}),
    Corruption("infinite_high", "raw.equity_bars", lambda: set_at(equity_bars(), 0, high=float("inf")),
               "blocked", "prices_finite failed for 1 of 30 rows", {_k("SMP0001", SESSIONS[0])}),
    Corruption("high_below_low", "raw.equity_bars", lambda: set_at(equity_bars(), 11, high=10.1, low=10.4, open=10.2, close=10.3, adj_close=10.3),
               "blocked", "high_ge_low failed for 1 of 30 rows, e.g. SMP0002 2025-03-04 high=10.1 low=10.4", {_k("SMP0002", SESSIONS[1])}),
    Corruption("conflicting_keys", "raw.equity_bars", lambda: dup_row(equity_bars(), 25, close=15.3),
               "blocked", "keys_unique failed for 2 of 31 rows, e.g. SMP0003 2025-03-10 versions=2", {_k("SMP0003", SESSIONS[5])}),
    Corruption("repeated_row", "raw.equity_bars", lambda: dup_row(equity_bars(), 25),
               "quarantined", "rows_not_repeated failed for 1 of 31 rows (an identical copy of an earlier row), e.g. SMP0003 2025-03-10",
               {_k("SMP0003", SESSIONS[5])}, repeated=True),
    Corruption("saturday", "raw.equity_bars", lambda: set_at(equity_bars(), 20, session_date=SAT),
               "quarantined", "session_on_calendar failed for 1 of 30 rows (not an NYSE session), e.g. SMP0003 2025-03-08 "
               "session_date=2025-03-08 weekday=Saturday; that row is in dq.quarantine, the rest loads", {_k("SMP0003", SAT)}),
    Corruption("holiday", "raw.index_bars", lambda: set_at(index_bars(), 25, session_date=date(2025, 2, 17)),
               "quarantined", "session_on_calendar failed for 1 of 30 rows (not an NYSE session), e.g. ^VIX 2025-02-17 "
               "session_date=2025-02-17 weekday=Monday", {_k("^VIX", date(2025, 2, 17))}),
    Corruption("future_session", "raw.index_bars", lambda: set_at(index_bars(), 9, session_date=FUTURE),
               "quarantined", "session_not_future failed for 1 of 30 rows (after the load's as-of session), e.g. ^RUT 2025-03-17 "
               "session_date=2025-03-17 as_of=2025-03-14", {_k("^RUT", FUTURE)}),
    Corruption("close_1e308", "raw.index_bars", lambda: set_at(index_bars(), 9, close=1e308, adj_close=1e308, high=1e308),
               "blocked", "prices_plausible failed for 1 of 30 rows, e.g. ^RUT 2025-03-14 open=", {_k("^RUT", AS_OF)}),
    Corruption("volume_1e13", "raw.equity_bars", lambda: set_at(equity_bars(), 4, volume=10**13),
               "blocked", "volume_plausible failed for 1 of 30 rows, e.g. SMP0001 2025-03-07 volume=10000000000000", {_k("SMP0001", SESSIONS[4])}),
    Corruption("holdings_nan_price", "raw.holdings", lambda: set_at(holdings(), 2, price_usd=float("nan")),
               "blocked", "values_finite failed for 1 of 4 rows, e.g. russell2000 2025-03-13 SMP0003", {_k("russell2000", date(2025, 3, 13), "SMP0003")}),
    Corruption("holdings_from_the_future", "raw.holdings", lambda: holdings().with_columns(pl.lit(FUTURE).alias("as_of_date")),
               "quarantined", "as_of_not_future failed for 4 of 4 rows (snapshot dated after the load's as-of session)",
               {_k("russell2000", FUTURE, f"SMP000{i}") for i in range(1, 5)}),
    Corruption("spike_100x", "raw.equity_bars",
               lambda: set_at(equity_bars(), 15, open=1500.0, high=1600.0, low=1400.0, close=1550.0, adj_close=1550.0),
               "loads", "price_jump_100x failed for 2 of 30 rows, e.g. SMP0002 2025-03-10 close=1550 prev_session_date=2025-03-07", set()),
    Corruption("negative_volume", "raw.equity_bars", lambda: set_at(equity_bars(), 2, volume=-100),
               "blocked", "volume_non_negative failed for 1 of 30 rows, e.g. SMP0001 2025-03-05 volume=-100", {_k("SMP0001", SESSIONS[2])}),
    Corruption("empty_frame", "raw.equity_bars", lambda: equity_bars().clear(), "loads", "rows_present failed: the frame has no rows", set()),
    Corruption("no_columns", "raw.index_bars", lambda: pl.DataFrame(), "blocked", "missing column(s) symbol, session_date"),
    Corruption("renamed_column", "raw.equity_bars", lambda: equity_bars().rename({"adj_close": "adjclose"}),
               "blocked", "columns_present failed: missing column(s) adj_close; unexpected column(s) adjclose (renamed?)"),
    Corruption("missing_column", "raw.fundamentals", lambda: fundamentals().drop("net_income_common_usd"),
               "blocked", "missing column(s) net_income_common_usd"),
    Corruption("string_prices", "raw.equity_bars", lambda: equity_bars().with_columns(pl.col("close").cast(pl.String)),
               "blocked", "column_types failed: close is String, expected Float64 (e.g. '11.0')"),
    Corruption("string_dates", "raw.index_bars", lambda: index_bars().with_columns(pl.col("session_date").cast(pl.String)),
               "blocked", "session_date is String, expected Date"),
    Corruption("weights_40pct", "raw.holdings", lambda: holdings(weight_each=10.0),
               "blocked", "weight_sum_band failed for 1 group(s) (4 of 4 rows), e.g. russell2000 2025-03-13 weight_sum_pct=40"),
    Corruption("too_few_members", "raw.holdings", lambda: holdings(members=2, weight_each=49.9),
               "blocked", "member_count_band failed for 1 group(s) (2 of 2 rows), e.g. russell2000 2025-03-13 members=2 expected_members=3..10"),
    Corruption("duplicated_quarter", "raw.fundamentals", lambda: dup_row(fundamentals(), 5, net_income_common_usd=2.5e6),
               "blocked", "keys_unique failed for 2 of 9 rows, e.g. SMP0002 2024-06-30", {_k("SMP0002", date(2024, 6, 30))}),
    Corruption("future_period_end", "raw.fundamentals", lambda: set_at(fundamentals(), 7, period_end_date=date(2025, 6, 30), report_date=None),
               "quarantined", "period_end_past failed for 1 of 8 rows (quarter ends after the load's as-of session), e.g. SMP0002 2025-06-30",
               {_k("SMP0002", date(2025, 6, 30))}),
    Corruption("unknown_action", "raw.corporate_actions", lambda: set_at(corporate_actions(), 1, action="merger"),
               "blocked", "action_known failed for 1 of 2 rows, e.g. SMP0002 2025-03-10 merger", {_k("SMP0002", date(2025, 3, 10), "merger")}),
    Corruption("infinite_return", "marts.index_daily", lambda: set_at(index_daily(), 13, ret_1d=float("inf")),
               "blocked", "returns_finite failed for 1 of 20 rows, e.g. ^GSPC 2025-03-06 ret_1d=inf", {_k("^GSPC", SESSIONS[3])}),
    Corruption("shares_sum_0_9", "marts.cohort_composition", lambda: set_at(cohort_composition(), 5, share_of_members=0.0),
               "blocked", "shares_sum_to_one failed for 1 group(s) (3 of 30 rows), e.g. russell2000 2025-03-04 share_of_members_sum=0.9",
               {_k("russell2000", SESSIONS[1], c) for c in ("profitable", "unprofitable", "no_data")}),
    Corruption("negative_streak", "marts.relative_performance", lambda: set_at(relative_performance(), 4, streak=-1),
               "blocked", "streak_non_negative failed for 1 of 10 rows, e.g. ^RUT ^GSPC 2025-03-07 streak=-1", {_k("^RUT", "^GSPC", SESSIONS[4])}),
    Corruption("streak_too_long", "marts.relative_performance", lambda: set_at(relative_performance(), 1, streak=5),
               "blocked", "streak_le_sessions failed for 1 of 10 rows, e.g. ^RUT ^GSPC 2025-03-04 streak=5 previous_streak=0", {_k("^RUT", "^GSPC", SESSIONS[1])}),
    Corruption("priced_gt_members", "marts.cohort_performance", lambda: set_at(cohort_performance(), 0, priced=60),
               "blocked", "members_ge_priced failed for 1 of 30 rows", {_k("russell2000", "2025-03-03", "profitable", SESSIONS[0])}),
    Corruption("sector_return_nan", "marts.sector_daily", lambda: set_at(sector_daily(), 0, return_equal_weight=float("nan")),
               "blocked", "returns_finite failed for 1 of 20 rows, e.g. russell2000 Industrials 2025-03-03 return_equal_weight=NaN",
               {_k("russell2000", "Industrials", SESSIONS[0])}),
    Corruption("extra_column", "raw.corporate_actions", lambda: corporate_actions().with_columns(pl.lit("x").alias("note")),
               "loads", "no_unexpected_columns failed: column(s) note", set()),
]


@pytest.mark.parametrize("c", first_of_each_kind((pytest.param(c, id=c.id) for c in MATRIX), kind=lambda c: c.table))
def test_corruption_matrix(c: Corruption):
    df = c.make()
    g = run(c.table, df)
    outcome = "blocked" if g.blocked else ("quarantined" if g.quarantined else "loads")
    assert outcome == c.outcome, g.errors + g.quarantined
    messages = {"blocked": g.errors, "quarantined": g.quarantined, "loads": g.warnings}[c.outcome]
    assert any(c.message in m for m in messages), messages
    assert all(m.startswith(f"{c.table}: ") for m in g.errors + g.quarantined + g.warnings)
    # Every row is either clean or quarantined, exactly once.
    assert g.quarantine.height + g.clean.height == df.height
    if c.bad_keys is None:
        assert g.clean.is_empty() and g.quarantine.height == df.height
    else:
        assert set(g.quarantine.get_column("row_key")) == c.bad_keys
        keys = df.select(row_key(c.table, df)).to_series()
        expected_clean = df.filter(~keys.is_in(list(c.bad_keys)) | (c.repeated & keys.is_first_distinct()))
        assert g.clean.equals(expected_clean)
    assert g.results.schema == pl.Schema(RESULTS_SCHEMA)
    assert g.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert g.results.get_column("expectation").is_unique().all()
    for r in g.quarantine.iter_rows(named=True):
        assert r["reason"].startswith(r["expectation"] + ":")
        json.loads(r["row_json"])


def test_matrix_is_big_enough():
    assert len({c.id for c in MATRIX}) >= 20


def test_quarantine_reason_names_every_failed_expectation_and_values():
    df = set_at(equity_bars(), 4, close=-1.0, low=-2.0, adj_close=float("nan"))
    g = run("raw.equity_bars", df)
    (r,) = g.quarantine.rows(named=True)
    assert r["row_key"] == f"SMP0001|{SESSIONS[4]}"
    assert r["expectation"] == "adj_close_not_null"  # first in suite order
    for part in ("adj_close_not_null: adj_close=NaN", "close_positive: close=-1", "low_positive: low=-2", "prices_finite:"):
        assert part in r["reason"]
    assert json.loads(r["row_json"])["symbol"] == "SMP0001"


def test_schema_failure_still_reports_checks_on_sound_columns():
    df = set_at(equity_bars(), 0, high=1.0, low=2.0).rename({"volume": "vol"})
    g = run("raw.equity_bars", df)
    assert g.blocked and g.clean.is_empty()
    assert any("missing column(s) volume" in e for e in g.errors)
    assert any("high_ge_low failed for 1 of 30" in e for e in g.errors)
    ran = set(g.results.get_column("expectation"))
    assert "volume_non_negative" not in ran and "stale_symbol" not in ran  # they read the missing column
    assert g.quarantine.get_column("expectation").unique().to_list() == ["columns_present"]


def test_severity_override_moves_expectation_both_ways():
    df = set_at(equity_bars(), 15, open=1500.0, high=1600.0, low=1400.0, close=1550.0, adj_close=1550.0)
    g = run("raw.equity_bars", df, severity_overrides={"price_jump_100x": "error"})
    assert g.blocked and any("price_jump_100x failed" in e for e in g.errors)
    assert g.results.filter(pl.col("expectation") == "price_jump_100x").get_column("severity").item() == "error"
    assert g.quarantine.height == 2 and g.clean.height == 28

    df = set_at(equity_bars(), 2, volume=-100)
    g = run("raw.equity_bars", df, severity_overrides={"volume_non_negative": "warning"})
    assert not g.blocked and any("volume_non_negative failed" in w for w in g.warnings)
    assert g.quarantine.is_empty() and g.clean.equals(df)


def test_quarantine_override_sets_rows_aside_and_the_rest_loads():
    df = set_at(equity_bars(), 11, open=1.0)
    g = run("raw.equity_bars", df, severity_overrides={"open_ge_low": "quarantine"})
    assert not g.blocked and not g.errors
    assert any("open_ge_low failed for 1 of 30 rows" in m and "that row is in dq.quarantine, the rest loads" in m for m in g.quarantined)
    assert g.quarantine.get_column("row_key").to_list() == [f"SMP0002|{SESSIONS[1]}"]
    assert g.results.filter(pl.col("expectation") == "open_ge_low").get_column("severity").item() == "quarantine"
    assert g.clean.height == 29

    # And back: a holiday row blocks the load when the operator wants it to.
    df = set_at(index_bars(), 25, session_date=date(2025, 2, 17))
    g = run("raw.index_bars", df, severity_overrides={"session_on_calendar": "error"})
    assert g.blocked and not g.quarantined and any("session_on_calendar failed for 1 of 30" in e for e in g.errors)


def test_quarantine_in_a_mart_blocks():
    """Marts are derived: a row cannot be set aside without making the mart wrong."""
    df = set_at(sector_daily(), 1, session_date=FUTURE)
    g = run("marts.sector_daily", df, severity_overrides={"session_not_future": "quarantine"})
    assert g.blocked and any("session_not_future failed for 1 of 20" in e for e in g.errors)
    assert g.results.filter(pl.col("expectation") == "session_not_future").get_column("severity").item() == "error"


def test_a_row_failing_an_error_and_a_quarantine_check_is_blamed_on_the_error():
    df = set_at(equity_bars(), 20, session_date=SAT, close=-1.0, low=-2.0)
    g = run("raw.equity_bars", df)
    assert g.blocked
    (r,) = g.quarantine.rows(named=True)
    assert r["expectation"] == "low_positive"  # error-level ones first, in suite order
    assert r["reason"].startswith("low_positive: low=-2.0; close_positive: close=-1.0; ")
    assert "session_on_calendar: not an NYSE session: session_date=2025-03-08 weekday=Saturday" in r["reason"]


def test_a_blocked_load_also_sets_aside_its_quarantine_level_rows():
    df = set_at(set_at(equity_bars(), 20, session_date=SAT), 3, close=float("nan"))
    g = run("raw.equity_bars", df)
    assert g.blocked and g.quarantined
    assert sorted(g.quarantine.get_column("expectation").to_list()) == ["close_not_null", "session_on_calendar"]
    assert g.clean.height == 28


def test_unknown_override_is_an_error_listing_valid_names():
    with pytest.raises(ValueError, match=r"unknown expectation\(s\) in dq_severity: price_jmup.*high_ge_low"):
        run("raw.equity_bars", equity_bars(), severity_overrides={"price_jmup": "error"})


def test_held_rows_of_a_blocked_load_complete_the_quarantine():
    df = set_at(equity_bars(), 3, close=float("nan"))
    g = run("raw.equity_bars", df)
    at = datetime(2025, 3, 14, 23, 0)
    held = held_rows("raw.equity_bars", g.clean, load_id="test-load", reason="load blocked: " + g.errors[0], at=at)
    assert held.schema == pl.Schema(QUARANTINE_SCHEMA)
    both = pl.concat([g.quarantine, held])
    assert both.height == df.height and both.get_column("row_key").is_unique().all()
    assert set(held.get_column("expectation")) == {"held_by_block"}


def test_marts_pass_and_raw_staging_columns_are_accepted():
    df = equity_bars().with_columns(
        pl.lit("sample").alias("source"), pl.lit(datetime(2025, 3, 14)).alias("fetched_at"), pl.lit("L0").alias("load_id")
    )
    g = run("raw.equity_bars", df)
    assert not g.blocked and not g.warnings
    for make, table in ((cohort_performance, "marts.cohort_performance"), (sector_daily, "marts.sector_daily")):
        assert not run(table, make()).blocked


@pytest.mark.slow  # over ~10 s: kept out of `make test-fast`, run by `make test`
def test_one_bad_row_among_1_5m_bars_is_found_and_only_it_quarantined():
    """Scale, not speed (bench/gate_share.py times the gate): one bad row in a backfill-sized frame."""
    days = calendar.sessions(date(2022, 1, 3), AS_OF)
    n_sym = 1_500_000 // len(days) + 1
    df = (
        pl.DataFrame({"symbol": [f"SMP{i:04d}" for i in range(n_sym)]})
        .join(pl.DataFrame({"session_date": days}), how="cross")
        .head(1_500_000)
    )
    close = 5 + np.random.default_rng(7).random(df.height) * 20
    df = df.with_columns(
        open=pl.lit(close * 0.99), high=pl.lit(close * 1.02), low=pl.lit(close * 0.97),
        close=pl.lit(close), adj_close=pl.lit(close), volume=pl.lit(np.arange(df.height) % 10_000),
    )
    df = set_at(df, 777_777, high=1.0)
    g = run("raw.equity_bars", df)
    assert g.blocked and g.quarantine.height == 1 and g.clean.height == df.height - 1
    assert "high_ge_low" in " ".join(g.errors)


def test_settings_accept_quarantine_from_the_environment(monkeypatch):
    from flows.nightly import settings_for

    monkeypatch.setenv("SMALLCAPS_DQ_SEVERITY", '{"high_ge_low": "quarantine", "session_on_calendar": "error"}')
    assert settings_for(None, None, None).dq_severity == {"high_ge_low": "quarantine", "session_on_calendar": "error"}
    monkeypatch.setenv("SMALLCAPS_DQ_SEVERITY", '{"rows_present": "quarantine"}')
    with pytest.raises(ValueError, match="rows_present cannot be 'quarantine'"):
        settings_for(None, None, None)


def test_a_new_gx_context_logs_no_temporary_docs_site(caplog):
    """GX announces at INFO the temporary folder of an ephemeral docs site the gate never builds:
    a line in every night's log that says nothing about the night."""
    import logging

    from expectations.gate import _GxRuntime

    with caplog.at_level(logging.INFO):
        _GxRuntime()
    assert not [r for r in caplog.records if "ephemeral docs site" in r.getMessage()]


@pytest.mark.slow  # a fresh Python process importing GX: ~5 s
def test_the_background_warm_up_builds_the_context_once_and_the_gate_uses_it():
    """A fresh process: the flow's warm-up thread builds the GX context; a second call starts no
    thread; the gate then runs on that same context."""
    import subprocess
    import sys

    code = """
import threading
from expectations import gate
gate.warm_up_in_background()
warmers = [t for t in threading.enumerate() if t.name == "gx-warm-up"]
assert len(warmers) == 1, warmers
warmers[0].join()
built = gate._cached_runtime()
gate.warm_up_in_background()
assert not [t for t in threading.enumerate() if t.name == "gx-warm-up"], "a second warm-up started"
assert gate._default_runtime() is built
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
