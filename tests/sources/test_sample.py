"""The embedded sample source: contract, determinism, prefix stability, and the market it tells.

One default market (seed 2025) up to END is built once per module and shared; tests that need
another instance (determinism, prefix stability, threads) build their own. Cohort figures are
recomputed here from `fundamentals()` independently of the source's own selection code.
"""

from __future__ import annotations

import bisect
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from hypothesis import given, settings
from hypothesis import strategies as st

from ground import calendar
from ground.settings import DEFAULT_UNIVERSES, Settings
from sources import make_source, sample, sample_blocks, sample_cache, sample_companies
from sources.base import (
    ACTIONS_SCHEMA,
    BARS_SCHEMA,
    FAILURES_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HOLDINGS_SCHEMA,
    Source,
    conform,
)
from sources.sample import INDEX_SYMBOLS, SampleSource, membership_sizes
from pipeline.planning import FUNDAMENTALS_LOOKBACK_DAYS
from tests.helpers.matrix import examples, first_of_each_kind

START = date(2024, 1, 2)
END = date(2026, 11, 20)
RECONSTITUTIONS = (date(2024, 6, 28), date(2025, 6, 27), date(2026, 6, 26))
GICS_AS_ISHARES = {
    "Communication", "Consumer Discretionary", "Consumer Staples", "Energy", "Financials", "Health Care",
    "Industrials", "Information Technology", "Materials", "Real Estate", "Utilities",
}


@pytest.fixture(scope="module")
def market():
    """The default market up to END: the source and the frames every test reads."""
    source = SampleSource()
    calendar.sessions(START, START)  # the calendar's own one-off build is not the market's
    holdings = source.holdings(["russell2000", "sp600"], START, END).holdings
    symbols = sorted(set(holdings.get_column("symbol").to_list()))
    fetched = source.bars([*INDEX_SYMBOLS, *symbols], START, END)
    return {"source": source, "holdings": holdings, "symbols": symbols, "fetched": fetched}


def index_closes(bars: pl.DataFrame, symbol: str) -> pl.DataFrame:
    return bars.filter(pl.col("symbol") == symbol).sort("session_date").select("session_date", "close")


def ttm(fundamentals: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Cohort per symbol as of `as_of`: TTM of the 4 latest quarters reported by then (null: no data)."""
    return (
        fundamentals.filter(pl.col("report_date") <= as_of)
        .sort("symbol", "period_end_date")
        .group_by("symbol")
        .agg(
            pl.len().alias("quarters"),
            pl.col("net_income_common_usd").tail(4).null_count().alias("missing"),
            pl.col("net_income_common_usd").tail(4).sum().alias("ttm"),
        )
        .with_columns(ttm=pl.when((pl.col("quarters") >= 4) & (pl.col("missing") == 0)).then("ttm"))
    )


def cohort_shares(source: SampleSource, as_of: date) -> tuple[float, float]:
    members = source.members("russell2000", as_of)
    got = ttm(source.fundamentals(members, as_of).fundamentals, as_of)
    cohort = pl.DataFrame({"symbol": members}).join(got, on="symbol", how="left")
    loss = cohort.filter(pl.col("ttm") <= 0).height / len(members)
    no_data = cohort.filter(pl.col("ttm").is_null()).height / len(members)
    return loss, no_data


def ipc(df: pl.DataFrame) -> bytes:
    return df.write_ipc(None).getvalue()


# The contract ----------------------------------------------------------------------------------


def test_is_a_source_and_frames_conform_unchanged(market):
    source = market["source"]
    assert isinstance(source, Source) and source.name == "sample"
    fetched = market["fetched"]
    funda = source.fundamentals(market["symbols"][:50], END)
    for frame, schema in (
        (fetched.bars, BARS_SCHEMA),
        (fetched.actions, ACTIONS_SCHEMA),
        (fetched.failures, FAILURES_SCHEMA),
        (market["holdings"], HOLDINGS_SCHEMA),
        (funda.fundamentals, FUNDAMENTALS_SCHEMA),
    ):
        assert frame.schema == pl.Schema(schema)
        assert conform(frame, schema, "test").equals(frame)
        assert frame.height > 0 or schema is FAILURES_SCHEMA


def test_symbols_are_fictional_and_holdings_look_like_ishares(market):
    h = market["holdings"]
    assert h.get_column("symbol").str.contains(r"^SMP\d{4}$").all()
    assert (h.get_column("ticker") == h.get_column("symbol")).all()
    assert set(h.get_column("sector").unique()) == GICS_AS_ISHARES
    assert set(h.get_column("asset_class").unique()) == {"Equity"}
    assert {"NASDAQ", "New York Stock Exchange Inc."} <= set(h.get_column("exchange").unique())
    names = h.unique("symbol").get_column("name")
    assert names.n_unique() == names.len() and names.str.contains(r"^[A-Z &]+$").all()


# Determinism and prefix stability ----------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_market(market):
    symbols = [*INDEX_SYMBOLS, *market["symbols"][::40]]
    a, b = SampleSource(), SampleSource()
    window = (date(2025, 3, 3), date(2025, 7, 31))
    fa, fb = a.bars(symbols, *window), b.bars(symbols, *window)
    assert ipc(fa.bars) == ipc(fb.bars) and ipc(fa.actions) == ipc(fb.actions)
    assert ipc(a.holdings(["sp600"], *window).holdings) == ipc(b.holdings(["sp600"], *window).holdings)
    assert ipc(a.fundamentals(symbols, window[1]).fundamentals) == ipc(b.fundamentals(symbols, window[1]).fundamentals)
    # ... and a slice of the shared market (built to a later end) is the same bytes too.
    assert ipc(market["source"].bars(symbols, *window).bars) == ipc(fa.bars)

    # Founding members all trade until the first reconstitution, whatever the seed.
    early = (date(2024, 2, 1), date(2024, 2, 29))
    other = SampleSource(seed=7).bars(["^RUT", "SMP0001"], *early).bars
    mine = market["source"].bars(["^RUT", "SMP0001"], *early).bars
    assert other.height == mine.height == 2 * len(calendar.sessions(*early))
    assert not other.get_column("close").equals(mine.get_column("close"))


def test_backfill_to_d_equals_backfill_to_d_minus_1_then_d():
    # D is just after the 2025 reconstitution and inside the delistings that follow it.
    d = date(2025, 7, 15)
    before = calendar.previous_session(d)
    whole = SampleSource()
    stepwise = SampleSource()
    universes = ["russell2000", "sp600"]
    h_whole = whole.holdings(universes, START, d).holdings
    symbols = [*INDEX_SYMBOLS, *sorted(set(h_whole.get_column("symbol").to_list()))[::4]]

    h_steps = pl.concat([stepwise.holdings(universes, START, before).holdings, stepwise.holdings(universes, d, d).holdings])
    b1, b2 = stepwise.bars(symbols, START, before), stepwise.bars(symbols, d, d)
    f_whole = whole.bars(symbols, START, d)
    # Values, exactly (concatenated frames lay out their bytes differently, so not bytes here).
    key = ["symbol", "session_date"]
    assert_frame_equal(pl.concat([b1.bars, b2.bars]).sort(key), f_whole.bars.sort(key), check_exact=True)
    actions = ["symbol", "ex_date", "action"]
    assert_frame_equal(pl.concat([b1.actions, b2.actions]).sort(actions), f_whole.actions.sort(actions), check_exact=True)
    h_key = ["universe", "as_of_date", "symbol"]
    assert_frame_equal(h_steps.sort(h_key), h_whole.sort(h_key), check_exact=True)
    assert ipc(stepwise.fundamentals(symbols, d).fundamentals) == ipc(whole.fundamentals(symbols, d).fundamentals)


@settings(max_examples=6, deadline=None)
@given(k=st.integers(min_value=1, max_value=140), extra=st.integers(min_value=1, max_value=60))
def test_a_session_never_depends_on_the_requested_end(k, extra):
    sessions = calendar.sessions(START, date(2024, 12, 31))
    d, later = sessions[k], sessions[k + extra]
    symbols = [*INDEX_SYMBOLS, "SMP0001", "SMP0500", "SMP1999", "SMP2700"]
    short, long_ = SampleSource(), SampleSource()
    a = short.bars(symbols, START, d)
    long_.bars(symbols, START, later)  # builds further first, then slices
    b = long_.bars(symbols, START, d)
    assert ipc(a.bars) == ipc(b.bars) and ipc(a.actions) == ipc(b.actions)
    assert ipc(short.holdings(["sp600"], d, d).holdings) == ipc(long_.holdings(["sp600"], d, d).holdings)


def test_concurrent_fetches_build_once_and_agree(market):
    source = SampleSource()
    chunks = [market["symbols"][i::4][:50] for i in range(4)]
    results: dict[int, pl.DataFrame] = {}

    def fetch(i: int) -> None:
        results[i] = source.bars(chunks[i], date(2025, 4, 1), date(2025, 4, 30)).bars

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    whole = market["source"].bars([s for c in chunks for s in c], date(2025, 4, 1), date(2025, 4, 30)).bars
    assert ipc(pl.concat([results[i] for i in range(4)])) == ipc(whole)


# Bars -------------------------------------------------------------------------------------------


def test_every_session_and_no_other(market):
    bars = market["fetched"].bars
    expected = calendar.sessions(START, END)
    for symbol in INDEX_SYMBOLS:
        assert index_closes(bars, symbol).get_column("session_date").to_list() == expected
    # Every member of a snapshot has a bar that session: the night's completeness check holds.
    h = market["holdings"].select("symbol", session_date="as_of_date").unique()
    assert h.join(bars, on=["symbol", "session_date"], how="anti").height == 0
    assert set(bars.get_column("session_date").unique().to_list()) <= set(expected)
    assert bars.select(pl.struct("symbol", "session_date").is_unique().all()).item()


def test_ohlc_consistent_and_volumes(market):
    bars = market["fetched"].bars
    assert bars.filter(
        (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("high") < pl.max_horizontal("open", "close"))
        | (pl.col("low") <= 0)
    ).height == 0
    members = bars.filter(~pl.col("symbol").str.starts_with("^"))
    assert members.get_column("volume").null_count() == 0 and members.get_column("volume").min() > 0
    vix = bars.filter(pl.col("symbol") == "^VIX")
    assert vix.get_column("volume").null_count() == vix.height
    assert 9 <= vix.get_column("close").min() and vix.get_column("close").max() <= 60
    assert vix.get_column("close").median() < 25
    first = bars.filter(pl.col("session_date") == START)
    level = dict(zip(first.get_column("symbol"), first.get_column("close")))
    for symbol, near in {"^RUT": 2_000, "^GSPC": 4_700, "^SP600": 1_300, "^IXIC": 14_700, "^VIX": 13}.items():
        assert abs(level[symbol] / near - 1) < 0.15, symbol


@pytest.mark.parametrize(("universe", "index"), [("russell2000", "^RUT"), ("sp600", "^SP600")])
def test_index_is_the_cap_weighted_return_of_its_members(market, universe, index):
    bars = market["fetched"].bars
    sessions = calendar.sessions(START, END)
    prev = pl.DataFrame({"session_date": sessions[1:], "prev_date": sessions[:-1]})
    ret = (
        bars.sort("session_date")
        .with_columns(ret=pl.col("close") / pl.col("close").shift(1).over("symbol") - 1)
        .select("symbol", "session_date", "ret")
    )
    weights = market["holdings"].filter(pl.col("universe") == universe).select("symbol", prev_date="as_of_date", w="weight_pct")
    implied = (
        prev.join(weights, on="prev_date")
        .join(ret, on=["symbol", "session_date"], how="left")
        .group_by("session_date")
        .agg((pl.col("w") / 100 * pl.col("ret")).sum().alias("implied"), pl.col("ret").null_count().alias("unpriced"))
    )
    idx = ret.filter(pl.col("symbol") == index).select("session_date", "ret")
    both = implied.join(idx, on="session_date")
    assert both.height == len(sessions) - 1
    assert both.get_column("unpriced").max() == 0
    # Index levels print with 2 decimals: that rounding is the only difference.
    assert (both.get_column("implied") - both.get_column("ret")).abs().max() < 1e-5


def test_adj_close_return_is_the_total_return_and_splits_are_in_close(market):
    fetched = market["fetched"]
    divs = fetched.actions.filter(pl.col("action") == "dividend").select("symbol", session_date="ex_date", div="value")
    members = (
        fetched.bars.filter(~pl.col("symbol").str.starts_with("^"))
        .sort("symbol", "session_date")
        .join(divs, on=["symbol", "session_date"], how="left")
        .with_columns(
            adj_ret=pl.col("adj_close") / pl.col("adj_close").shift(1).over("symbol") - 1,
            total_ret=(pl.col("close") + pl.col("div").fill_null(0)) / pl.col("close").shift(1).over("symbol") - 1,
        )
        .drop_nulls("adj_ret")
    )
    assert divs.height > 1_000 and members.filter(pl.col("div").is_not_null()).height == divs.height
    assert (members.get_column("adj_ret") - members.get_column("total_ret")).abs().max() < 1e-9
    assert fetched.actions.filter(pl.col("action") == "dividend").get_column("value").min() > 0
    # Splits: both kinds, and close is split-adjusted: no jump of the split's size on the ex-date.
    splits = fetched.actions.filter(pl.col("action") == "split")
    assert splits.filter(pl.col("value") > 1).height > 0 and splits.filter(pl.col("value") < 1).height > 0
    on_split = members.join(splits.select("symbol", session_date="ex_date"), on=["symbol", "session_date"])
    assert on_split.height == splits.height
    assert on_split.get_column("adj_ret").abs().max() < 0.3


def test_actions_are_only_those_of_the_requested_symbols_and_dates(market):
    source = market["source"]
    actions = market["fetched"].actions
    symbol = actions.filter(pl.col("action") == "dividend").get_column("symbol")[0]
    window = (date(2025, 1, 1), date(2025, 12, 31))
    got = source.bars([symbol], *window).actions
    want = actions.filter((pl.col("symbol") == symbol) & pl.col("ex_date").is_between(*window))
    assert got.height >= 1 and got.sort("ex_date").equals(want.sort("ex_date"))


def test_unknown_symbols_and_universes_are_failures_not_exceptions(market):
    source = market["source"]
    got = source.bars(["^RUT", "AAPL", "SMP0001"], date(2025, 1, 2), date(2025, 1, 10))
    assert set(got.bars.get_column("symbol").unique()) == {"^RUT", "SMP0001"}
    assert got.failures.get_column("symbol").to_list() == ["AAPL"]
    assert "unknown symbol 'AAPL'" in got.failures.get_column("error")[0]
    h = source.holdings(["russell2000", "nasdaq100"], date(2025, 1, 2), date(2025, 1, 2))
    assert h.failures.rows() == [("nasdaq100", "holdings", h.failures.get_column("error")[0])]
    assert h.holdings.height == 2_000
    f = source.fundamentals(["SMP0001", "IWM"], END)
    assert f.failures.get_column("symbol").to_list() == ["IWM"]
    early = source.bars(["^RUT"], date(2023, 1, 3), date(2023, 12, 29))
    assert early.bars.height == 0 and "starts 2024-01-02" in early.failures.get_column("error")[0]


# Universes ----------------------------------------------------------------------------------------


def test_weights_sum_to_100_and_holdings_agree_with_bars(market):
    h = market["holdings"]
    per_snapshot = h.group_by("universe", "as_of_date").agg(pl.col("weight_pct").sum(), pl.len())
    assert (per_snapshot.get_column("weight_pct") - 100).abs().max() < 1e-9
    sizes = per_snapshot.group_by("universe").agg(pl.col("len").min().alias("lo"), pl.col("len").max().alias("hi"))
    assert dict(zip(sizes.get_column("universe"), zip(sizes.get_column("lo"), sizes.get_column("hi")))) == {
        "russell2000": (2_000, 2_000), "sp600": (600, 600)
    }
    assert (h.get_column("market_value_usd") - h.get_column("shares") * h.get_column("price_usd")).abs().max() < 1e-3
    priced = h.join(market["fetched"].bars, left_on=["symbol", "as_of_date"], right_on=["symbol", "session_date"])
    assert priced.height == h.height and (priced.get_column("price_usd") == priced.get_column("close")).all()
    assert source_members_match(market, date(2025, 6, 27))


def source_members_match(market, day: date) -> bool:
    snap = market["holdings"].filter((pl.col("universe") == "russell2000") & (pl.col("as_of_date") == day))
    return sorted(snap.get_column("symbol").to_list()) == sorted(market["source"].members("russell2000", day))


def test_membership_changes_only_at_reconstitution_and_some_drops_delist(market):
    h = market["holdings"].filter(pl.col("universe") == "russell2000")
    by_day = {d: set(s) for d, s in h.group_by("as_of_date").agg("symbol").iter_rows()}
    days = sorted(by_day)
    changes = {d: (by_day[d] - by_day[p], by_day[p] - by_day[d]) for p, d in zip(days, days[1:]) if by_day[d] != by_day[p]}
    assert sorted(changes) == list(RECONSTITUTIONS)
    for added, dropped in changes.values():
        assert 0.03 * 2_000 <= len(added) <= 0.12 * 2_000 and 0.03 * 2_000 <= len(dropped) <= 0.12 * 2_000
    # Dropped members keep trading for a while; some stop (delist) and then are reported as failures.
    dropped_2025 = sorted(changes[RECONSTITUTIONS[1]][1])
    last_bar = (
        market["fetched"].bars.filter(pl.col("symbol").is_in(dropped_2025))
        .group_by("symbol").agg(pl.col("session_date").max())
    )
    assert last_bar.filter(pl.col("session_date") <= RECONSTITUTIONS[1]).height == 0
    delisted = last_bar.filter(pl.col("session_date") < END).get_column("symbol").to_list()
    assert 0 < len(delisted) < len(dropped_2025)
    late = market["source"].bars(delisted[:3], END, END)
    assert late.bars.height == 0 and late.failures.get_column("error").str.contains("delisted").all()


def test_sp600_members_are_profitable_when_selected(market):
    source = market["source"]
    sp = market["holdings"].filter(pl.col("universe") == "sp600")
    for day in (START, *RECONSTITUTIONS):
        members = sp.filter(pl.col("as_of_date") == day).get_column("symbol").to_list()
        got = ttm(source.fundamentals(members, day).fundamentals, day)
        assert got.height == len(members) == 600
        assert got.filter(pl.col("ttm").is_null() | (pl.col("ttm") <= 0)).height == 0, day
    # Reselection changes seats.
    before = set(sp.filter(pl.col("as_of_date") == calendar.previous_session(RECONSTITUTIONS[1])).get_column("symbol"))
    after = set(sp.filter(pl.col("as_of_date") == RECONSTITUTIONS[1]).get_column("symbol"))
    assert 0 < len(after - before) < 120


# Fundamentals ---------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(as_of=st.dates(min_value=date(2023, 6, 1), max_value=END))
def test_fundamentals_never_include_a_quarter_reported_after_as_of(market, as_of):
    f = market["source"].fundamentals(market["symbols"][::10], as_of).fundamentals
    assert f.height > 0
    assert f.get_column("report_date").max() <= as_of
    lag = (f.get_column("report_date") - f.get_column("period_end_date")).dt.total_days()
    assert lag.min() >= 25 and lag.max() <= 60
    ends = f.get_column("period_end_date")
    assert set(ends.dt.month().unique()) <= {3, 6, 9, 12}
    assert (ends + timedelta(days=1)).dt.day().unique().to_list() == [1]
    assert f.select(pl.struct("symbol", "period_end_date").is_unique().all()).item()


@settings(max_examples=examples(10), deadline=None)
@given(as_of=st.dates(min_value=START, max_value=END))
def test_fundamentals_since_leave_out_only_quarters_no_cohort_needs(market, as_of):
    """A load asks for quarters reported since its first session less FUNDAMENTALS_LOOKBACK_DAYS
    (the older ones are stored, or needed by no cohort): the TTM of every member on any session from
    there on is the one all its quarters give. (A delisted company's last quarters grow older than
    that, but cohorts are only of members.)"""
    source = market["source"]
    as_of = calendar.session_on_or_before(as_of)
    symbols = sorted({s for u in ("russell2000", "sp600") for s in source.members(u, as_of)})
    since = as_of - timedelta(days=FUNDAMENTALS_LOOKBACK_DAYS)
    every = source.fundamentals(symbols, as_of).fundamentals
    recent = source.fundamentals(symbols, as_of, since=since).fundamentals
    assert_frame_equal(recent, every.filter(pl.col("report_date") >= since))
    assert recent.height < every.height  # the sample's quarters start years before its first session
    full, narrowed = (ttm(f, as_of).select("symbol", "ttm").sort("symbol") for f in (every, recent))
    assert full.get_column("ttm").null_count() < full.height / 10  # most symbols have a TTM to compare
    assert_frame_equal(narrowed, full)


def test_fundamentals_are_coherent(market):
    f = market["source"].fundamentals(market["symbols"], END).fundamentals
    assert f.filter(pl.col("period_end_date") < date(2024, 1, 1)).height > 0  # TTM from the first session
    filled = f.drop_nulls("net_income_common_usd")
    assert f.get_column("revenue_usd").null_count() == 0 and f.get_column("revenue_usd").min() > 0
    assert (filled.get_column("net_income_usd") >= filled.get_column("net_income_common_usd")).all()
    sign = filled.filter(pl.col("diluted_eps") != 0)
    assert (sign.get_column("diluted_eps").sign() == sign.get_column("net_income_common_usd").sign()).all()
    missing = f.filter(pl.col("net_income_common_usd").is_null())
    assert missing.height > 0 and missing.get_column("diluted_eps").null_count() == missing.height
    assert filled.filter(pl.col("net_income_common_usd") == 0).height > 0  # a real zero is a value


@pytest.mark.parametrize("as_of", [START, date(2024, 9, 3), date(2025, 4, 8), date(2025, 12, 31), END])
def test_cohort_shares_look_like_the_russell_2000(market, as_of):
    loss, no_data = cohort_shares(market["source"], as_of)
    assert 0.30 <= loss <= 0.50
    assert 0.005 <= no_data <= 0.06


# The regime --------------------------------------------------------------------------------------------


def test_the_market_tells_a_2025_like_story(market):
    bars = market["fetched"].bars
    rut = index_closes(bars, "^RUT")
    low_date = rut.sort("close").get_column("session_date")[0]
    assert date(2025, 3, 31) <= low_date <= date(2025, 4, 15)
    records = rut.filter(pl.col("close") > pl.col("close").cum_max().shift(1)).get_column("session_date")
    assert records.filter(records >= date(2025, 7, 1)).len() > 0 and records.filter(records.dt.year() == 2026).len() > 0
    # Outperformance streaks against ^GSPC happen.
    gspc = index_closes(bars, "^GSPC")
    both = rut.join(gspc, on="session_date", suffix="_g").with_columns(
        beat=(pl.col("close").pct_change() > pl.col("close_g").pct_change()).fill_null(False)
    )
    streak = longest = 0
    for beat in both.get_column("beat"):
        streak = streak + 1 if beat else 0
        longest = max(longest, streak)
    assert longest >= 6
    # Since the low, the loss-makers (cohort fixed at the anchor) beat the profitable members.
    source = market["source"]
    anchor = date(2025, 4, 8)
    members = source.members("russell2000", anchor)
    cohort = ttm(source.fundamentals(members, anchor).fundamentals, anchor).drop_nulls("ttm")
    px = bars.filter(pl.col("session_date").is_in([anchor, date(2025, 12, 31)])).pivot(
        on="session_date", index="symbol", values="adj_close"
    )
    perf = cohort.join(px, on="symbol").with_columns(r=pl.col("2025-12-31") / pl.col("2025-04-08") - 1)
    mean = dict(perf.group_by(pl.col("ttm") > 0).agg(pl.col("r").mean()).iter_rows())
    assert mean[False] > mean[True] + 0.10 and mean[True] > 0


# Size, long histories and bounded memory -------------------------------------------------------------


@pytest.mark.slow  # over ~10 s: kept out of `make test-fast`, run by `make test`
@pytest.mark.parametrize(
    ("companies", "start"),
    [
        (10_000, date(1996, 1, 2)),  # 30 years of a 10,000-company market
        (2_750, date(2012, 1, 3)),  # the default size over 15 years, past its last listings (2015)
    ],
)
def test_membership_bands_hold_over_long_histories(companies, start):
    sizes = membership_sizes(2025, start, END, companies)
    bands = {u.name: (u.min_members, u.max_members) for u in DEFAULT_UNIVERSES}
    for universe, (lo, hi) in bands.items():
        got = sizes.filter(pl.col("universe") == universe)
        assert got.get_column("members").is_between(lo, hi).all(), (universe, got.filter(~pl.col("members").is_between(lo, hi)))
        # A member trades on every session it is a member: listed before, never delisted during.
        assert got.get_column("unpriced").max() == 0, universe
        # The first snapshot, then one epoch per yearly reconstitution up to END.
        assert got.get_column("first_date").min() == calendar.sessions(start, END)[0] and got.get_column("last_date").max() == END
        assert got.height == 1 + (END.year - start.year + 1)
        # Turnover never stops: every reconstitution brings new members.
        joined = got.get_column("joined").slice(1)
        assert joined.min() > 0 and joined.max() < 0.2 * got.get_column("members").max(), universe
        # Quarters keep coming for as long as the market runs (cohorts and the sp600 rule read them).
        age = (got.get_column("first_date") - got.get_column("latest_quarter")).dt.total_days()
        assert age.null_count() == 0 and age.max() <= 150, universe
    # Listings and delistings move the number of companies trading.
    listed = sizes.filter(pl.col("universe") == "russell2000").get_column("listed")
    assert listed.n_unique() > listed.len() // 2


def test_a_larger_market_has_five_digit_symbols_and_unique_names():
    source = SampleSource(companies=10_000)
    symbols = source.symbols()
    assert len(symbols) == 10_000 and symbols[0] == "SMP00001" and symbols[-1] == "SMP10000"
    names = source.companies.name
    assert len(set(names.tolist())) == 10_000
    # 2,000 founding members, then non-members and listings in the default proportions, 50 a year.
    listing = source.companies.listing_date
    later = listing > np.datetime64(START)
    assert later.sum() == 1_600 and listing[later].max() < np.datetime64(START + timedelta(days=32 * 366))
    assert source.members("russell2000", START) == symbols[:2_000]


@pytest.mark.slow  # over ~10 s: kept out of `make test-fast`, run by `make test`
def test_requests_give_the_same_rows_whatever_the_window_chunking_and_storage(tmp_path):
    """A market of another size over two years: a whole-range request in memory against chunked
    and yearly requests from a source whose blocks all go to files (and that was first built to an
    earlier end, so the rest of it continues that build)."""
    start, end = date(2023, 1, 3), date(2024, 12, 31)
    in_memory = SampleSource(start=start, companies=2_500)
    on_disk = SampleSource(start=start, companies=2_500, memory_mb=0, scratch_dir=tmp_path)
    on_disk.bars(["SMP0001"], start, date(2023, 8, 1))  # past the first reconstitution
    everything = [*INDEX_SYMBOLS, *in_memory.symbols()[::5]]
    whole = in_memory.bars(everything, start, end)
    key = ["symbol", "session_date"]

    years = [on_disk.bars(everything, a, b) for a, b in on_disk.years(start, end)]
    held, spilled = on_disk.scratch_bytes
    assert held == 0 and spilled > 0 and in_memory.scratch_bytes[1] == 0
    scratch = list(tmp_path.glob("sample-*"))
    assert len(scratch) == 1 and any(scratch[0].rglob("close.npy"))
    assert_frame_equal(pl.concat([y.bars for y in years]).sort(key), whole.bars.sort(key), check_exact=True)
    assert_frame_equal(
        pl.concat([y.actions for y in years]).sort("symbol", "ex_date", "action"),
        whole.actions.sort("symbol", "ex_date", "action"),
        check_exact=True,
    )
    # A chunk of symbols over a window: the same rows as the whole request's; indexes first, then
    # the members in the asked order.
    chunk = [everything[k] for k in (504, 7, 300, 401, 2)]
    window = (date(2023, 6, 1), date(2024, 7, 15))
    got = on_disk.bars(chunk, *window).bars
    want = whole.bars.filter(pl.col("symbol").is_in(chunk) & pl.col("session_date").is_between(*window))
    priced = set(want.get_column("symbol"))
    order = sorted((s for s in chunk if s in priced), key=lambda s: not s.startswith("^"))
    assert got.get_column("symbol").unique(maintain_order=True).to_list() == order and len(order) >= 4
    assert_frame_equal(got.sort(key), want.sort(key), check_exact=True)
    # Holdings a year at a time are the whole range's, and weights still sum to 100 per snapshot.
    universes = ["russell2000", "sp600"]
    h_key = ["universe", "as_of_date", "symbol"]
    h_years = pl.concat([on_disk.holdings(universes, a, b).holdings for a, b in on_disk.years(start, end)])
    assert_frame_equal(h_years.sort(h_key), in_memory.holdings(universes, start, end).holdings.sort(h_key), check_exact=True)
    sums = h_years.group_by("universe", "as_of_date").agg(pl.col("weight_pct").sum())
    assert (sums.get_column("weight_pct") - 100).abs().max() < 1e-9
    assert ipc(on_disk.fundamentals(everything, end).fundamentals) == ipc(in_memory.fundamentals(everything, end).fundamentals)

    del on_disk, years
    gc.collect()
    assert not list(tmp_path.glob("sample-*")), "the scratch folder goes with its source"


def test_settings_size_the_market_through_make_source(tmp_path, monkeypatch):
    monkeypatch.setenv("SMALLCAPS_SAMPLE_COMPANIES", "4000")
    monkeypatch.setenv("SMALLCAPS_SAMPLE_MEMORY_MB", "64")
    source = make_source(Settings(home=tmp_path))
    assert isinstance(source, SampleSource) and source.n_companies == 4_000
    # The market is kept in the data home between runs.
    assert source._store.memory_bytes == 64 * 2**20 and source.cache_folder.parent == tmp_path / "cache" / "sample"
    assert source.cache_folder.name.startswith("market-2025-20240102-4000-")
    assert Settings.model_fields["sample_companies"].default == sample.N_COMPANIES  # the default market
    bounds = {type(m).__name__: getattr(m, "ge", getattr(m, "le", None)) for m in Settings.model_fields["sample_companies"].metadata}
    assert bounds == {"Ge": sample.MIN_COMPANIES, "Le": sample.MAX_COMPANIES}
    monkeypatch.setenv("SMALLCAPS_SAMPLE_COMPANIES", "900")
    with pytest.raises(ValueError, match="sample_companies"):
        Settings(home=tmp_path)
    with pytest.raises(ValueError, match=r"2,500\.\.50,000 companies, got 900: set SMALLCAPS_SAMPLE_COMPANIES"):
        SampleSource(companies=900)


# The market kept in the data home between runs ---------------------------------------------------------

SMALL = {"start": date(2023, 1, 3), "companies": 2_500}  # 502 sessions to SMALL_END, in blocks of 256
SMALL_END = date(2024, 12, 31)
SMALL_SESSIONS = calendar.sessions(SMALL["start"], SMALL_END)
UNIVERSES = ["russell2000", "sp600"]
REPO = Path(__file__).resolve().parents[2]
GROW_IN_ANOTHER_PROCESS = """
import sys
from datetime import date
from pathlib import Path
from sources.sample import SampleSource
start, companies, cache, end = date.fromisoformat(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), date.fromisoformat(sys.argv[4])
SampleSource(start=start, companies=companies, cache_dir=cache).bars(["SMP0001"], end, end)
"""


def everything(source: SampleSource, end: date) -> dict[str, pl.DataFrame]:
    """Every frame the source gives up to `end`: bars, actions and failures of every symbol,
    holdings of both universes, fundamentals of every symbol as of three dates."""
    symbols = [*INDEX_SYMBOLS, *source.symbols()]
    got = source.bars(symbols, source.start, end)
    out = {"bars": got.bars, "actions": got.actions, "failures": got.failures,
           "holdings": source.holdings(UNIVERSES, source.start, end).holdings}
    for as_of in (source.start, date(2023, 8, 15), end):
        out[f"fundamentals {as_of}"] = source.fundamentals(symbols, min(as_of, end)).fundamentals
    return out


def assert_same_bits(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    """Equal values, and floats equal bit for bit (-0.0 is not 0.0 here, NaN payloads count)."""
    assert got.keys() == want.keys()
    for name in want:
        try:
            assert_frame_equal(got[name], want[name], check_exact=True)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
        for column, dtype in want[name].schema.items():
            if dtype == pl.Float64:
                bits = [f[name].get_column(column).fill_null(0.0).to_numpy().view(np.uint64) for f in (got, want)]
                assert np.array_equal(*bits), (name, column)


def cut(frames: dict[str, pl.DataFrame], end: date) -> dict[str, pl.DataFrame]:
    """The bars, actions and holdings of `frames` up to `end`."""
    dated = {"bars": "session_date", "actions": "ex_date", "holdings": "as_of_date"}
    return {k: frames[k].filter(pl.col(c) <= end) for k, c in dated.items()}


def cache_files(cache: Path) -> dict[str, list[str]]:
    """Per key folder: its states, blocks and quarters (plus anything else lying there)."""
    out = {}
    for folder in sorted(p for p in cache.iterdir() if p.is_dir()):
        names = sorted(p.name for p in folder.iterdir() if p.name != "blocks")
        blocks = sorted(p.name for p in (folder / "blocks").iterdir()) if (folder / "blocks").is_dir() else []
        out[folder.name] = names + [f"blocks/{b}" for b in blocks]
    return out


def tidy_files(T: int) -> list[str]:
    """What a cache of the small market holds once it has recorded T sessions: blocks of 256
    sessions, and the sessions after the last of them in a tail."""
    blocks = [f"blocks/{t0:06d}-{t0 + 256:06d}" for t0 in range(0, T - T % 256, 256)]
    tail = [f"tail-{T - T % 256:06d}"] if T % 256 else []
    return sorted(["companies.npz", "quarters-0048", f"state-{T:06d}.npz", *tail]) + blocks


def recording_simulations(monkeypatch) -> list[tuple[int, date]]:
    """(sessions continued from, last session) of every simulation from now on."""
    calls, real = [], sample._simulate

    def simulate(seed, start, last, co, prev, store, **kw):
        calls.append((0 if prev is None else len(prev.sessions), last))
        return real(seed, start, last, co, prev, store, **kw)

    monkeypatch.setattr(sample, "_simulate", simulate)
    return calls


@pytest.fixture(scope="module")
def small_fresh():
    """The small market to SMALL_END in one simulation, without a cache: what every cache must give."""
    return everything(SampleSource(**SMALL), SMALL_END)


@pytest.mark.slow  # over ~10 s: kept out of `make test-fast`, run by `make test`
def test_a_market_grown_through_the_cache_in_steps_is_the_fresh_market_bit_for_bit(tmp_path, small_fresh, monkeypatch):
    """Runs to different ends, each a new source, one of them another process: the same end twice,
    an end the cache already covers, ends on both sides of a block boundary (session 256) and of a
    reconstitution, blocks in memory and in files only. Then every frame equals one simulation
    without a cache, and reading it all simulates nothing."""
    calls = recording_simulations(monkeypatch)
    s = SMALL_SESSIONS
    steps = [(s[40], 512), (s[40], 0), (s[7], 512), (s[255], 0), (s[256], 512), (RECONSTITUTIONS[0], None), (SMALL_END, 0)]
    built = 0
    for end, memory_mb in steps:
        if memory_mb is None:  # another process
            subprocess.run(
                [sys.executable, "-c", GROW_IN_ANOTHER_PROCESS, str(SMALL["start"]), str(SMALL["companies"]), str(tmp_path), str(end)],
                cwd=REPO, check=True, capture_output=True,
            )
        else:
            source = SampleSource(**SMALL, cache_dir=tmp_path, memory_mb=memory_mb)
            got = source.bars([*INDEX_SYMBOLS, "SMP0001", "SMP2400"], SMALL["start"], end)
            want = small_fresh["bars"].filter(pl.col("symbol").is_in(got.bars.get_column("symbol").unique().to_list()) & (pl.col("session_date") <= end))
            assert_same_bits({"bars": got.bars.sort("symbol", "session_date")}, {"bars": want.sort("symbol", "session_date")})
        built = max(built, bisect.bisect_right(s, end))
        (key,) = cache_files(tmp_path)
        assert cache_files(tmp_path)[key] == tidy_files(built), end
    # Each run simulated only the sessions after what the cache held (none for an end it covered).
    assert calls == [(0, s[40]), (41, s[255]), (256, s[256]), (bisect.bisect_right(s, RECONSTITUTIONS[0]), SMALL_END)]
    calls.clear()
    assert_same_bits(everything(SampleSource(**SMALL, cache_dir=tmp_path), SMALL_END), small_fresh)
    assert calls == []


@pytest.mark.slow  # over ~10 s: kept out of `make test-fast`, run by `make test`
@settings(max_examples=5, deadline=None)
@given(picks=st.lists(st.integers(min_value=0, max_value=len(SMALL_SESSIONS) - 1), min_size=1, max_size=4))
def test_any_sequence_of_ends_gives_the_fresh_market(small_fresh, picks):
    with tempfile.TemporaryDirectory() as cache:
        for k in picks:
            SampleSource(**SMALL, cache_dir=Path(cache), memory_mb=64).bars(["SMP0001"], SMALL_SESSIONS[k], SMALL_SESSIONS[k])
        end = SMALL_SESSIONS[max(picks)]
        source = SampleSource(**SMALL, cache_dir=Path(cache))
        got = source.bars([*INDEX_SYMBOLS, *source.symbols()], SMALL["start"], end)
        holdings = source.holdings(UNIVERSES, SMALL["start"], end).holdings
        assert_same_bits({"bars": got.bars, "actions": got.actions, "holdings": holdings}, cut(small_fresh, end))


def test_a_nightly_on_a_warm_cache_reads_only_the_tail_and_the_next_night_appends_one_session(
    tmp_path, small_fresh, monkeypatch
):
    SampleSource(**SMALL, cache_dir=tmp_path).bars(["SMP0001"], SMALL_END, SMALL_END)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    calls = recording_simulations(monkeypatch)
    opened, real_open = [], sample_blocks._Block._open
    monkeypatch.setattr(sample_blocks._Block, "_open", lambda block, field: opened.append((block.t0, block.t1)) or real_open(block, field))

    night = SampleSource(**SMALL, cache_dir=tmp_path)
    symbols = [*INDEX_SYMBOLS, *night.symbols()]
    recent = SMALL_SESSIONS[-6:]
    got = {
        "bars": night.bars(symbols, recent[0], SMALL_END).bars,
        "holdings": night.holdings(UNIVERSES, recent[-2], SMALL_END).holdings,
        f"fundamentals {SMALL_END}": night.fundamentals(symbols, SMALL_END).fundamentals,
    }
    want = {
        "bars": small_fresh["bars"].filter(pl.col("session_date") >= recent[0]),
        "holdings": small_fresh["holdings"].filter(pl.col("as_of_date") >= recent[-2]),
        f"fundamentals {SMALL_END}": small_fresh[f"fundamentals {SMALL_END}"],
    }
    assert_same_bits(got, want)
    assert calls == [] and set(opened) == {(256, 502)}  # the last block, nothing of the first
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # and wrote nothing

    # The next night continues the stream for one session and appends its row to the tail: the
    # sessions before it are neither simulated nor written again.
    nxt = calendar.sessions(SMALL_END + timedelta(days=1), SMALL_END + timedelta(days=10))[0]
    first_block = {p: p.stat().st_mtime_ns for p in (folder / "blocks" / "000000-000256").iterdir()}
    tail = {p.name: p.stat().st_size for p in (folder / "tail-000256").iterdir()}
    tomorrow = SampleSource(**SMALL, cache_dir=tmp_path).bars(["SMP0001"], nxt, nxt)
    assert tomorrow.bars.height == 1 and calls == [(502, nxt)]
    assert cache_files(tmp_path)[folder.name] == tidy_files(503)
    assert {p: p.stat().st_mtime_ns for p in (folder / "blocks" / "000000-000256").iterdir()} == first_block
    grown = {p.name: p.stat().st_size - tail[p.name] for p in (folder / "tail-000256").iterdir()}
    assert grown.pop("dividends.bin") % sample_blocks.DIVIDEND_DTYPE.itemsize == 0
    assert grown == {f"{f}.bin": 2_500 * 8 for f in sample_companies.BAR_FIELDS}  # one row of 2,500 companies


def _grow_and_exit(cache: Path, end: date, crash_at: str | None) -> None:
    """A forked writer (numpy only: no polars thread pool in a forked child)."""
    if crash_at:
        os.environ["SMALLCAPS_CRASHPOINT"] = crash_at
    SampleSource(**SMALL, cache_dir=cache)._market_to(end)
    os._exit(0)


def forked(target, *args) -> multiprocessing.Process:
    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    child.start()
    return child


@pytest.mark.parametrize(
    ("built", "point"),
    first_of_each_kind(  # the fast loop kills one writer, the full run each of them
        [
            pytest.param(200, "sample.cache.block"),  # a complete block staged, not in place
            pytest.param(200, "sample.cache.tail"),  # ... in place, and a new tail half written
            pytest.param(300, "sample.cache.tail"),  # rows appended to one file of the tail the state names
            pytest.param(300, "sample.cache.state"),  # ... to all of them, the state staged, not in place
            pytest.param(200, "sample.cache.tidy"),  # the new state in place, the old one and its tail still there
        ],
        kind=lambda built, point: "a killed writer",
    ),
)
def test_a_writer_killed_anywhere_leaves_the_old_market_or_the_new_one(tmp_path, small_fresh, built, point):
    SampleSource(**SMALL, cache_dir=tmp_path).bars(["SMP0001"], SMALL_SESSIONS[built], SMALL_SESSIONS[built])
    # The killed writer grows it to another end than the next one: what it left must not pass for
    # the next one's sessions (the same sessions would be the same bytes).
    child = forked(_grow_and_exit, tmp_path, SMALL_SESSIONS[400], point)
    child.join(120)
    assert child.exitcode == -signal.SIGKILL  # killed at the point, as by kill -9: no cleanup ran
    (key,) = cache_files(tmp_path)
    states = [n for n in cache_files(tmp_path)[key] if n.startswith("state-")]
    assert states == [f"state-{built + 1:06d}.npz"] + (["state-000401.npz"] if point == "sample.cache.tidy" else [])
    if point != "sample.cache.tidy":
        # Readers of what is there now get the market as it was.
        few = ["^RUT", "SMP0001", "SMP2400"]
        got = SampleSource(**SMALL, cache_dir=tmp_path).bars(few, SMALL["start"], SMALL_SESSIONS[built]).bars
        assert_same_bits({"bars": got}, {"bars": cut(small_fresh, SMALL_SESSIONS[built])["bars"].filter(pl.col("symbol").is_in(few))})
    assert_same_bits(everything(SampleSource(**SMALL, cache_dir=tmp_path), SMALL_END), small_fresh)
    # The next writer removes what the killed one left.
    SampleSource(**SMALL, cache_dir=tmp_path).bars(["SMP0001"], SMALL_SESSIONS[-1], SMALL_SESSIONS[-1])
    after = date(2025, 1, 3)
    SampleSource(**SMALL, cache_dir=tmp_path).bars(["SMP0001"], after, after)
    assert cache_files(tmp_path)[key] == tidy_files(len(calendar.sessions(SMALL["start"], after)))


def _damage(folder: Path, how: str) -> None:
    state = next(folder.glob("state-*.npz"))
    if how == "truncated block file":
        close = folder / "blocks" / "000000-000256" / "close.npy"
        close.write_bytes(close.read_bytes()[: close.stat().st_size // 2])
    elif how == "missing block":
        shutil.rmtree(folder / "blocks" / "000000-000256")
    elif how == "not a state file":
        state.write_bytes(b"PK\x03\x04 half of a zip file")
    elif how == "damaged companies file":
        (folder / "companies.npz").write_bytes(b"\x93NUMPY")
    elif how == "simulated on another calendar":  # e.g. exchange_calendars added a closure since
        with np.load(state) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["sessions_sha256"] = np.zeros(32, np.uint8)
        with open(state, "wb") as out:
            np.savez(out, **arrays)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "logged"),
    first_of_each_kind(  # the fast loop damages one file of each kind of repair
        [
            pytest.param("truncated block file", "removing it and simulating the market again"),
            pytest.param("missing block", "removing it and simulating the market again"),
            pytest.param("not a state file", "removing it and simulating the market again"),
            pytest.param("simulated on another calendar", "removing it and simulating the market again"),
            pytest.param("damaged companies file", "making the companies again"),
        ],
        kind=lambda how, logged: logged,
    ),
)
def test_a_damaged_cache_is_removed_with_a_log_line_and_made_again(tmp_path, small_fresh, how, logged, caplog):
    source = SampleSource(**SMALL, cache_dir=tmp_path)
    source.bars(["SMP0001"], SMALL_END, SMALL_END)
    folder = source.cache_folder
    _damage(folder, how)
    with caplog.at_level(logging.WARNING, logger="sources.sample"):
        got = everything(SampleSource(**SMALL, cache_dir=tmp_path), SMALL_END)
    assert_same_bits(got, small_fresh)
    lines = [r.getMessage() for r in caplog.records if logged in r.getMessage()]
    assert len(lines) == 1 and str(folder) in lines[0], caplog.text
    assert cache_files(tmp_path)[folder.name] == tidy_files(502)
    # The cache is whole again: the next source reads it without a word.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sources.sample"):
        SampleSource(**SMALL, cache_dir=tmp_path).bars(["SMP0001"], SMALL_END, SMALL_END)
    assert caplog.records == []


def test_a_block_file_read_a_few_rows_at_a_time_gives_what_its_map_gives(tmp_path):
    """A read of a few companies (a rebase: a handful of symbols from every block of decades) reads
    their rows directly and gives what a map of the file gives; a file cut short or with another
    header is damage, as a map would say."""
    rng = np.random.default_rng(5)
    t0, t1, n = 100, 139, 300
    arrays = {f: (rng.integers(0, 10**9, (t1 - t0, n)) if f == "volume" else rng.standard_normal((t1 - t0, n))) for f in sample_companies.BAR_FIELDS}
    sample_blocks._write_block(tmp_path, arrays, sample_blocks.NO_DIVIDENDS)
    block = sample_blocks._Block(t0, t1, n, None, tmp_path, None)
    many = np.arange(0, n, 3)
    for field in sample_companies.BAR_FIELDS:
        assert np.array_equal(block.read(field, many, t0, t1), arrays[field][:, many].T)  # mapped: header known
    few = np.array([299, 0, 17, 17])
    for field in sample_companies.BAR_FIELDS:
        for a, b in ((t0, t1), (t0 + 5, t0 + 6), (t1 - 3, t1)):
            got = block.read(field, few, a, b)
            assert got.dtype == arrays[field].dtype and np.array_equal(got, arrays[field][a - t0 : b - t0, few].T), (field, a, b)
    path = tmp_path / "close.npy"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(sample_blocks._CacheDamaged, match="shorter than its header says"):
        block.read("close", few, t0, t1)
    path.unlink()
    with pytest.raises(sample_blocks._CacheDamaged, match="close.npy"):
        block.read("close", few, t0, t1)
    # A file of another shape, read by a block that has not checked it yet.
    np.save(tmp_path / "open.npy", arrays["open"][:, :-1].T)
    fresh = sample_blocks._Block(t0, t1, n, None, tmp_path, None)
    with pytest.raises(sample_blocks._CacheDamaged, match="not the header of float64"):
        fresh.read("open", few, t0, t1)
    assert np.array_equal(fresh.read("high", few, t0, t1), arrays["high"][:, few].T)


def test_a_new_key_never_reuses_old_files_and_removes_the_keys_nobody_uses(tmp_path, monkeypatch):
    d = SMALL_SESSIONS[30]
    old = SampleSource(**SMALL, cache_dir=tmp_path)
    old.bars(["SMP0001"], d, d)
    calls = recording_simulations(monkeypatch)
    monkeypatch.setattr(sample_cache, "_code_version", lambda: "edited")  # the simulation's code changed
    new = SampleSource(**SMALL, cache_dir=tmp_path)
    new.bars(["SMP0001"], d, d)
    assert calls == [(0, d)] and new.cache_folder != old.cache_folder and new.cache_folder.name.endswith("-edited")
    assert old.cache_folder.is_dir()  # a source still using its key keeps it
    old_key = old.cache_folder.name
    del old
    gc.collect()
    SampleSource(**SMALL, cache_dir=tmp_path).bars(["SMP0001"], SMALL_SESSIONS[31], SMALL_SESSIONS[31])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [new.cache_folder.name, f"{new.cache_folder.name}.lock", f"{new.cache_folder.name}.write.lock"]
    )
    assert not any(old_key in p.name for p in tmp_path.iterdir())
    # Seed, start and size are in the key too.
    other = SampleSource(**{**SMALL, "seed": 7}, cache_dir=tmp_path)
    assert other.cache_folder.name.startswith("market-7-20230103-2500-")


def test_the_cache_key_hashes_every_module_of_the_sample_source():
    """The source is split over several modules: an edit of any of them must make a new key."""
    modules = sorted(p.name for p in Path(sample_cache.__file__).parent.glob("sample*.py"))
    assert sorted(sample_cache.CODE_MODULES) == modules and len(modules) == 5


def _read_while_growing(cache: Path, ends: list[date]) -> None:
    for end in ends:
        SampleSource(**SMALL, cache_dir=cache)._market_to(end)
    os._exit(0)


def test_processes_sharing_a_cache_never_read_a_partial_file(tmp_path, small_fresh, caplog):
    """Two writers grow the same key at once, step by step, each run a new source (so states and last
    blocks are replaced under the others' feet) while this process keeps loading it and reading the
    first 100 sessions from whatever state is newest."""
    SampleSource(**SMALL, cache_dir=tmp_path).bars(["SMP0001"], SMALL_SESSIONS[100], SMALL_SESSIONS[100])
    writers = [forked(_read_while_growing, tmp_path, SMALL_SESSIONS[start::60] + [SMALL_END]) for start in (110, 140)]
    window = (SMALL["start"], SMALL_SESSIONS[100])
    want = {"bars": small_fresh["bars"].filter(pl.col("session_date") <= window[1]).filter(pl.col("symbol").is_in(["^RUT", "SMP0001", "SMP2400"]))}
    reads = 0
    with caplog.at_level(logging.WARNING, logger="sources.sample"):
        while any(w.is_alive() for w in writers) or reads < 3:
            got = SampleSource(**SMALL, cache_dir=tmp_path).bars(["^RUT", "SMP0001", "SMP2400"], *window).bars
            assert_same_bits({"bars": got}, want)
            reads += 1
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    assert caplog.records == []  # nothing was ever found damaged
    (key,) = cache_files(tmp_path)
    assert cache_files(tmp_path)[key] == tidy_files(502)
    assert_same_bits(everything(SampleSource(**SMALL, cache_dir=tmp_path), SMALL_END), small_fresh)


def test_quarters_replaced_by_another_writer_while_listed_are_read_again_not_called_damaged(tmp_path, caplog, monkeypatch):
    """A writer that stores more quarters removes the fewer ones; a reader that listed the fewer
    ones just before reads the new ones, without a warning and without computing any again."""
    source = SampleSource(**SMALL, cache_dir=tmp_path)
    source.bars(["SMP0001"], SMALL_SESSIONS[5], SMALL_SESSIONS[5])
    folder, co = source.cache_folder, source.companies
    cache = sample_cache._Cache(tmp_path, 2025, SMALL["start"], SMALL["companies"])
    real_read, computed = sample_cache._Cache._read_quarters, []

    def read_after_a_writer(self, path, Q):
        if Q == 48 and (folder / "quarters-0048").exists():  # the other writer, between listing and reading
            with cache.writing():
                cache._write_quarters(sample_cache._quarters(2025, SMALL["start"], co, 52, real_read(cache, path, Q)))
                shutil.rmtree(path)
        return real_read(self, path, Q)

    real_quarters = sample_cache._quarters
    monkeypatch.setattr(sample_cache._Cache, "_read_quarters", read_after_a_writer)

    def quarters(seed, start, co, n, prev=None):
        if n > (0 if prev is None else len(prev)):
            computed.append((0 if prev is None else len(prev), n))
        return real_quarters(seed, start, co, n, prev)

    monkeypatch.setattr(sample_cache, "_quarters", quarters)  # where the cache computes them
    with caplog.at_level(logging.WARNING, logger="sources.sample"):
        got = sample_cache._Cache(tmp_path, 2025, SMALL["start"], SMALL["companies"]).quarters(co, 48)
    assert caplog.records == [] and len(got) == 52
    assert computed == [(48, 52)]  # only the other writer's four: the reader computed none
    assert sorted(p.name for p in folder.glob("quarters-*")) == ["quarters-0052"]
