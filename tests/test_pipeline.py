"""Which symbols a load asks for, from where, and what it remembers about failures and tickers."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from smallcaps import pipeline
from sources.base import BARS_SCHEMA, FAILURES_SCHEMA, HOLDINGS_SCHEMA, Fetched, empty
from warehouse.db import connect
from warehouse.load import merge, stage, transaction


def holdings(universe, as_of, tickers):
    rows = [
        (universe, as_of, t.replace(".", "-"), t, t, "Industrials", "Equity", "NASDAQ", 1.0, 1e6, 100.0, 10.0)
        for t in tickers
    ]
    return pl.DataFrame(rows, schema=HOLDINGS_SCHEMA, orient="row")


def bars(symbol, day):
    return pl.DataFrame([(symbol, day, 10.0, 11.0, 9.0, 10.5, 10.5, 1000)], schema=BARS_SCHEMA, orient="row")


def put(con, table, df, load_id="l1"):
    with transaction(con):
        merge(con, table, stage(df, source="test", fetched_at=datetime(2025, 1, 1), load_id=load_id, table=table), load_id)


def batch_with(failures, asked):
    fetched = Fetched(failures=pl.DataFrame(failures, schema=FAILURES_SCHEMA, orient="row") if failures else empty(FAILURES_SCHEMA))
    return pipeline.split(fetched, ["^RUT"], asked=asked)


def test_former_members_that_keep_failing_are_retired_and_failures_come_first(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    put(con, "raw.holdings", holdings("russell2000", date(2025, 1, 2), ["AAA", "BBB", "GONE"]))
    put(con, "raw.holdings", holdings("russell2000", date(2025, 1, 3), ["AAA", "BBB"]))
    today = holdings("russell2000", date(2025, 1, 6), ["AAA", "BBB", "NEW"])

    symbols, retired = pipeline.equity_symbols(con, today, retire_after=2)
    assert symbols == ["AAA", "BBB", "GONE", "NEW"] and retired == []

    for n, at in enumerate([datetime(2025, 1, 6, 23), datetime(2025, 1, 7, 23)], start=1):
        with transaction(con):
            pipeline.update_fetch_state(
                con, batch_with([("GONE", "bars", "no data"), ("BBB", "bars", "HTTP 500")], {"bars": symbols}), at
            )
        symbols, retired = pipeline.equity_symbols(con, today, retire_after=2)
        if n == 1:
            # Failed last time: asked for first.
            assert symbols[:2] == ["BBB", "GONE"] and retired == []
    # A current member is never retired, however often it fails; a former member is.
    assert retired == ["GONE"] and symbols == ["BBB", "AAA", "NEW"]
    state = dict(con.execute("SELECT symbol, consecutive_failures FROM meta.fetch_state WHERE dataset = 'bars'").fetchall())
    assert state == {"AAA": 0, "BBB": 2, "GONE": 2, "NEW": 0}


def test_a_symbol_behind_is_fetched_from_its_last_bar_with_the_overlap(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    put(con, "raw.equity_bars", pl.concat([bars("AAA", date(2025, 1, 14)), bars("LATE", date(2025, 1, 6))]))
    groups = pipeline.bar_starts(con, ["AAA", "LATE", "NEW"], date(2025, 1, 10), overlap=2)
    assert groups == {date(2025, 1, 2): ["LATE"], date(2025, 1, 10): ["AAA", "NEW"]}


def test_meta_symbols_records_mapping_rule_and_status(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    h = pl.concat([
        holdings("russell2000", date(2025, 1, 2), ["BRK.B", "OLD"]),
        holdings("russell2000", date(2025, 1, 3), ["BRK.B"]),
    ])
    put(con, "raw.holdings", h)
    with transaction(con):
        pipeline.update_symbols(con)
    rows = con.execute("SELECT ticker, symbol, rule, first_seen_date, last_seen_date, status FROM meta.symbols ORDER BY 1").fetchall()
    assert rows == [
        ("BRK.B", "BRK-B", "dot_to_dash", date(2025, 1, 2), date(2025, 1, 3), "active"),
        ("OLD", "OLD", "identity", date(2025, 1, 2), date(2025, 1, 2), "delisted"),
    ]


def test_yahoo_fundamentals_without_statements_are_rechecked_weekly_not_nightly(tmp_path):
    from smallcaps.settings import Settings
    from sources.base import FUNDAMENTALS_SCHEMA

    con = connect(tmp_path / "w.duckdb")
    settings = Settings(home=tmp_path, source="yahoo")
    quarter = pl.DataFrame(
        [("OLD", date(2024, 12, 31), None, 1.0, 1.0, 0.1, 10.0)], schema=FUNDAMENTALS_SCHEMA, orient="row"
    )
    put(con, "raw.fundamentals", quarter)
    asked = {"fundamentals": ["OLD", "NOSTMT", "DOWN"]}
    failures = [
        ("NOSTMT", "fundamentals", "no data from Yahoo: no quarterly income statement (yfinance returned an empty table)"),
        ("DOWN", "fundamentals", "network: Could not resolve host: query2.finance.yahoo.com"),
    ]
    with transaction(con):
        pipeline.update_fetch_state(con, batch_with(failures, asked), datetime(2025, 6, 2, 23))
    wanted = ["OLD", "NOSTMT", "DOWN", "NEVER"]
    # Next night: the network failure and the never-asked are due; the empty answer waits a week;
    # OLD's Q1 is due (Dec 31 + 135 days) but OLD was looked at last night.
    assert pipeline.fundamentals_symbols(con, settings, wanted, date(2025, 6, 3)) == ["DOWN", "NEVER"]
    assert pipeline.fundamentals_symbols(con, settings, wanted, date(2025, 6, 9)) == wanted
    # Other sources cost nothing to ask: every symbol, every night.
    assert pipeline.fundamentals_symbols(con, Settings(home=tmp_path), wanted, date(2025, 6, 3)) == wanted


def test_a_ticker_change_is_recorded_as_renamed_not_delisted(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    day1, day2 = date(2025, 1, 2), date(2025, 1, 3)
    first = holdings("russell2000", day1, ["OLDT", "GONE", "KEEP"]).with_columns(
        pl.Series("name", ["Acme Widgets Inc", "Gone Corp", "Keep Co"]), pl.Series("shares", [500.0, 700.0, 900.0])
    )
    # OLDT is NEWT now (same company name); SWAP changed ticker and name, but the fund holds the
    # same shares at the same value; FRESH is a new member with neither in common.
    second = holdings("russell2000", day2, ["NEWT", "SWAP", "KEEP", "FRESH"]).with_columns(
        pl.Series("name", ["ACME WIDGETS INC", "Swapped Name Inc", "Keep Co", "Fresh Inc"]),
        pl.Series("shares", [500.0, 900.0, 900.0, 123.0]),
    )
    earlier = holdings("russell2000", day1, ["SWAPOLD"]).with_columns(
        pl.Series("name", ["Old Name Ltd"]), pl.Series("shares", [900.0])
    )
    put(con, "raw.holdings", pl.concat([first, earlier, second]))
    with transaction(con):
        pipeline.update_symbols(con)
    rows = dict(
        (t, (status, to)) for t, status, to in con.execute("SELECT ticker, status, renamed_to FROM meta.symbols").fetchall()
    )
    assert rows["OLDT"] == ("renamed", "NEWT")
    assert rows["SWAPOLD"] == ("renamed", "SWAP")
    assert rows["GONE"] == ("delisted", None)
    assert rows["NEWT"] == rows["KEEP"] == rows["FRESH"] == ("active", None)
