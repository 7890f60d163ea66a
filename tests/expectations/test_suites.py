"""Every expectation of every suite, failing and passing, on small real-shaped frames.

Each case corrupts a clean frame of one table so that exactly one named expectation (plus any
listed companions) fails on known rows. For GX-backed expectations the test also checks that GX and
the suite's polars predicate blame the same number of rows, so quarantined rows are the ones GX
counted. The builders here are shared with test_gate.py.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from expectations.gate import gate
from expectations.suites import SEVERITIES, SUITES, check_overrides, expectation_names, suite
from ground import calendar
from ground.settings import Universe
from sources.base import ACTIONS_SCHEMA, BARS_SCHEMA, FUNDAMENTALS_SCHEMA, HOLDINGS_SCHEMA
from ground.registry import get
from tests.helpers.matrix import first_of_each_kind

INDEX_DAILY_SCHEMA = get("marts.index_daily").schema
INDEX_PERFORMANCE_SCHEMA = get("marts.index_performance").schema
RELATIVE_PERFORMANCE_SCHEMA = get("marts.relative_performance").schema
COHORT_COMPOSITION_SCHEMA = get("marts.cohort_composition").schema
COHORT_PERFORMANCE_SCHEMA = get("marts.cohort_performance").schema
SECTOR_DAILY_SCHEMA = get("marts.sector_daily").schema
SECTOR_PERFORMANCE_SCHEMA = get("marts.sector_performance").schema

AS_OF = date(2025, 3, 14)
SESSIONS = calendar.sessions(date(2025, 3, 3), AS_OF)  # 10 sessions
SMALL_UNIVERSES = {
    "russell2000": Universe(
        name="russell2000", index_symbol="^RUT", etf="IWM", holdings_url="https://example.invalid/iwm",
        min_members=3, max_members=10,
    ),
    "sp600": Universe(
        name="sp600", index_symbol="^SP600", etf="IJR", holdings_url="https://example.invalid/ijr",
        min_members=3, max_members=10,
    ),
}


def equity_bars(symbols: int = 3) -> pl.DataFrame:
    rows = []
    for i in range(1, symbols + 1):
        for k, d in enumerate(SESSIONS):
            close = 10.0 + i + 0.1 * k
            rows.append((f"SMP{i:04d}", d, close - 0.05, close + 0.2, close - 0.3, close, close * 0.99, 1_000 * i + k))
    return pl.DataFrame(rows, schema=BARS_SCHEMA, orient="row")


def index_bars() -> pl.DataFrame:
    rows = []
    for sym, level, vol in (("^RUT", 2100.0, 10**9), ("^GSPC", 5800.0, 3 * 10**9), ("^VIX", 18.0, None)):
        for k, d in enumerate(SESSIONS):
            close = level * (1 + 0.002 * k)
            rows.append((sym, d, close * 0.999, close * 1.004, close * 0.995, close, close, vol))
    return pl.DataFrame(rows, schema=BARS_SCHEMA, orient="row")


def holdings(members: int = 4, weight_each: float = 24.9, universe: str = "russell2000") -> pl.DataFrame:
    rows = [
        (universe, date(2025, 3, 13), f"SMP{i:04d}", f"SMP{i:04d}", f"Sample Co {i}", "Industrials", "Equity",
         "NASDAQ", weight_each, 1e8, 1e6, 100.0)
        for i in range(1, members + 1)
    ]
    return pl.DataFrame(rows, schema=HOLDINGS_SCHEMA, orient="row")


def fundamentals() -> pl.DataFrame:
    ends = [date(2024, 3, 31), date(2024, 6, 30), date(2024, 9, 30), date(2024, 12, 31)]
    rows = []
    for i, sym in enumerate(("SMP0001", "SMP0002")):
        for k, end in enumerate(ends):
            ni = (-1) ** i * 1e6 * (k + 1)
            rows.append((sym, end, date.fromordinal(end.toordinal() + 40), ni, ni, 0.1, 5e7))
    return pl.DataFrame(rows, schema=FUNDAMENTALS_SCHEMA, orient="row")


def corporate_actions() -> pl.DataFrame:
    return pl.DataFrame(
        [("SMP0001", date(2025, 3, 5), "dividend", 0.12), ("SMP0002", date(2025, 3, 10), "split", 2.0)],
        schema=ACTIONS_SCHEMA, orient="row",
    )


def index_daily() -> pl.DataFrame:
    rows = []
    for sym, level in (("^RUT", 2100.0), ("^GSPC", 5800.0)):
        for k, d in enumerate(SESSIONS):
            close = level * (1 + 0.002 * k)
            week = k >= 5
            before = level * (1 + 0.002 * (k - 5))
            rows.append(dict(
                symbol=sym, session_date=d, close=close, ret_1d=0.002 if k else None, ytd_return=0.01 + 0.002 * k, prev_year_close=level / 1.01,
                is_record_close=k > 0, records_ytd=k, drawdown_from_record=0.0 if k else -0.01,
                record_close=close / 0.99 if k == 0 else close, record_date=d, rsi_14=55.0 + k,
                rsi_avg_gain=1.1, rsi_avg_loss=0.9, sma_50=close * 0.98, sma_200=close * 0.95, high_52w=close, low_52w=close * 0.8,
                change_5d=close - before if week else None, ret_5d=close / before - 1 if week else None,
                support_level=close * 0.97 if k >= 6 else None, support_date=SESSIONS[0] if k >= 6 else None,
                resistance_level=close * 1.02 if k >= 7 else None, resistance_date=SESSIONS[1] if k >= 7 else None,
            ))
    return pl.DataFrame(rows, schema=INDEX_DAILY_SCHEMA)


def index_performance() -> pl.DataFrame:
    rows = []
    for sym, level in (("^RUT", 2100.0), ("^GSPC", 5800.0)):
        for k, d in enumerate(SESSIONS[2:], start=2):
            close = level * (1 + 0.002 * k)
            anchor_close = level * 1.004
            rows.append((sym, "2025-03-05", d, SESSIONS[2], anchor_close, close, close / anchor_close - 1))
    return pl.DataFrame(rows, schema=INDEX_PERFORMANCE_SCHEMA, orient="row")


def relative_performance() -> pl.DataFrame:
    rows = []
    streak, level = 0, 1.0
    for k, d in enumerate(SESSIONS):
        lead, lag = (None, None) if k == 0 else (0.01 if k % 4 else -0.01, 0.002)
        out = lead is not None and lead > lag
        streak = streak + 1 if out else 0
        level = level if lead is None else level * (1 + lead) / (1 + lag)
        lead_ytd, lag_ytd = 0.05 + 0.01 * k, 0.05
        rows.append(
            ("^RUT", "^GSPC", d, lead, lag, None if lead is None else lead - lag, out, streak, None, lead_ytd, lag_ytd,
             lead_ytd - lag_ytd, level)
        )  # fmt: skip
    return pl.DataFrame(rows, schema=RELATIVE_PERFORMANCE_SCHEMA, orient="row")


def cohort_composition() -> pl.DataFrame:
    rows = []
    for d in SESSIONS:
        for cohort, members, share, w in (("profitable", 50, 0.5, 0.6), ("unprofitable", 40, 0.4, 0.35), ("no_data", 10, 0.1, 0.05)):
            rows.append(("russell2000", d, cohort, members, share, w, "v1"))
    return pl.DataFrame(rows, schema=COHORT_COMPOSITION_SCHEMA, orient="row")


def cohort_performance() -> pl.DataFrame:
    rows = []
    for k, d in enumerate(SESSIONS):
        for cohort in ("profitable", "unprofitable", "no_data"):
            r = 0.01 * k
            rows.append(("russell2000", "2025-03-03", cohort, d, SESSIONS[0], 50, 49, r, r * 1.1, r * 0.9))
    return pl.DataFrame(rows, schema=COHORT_PERFORMANCE_SCHEMA, orient="row")


def sector_daily() -> pl.DataFrame:
    rows = [("russell2000", s, d, 100, 0.001, 0.002) for d in SESSIONS for s in ("Industrials", "Health Care")]
    return pl.DataFrame(rows, schema=SECTOR_DAILY_SCHEMA, orient="row")


def sector_performance() -> pl.DataFrame:
    rows = [
        ("russell2000", "2025-03-05", s, d, SESSIONS[2], (1.001 ** (k - 2)) - 1, (1.002 ** (k - 2)) - 1)
        for k, d in enumerate(SESSIONS[2:], start=2) for s in ("Industrials", "Health Care")
    ]
    return pl.DataFrame(rows, schema=SECTOR_PERFORMANCE_SCHEMA, orient="row")


CLEAN = {
    "raw.equity_bars": equity_bars,
    "raw.index_bars": index_bars,
    "raw.holdings": holdings,
    "raw.fundamentals": fundamentals,
    "raw.corporate_actions": corporate_actions,
    "marts.index_daily": index_daily,
    "marts.index_performance": index_performance,
    "marts.relative_performance": relative_performance,
    "marts.cohort_composition": cohort_composition,
    "marts.cohort_performance": cohort_performance,
    "marts.sector_daily": sector_daily,
    "marts.sector_performance": sector_performance,
}


def run(table: str, df: pl.DataFrame, **kw):
    kw.setdefault("universes", SMALL_UNIVERSES)
    return gate(table, df, load_id="test-load", as_of=AS_OF, **kw)


def set_at(df: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    """Set columns of one row (by position) to the given values."""
    at = pl.int_range(0, pl.len()) == row
    return df.with_columns(
        [pl.when(at).then(pl.lit(v, dtype=df.schema[c])).otherwise(pl.col(c)).alias(c) for c, v in values.items()]
    )


def dup_row(df: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    """`df` plus a copy of one row, with `values` changed in the copy (none: an identical copy)."""
    return pl.concat([df, set_at(df.slice(row, 1), 0, **values)])


SAT = date(2025, 3, 8)
FUTURE = date(2025, 3, 17)

# (table, expectation, corruption, rows the expectation must blame)
CASES = [
    ("raw.equity_bars", "keys_unique", lambda d: dup_row(d, 4, close=12.5), 2),
    ("raw.equity_bars", "rows_not_repeated", lambda d: dup_row(dup_row(d, 4), 4), 2),
    ("raw.equity_bars", "prices_plausible", lambda d: set_at(d, 5, high=1e308), 1),
    ("raw.equity_bars", "volume_plausible", lambda d: set_at(d, 1, volume=10**13), 1),
    ("raw.equity_bars", "symbol_not_null", lambda d: set_at(d, 3, symbol=None), 1),
    ("raw.equity_bars", "session_date_not_null", lambda d: set_at(d, 3, session_date=None), 1),
    ("raw.equity_bars", "close_not_null", lambda d: set_at(d, 3, close=float("nan")), 1),
    ("raw.equity_bars", "adj_close_not_null", lambda d: set_at(d, 3, adj_close=None), 1),
    ("raw.equity_bars", "prices_finite", lambda d: set_at(d, 5, high=float("inf")), 1),
    ("raw.equity_bars", "close_positive", lambda d: set_at(d, 6, close=-1.0, low=-2.0, open=-1.5), 1),
    ("raw.equity_bars", "adj_close_positive", lambda d: set_at(d, 6, adj_close=0.0), 1),
    ("raw.equity_bars", "open_positive", lambda d: set_at(d, 6, open=0.0, low=0.0), 1),
    ("raw.equity_bars", "high_positive", lambda d: set_at(d, 6, high=-1.0, low=-2.0, open=-1.5, close=-1.2), 1),
    ("raw.equity_bars", "low_positive", lambda d: set_at(d, 6, low=0.0), 1),
    ("raw.equity_bars", "high_ge_low", lambda d: set_at(d, 7, high=10.1, low=10.4, open=10.2, close=10.3), 1),
    ("raw.equity_bars", "high_ge_open", lambda d: set_at(d, 7, open=99.0), 1),
    ("raw.equity_bars", "open_ge_low", lambda d: set_at(d, 7, open=1.0), 1),
    ("raw.equity_bars", "high_ge_close", lambda d: set_at(d, 7, close=99.0, adj_close=99.0), 1),
    ("raw.equity_bars", "close_ge_low", lambda d: set_at(d, 7, close=1.0, adj_close=1.0), 1),
    ("raw.equity_bars", "session_on_calendar", lambda d: set_at(d, 2, session_date=SAT), 1),
    ("raw.equity_bars", "session_not_future", lambda d: set_at(d, 9, session_date=FUTURE), 1),
    ("raw.equity_bars", "volume_non_negative", lambda d: set_at(d, 1, volume=-5), 1),
    ("raw.equity_bars", "price_jump_100x", lambda d: set_at(d, 4, open=1200.0, high=1300.0, low=1100.0, close=1250.0, adj_close=1250.0), 2),
    ("raw.equity_bars", "stale_symbol", lambda d: d.with_columns(
        pl.when(pl.col("symbol") == "SMP0003").then(13.0).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close", "adj_close")
    ).with_columns(pl.when(pl.col("symbol") == "SMP0003").then(0).otherwise(pl.col("volume")).alias("volume")), 6),
    ("raw.index_bars", "keys_unique", lambda d: dup_row(d, 0, open=None), 2),
    ("raw.index_bars", "prices_plausible", lambda d: set_at(d, 3, low=1e-9), 1),
    ("raw.index_bars", "close_not_null", lambda d: set_at(d, 12, close=None), 1),
    ("raw.index_bars", "high_ge_low", lambda d: set_at(d, 12, low=1e6, open=None, close=5e5, high=1e5), 1),
    ("raw.index_bars", "session_on_calendar", lambda d: set_at(d, 12, session_date=date(2025, 1, 1)), 1),
    ("raw.holdings", "keys_unique", lambda d: dup_row(d, 1, weight_pct=0.0), 2),
    ("raw.holdings", "rows_not_repeated", lambda d: dup_row(d.with_columns(pl.col("weight_pct") * 0.8), 1), 1),
    ("raw.holdings", "values_finite", lambda d: set_at(d, 3, price_usd=float("nan")), 1),
    ("raw.holdings", "ticker_not_null", lambda d: set_at(d, 1, ticker=None), 1),
    ("raw.holdings", "universe_not_null", lambda d: set_at(d, 1, universe=None), 1),
    ("raw.holdings", "as_of_date_not_null", lambda d: set_at(d, 1, as_of_date=None), 1),
    ("raw.holdings", "universe_known", lambda d: d.with_columns(pl.lit("russell3000").alias("universe")), 4),
    ("raw.holdings", "as_of_not_future", lambda d: d.with_columns(pl.lit(FUTURE).alias("as_of_date")), 4),
    ("raw.holdings", "asset_class_equity", lambda d: set_at(d, 2, asset_class="Cash"), 1),
    ("raw.holdings", "weight_pct_in_range", lambda d: set_at(d, 2, weight_pct=-0.5), 1),
    ("raw.holdings", "weight_finite", lambda d: set_at(d, 2, weight_pct=float("nan")), 1),
    ("raw.holdings", "weight_sum_band", lambda d: d.with_columns(pl.lit(10.0).alias("weight_pct")), 4),
    ("raw.holdings", "member_count_band", lambda d: d.head(2).with_columns(pl.lit(49.8).alias("weight_pct")), 2),
    ("raw.holdings", "price_usd_positive", lambda d: set_at(d, 0, price_usd=0.0), 1),
    ("raw.fundamentals", "keys_unique", lambda d: dup_row(d, 2, net_income_common_usd=-1.0), 2),
    ("raw.fundamentals", "rows_not_repeated", lambda d: dup_row(d, 2), 1),
    ("raw.fundamentals", "period_end_date_not_null", lambda d: set_at(d, 2, period_end_date=None), 1),
    ("raw.fundamentals", "period_end_past", lambda d: set_at(d, 3, period_end_date=date(2025, 6, 30), report_date=None), 1),
    ("raw.fundamentals", "values_finite", lambda d: set_at(d, 3, net_income_common_usd=float("inf")), 1),
    ("raw.fundamentals", "report_after_period_end", lambda d: set_at(d, 3, report_date=date(2024, 12, 1)), 1),
    ("raw.fundamentals", "report_date_not_future", lambda d: set_at(d, 3, report_date=date(2025, 4, 30)), 1),
    ("raw.fundamentals", "quarters_spaced", lambda d: set_at(d, 3, period_end_date=date(2024, 10, 15), report_date=None), 2),
    ("raw.corporate_actions", "keys_unique", lambda d: dup_row(d, 0, value=0.13), 2),
    ("raw.corporate_actions", "rows_not_repeated", lambda d: dup_row(d, 0), 1),
    ("raw.corporate_actions", "value_not_null", lambda d: set_at(d, 0, value=None), 1),
    ("raw.corporate_actions", "action_not_null", lambda d: set_at(d, 0, action=None), 1),
    ("raw.corporate_actions", "ex_date_not_null", lambda d: set_at(d, 0, ex_date=None), 1),
    ("raw.corporate_actions", "action_known", lambda d: set_at(d, 0, action="spinoff"), 1),
    ("raw.corporate_actions", "value_positive", lambda d: set_at(d, 1, value=-2.0), 1),
    ("raw.corporate_actions", "value_finite", lambda d: set_at(d, 1, value=float("nan")), 1),
    ("raw.corporate_actions", "ex_date_not_future", lambda d: set_at(d, 1, ex_date=FUTURE), 1),
    ("marts.index_daily", "returns_finite", lambda d: set_at(d, 4, ret_1d=float("inf")), 1),
    ("marts.index_daily", "ret_1d_ge_minus_1", lambda d: set_at(d, 4, ret_1d=-1.5), 1),
    ("marts.index_daily", "ytd_return_ge_minus_1", lambda d: set_at(d, 4, ytd_return=-2.0), 1),
    ("marts.index_daily", "drawdown_in_range", lambda d: set_at(d, 4, drawdown_from_record=0.2), 1),
    ("marts.index_daily", "record_ge_close", lambda d: set_at(d, 4, record_close=1.0), 1),
    ("marts.index_daily", "record_close_not_null", lambda d: set_at(d, 4, record_close=None), 1),
    ("marts.index_daily", "record_date_not_null", lambda d: set_at(d, 4, record_date=None), 1),
    ("marts.index_daily", "rsi_averages_finite", lambda d: set_at(d, 4, rsi_avg_loss=float("inf")), 1),
    ("marts.index_daily", "drawdown_from_record_not_null", lambda d: set_at(d, 4, drawdown_from_record=None), 1),
    ("marts.index_daily", "is_record_close_not_null", lambda d: set_at(d, 4, is_record_close=None), 1),
    ("marts.index_daily", "records_ytd_not_null", lambda d: set_at(d, 4, records_ytd=None), 1),
    ("marts.index_daily", "rsi_in_range", lambda d: set_at(d, 4, rsi_14=101.0), 1),
    ("marts.index_daily", "records_ytd_non_negative", lambda d: set_at(d, 4, records_ytd=-1), 1),
    ("marts.index_daily", "close_positive", lambda d: set_at(d, 4, close=0.0), 1),
    ("marts.index_daily", "prev_year_close_positive", lambda d: set_at(d, 4, prev_year_close=-5.0), 1),
    ("marts.index_daily", "returns_finite", lambda d: set_at(d, 5, prev_year_close=float("inf")), 1),
    ("marts.index_daily", "ret_5d_ge_minus_1", lambda d: set_at(d, 6, ret_5d=-1.01), 1),
    ("marts.index_daily", "returns_finite", lambda d: set_at(d, 8, change_5d=float("nan")), 1),
    ("marts.index_daily", "support_below_close", lambda d: set_at(d, 7, support_level=1e6), 1),
    ("marts.index_daily", "support_below_close", lambda d: set_at(d, 7, close=2100.0, support_level=2100.0), 1),
    ("marts.index_daily", "resistance_above_close", lambda d: set_at(d, 8, resistance_level=1.0), 1),
    ("marts.index_daily", "support_date_before_session", lambda d: set_at(d, 6, support_date=SESSIONS[6]), 1),
    ("marts.index_daily", "resistance_date_before_session", lambda d: set_at(d, 17, resistance_date=SESSIONS[9]), 1),
    ("marts.index_performance", "anchor_close_not_null", lambda d: set_at(d, 3, anchor_close=None, return_since_anchor=None), 1),
    ("marts.index_performance", "return_since_anchor_not_null", lambda d: set_at(d, 3, return_since_anchor=float("nan")), 1),
    ("marts.index_performance", "anchor_close_positive", lambda d: set_at(d, 3, anchor_close=-5.0), 1),
    ("marts.index_performance", "return_since_anchor_ge_minus_1", lambda d: set_at(d, 3, return_since_anchor=-1.5), 1),
    ("marts.index_performance", "session_ge_anchor", lambda d: set_at(d, 3, anchor_date=SESSIONS[9]), 1),
    ("marts.index_performance", "returns_finite", lambda d: set_at(d, 4, close=float("inf")), 1),
    ("marts.index_performance", "keys_unique", lambda d: dup_row(d, 2), 2),
    ("marts.relative_performance", "streak_non_negative", lambda d: set_at(d, 2, streak=-1, outperformed=False), 1),
    ("marts.relative_performance", "streak_le_sessions", lambda d: set_at(d, 2, streak=7), 1),
    ("marts.relative_performance", "streak_matches_outperformed", lambda d: set_at(d, 5, streak=0), 1),
    ("marts.relative_performance", "lead_symbol_not_null", lambda d: set_at(d, 4, lead_symbol=None), 1),
    ("marts.relative_performance", "lag_symbol_not_null", lambda d: set_at(d, 4, lag_symbol=None), 1),
    ("marts.relative_performance", "outperformed_not_null", lambda d: set_at(d, 4, outperformed=None), 1),
    ("marts.relative_performance", "streak_not_null", lambda d: set_at(d, 4, streak=None), 1),
    ("marts.relative_performance", "relative_level_not_null", lambda d: set_at(d, 4, relative_level=None), 1),
    ("marts.relative_performance", "relative_level_finite", lambda d: set_at(d, 4, relative_level=float("inf")), 1),
    ("marts.relative_performance", "relative_level_positive", lambda d: set_at(d, 4, relative_level=0.0), 1),
    ("marts.cohort_composition", "cohort_known", lambda d: set_at(d, 0, cohort="junk"), 1),
    ("marts.cohort_composition", "members_non_negative", lambda d: set_at(d, 0, members=-3), 1),
    ("marts.cohort_composition", "share_in_range", lambda d: set_at(d, 0, share_of_members=1.5, members=50).with_columns(
        pl.when(pl.int_range(0, pl.len()).is_in([1, 2])).then(-0.25).otherwise(pl.col("share_of_members")).alias("share_of_members")
    ), 3),
    ("marts.cohort_composition", "shares_finite", lambda d: set_at(d, 0, share_of_weight=float("inf")), 1),
    ("marts.cohort_composition", "shares_sum_to_one", lambda d: set_at(d, 0, share_of_members=0.4), 3),
    ("marts.cohort_composition", "weight_shares_sum_to_one", lambda d: set_at(d, 3, share_of_weight=0.5), 3),
    ("marts.cohort_composition", "cohort_not_null", lambda d: set_at(d, 0, cohort=None), 1),
    ("marts.cohort_composition", "members_not_null", lambda d: set_at(d, 0, members=None), 1),
    ("marts.cohort_composition", "share_of_members_not_null", lambda d: set_at(d, 0, share_of_members=None), 1),
    ("marts.cohort_composition", "rule_version_not_null", lambda d: set_at(d, 0, rule_version=None), 1),
    ("marts.cohort_performance", "members_ge_priced", lambda d: set_at(d, 5, priced=51), 1),
    ("marts.cohort_performance", "session_ge_anchor", lambda d: set_at(d, 5, anchor_date=date(2025, 3, 14)), 1),
    ("marts.cohort_performance", "return_equal_weight_ge_minus_1", lambda d: set_at(d, 5, return_equal_weight=-1.2), 1),
    ("marts.cohort_performance", "return_cap_weight_ge_minus_1", lambda d: set_at(d, 5, return_cap_weight=-1.2), 1),
    ("marts.cohort_performance", "return_median_ge_minus_1", lambda d: set_at(d, 5, return_median=-1.2), 1),
    ("marts.cohort_performance", "anchor_not_null", lambda d: set_at(d, 5, anchor=None), 1),
    ("marts.cohort_performance", "anchor_date_not_null", lambda d: set_at(d, 5, anchor_date=None), 1),
    ("marts.cohort_performance", "priced_not_null", lambda d: set_at(d, 5, priced=None), 1),
    ("marts.cohort_performance", "universe_not_null", lambda d: set_at(d, 5, universe=None), 1),
    ("marts.sector_daily", "sector_not_null", lambda d: set_at(d, 1, sector=None), 1),
    ("marts.sector_daily", "members_non_negative", lambda d: set_at(d, 1, members=-1), 1),
    ("marts.sector_daily", "returns_finite", lambda d: set_at(d, 1, return_cap_weight=float("nan")), 1),
    ("marts.sector_daily", "return_equal_weight_ge_minus_1", lambda d: set_at(d, 1, return_equal_weight=-3.0), 1),
    ("marts.sector_daily", "session_not_future", lambda d: set_at(d, 1, session_date=FUTURE), 1),
    ("marts.sector_performance", "return_equal_weight_not_null", lambda d: set_at(d, 3, return_equal_weight=None), 1),
    ("marts.sector_performance", "return_cap_weight_not_null", lambda d: set_at(d, 4, return_cap_weight=float("nan")), 1),
    ("marts.sector_performance", "returns_finite", lambda d: set_at(d, 3, return_cap_weight=float("inf")), 1),
    ("marts.sector_performance", "return_cap_weight_ge_minus_1", lambda d: set_at(d, 3, return_cap_weight=-1.2), 1),
    ("marts.sector_performance", "session_ge_anchor", lambda d: set_at(d, 3, anchor_date=SESSIONS[9]), 1),
    ("marts.sector_performance", "keys_unique", lambda d: dup_row(d, 2), 2),
]

# Checked at the gate level (test_gate.py) rather than as a row corruption here.
GATE_LEVEL = {"columns_present", "column_types", "no_unexpected_columns", "rows_present", "big_revision"}


@pytest.mark.parametrize("table", sorted(CLEAN))
def test_clean_frames_pass_every_expectation(table):
    g = run(table, CLEAN[table]())
    failed = g.results.filter(~pl.col("success"))
    assert failed.is_empty(), failed.select("expectation", "details").rows()
    assert not g.blocked and not g.errors and not g.warnings
    assert g.clean.equals(CLEAN[table]())
    assert g.quarantine.is_empty()
    assert sorted(g.results.get_column("expectation").to_list()) == sorted(suite(table).names())


@pytest.mark.parametrize(
    "table,name,corrupt,blamed",
    first_of_each_kind(
        (pytest.param(*c, id=f"{c[0].split('.')[1]}-{c[1]}") for c in CASES), kind=lambda table, *_: table
    ),
)
def test_expectation_fails_on_its_corruption(table, name, corrupt, blamed):
    df = corrupt(CLEAN[table]())
    g = run(table, df)
    row = g.results.filter(pl.col("expectation") == name)
    assert row.height == 1, f"{name} did not run"
    assert row.get_column("success").item() is False
    assert row.get_column("unexpected_count").item() == blamed
    e = suite(table).get(name)
    text = " ".join({"error": g.errors, "quarantine": g.quarantined, "warning": g.warnings}[e.severity])
    assert f"{table}: {name} failed" in text
    if e.severity in ("error", "quarantine"):
        assert g.blocked or e.severity == "quarantine"
        q = g.quarantine.filter(pl.col("reason").str.contains(f"{name}:"))
        assert q.height == blamed  # GX's count and the predicate's rows agree
        assert g.quarantine.height + g.clean.height == df.height
        if e.reason:
            assert q.get_column("reason").str.contains(f"{name}: {e.reason}:", literal=True).all()
    else:
        assert g.quarantine.filter(pl.col("reason").str.contains(f"{name}:")).is_empty()


def test_cases_cover_every_expectation_name():
    covered = {n for _, n, _, _ in CASES} | GATE_LEVEL
    missing = sorted(set(expectation_names()) - covered)
    assert not missing, f"expectations without a failing case: {missing}"


def test_every_expectation_is_documented():
    doc = (Path(__file__).parents[2] / "docs" / "data-quality.md").read_text()
    missing = [n for n in expectation_names() if f"`{n}`" not in doc]
    assert not missing, f"not in docs/data-quality.md: {missing}"


@pytest.mark.parametrize("table", sorted(t for t in SUITES if t.startswith("raw.")))
def test_raw_suite_tables_in_the_docs_match_the_suites(table):
    """docs/data-quality.md prints each raw suite as expectations.docs.suite_markdown writes it."""
    from expectations.docs import suite_markdown

    doc = (Path(__file__).parents[2] / "docs" / "data-quality.md").read_text()
    assert suite_markdown(table) in doc, f"regenerate the {table} table of docs/data-quality.md with suite_markdown"


def test_suites_cover_every_gated_table_and_have_reasons():
    assert set(SUITES) == set(CLEAN)
    for s in SUITES.values():
        assert s.keys and all(k in s.schema for k in s.keys)
        for e in s.expectations:
            assert e.severity in SEVERITIES and e.why, (s.table, e.name)
            # Quarantine needs rows to set aside: a raw table's row-level check only.
            assert e.severity != "quarantine" or (s.is_raw and e.failing is not None), (s.table, e.name)
            assert all(c in s.schema for c in e.columns), (s.table, e.name)


def test_index_volume_is_exempt():
    df = set_at(index_bars(), 0, volume=-1)
    g = run("raw.index_bars", df)
    assert not g.blocked and "volume_non_negative" not in suite("raw.index_bars").names()
    assert g.clean.height == df.height


def test_vix_without_volume_and_index_without_ohl_pass():
    df = index_bars().with_columns(
        pl.when(pl.col("symbol") == "^VIX").then(None).otherwise(pl.col("open")).alias("open"),
        pl.lit(None, pl.Float64).alias("adj_close"),
    )
    assert not run("raw.index_bars", df).blocked


def test_price_jump_against_stored_history():
    # The batch's first session jumps 100x against the last stored close (history), not in-batch.
    df = equity_bars().with_columns(
        pl.when(pl.col("symbol") == "SMP0001").then(pl.col(c) * 100).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close", "adj_close")
    )
    history = pl.DataFrame(
        [("SMP0001", date(2025, 2, 28), 11.0, 11.2, 10.8, 11.0, 11.0, 500)], schema=BARS_SCHEMA, orient="row"
    )
    assert not run("raw.equity_bars", df).warnings
    g = run("raw.equity_bars", df, history=history)
    assert not g.blocked
    assert any("price_jump_100x failed for 1 of 30" in w and "SMP0001 2025-03-03" in w and "prev_close=11" in w for w in g.warnings)


def test_big_revision_from_history_and_from_revisions():
    df = equity_bars()
    stored = df.filter(pl.col("session_date") == SESSIONS[0]).with_columns(
        pl.when(pl.col("symbol") == "SMP0002").then(pl.col("close") * 1.2).otherwise(pl.col("close")).alias("close")
    )
    g = run("raw.equity_bars", df, history=stored)
    assert not g.blocked
    assert any("big_revision failed for 1 of 30" in w and "SMP0002 2025-03-03" in w for w in g.warnings)
    revisions = pl.DataFrame(
        {"table_name": ["raw.equity_bars"] * 2, "row_key": ["SMP0003|2025-03-05", "SMP0001|2025-03-05"],
         "column_name": ["adj_close", "adj_close"], "old_value": ["10.0", "10.0"], "new_value": ["12.0", "10.01"]}
    )
    g = run("raw.equity_bars", df, revisions=revisions)
    assert any("big_revision failed for 1 of 30" in w and "SMP0003 2025-03-05" in w for w in g.warnings)


def test_member_count_band_uses_settings_universes():
    # Default universes (russell2000: 1,800..2,100 members): four members are far too few.
    g = gate("raw.holdings", holdings(weight_each=24.9), load_id="L", as_of=AS_OF)
    assert g.blocked
    assert any("member_count_band failed for 1 group(s)" in e and "members=4" in e and "1800..2100" in e for e in g.errors)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "fixtures").glob("ishares-*/*.csv"))[::6])
def test_real_ishares_holdings_pass_with_default_universes(path):
    from sources.ishares import parse_holdings

    universe = "russell2000" if "iwm" in path.parent.name else "sp600"
    fetched = parse_holdings(path.read_bytes(), universe=universe, source_name=path.name)
    g = gate("raw.holdings", fetched.holdings, load_id="L", as_of=date(2026, 1, 2))
    assert not g.blocked, g.errors
    assert g.clean.height == fetched.holdings.height


def test_real_yahoo_index_csv_passes():
    from sources.csv import CsvSource  # noqa: F401  (the csv source reads these files in production)

    folder = Path(__file__).parents[1] / "fixtures" / "yahoo-daily-csv"
    frames = []
    for f in sorted(folder.glob("*.csv")):
        raw = pl.read_csv(f, infer_schema_length=10_000, null_values=["null"])
        frames.append(
            raw.select(
                pl.lit(f.stem).alias("symbol"),
                pl.col("Date").str.to_date().alias("session_date"),
                pl.col("Open").cast(pl.Float64).alias("open"),
                pl.col("High").cast(pl.Float64).alias("high"),
                pl.col("Low").cast(pl.Float64).alias("low"),
                pl.col("Close").cast(pl.Float64).alias("close"),
                pl.col("Adj Close").cast(pl.Float64).alias("adj_close"),
                pl.col("Volume").cast(pl.Int64).alias("volume"),
            )
        )
    df = pl.concat(frames)
    last = df.get_column("session_date").max()
    g = gate("raw.index_bars", df, load_id="L", as_of=last)
    assert not g.blocked, g.errors
    assert g.clean.height == df.height


def test_overrides_validated():
    assert check_overrides({"price_jump_100x": "error"}) == {"price_jump_100x": "error"}
    with pytest.raises(ValueError, match="price_jump_10x.*valid names: .*price_jump_100x"):
        check_overrides({"price_jump_10x": "error"})
    with pytest.raises(ValueError, match="one of 'error', 'quarantine', 'warning'"):
        check_overrides({"price_jump_100x": "fatal"})
    assert check_overrides({"high_ge_low": "quarantine"}) == {"high_ge_low": "quarantine"}
    # A table-level check has no row to set aside; a mart-only check's rows are derived.
    for name in ("columns_present", "rows_present", "streak_le_sessions"):
        with pytest.raises(ValueError, match=f"{name} cannot be 'quarantine'"):
            check_overrides({name: "quarantine"})


def test_importing_suites_does_not_import_great_expectations():
    code = (
        "import sys, expectations.suites, expectations.completeness; "
        "bad = [m for m in sys.modules if m.startswith('great_expectations')]; "
        "print(len(bad)); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_old_index_history_is_on_the_calendar():
    # 1987-10-19 (Black Monday) was a session; Wednesday 1968-06-12 was not (the paperwork-crisis
    # closures); 1927-12-29 is before the calendar (and before Yahoo's ^GSPC history).
    assert calendar.is_session(date(1987, 10, 19)) and calendar.is_session(date(1927, 12, 30))
    assert not calendar.is_session(date(1968, 6, 12))
    days = [date(1987, 10, 16), date(1987, 10, 19), date(1987, 10, 20), date(1968, 6, 11), date(1968, 6, 12), date(1927, 12, 29)]
    closes = [282.70, 224.84, 236.83, 100.0, 100.5, 17.6]
    df = pl.DataFrame(
        {
            "symbol": ["^GSPC"] * len(days), "session_date": days, "open": closes, "high": closes, "low": closes,
            "close": closes, "adj_close": closes, "volume": [None] * len(days),
        },
        schema=BARS_SCHEMA,
    )
    g = gate("raw.index_bars", df, load_id="t", as_of=date(2025, 6, 2))
    off = g.quarantine.filter(pl.col("expectation") == "session_on_calendar")
    assert sorted(off.get_column("row_key").to_list()) == ["^GSPC|1927-12-29", "^GSPC|1968-06-12"]
    assert g.clean.get_column("session_date").to_list() == days[:4]
