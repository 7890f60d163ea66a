"""The embedded `sample` source: a deterministic synthetic US small-cap market, offline.
(Over 600 lines: why, under "Where the code is".)

What the market is
------------------
By default 2,750 fictional companies (settings.sample_companies; symbols `SMP0001`.., upper-case
invented names, the 11 GICS sectors as iShares prints them, NASDAQ / NYSE listings): 2,000
founding members of a Russell-2000-like universe, about 600 smaller non-members, and about 150
companies that list later (IPOs, about 50 a year) and can join at a reconstitution. A larger market
keeps the 2,000 founding members and splits the other companies in the same proportions, four
non-members at the start for each later listing, still about 50 listings a year: 10,000 companies
have 6,400 non-members at the start and 1,600 listings over 32 years (see `_layout`). Each company
has shares outstanding, a price, a latent profitability (roughly four in ten lose money: biotech
and tech more often, banks and utilities rarely), a beta, an idiosyncratic volatility, maybe a
quarterly dividend and maybe a split.

Every NYSE session from `start` (settings.sample_start, 2024-01-02) to the `end` a caller asks for
is simulated, and five indexes are derived:

- `^RUT`: the cap-weighted price return of the `russell2000` members, so index and constituents
  tell one story: ret(t) = sum over the members of snapshot t-1 of weight(t-1) * (close(t)/close(t-1) - 1).
- `^SP600`: the same over the `sp600` members (about 600 companies with positive TTM earnings,
  chosen at the start and reselected at each reconstitution).
- `^GSPC`, `^IXIC`: separate processes driven by the broad-market factor (IXIC with a higher beta).
- `^VIX`: implied from an exponentially weighted realized volatility of the broad market.

Daily log return of company i on session t:

    x(i,t) = alpha(i) + beta(i) * m(t) + loss(i) * j(t) + sector(t) + sigma(i) * eps(i,t) - sigma(i)^2 / 2
    m(t)   = SMALL_BETA_TO_BROAD * g(t) + s(t)

g is the broad-market factor (the S&P-500-like process), s the small-cap excess factor, j the
"junk" factor that only loss-makers load on. Drifts and volatilities of g, s, j come from REGIMES,
dated parameters shaped like 2024-26: a steady 2024, small caps fading from late November, a sell-off
into early April 2025 with a crash week, a one-day rebound, then a rally in which loss-makers (higher
beta, positive junk drift) lead. A market that starts earlier (1996 for a 30-year history) runs a
plain long-run regime until 2024. The factors revert gently towards the path their drifts trace, so
the shape survives any seed while daily moves stay random. Records, streaks and cohort gaps are
whatever the draws make of those parameters; no output figure is written here. With the default
seed the small caps bottom on 2025-04-08, make record closes in late 2025 and in 2026, and the
loss-makers lead the profitable members from the low (tests/sources/test_sample.py checks it).

Membership: the 2,000 founding members to start; each year on the last Friday of June a
reconstitution ranks caps as of 40 sessions earlier, drops the smallest 5% and the few that
outgrew the universe, and refills from the largest non-members (IPOs included). The sp600 seats
go to companies with positive TTM net income known that day, by size, with a buffer for sitting
members. Some companies that leave both universes delist 10-200 sessions later: their bars stop.
Refills take the largest non-members above the drop line first and smaller ones only when those
run out; delistings stop while the non-members that could refill are down to half their number at
the start. So every snapshot has exactly 2,000 and 600 members for as long as the market has
companies to refill from: a default-size market for about 16 years from its start, 4,000 or more
companies for over 30 (tests check the bands on membership alone, without building the bars).

Fundamentals: quarters from Q1 of two years before the start (TTM exists from the first session),
reported 25-60 days after the quarter end (Q4 later, weekends moved to Monday). Recent listings have
fewer than four quarters, a few companies miss one quarter's net income (null), a few report an
exact zero, some pay preferred dividends (net income above net income to common).

Determinism and prefix stability
--------------------------------
Same seed, same bytes. The values of a session never depend on the requested end: the draws of
session k come from `np.random.default_rng([seed, tag, k])` (k counted from `start`), company
attributes from generators keyed by the seed alone, quarterly figures from generators keyed by the
quarter, and every decision (reconstitution, delisting, dividend amount) reads only the past. A
backfill to D and a backfill to D-1 followed by a fetch of D give identical rows, and so do a
request for a window and the same rows cut from a larger request.

Per-share conventions (Yahoo's): `close`, open/high/low, volume and dividends are split-adjusted
but `close` is not dividend-adjusted. To stay prefix-stable, split adjustment is against a fixed
horizon (all of a company's splits up to SPLIT_HORIZON_YEARS after `start`), so a split never
rewrites earlier closes; holdings (price, shares) and EPS use the same split basis, so they agree
with the bars. `adj_close` carries dividends as a forward-accumulated total-return factor (1 on a
company's first session): adj_close(t)/adj_close(t-1) = (close(t) + dividend(t)) / close(t-1), the
total return of day t, and earlier values never move when `end` does. So adj_close starts equal to
close and drifts above it, unlike Yahoo's back-adjusted series, where the latest values are equal.

Memory: a stream over sessions, kept between runs
-------------------------------------------------
The market is simulated session after session, carrying only what the next session needs (prices,
the last 41 closes for the reconstitution's rank day and the dividends' reference close, the
dividend factor, the members, the delistings, index levels): a few vectors of one value per
company. The bars and dividends of each session go into time blocks of up to a year, starting
every `_block_sessions(n)` sessions whatever ends the market was asked for (a last block cut short
by an end is reopened when the market grows). Membership changes only at reconstitutions, so it is
kept as one member list per year, and the holdings rows of a window are built when asked, never
cached whole (30 years of holdings are about 20 million rows: ask per year). Asking for a later end
continues the stream from where it stopped (under a lock: flows fetch chunks from threads).

With a data home (make_source passes settings.home/cache/sample) the market is kept there between
runs (`_Cache`): the state after the last simulated session, every block (company-major `.npy`
files, so that a chunk of symbols is one slice), the quarters and the companies. A run continues
from the stored state and simulates only the sessions after it; a request reads only the blocks
of its window, so the bars and holdings of a night cost the same on a 30-year market as on a
3-year one (its fundamentals are every quarter reported by then: those rows do grow with the
history). Blocks this run simulated are also held in memory up to settings.sample_memory_mb.
Without a home (unit tests) every source simulates from the start, blocks stay in memory up to
the budget and the rest go to a scratch folder (the system's temporary folder, or `scratch_dir`),
removed with the source.
`python -m sources.sample --help` measures a market of any size, fetched in symbol chunks, by
year or as a nightly window, with or without a cache.

Where the code is
-----------------
This module holds the source (holdings, bars, fundamentals of a window) and `membership_sizes`;
sample_companies.py the parameters, companies and quarters; sample_market.py the simulation;
sample_blocks.py the bar blocks in memory and scratch files; sample_cache.py the data home's cache.
It stays a little over 600 lines because a sixth of it is this description, which belongs with the
source it describes; the code is the one class the pipeline sees.
"""

from __future__ import annotations

import argparse
import bisect
import logging
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from ground import calendar
from sources.base import (
    ACTIONS_SCHEMA,
    BARS_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HOLDINGS_SCHEMA,
    Capabilities,
    Fetched,
    conform,
    empty,
    failures_frame,
)
from sources.sample_companies import (
    FUND_FRACTION,
    INDEX_SYMBOLS,
    MEMORY_MB,
    N_COMPANIES,
    UNIVERSES,
    _Companies,
    _companies,
    _layout,
    _n_quarters,
    _symbol,
)
from sources.sample_blocks import _CacheDamaged, _Store
from sources.sample_cache import _Cache
from sources.sample_market import _Market, _simulate
from sources.sample_companies import MAX_COMPANIES, MIN_COMPANIES  # noqa: F401  re-exported: the size bounds are read here

log = logging.getLogger(__name__)

# The source ----------------------------------------------------------------------------------------


_built: dict[tuple, "SampleSource"] = {}
_built_lock = threading.Lock()


def _for_this_process(seed: int, start: date, companies: int, memory_mb: int) -> "SampleSource":
    """The source of this recipe, built once per process (a Dask worker fetching chunk after chunk).
    One market at a time: a worker asked for another recipe drops the previous one. Its scratch
    files go to this machine's temporary folder: the flow's data home may not exist here."""
    key = (seed, start, companies, memory_mb)
    with _built_lock:
        if key not in _built:
            _built.clear()
            _built[key] = SampleSource(seed=seed, start=start, companies=companies, memory_mb=memory_mb, cache_dir=None)
        return _built[key]


class SampleSource:
    """The deterministic synthetic market behind `make demo` (see the module docstring).

    `companies`: the market's size (settings.sample_companies). `memory_mb`: MiB of bar blocks
    held in memory (settings.sample_memory_mb). `cache_dir`: where the simulated market is kept
    between runs (settings.home/cache/sample, see `_Cache`); a source with one continues the market
    from where the last run stopped and reads earlier sessions from there. Without one (unit
    tests), each source simulates from the start and the blocks beyond `memory_mb` go to a scratch
    folder under `scratch_dir` (the system's temporary folder by default), removed with it."""

    name = "sample"

    def __init__(
        self,
        seed: int = 2025,
        start: date = date(2024, 1, 2),
        companies: int = N_COMPANIES,
        memory_mb: int = MEMORY_MB,
        cache_dir: Path | None = None,
        scratch_dir: Path | None = None,
    ) -> None:
        _layout(companies)  # a size out of range fails here, not at the first fetch
        self.seed = seed
        self.start = start
        # The market begins at `start`: nothing before it exists to be asked for.
        self.capabilities = Capabilities(first_date=start, takes_since=True)
        self.n_companies = companies
        self.memory_mb = memory_mb
        self.scratch_dir = scratch_dir
        self._lock = threading.Lock()
        self._cache = _Cache(cache_dir, seed, start, companies) if cache_dir is not None else None
        self._store = _Store(memory_mb * 2**20, scratch_dir, self._cache)
        self._companies: _Companies | None = None
        self._market: _Market | None = None
        self._position_of: dict[str, int] | None = None

    def __reduce__(self):
        # How a Dask worker gets the source (flows/runner.py): the market is fixed by its recipe, so
        # the worker rebuilds it from that instead of receiving this one (up to hundreds of MB, a
        # lock, scratch files on this machine). A worker keeps the one it built for the next chunks.
        return (_for_this_process, (self.seed, self.start, self.n_companies, self._store.memory_bytes // 2**20))

    def __dask_tokenize__(self):
        # Dask names a submitted call by its arguments; without this it pickles and unpickles the
        # source in the flow's process just to check the name is stable.
        return ("sample", self.seed, self.start, self.n_companies, self._store.memory_bytes)

    # building --------------------------------------------------------------------------------

    def _market_to(self, end: date) -> _Market:
        """The market simulated at least up to `end` (the session on or before it)."""
        with self._lock:
            co = self._companies_locked()
            first = calendar.sessions(self.start, self.start + timedelta(days=10))[0]
            last = max(calendar.session_on_or_before(max(end, first)), first)
            market = self._market
            if market is not None and market.sessions[-1] >= last:
                return market
            if self._cache is None:
                self._market = _simulate(self.seed, self.start, last, co, market, self._store)
                return self._market
            if market is None:
                market = self._market = self._cache.load(co)
                if market is not None and market.sessions[-1] >= last:
                    return market
            with self._cache.writing():
                # Another process may have grown (or removed) the market since it was read here.
                if self._cache.states()[-1:] != ([len(market.sessions)] if market is not None else []):
                    market = self._cache.load(co)
                if market is None or market.sessions[-1] < last:
                    self._cache.tidy(len(market.sessions) if market is not None else None)
                    market = _simulate(self.seed, self.start, last, co, market, self._store)
                    self._cache.commit(market, co)
                self._market = market
            return market

    def _companies_locked(self) -> _Companies:
        if self._companies is None:
            if self._cache is not None:
                self._companies = self._cache.companies()
            else:
                self._companies = _companies(self.seed, self.start, self.n_companies)
        return self._companies

    def _reading(self, what):
        """`what()`, again after a damaged cache file: first from the cache read afresh (another
        process may have replaced what this one had read), then from a market simulated again."""
        for attempt in range(3):
            try:
                return what()
            except _CacheDamaged as exc:
                if self._cache is None or attempt == 2:
                    raise
                with self._lock:
                    if attempt == 0:
                        log.warning("sample market cache: %s; reading the cache again", exc)
                    else:
                        self._cache.discard(str(exc))
                    self._market = None
                    self._store = _Store(self.memory_mb * 2**20, self.scratch_dir, self._cache)

    @property
    def companies(self) -> _Companies:
        with self._lock:
            return self._companies_locked()

    def _positions(self, market: _Market, start: date, end: date) -> tuple[int, int]:
        a = bisect.bisect_left(market.sessions, start)
        b = bisect.bisect_right(market.sessions, end)
        return a, b

    # Source protocol -------------------------------------------------------------------------------

    def bars(self, symbols: Sequence[str], start: date, end: date) -> Fetched:
        """Daily bars for index and member symbols; splits and dividends in `actions`."""
        return self._reading(lambda: self._bars(symbols, start, end))

    def holdings(self, universes: Sequence[str], start: date, end: date) -> Fetched:
        """One snapshot per session in [start, end] for each universe: equities only, cap weights.
        Built for the asked window only: ask a long history a year at a time."""
        return self._reading(lambda: self._holdings(universes, start, end))

    def fundamentals(self, symbols: Sequence[str], as_of: date, since: date | None = None) -> Fetched:
        """Quarters with report_date <= as_of (and >= since, where given: the sample never restates
        a quarter, so an older one is as the warehouse holds it); a delisted company reports nothing
        after it delists."""
        return self._reading(lambda: self._fundamentals(symbols, as_of, since))

    def _bars(self, symbols: Sequence[str], start: date, end: date) -> Fetched:
        symbols = list(dict.fromkeys(symbols))
        if end < self.start:
            return Fetched(failures=failures_frame([(s, "bars", self._before_start(start, end)) for s in symbols]))
        market = self._market_to(end)
        co = self._companies
        a, b = self._positions(market, start, end)
        position = self._position()
        index_syms = [s for s in symbols if s in INDEX_SYMBOLS]
        member_idx = np.array([position[s] for s in symbols if s in position], dtype=np.int64)
        failures = [(s, "bars", f"unknown symbol {s!r}: the sample market has {', '.join(INDEX_SYMBOLS)} and {self._symbol_range()}")
                    for s in symbols if s not in position and s not in INDEX_SYMBOLS]

        parts = []
        if index_syms and b > a:
            parts.append(market.index_bars(index_syms, a, b))
        if len(member_idx) and b > a:
            k, s = len(member_idx), b - a
            close = market.read("close", member_idx, a, b).ravel()
            keep = np.isfinite(close)
            frame = pl.DataFrame(
                {
                    "symbol": pl.Series(co.symbol[member_idx]).gather(np.repeat(np.arange(k), s)[keep]),
                    "session_date": np.tile(market.session64[a:b], k)[keep],
                    "open": market.read("open", member_idx, a, b).ravel()[keep],
                    "high": market.read("high", member_idx, a, b).ravel()[keep],
                    "low": market.read("low", member_idx, a, b).ravel()[keep],
                    "close": close[keep],
                    "adj_close": market.read("adj_close", member_idx, a, b).ravel()[keep],
                    "volume": market.read("volume", member_idx, a, b).ravel()[keep],
                }
            )
            parts.append(conform(frame, BARS_SCHEMA, "sample bars"))
        bars = pl.concat(parts) if parts else empty(BARS_SCHEMA)

        # A known symbol without a bar in the window is reported, saying why.
        got = set(bars.get_column("symbol").unique().to_list())
        for s in symbols:
            if s in got or (s not in position and s not in INDEX_SYMBOLS):
                continue
            failures.append((s, "bars", self._why_no_bars(market, position.get(s), start, end)))

        actions = empty(ACTIONS_SCHEMA)
        if len(member_idx) and b > a:
            actions = market.actions(co, member_idx, a, b)
        return Fetched(bars=bars, actions=actions, failures=failures_frame(failures))

    def _holdings(self, universes: Sequence[str], start: date, end: date) -> Fetched:
        failures, parts = [], []
        for u in dict.fromkeys(universes):
            if u not in UNIVERSES:
                failures.append((u, "holdings", f"unknown universe {u!r}: the sample market has {', '.join(UNIVERSES)}"))
                continue
            if end < self.start:
                failures.append((u, "holdings", self._before_start(start, end)))
                continue
            market = self._market_to(end)
            a, b = self._positions(market, start, end)
            if b <= a:
                failures.append((u, "holdings", f"no NYSE session in {start}..{end}"))
                continue
            parts.append(self._holdings_frame(market, u, a, b))
        holdings = pl.concat(parts) if parts else empty(HOLDINGS_SCHEMA)
        return Fetched(holdings=holdings, failures=failures_frame(failures))

    def _fundamentals(self, symbols: Sequence[str], as_of: date, since: date | None) -> Fetched:
        symbols = list(dict.fromkeys(symbols))
        market = self._market_to(max(as_of, self.start))
        # The quarters a market to as_of makes, however many a longer market (or the cache) holds.
        co, qs = self._companies, market.quarters.head(_n_quarters(self.start, calendar.session_on_or_before(max(as_of, market.sessions[0]))))
        position = self._position()
        idx = np.array([position[s] for s in symbols if s in position], dtype=np.int64)
        failures = [(s, "fundamentals", f"unknown symbol {s!r}: fundamentals exist for {self._symbol_range()}")
                    for s in symbols if s not in position]
        if not len(idx):
            return Fetched(failures=failures_frame(failures))
        T = len(market.sessions)
        delist_day = np.where(
            market.delist_idx[idx] < T, market.session64[np.minimum(market.delist_idx[idx], T - 1)], np.datetime64("2200-01-01")
        )
        report = qs.report_date[:, idx]
        keep = qs.exists[:, idx] & (report <= np.datetime64(as_of, "D")) & (qs.period_end[:, None] < delist_day[None, :])
        if since is not None:
            keep &= report >= np.datetime64(since, "D")
        ci, qi = np.nonzero(keep.T)  # company-major, quarters ascending
        cols = idx[ci]
        # A long history is a million rows and more: strings gathered by polars, NaN made null on
        # the way in (numpy string arrays and a fill_nan pass cost as much as the rest).
        frame = pl.DataFrame(
            {
                "symbol": pl.Series(co.symbol[idx]).gather(ci),
                "period_end_date": qs.period_end[qi],
                "report_date": qs.report_date[qi, cols],
                "net_income_common_usd": pl.Series(qs.net_income_common[qi, cols], nan_to_null=True),
                "net_income_usd": pl.Series(qs.net_income[qi, cols], nan_to_null=True),
                "diluted_eps": pl.Series(qs.eps[qi, cols], nan_to_null=True),
                "revenue_usd": qs.revenue[qi, cols],
            }
        )
        return Fetched(fundamentals=conform(frame, FUNDAMENTALS_SCHEMA, "sample fundamentals"), failures=failures_frame(failures))

    # conveniences ---------------------------------------------------------------------------------

    def members(self, universe: str, as_of: date) -> list[str]:
        """Members of `universe` on the session on or before `as_of`."""
        if universe not in UNIVERSES:
            raise KeyError(f"unknown universe {universe!r}: the sample market has {', '.join(UNIVERSES)}")
        market = self._market_to(as_of)
        t = bisect.bisect_right(market.sessions, as_of) - 1
        if t < 0:
            raise ValueError(f"{as_of} is before the sample market's first session {market.sessions[0]}")
        return self._companies.symbol[market.members_at(universe, t)].tolist()

    def symbols(self) -> list[str]:
        """Every company symbol of the sample (members or not, listed yet or not)."""
        return self.companies.symbol.tolist()

    def years(self, start: date, end: date) -> list[tuple[date, date]]:
        """[start, end] cut into calendar years (first and last day of each, clipped): the windows a
        streaming backfill asks for, one year of bars, holdings and fundamentals at a time."""
        return [(max(start, date(y, 1, 1)), min(end, date(y, 12, 31))) for y in range(start.year, end.year + 1)]

    @property
    def scratch_bytes(self) -> tuple[int, int]:
        """Bytes of bars held in memory and written to the scratch folder so far."""
        return self._store.held_bytes, self._store.spilled_bytes

    @property
    def cache_folder(self) -> Path | None:
        """The folder of this market's cache (None without a cache)."""
        return self._cache.folder if self._cache is not None else None

    # helpers ----------------------------------------------------------------------------------------

    def _position(self) -> dict[str, int]:
        with self._lock:
            if self._position_of is None:
                self._position_of = {s: i for i, s in enumerate(self._companies.symbol)}
            return self._position_of

    def _symbol_range(self) -> str:
        return f"{_symbol(0, self.n_companies)}..{_symbol(self.n_companies - 1, self.n_companies)}"

    def _holdings_frame(self, market: _Market, universe: str, a: int, b: int) -> pl.DataFrame:
        """Snapshots of sessions [a, b): session-major, members in symbol order (iShares files have
        an order of their own; this one is stable). Built one membership epoch (a year) at a time."""
        co = self._companies
        fund_shares = np.round(co.shares * FUND_FRACTION[universe])
        strings = {c: pl.Series(getattr(co, c)) for c in ("symbol", "name", "sector", "exchange")}
        parts = []
        for lo, hi, epoch in market.epoch_spans(a, b):
            idx = epoch.members[universe]
            price = market.read("close", idx, lo, hi).T.ravel()
            t = np.repeat(np.arange(lo, hi), len(idx))
            i = np.tile(idx, hi - lo)
            value = fund_shares[i] * price
            # Per-session sums in member order (bincount adds in row order): the weights of a
            # session are the same bits whatever window it is fetched in.
            total = np.bincount(t - lo, weights=value, minlength=hi - lo)
            # Strings are gathered by polars from one series per company attribute: building them
            # row by row from numpy costs seconds for two million rows.
            at = pl.Series(i)
            frame = pl.DataFrame(
                {
                    "universe": pl.Series([universe]).gather(np.zeros(len(i), dtype=np.int64)),
                    "as_of_date": market.session64[t],
                    "symbol": strings["symbol"].gather(at),
                    "ticker": strings["symbol"].gather(at),
                    "name": strings["name"].gather(at),
                    "sector": strings["sector"].gather(at),
                    "asset_class": pl.Series(["Equity"]).gather(np.zeros(len(i), dtype=np.int64)),
                    "exchange": strings["exchange"].gather(at),
                    "weight_pct": 100.0 * value / total[t - lo],
                    "market_value_usd": value,
                    "shares": fund_shares[i],
                    "price_usd": price,
                }
            )
            parts.append(conform(frame, HOLDINGS_SCHEMA, "sample holdings"))
        return pl.concat(parts, rechunk=False)

    def _before_start(self, start: date, end: date) -> str:
        return f"no data in {start}..{end}: the sample market starts {self.start}"

    def _why_no_bars(self, market: _Market, i: int | None, start: date, end: date) -> str:
        if i is None:
            return f"no session of the sample market in {start}..{end}"
        T = len(market.sessions)
        if market.first_idx[i] >= T or market.sessions[min(market.first_idx[i], T - 1)] > end:
            listing = self._companies.listing_date[i].astype(object)
            return f"not listed in {start}..{end}: {self._companies.symbol[i]} lists on {listing}"
        if market.delist_idx[i] < T and market.sessions[market.delist_idx[i]] <= start:
            return f"delisted: last bar on {market.sessions[market.last_idx[i]]}, none in {start}..{end}"
        return f"no session of the sample market in {start}..{end}"


# Membership alone, and a measurement ----------------------------------------------------------------


def membership_sizes(seed: int, start: date, end: date, companies: int = N_COMPANIES) -> pl.DataFrame:
    """One row per universe and membership epoch (a year between reconstitutions) of a market:
    first and last session, members, members new since the previous epoch, members without a bar
    on some session of it, companies trading on its first session, and the latest quarter the
    members had reported by then. From a pass that simulates the closes only: what the member-count
    gate and the completeness check would see over decades of snapshots, without building a bar."""
    co = _companies(seed, start, companies)
    first = calendar.sessions(start, start + timedelta(days=10))[0]
    market = _simulate(seed, start, max(calendar.session_on_or_before(end), first), co, None, None, full=False)
    T = len(market.sessions)
    qs = market.quarters
    rows, before = [], {}
    for lo, hi, epoch in market.epoch_spans(0, T):
        listed = int(((market.first_idx <= lo) & (market.delist_idx > lo)).sum())
        for universe, idx in epoch.members.items():
            unpriced = int(((market.first_idx[idx] > lo) | (market.delist_idx[idx] < hi)).sum())
            joined = len(np.setdiff1d(idx, before[universe])) if universe in before else 0
            reported = (qs.exists[:, idx] & (qs.report_date[:, idx] <= market.session64[lo])).any(axis=1)
            latest = qs.period_end[reported].max().astype(object) if reported.any() else None
            rows.append((universe, market.sessions[lo], market.sessions[hi - 1], len(idx), joined, unpriced, listed, latest))
            before[universe] = idx
    return pl.DataFrame(
        rows,
        schema={
            "universe": pl.String, "first_date": pl.Date, "last_date": pl.Date, "members": pl.Int64,
            "joined": pl.Int64, "unpriced": pl.Int64, "listed": pl.Int64, "latest_quarter": pl.Date,
        },
        orient="row",
    )


def _measure(argv: Sequence[str] | None = None) -> None:
    """Generate a whole market as the pipeline would ask for it and print what it took."""
    parser = argparse.ArgumentParser(
        prog="python -m sources.sample",
        description="Generate every bar, holdings snapshot and fundamentals row of a sample market, in the "
        "chunks a backfill asks for, and print rows and seconds (wall and CPU; run under /usr/bin/time -v "
        "for peak RSS). Nothing is kept: each answer is counted and dropped.",
    )
    parser.add_argument("--companies", type=int, default=N_COMPANIES)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 2))
    parser.add_argument("--end", type=date.fromisoformat, default=None, help="default: the latest completed session")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--by", choices=("symbols", "year", "night"), default="symbols",
                        help="symbols: holdings of the whole range, then bars in chunks of --chunk-size symbols over "
                        "the whole range (today's backfill); year: one calendar year at a time, holdings and the bars "
                        "of every symbol (a streaming backfill); night: what a nightly load asks of a fresh source, "
                        "holdings of the last two sessions and bars of the last six, in chunks")
    parser.add_argument("--chunk-size", type=int, default=250)
    parser.add_argument("--memory-mb", type=int, default=MEMORY_MB)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep the market between runs in this folder (a data home's cache/sample): run twice "
                        "to see a warm cache; without it, every run simulates from the start")
    parser.add_argument("--scratch-dir", type=Path, default=None,
                        help="without --cache-dir: where bar blocks beyond --memory-mb go (default: the system's temporary folder)")
    args = parser.parse_args(argv)
    end = args.end or calendar.latest_completed_session()
    calendar.sessions(args.start, args.start)  # the calendar's own one-off build is not the market's

    clock: dict[str, list[float]] = {}

    def timed(what: str, fn, *a):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(*a)
        spent = clock.setdefault(what, [0.0, 0.0])
        spent[0] += time.perf_counter() - wall
        spent[1] += time.process_time() - cpu
        return out

    source = SampleSource(
        seed=args.seed, start=args.start, companies=args.companies, memory_mb=args.memory_mb, cache_dir=args.cache_dir,
        scratch_dir=args.scratch_dir,
    )
    timed("market", source._market_to, end)  # simulated, or read from (and continued in) the cache
    symbols = source.symbols()
    chunks = [symbols[i : i + args.chunk_size] for i in range(0, len(symbols), args.chunk_size)]
    if args.by == "night":
        recent = calendar.sessions(args.start, end)[-6:]
        windows = [(recent[0], end)]
    else:
        windows = [(args.start, end)] if args.by == "symbols" else source.years(args.start, end)
    rows = {"bars": 0, "actions": 0, "holdings": 0, "fundamentals": 0}
    for a, b in windows:
        held_from = recent[-2] if args.by == "night" else a  # iShares dates a file by the previous session
        rows["holdings"] += timed("holdings", source.holdings, list(UNIVERSES), held_from, b).holdings.height
        for chunk in [list(INDEX_SYMBOLS)] + (chunks if args.by != "year" else [symbols]):
            got = timed("bars", source.bars, chunk, a, b)
            rows["bars"] += got.bars.height
            rows["actions"] += got.actions.height
            del got
    for chunk in chunks:
        rows["fundamentals"] += timed("fundamentals", source.fundamentals, chunk, end).fundamentals.height
    held, spilled = source.scratch_bytes
    spent = "; ".join(f"{k} {w:.2f} s (cpu {c:.2f})" for k, (w, c) in clock.items())
    cached = ""
    if source._cache is not None:
        cached = (f"; cache {source._cache.folder}: {source._store.cached_bytes / 2**20:,.0f} MiB of bars written by this run, "
                  f"{source._cache.size_bytes / 2**20:,.0f} MiB in all")
    print(
        f"sample market: {args.companies:,} companies, {args.start}..{end} ({len(calendar.sessions(args.start, end)):,} sessions), "
        f"by {args.by}: {len(windows)} window(s) x {len(chunks) + 1 if args.by != 'year' else 2} bar request(s)\n"
        f"  rows: {rows['bars']:,} bars, {rows['actions']:,} actions, {rows['holdings']:,} holdings, {rows['fundamentals']:,} fundamentals\n"
        f"  {spent}\n"
        f"  total {sum(w for w, _ in clock.values()):.2f} s (cpu {sum(c for _, c in clock.values()):.2f}); "
        f"bar blocks {held / 2**20:,.0f} MiB in memory, {spilled / 2**20:,.0f} MiB in scratch files{cached}"
    )


if __name__ == "__main__":
    _measure()
