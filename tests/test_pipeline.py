"""Which symbols a load asks for, from where, and what it remembers about failures and tickers."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ground import calendar
from pipeline import checks, loading, planning
from sources.base import ACTIONS_SCHEMA, BARS_SCHEMA, FAILURES_SCHEMA, HOLDINGS_SCHEMA, Fetched, empty
from warehouse.db import connect
from warehouse.load import merge, stage, transaction
from tests.helpers.matrix import examples


def holdings(universe, as_of, tickers):
    rows = [
        (universe, as_of, t.replace(".", "-"), t, t, "Industrials", "Equity", "NASDAQ", 1.0, 1e6, 100.0, 10.0)
        for t in tickers
    ]
    return pl.DataFrame(rows, schema=HOLDINGS_SCHEMA, orient="row")


def bars(symbol, day):
    return pl.DataFrame([(symbol, day, 10.0, 11.0, 9.0, 10.5, 10.5, 1000)], schema=BARS_SCHEMA, orient="row")


def put(con, table, df, load_id="l1"):
    """Merge rows as a load does, with the bookkeeping a load keeps beside raw (meta.symbols,
    meta.series)."""
    with transaction(con):
        got = merge(con, table, stage(df, source="test", fetched_at=datetime(2025, 1, 1), load_id=load_id, table=table), load_id,
                    loading.CHANGE_COLUMNS[table])
        if table == "raw.holdings":
            loading.update_symbols(con)
        if table.endswith("_bars"):
            loading.update_series(con, [got])


def batch_with(failures, asked):
    fetched = Fetched(failures=pl.DataFrame(failures, schema=FAILURES_SCHEMA, orient="row") if failures else empty(FAILURES_SCHEMA))
    return checks.split(fetched, ["^RUT"], asked=asked)


def test_former_members_that_keep_failing_are_retired_and_failures_come_first(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    put(con, "raw.holdings", holdings("russell2000", date(2025, 1, 2), ["AAA", "BBB", "GONE"]))
    put(con, "raw.holdings", holdings("russell2000", date(2025, 1, 3), ["AAA", "BBB"]))
    today = holdings("russell2000", date(2025, 1, 6), ["AAA", "BBB", "NEW"])

    symbols, retired = planning.equity_symbols(con, today, retire_after=2)
    assert symbols == ["AAA", "BBB", "GONE", "NEW"] and retired == []

    for n, at in enumerate([datetime(2025, 1, 6, 23), datetime(2025, 1, 7, 23)], start=1):
        with transaction(con):
            loading.update_fetch_state(
                con, batch_with([("GONE", "bars", "no data"), ("BBB", "bars", "HTTP 500")], {"bars": symbols}), at
            )
        symbols, retired = planning.equity_symbols(con, today, retire_after=2)
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
    groups = planning.bar_starts(con, ["AAA", "LATE", "NEW"], date(2025, 1, 10), overlap=2)
    assert groups == {date(2025, 1, 2): ["LATE"], date(2025, 1, 10): ["AAA", "NEW"]}


def test_symbols_behind_share_chunks_from_their_earliest_date_instead_of_one_task_each():
    night = date(2025, 1, 10)
    starts = {night: [f"S{i}" for i in range(5)], date(2024, 12, 2): ["A"], date(2024, 12, 20): ["B"], date(2025, 1, 3): ["C"]}
    assert planning.bar_chunks(starts, 3) == [
        (["A", "B", "C"], date(2024, 12, 2)),
        (["S0", "S1", "S2"], night),
        (["S3", "S4"], night),
    ]
    more = {**starts, date(2025, 1, 6): ["D"]}
    assert planning.bar_chunks(more, 3)[:2] == [(["A", "B", "C"], date(2024, 12, 2)), (["D"], date(2025, 1, 6))]
    # Every symbol once, none fetched from later than its own first session.
    got = planning.bar_chunks(more, 3)
    assert sorted(s for chunk, _ in got for s in chunk) == sorted(s for group in more.values() for s in group)
    first = {s: d for d, group in more.items() for s in group}
    assert all(d <= first[s] for chunk, d in got for s in chunk)
    assert planning.bar_chunks({}, 3) == []


def test_a_shared_chunk_keeps_each_symbol_behind_to_its_own_range_and_a_stopped_one_fails(tmp_path):
    """Symbols behind share a chunk fetched from its earliest date: each keeps only its own range,
    and one that brought nothing after its last stored bar (it stopped trading; the overlap rows it
    did get used to count as a success) is a failed fetch, so a former member is retired in time."""
    con = connect(tmp_path / "w.duckdb")
    start, as_of = date(2025, 1, 6), date(2025, 1, 10)  # the night's sessions, overlap included
    old = calendar.sessions(date(2024, 11, 1), date(2025, 1, 9))
    put(con, "raw.equity_bars", pl.concat(
        [bars("EARLY", d) for d in old if d <= date(2024, 12, 2)]  # stopped trading on 2024-12-02
        + [bars("CATCH", d) for d in old if d <= date(2024, 12, 27)]  # missed some nights, trades on
        + [bars("AAA", d) for d in old]
    ))
    groups = planning.bar_starts(con, ["AAA", "CATCH", "EARLY"], start, overlap=2)
    firsts = {s: first for first, group in groups.items() for s in group}

    def back2(day):
        return calendar.previous_session(calendar.previous_session(day))

    assert firsts == {"EARLY": back2(date(2024, 12, 2)), "CATCH": back2(date(2024, 12, 27)), "AAA": start}
    ((chunk, chunk_first),) = [c for c in planning.bar_chunks(groups, 3) if "CATCH" in c[0]]
    assert chunk_first == firsts["EARLY"] and chunk == ["EARLY", "CATCH"]
    # What the source returns for that chunk and for the night's chunk.
    got = Fetched(bars=pl.concat(
        [bars("EARLY", d) for d in old if chunk_first <= d <= date(2024, 12, 2)]
        + [bars("CATCH", d) for d in calendar.sessions(chunk_first, as_of)]
        + [bars("AAA", d) for d in calendar.sessions(start, as_of)]
    ))

    kept = planning.own_ranges(con, got, firsts, start)

    per_symbol = dict(kept.bars.group_by("symbol").agg(pl.col("session_date").min()).iter_rows())
    assert per_symbol == firsts
    assert kept.bars.filter(pl.col("symbol") == "CATCH").height == len(calendar.sessions(firsts["CATCH"], as_of))
    assert kept.failures.rows() == [("EARLY", "bars", "no bar after its last stored one, 2024-12-02: not traded since")]
    # Nobody behind (a backfill's single start): nothing to cut, nothing failed.
    assert planning.own_ranges(con, got, {s: chunk_first for s in firsts}, chunk_first) is got
    # The failure counts toward retirement like any other: EARLY, a former member, is retired.
    put(con, "raw.holdings", holdings("russell2000", date(2024, 11, 1), ["AAA", "CATCH", "EARLY"]))
    put(con, "raw.holdings", holdings("russell2000", date(2024, 12, 31), ["AAA", "CATCH"]))
    for at in (datetime(2025, 1, 10, 23), datetime(2025, 1, 13, 23)):
        with transaction(con):
            loading.update_fetch_state(con, checks.split(kept, ["^RUT"], asked={"bars": list(firsts)}), at)
    symbols, retired = planning.equity_symbols(con, holdings("russell2000", as_of, ["AAA", "CATCH"]), retire_after=2)
    assert retired == ["EARLY"] and symbols == ["AAA", "CATCH"]


def test_the_gate_reads_each_symbols_history_from_its_own_first_session(tmp_path):
    """The stored rows the gate compares a batch with: per symbol, the last stored row before its
    first batch session and its stored rows from there on. A symbol catching up from months back
    does not widen the range for the others, and a dormant one gets its last stored row. A symbol
    whose whole history is re-sent (a rebase, from further back than derive.FAR_REACH_DAYS) is read
    apart and gets all of it."""
    con = connect(tmp_path / "w.duckdb")
    days = calendar.sessions(date(2024, 6, 3), date(2025, 1, 9))
    rebased_days = calendar.sessions(date(2023, 6, 1), date(2025, 1, 9))
    put(con, "raw.equity_bars", pl.concat(
        [bars("AAA", d) for d in days]
        + [bars("LATE", d) for d in days if d <= date(2024, 9, 16)]  # behind since September
        + [bars("NAP", d) for d in days if d <= date(2024, 6, 10)]  # dormant: nothing for months
        + [bars("REB", d) for d in rebased_days]
    ))
    start = date(2025, 1, 6)
    late_first = calendar.previous_session(date(2024, 9, 16))
    batch = pl.concat(
        [bars("AAA", d) for d in calendar.sessions(start, date(2025, 1, 10))]
        + [bars("LATE", d) for d in calendar.sessions(late_first, date(2025, 1, 10))]
        + [bars("NAP", date(2025, 1, 10))]
        + [bars("REB", d) for d in calendar.sessions(rebased_days[0], date(2025, 1, 10))]
    )

    got = checks.history_for_gate(con, "raw.equity_bars", batch)

    by_symbol = {s: sorted(g.get_column("session_date").to_list()) for (s,), g in got.group_by("symbol")}
    stored_from = [d for d in days if d >= start]
    assert by_symbol["AAA"] == [calendar.previous_session(start), *stored_from]  # not AAA since September
    assert by_symbol["LATE"] == [calendar.previous_session(late_first), late_first, date(2024, 9, 16)]
    assert by_symbol["NAP"] == [date(2024, 6, 10)]
    assert by_symbol["REB"] == rebased_days
    assert got.height == sum(map(len, by_symbol.values()))
    assert "load_id" not in got.columns and set(BARS_SCHEMA) <= set(got.columns)


def test_a_dividend_in_a_backfill_window_rebases_only_bars_fetched_before_the_backfill(tmp_path):
    """Bars the earlier windows of the same backfill stored are on the basis the source has now: a
    dividend the next window brings re-fetches only bars stored before the backfill began."""
    con = connect(tmp_path / "w.duckdb")
    began = datetime(2025, 2, 1, 12)
    old_days = calendar.sessions(date(2025, 1, 2), date(2025, 1, 3))
    window1 = calendar.sessions(date(2025, 1, 6), date(2025, 1, 31))

    def stored(frame, at):
        with transaction(con):
            got = merge(con, "raw.equity_bars", stage(frame, source="test", fetched_at=at, load_id=f"l{at:%H%M}", table="raw.equity_bars"),
                        f"l{at:%H%M}", loading.CHANGE_COLUMNS["raw.equity_bars"])
            loading.update_series(con, [got])

    stored(pl.concat([bars("OLD", d) for d in old_days]), datetime(2025, 1, 3, 23))  # a night before the backfill
    stored(pl.concat([bars(s, d) for s in ("OLD", "NEW") for d in window1]), began.replace(minute=5))  # window 1
    window2 = calendar.sessions(date(2025, 2, 3), date(2025, 2, 7))
    dividend = pl.DataFrame(
        [(s, date(2025, 2, 4), "dividend", 0.5) for s in ("OLD", "NEW")], schema=ACTIONS_SCHEMA, orient="row"
    )
    fetched = Fetched(bars=pl.concat([bars(s, d) for s in ("OLD", "NEW") for d in window2]), actions=dividend)

    # Without the backfill's start both are rebased over everything stored; with it only OLD, over
    # its bars from before the backfill up to the window.
    before_window2 = calendar.previous_session(window2[0])
    assert planning.rebase_symbols(con, fetched, window2[-1]) == {
        "NEW": (window1[0], before_window2), "OLD": (old_days[0], before_window2)
    }
    assert planning.rebase_symbols(con, fetched, window2[-1], basis_since=began) == {"OLD": (old_days[0], before_window2)}


def test_rebased_symbols_share_chunks_and_keep_their_own_spans():
    """The rebased symbols' spans start at each one's first stored bar: they share chunks of the
    chunk size, each asking the range covering its symbols, and the re-fetch keeps of each symbol
    only its own span (not the earlier bars it never had stored, not tonight's)."""
    days = calendar.sessions(date(2025, 1, 2), date(2025, 1, 17))
    rebase = {"B": (days[3], days[-2]), "A": (days[0], days[-2]), "C": (days[5], days[-3]), "D": (days[1], days[-2])}
    assert planning.rebase_chunks(rebase, 3) == [
        (["A", "D", "B"], (days[0], days[-2])), (["C"], (days[5], days[-3])),
    ]
    tonight = Fetched(bars=pl.concat([bars(s, days[-1]) for s in "ABCD"]), actions=empty(ACTIONS_SCHEMA))
    asked = pl.concat([bars(s, d) for s in "ABC" for d in days])  # the chunk's whole range, tonight included
    actions = pl.DataFrame([(s, days[0], "dividend", 0.1) for s in "ABC"] + [("B", days[4], "dividend", 0.2)],
                           schema=ACTIONS_SCHEMA, orient="row")
    got = planning.apply_rebase(tonight, Fetched(bars=asked, actions=actions), rebase)
    spans = got.bars.group_by("symbol").agg(pl.col("session_date").min().alias("lo"), pl.col("session_date").max().alias("hi"), pl.len())
    assert {r["symbol"]: (r["lo"], r["hi"], r["len"]) for r in spans.to_dicts()} == {
        "A": (days[0], days[-1], len(days)),  # its span, then tonight's bar once
        "B": (days[3], days[-1], len(days) - 3),
        "C": (days[5], days[-1], len(days) - 5 - 2 + 1),  # the span ends two sessions before tonight
        "D": (days[-1], days[-1], 1),  # nothing came back for it
    }
    assert sorted(got.actions.select("symbol", "ex_date").rows()) == [("A", days[0]), ("B", days[4])]
    assert got.failures.filter(pl.col("dataset") == "rebase").get_column("symbol").to_list() == ["D"]


def test_meta_symbols_records_mapping_rule_and_status(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    h = pl.concat([
        holdings("russell2000", date(2025, 1, 2), ["BRK.B", "OLD"]),
        holdings("russell2000", date(2025, 1, 3), ["BRK.B"]),
    ])
    put(con, "raw.holdings", h)
    with transaction(con):
        loading.update_symbols(con)
    rows = con.execute("SELECT ticker, symbol, rule, first_seen_date, last_seen_date, status FROM meta.symbols ORDER BY 1").fetchall()
    assert rows == [
        ("BRK.B", "BRK-B", "dot_to_dash", date(2025, 1, 2), date(2025, 1, 3), "active"),
        ("OLD", "OLD", "identity", date(2025, 1, 2), date(2025, 1, 2), "delisted"),
    ]


def test_a_ticker_still_held_by_another_universe_stays_active(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    d1, d2, d3 = date(2017, 2, 28), date(2017, 3, 31), date(2017, 4, 28)
    put(con, "raw.holdings", pl.concat([
        holdings("sp600", d1, ["MOG.A", "TDW"]),
        holdings("sp600", d2, ["MOG.A", "TDW"]),
        holdings("sp600", d3, ["MOGA"]),
        holdings("russell2000", d1, ["TDW"]),
    ]))
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT ticker, symbol, rule, first_seen_date, last_seen_date, status, renamed_to FROM meta.symbols"
    ).fetchall()}
    # iShares' files print the class share first as MOG.A, later glued as MOGA (same holding): a rename.
    assert rows["MOG.A"] == ("MOG-A", "dot_to_dash", d1, d2, "renamed", "MOGA")
    assert rows["MOGA"][2:] == (d3, d3, "active", None)
    # TDW left sp600 (newest d3) but is in russell2000's newest snapshot (d1): still held.
    assert rows["TDW"] == ("TDW", "identity", d1, d2, "active", None)


def test_yahoo_fundamentals_without_statements_are_rechecked_monthly_not_nightly(tmp_path):
    from ground.settings import Settings
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
        loading.update_fetch_state(con, batch_with(failures, asked), datetime(2025, 6, 2, 23))
    wanted = ["OLD", "NOSTMT", "DOWN", "NEVER"]
    # Next night: the network failure and the never-asked are due; the empty answer waits 28 days;
    # OLD's Q1 is expected since May 18 (Dec 31 + 91 + 45 + 2 days) but OLD was looked at last night,
    # so it waits a week.
    assert planning.fundamentals_symbols(con, settings, wanted, date(2025, 6, 3), is_metered=True) == ["DOWN", "NEVER"]
    assert planning.fundamentals_symbols(con, settings, wanted, date(2025, 6, 9), is_metered=True) == ["OLD", "DOWN", "NEVER"]
    assert planning.fundamentals_symbols(con, settings, wanted, date(2025, 6, 30), is_metered=True) == wanted
    # A source that costs nothing to ask (not metered) is asked for every symbol, every night.
    assert planning.fundamentals_symbols(con, Settings(home=tmp_path), wanted, date(2025, 6, 3), is_metered=False) == wanted


def test_yahoo_fundamentals_are_asked_after_the_companys_usual_report_date(tmp_path):
    """A company that reported its June quarter a year ago 30 days after it ended: its newest
    stored quarter ends 2025-03-31, so the next (June 2025) is looked for from 2025-08-01
    (Mar 31 + 91 + 30 + 2), not from 2025-08-16 (the 45-day default)."""
    from ground.settings import Settings
    from sources.base import FUNDAMENTALS_SCHEMA

    con = connect(tmp_path / "w.duckdb")
    quarters = [
        ("FAST", date(2024, 6, 30), date(2024, 7, 30)),  # the 4th newest: a year before the next
        ("FAST", date(2024, 9, 30), None),
        ("FAST", date(2024, 12, 31), date(2025, 2, 20)),
        ("FAST", date(2025, 3, 31), date(2025, 4, 24)),
        ("NEWEST", date(2025, 3, 31), date(2025, 4, 20)),  # only its newest lag (20 days) is known
        ("UNDATED", date(2025, 3, 31), None),
    ]
    put(con, "raw.fundamentals", pl.DataFrame(
        [(s, p, r, 1.0, 1.0, 0.1, 10.0) for s, p, r in quarters], schema=FUNDAMENTALS_SCHEMA, orient="row"))
    with transaction(con):
        loading.update_fetch_state(con, batch_with([], {"fundamentals": ["FAST", "NEWEST", "UNDATED"]}), datetime(2025, 5, 10, 23))
    settings = Settings(home=tmp_path, source="yahoo")
    wanted = ["FAST", "NEWEST", "UNDATED"]
    assert planning.fundamentals_symbols(con, settings, wanted, date(2025, 7, 21), is_metered=True) == []
    assert planning.fundamentals_symbols(con, settings, wanted, date(2025, 7, 22), is_metered=True) == ["NEWEST"]  # Mar 31 + 91 + 20 + 2
    assert planning.fundamentals_symbols(con, settings, wanted, date(2025, 7, 31), is_metered=True) == ["NEWEST"]
    assert planning.fundamentals_symbols(con, settings, wanted, date(2025, 8, 1), is_metered=True) == ["FAST", "NEWEST"]
    assert planning.fundamentals_symbols(con, settings, wanted, date(2025, 8, 15), is_metered=True) == ["FAST", "NEWEST"]
    assert planning.fundamentals_symbols(con, settings, wanted, date(2025, 8, 16), is_metered=True) == wanted


def test_yahoo_fundamentals_are_not_asked_for_former_members(tmp_path):
    from ground.settings import Settings

    con = connect(tmp_path / "w.duckdb")
    put(con, "raw.holdings", holdings("russell2000", date(2025, 1, 2), ["LEFT", "STAY"]))
    put(con, "raw.holdings", holdings("russell2000", date(2025, 1, 3), ["STAY"]))
    settings = Settings(home=tmp_path, source="yahoo")
    # LEFT is still priced while an anchor holds it, but none of its sessions as a member can use
    # a quarter it reports from now on. NEW (in tonight's holdings only) is asked for.
    assert planning.fundamentals_symbols(con, settings, ["LEFT", "NEW", "STAY"], date(2025, 1, 6), is_metered=True) == ["NEW", "STAY"]
    assert planning.fundamentals_symbols(con, Settings(home=tmp_path), ["LEFT", "STAY"], date(2025, 1, 6), is_metered=False) == ["LEFT", "STAY"]


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
        loading.update_symbols(con)
    rows = dict(
        (t, (status, to)) for t, status, to in con.execute("SELECT ticker, status, renamed_to FROM meta.symbols").fetchall()
    )
    assert rows["OLDT"] == ("renamed", "NEWT")
    assert rows["SWAPOLD"] == ("renamed", "SWAP")
    assert rows["GONE"] == ("delisted", None)
    assert rows["NEWT"] == rows["KEEP"] == rows["FRESH"] == ("active", None)


# which former members are still priced ---------------------------------------------------------------

MEMBERSHIP = {"universe": pl.String, "symbol": pl.String, "valid_from_date": pl.Date, "valid_to_date": pl.Date}
LEFT = [  # former members, each with its last session as a member
    ("russell2000", "A", date(2025, 1, 2), date(2025, 3, 31)),  # left before the fixed anchor
    ("russell2000", "B", date(2025, 3, 3), date(2025, 6, 27)),  # a member on 2025-04-08
    ("russell2000", "C", date(2024, 6, 3), date(2025, 2, 28)),  # a member at the end of 2024
    ("russell2000", "D", date(2023, 1, 3), date(2023, 12, 29)),
    ("sp600", "E", date(2025, 4, 1), date(2025, 4, 30)),  # on 2025-04-08 in the S&P 600 only
    ("russell2000", "E", date(2022, 1, 3), date(2022, 6, 30)),
]


def test_last_needed_sessions_by_hand():
    """As of 2026-11-30, anchors ytd, 1y and 2025-04-08 (how cohort_performance resolves them):
    A: 1y holds it while the anchor (t - 1 year) is in Jan..Mar 2025: until 2026-03-31.
    B: a member on 2025-04-08: held for good (tonight included).
    C: ytd holds it through 2025 (anchor 2024-12-31); 1y until the anchor passes 2025-02-28: on
       2026-03-02 the anchor is still 2025-02-28 (2025-03-02 was a Sunday), on 03-03 it is 03-03.
    D: ytd of 2024 (anchor 2023-12-29) until 2024-12-31; 1y also ends then.
    E: in the S&P 600 on 2025-04-08: held for good; without the fixed anchor, until 2026-04-30."""
    membership = pl.DataFrame(LEFT, schema=MEMBERSHIP, orient="row")
    as_of = date(2026, 11, 30)
    got = dict(planning.last_needed_sessions(membership, ["ytd", "1y", "2025-04-08"], as_of).iter_rows())
    assert got == {"A": date(2026, 3, 31), "B": as_of, "C": date(2026, 3, 2), "D": date(2024, 12, 31), "E": as_of}
    rolling = dict(planning.last_needed_sessions(membership, ["ytd", "1y"], as_of).iter_rows())
    assert rolling["B"] == date(2026, 6, 29) and rolling["E"] == date(2026, 4, 30)


def test_a_former_member_is_priced_until_its_last_needed_price_is_stored(tmp_path):
    from ground.registry import DATASETS
    from warehouse.datasets import sync

    con = connect(tmp_path / "w.duckdb")
    sync(con, DATASETS)
    put(con, "raw.holdings", holdings("russell2000", date(2025, 1, 2), ["A", "B", "C", "D", "E", "G", "KEEP"]))
    put(con, "raw.holdings", holdings("russell2000", date(2026, 11, 2), ["KEEP"]))
    with transaction(con):
        con.execute("INSERT INTO core.membership VALUES (?, ?, ?, ?)", ("russell2000", "KEEP", date(2025, 1, 2), None))
        for row in [*LEFT, ("russell2000", "G", date(2025, 1, 2), date(2025, 3, 31))]:
            con.execute("INSERT INTO core.membership VALUES (?, ?, ?, ?)", row)
    # A's and G's last needed session is 2026-03-31: A's bars reach it, G's stop at 2026-02-27.
    # C's (2026-03-02) and D's (2024-12-31) are stored; B and E were priced last night.
    put(con, "raw.equity_bars", pl.concat([bars("A", date(2026, 11, 27)), bars("G", date(2026, 2, 27)),
                                           bars("C", date(2026, 3, 2)), bars("D", date(2025, 6, 30)),
                                           bars("B", date(2026, 11, 27)), bars("E", date(2026, 11, 27))]))
    today = holdings("russell2000", date(2026, 11, 30), ["KEEP", "NEW"])
    window = (date(2026, 11, 20), date(2026, 11, 30))

    symbols, retired = planning.equity_symbols(con, today, 3, anchors=["ytd", "1y", "2025-04-08"], window=window)
    # B and E are held since 2025-04-08; G still lacks its prices up to 2026-03-31; A, C, D are done.
    assert symbols == ["B", "E", "G", "KEEP", "NEW"] and retired == []
    # With rolling anchors only, B (needed to 2026-06-29) and E (to 2026-04-30) are done too.
    rolling, _ = planning.equity_symbols(con, today, 3, anchors=["1y"], window=window)
    assert rolling == ["G", "KEEP", "NEW"]
    # Without anchors: every former member while it trades (the earlier rule).
    everyone, _ = planning.equity_symbols(con, today, 3)
    assert everyone == ["A", "B", "C", "D", "E", "G", "KEEP", "NEW"]
    # One that stopped trading is retired even if an anchor still holds it.
    with transaction(con):
        for at in (datetime(2026, 11, 25, 23), datetime(2026, 11, 26, 23)):
            loading.update_fetch_state(con, batch_with([("B", "bars", "no data")], {"bars": ["B"]}), at)
    symbols, retired = planning.equity_symbols(con, today, 2, anchors=["ytd", "1y", "2025-04-08"], window=window)
    assert retired == ["B"] and symbols == ["E", "G", "KEEP", "NEW"]


ORACLE_DAYS = calendar.sessions(date(2024, 6, 3), date(2026, 2, 27))
interval = st.tuples(st.sampled_from(["russell2000", "sp600"]), st.integers(0, len(ORACLE_DAYS) - 1),
                     st.integers(1, 300), st.booleans())


@pytest.mark.slow  # over ~10 s: kept out of `make test-fast`, run by `make test`
@hsettings(max_examples=examples(25), deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), interval), min_size=1, max_size=10),
    st.lists(st.sampled_from(["ytd", "1y", "2025-01-15", "2024-09-03"]), min_size=1, max_size=3, unique=True),
)
def test_prices_after_the_last_needed_session_do_not_change_cohort_performance(rows, anchors):
    """The oracle of last_needed_sessions: drop every price of every symbol after its last needed
    session (all of a symbol needed on none) and marts.cohort_performance is the same."""
    from transforms.cohort_performance import cohort_performance
    from transforms.cohorts import member_sessions

    as_of = ORACLE_DAYS[-1]
    spans = {}
    for k, (universe, start, length, is_open) in rows:
        end = None if is_open else ORACLE_DAYS[min(start + length, len(ORACLE_DAYS) - 1)]
        key = (universe, f"S{k}")
        if key not in spans or ORACLE_DAYS[start] < spans[key][0]:
            spans[key] = (ORACLE_DAYS[start], end)  # one interval per universe and symbol: no overlaps
    membership = pl.DataFrame([(u, s, f, t) for (u, s), (f, t) in spans.items()], schema=MEMBERSHIP, orient="row")
    sessions = pl.LazyFrame({"session_date": ORACLE_DAYS}, schema={"session_date": pl.Date})
    members = member_sessions(membership.lazy(), sessions).collect()
    cohorts = members.with_columns(
        pl.when(pl.col("symbol").is_in(["S0", "S2", "S4"])).then(pl.lit("profitable")).otherwise(pl.lit("unprofitable")).alias("cohort"),
        (pl.col("symbol").str.slice(1).cast(pl.Float64) + 1.0).alias("weight"),
    )
    prices = pl.DataFrame(
        [(f"S{k}", d, 10.0 + k + (i % 17) * 0.25 - (i % 5) * 0.1) for k in range(6) for i, d in enumerate(ORACLE_DAYS)],
        schema={"symbol": pl.String, "session_date": pl.Date, "adj_close": pl.Float64}, orient="row",
    )
    needed = planning.last_needed_sessions(membership, anchors, as_of)
    kept = prices.join(needed, on="symbol", how="inner").filter(pl.col("session_date") <= pl.col("last_needed_date"))

    def performance(bars: pl.DataFrame) -> pl.DataFrame:
        return cohort_performance(cohorts.lazy(), bars.lazy(), sessions, anchors=anchors, as_of=as_of).collect()

    assert performance(kept.drop("last_needed_date")).equals(performance(prices))


def test_meta_symbols_from_appended_snapshots_equal_a_full_recompute(tmp_path):
    """A night reads only its new snapshot and the one before; the result must be what reading
    every snapshot gives (tickers that stay, leave, come back, are renamed, arrive)."""
    con = connect(tmp_path / "w.duckdb")
    days = [date(2025, 1, d) for d in (2, 3, 6, 7, 8, 9)]
    snapshots = [
        ["AAA", "BBB", "OLDCO", "BACK"],
        ["AAA", "BBB", "OLDCO"],           # BACK leaves
        ["AAA", "BBB", "NEWCO"],           # OLDCO -> NEWCO (same name below)
        ["AAA", "BBB", "NEWCO", "BACK"],   # BACK returns: not an arrival that could be a rename target
        ["AAA", "NEWCO", "BACK", "CCC"],   # BBB leaves, CCC arrives (another name)
        ["AAA", "NEWCO", "BACK", "CCC"],
    ]
    for day, tickers in zip(days, snapshots):
        frame = holdings("russell2000", day, tickers).with_columns(
            pl.when(pl.col("ticker").is_in(["OLDCO", "NEWCO"])).then(pl.lit("Old Co")).otherwise(pl.col("name")).alias("name"),
            # Another company's share count: not the same holding under a new ticker.
            pl.when(pl.col("ticker") == "CCC").then(555.0).otherwise(pl.col("shares")).alias("shares"),
        )
        with transaction(con):
            got = merge(con, "raw.holdings", stage(frame, source="t", fetched_at=datetime(2025, 1, 1), load_id="x", table="raw.holdings"),
                        "x", loading.CHANGE_COLUMNS["raw.holdings"])
            assert loading._appended_window(con, got.new) is not None or day == days[0]
            loading.update_symbols(con, got.new)
    nightly = con.execute("SELECT * FROM meta.symbols ORDER BY ticker").fetchall()
    with transaction(con):
        con.execute("DELETE FROM meta.symbols")
        loading.update_symbols(con)
    assert con.execute("SELECT * FROM meta.symbols ORDER BY ticker").fetchall() == nightly
    status = dict(con.execute("SELECT ticker, status || coalesce(':' || renamed_to, '') FROM meta.symbols").fetchall())
    assert status == {"AAA": "active", "BBB": "delisted", "OLDCO": "renamed:NEWCO", "NEWCO": "active", "BACK": "active", "CCC": "active"}
