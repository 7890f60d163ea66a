"""The embedded sample source: contract, determinism, prefix stability, and the market it tells.

One default market (seed 2025) up to END is built once per module and shared; tests that need
another instance (determinism, prefix stability, threads) build their own. Cohort figures are
recomputed here from `fundamentals()` independently of the source's own selection code.
"""

from __future__ import annotations

import gc
import re
import threading
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from hypothesis import given, settings
from hypothesis import strategies as st

from smallcaps import calendar
from smallcaps.settings import DEFAULT_UNIVERSES, Settings
from sources import make_source, sample
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


def test_requests_give_the_same_rows_whatever_the_window_chunking_and_storage(tmp_path):
    """A market of another size over two years: a whole-range request in memory against chunked
    and yearly requests from a source whose blocks all go to files (and that was first built to an
    earlier end, so the rest of it continues that build)."""
    start, end = date(2023, 1, 3), date(2024, 12, 31)
    in_memory = SampleSource(start=start, companies=2_500)
    on_disk = SampleSource(start=start, companies=2_500, memory_mb=0, cache_dir=tmp_path)
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
    assert source._store.memory_bytes == 64 * 2**20 and source._store.root == tmp_path / "cache" / "sample"
    assert Settings.model_fields["sample_companies"].default == sample.N_COMPANIES  # the default market
    bounds = {type(m).__name__: getattr(m, "ge", getattr(m, "le", None)) for m in Settings.model_fields["sample_companies"].metadata}
    assert bounds == {"Ge": sample.MIN_COMPANIES, "Le": sample.MAX_COMPANIES}
    monkeypatch.setenv("SMALLCAPS_SAMPLE_COMPANIES", "900")
    with pytest.raises(ValueError, match="sample_companies"):
        Settings(home=tmp_path)
    with pytest.raises(ValueError, match=r"2,500\.\.50,000 companies, got 900: set SMALLCAPS_SAMPLE_COMPANIES"):
        SampleSource(companies=900)
