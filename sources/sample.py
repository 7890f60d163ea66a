"""The embedded `sample` source: a deterministic synthetic US small-cap market, offline.

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
"""

from __future__ import annotations

import argparse
import bisect
import fcntl
import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import weakref
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from functools import cached_property, lru_cache
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import polars as pl

from smallcaps import calendar
from smallcaps.crashpoints import crashpoint
from sources.base import (
    ACTIONS_SCHEMA,
    BARS_SCHEMA,
    FAILURES_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HOLDINGS_SCHEMA,
    Capabilities,
    Fetched,
    conform,
    empty,
)

log = logging.getLogger(__name__)

# Parameters ------------------------------------------------------------------------------------

INDEX_SYMBOLS = ("^RUT", "^GSPC", "^SP600", "^IXIC", "^VIX")
# Levels on the first session, near the real ones of 2024-01-02.
INDEX_BASE = {"^RUT": 2_000.0, "^GSPC": 4_700.0, "^SP600": 1_300.0, "^IXIC": 14_700.0}

UNIVERSES = ("russell2000", "sp600")
N_FOUNDING = 2_000  # russell2000 members on the first session; reconstitutions refill to this count
N_POOL = 600  # smaller listed companies outside the universe at the start (default market)
N_IPO = 150  # companies that list after the start (default market)
N_COMPANIES = N_FOUNDING + N_POOL + N_IPO  # the default size, settings.sample_companies
# Bounds of settings.sample_companies: below the minimum the first reconstitution cannot refill the
# universe; above the maximum the invented names run out.
MIN_COMPANIES = 2_500
MAX_COMPANIES = 50_000
SP600_SIZE = 600
SP600_BUFFER = 720  # an sp600 member keeps its seat while its score rank is within this buffer
RECENT_LISTING_SHARE = 0.02  # founding/pool companies listed in the half year before the start
IPO_WINDOW_DAYS = 3 * 365  # N_IPO listings spread over this many days after the start: 50 a year

# GICS sectors as iShares prints them, with their rough share of IWM members (2025 holdings file)
# and the chance that a member of the sector loses money over a year.
SECTORS = (
    ("Financials", 418, 0.15),
    ("Health Care", 403, 0.70),
    ("Industrials", 255, 0.30),
    ("Information Technology", 214, 0.50),
    ("Consumer Discretionary", 201, 0.40),
    ("Energy", 107, 0.25),
    ("Real Estate", 106, 0.45),
    ("Materials", 82, 0.35),
    ("Communication", 81, 0.45),
    ("Consumer Staples", 61, 0.35),
    ("Utilities", 32, 0.15),
)
SECTOR_NOUNS = {
    "Financials": ("BANCORP", "FINANCIAL", "CAPITAL", "INSURANCE GROUP", "BANKSHARES", "TRUST"),
    "Health Care": ("THERAPEUTICS", "BIOSCIENCES", "MEDICAL", "PHARMACEUTICALS", "HEALTH", "DIAGNOSTICS"),
    "Industrials": ("INDUSTRIES", "AEROSPACE", "LOGISTICS", "MACHINERY", "ENGINEERING", "FREIGHT"),
    "Information Technology": ("SEMICONDUCTOR", "SOFTWARE", "NETWORKS", "PHOTONICS", "DATA SYSTEMS", "DEVICES"),
    "Consumer Discretionary": ("BRANDS", "OUTFITTERS", "RESTAURANTS", "MOTORS", "LEISURE", "HOME"),
    "Energy": ("ENERGY", "PETROLEUM", "RESOURCES", "OIL & GAS", "MIDSTREAM", "DRILLING"),
    "Real Estate": ("REALTY TRUST", "PROPERTIES", "RESIDENTIAL", "LAND", "OFFICE TRUST", "STORAGE"),
    "Materials": ("MATERIALS", "CHEMICALS", "MINERALS", "STEEL", "PACKAGING", "MINING"),
    "Communication": ("MEDIA", "COMMUNICATIONS", "TELECOM", "BROADCASTING", "INTERACTIVE", "WIRELESS"),
    "Consumer Staples": ("FOODS", "FARMS", "BEVERAGE", "GROCERS", "HOUSEHOLD PRODUCTS", "NUTRITION"),
    "Utilities": ("UTILITIES", "POWER", "WATER", "GAS & ELECTRIC", "RENEWABLES", "ELECTRIC"),
}
# Invented first words: syllable + ending (25 x 16 = 400), never a real ticker's company on purpose.
NAME_HEADS = ("AL", "BEL", "COR", "DUN", "EL", "FEN", "GAL", "HAR", "IST", "JOR", "KEL", "LOR", "MAR",
              "NOR", "OR", "PEL", "QUEN", "ROS", "SEL", "TOR", "UL", "VAL", "WEN", "YAR", "ZEL")
NAME_TAILS = ("BROOK", "CREST", "DALE", "FIELD", "FORD", "GATE", "HAVEN", "HOLM", "MERE", "MONT",
              "RIDGE", "STEAD", "TON", "VALE", "WICK", "WORTH")
NAME_SUFFIXES = ("INC", "CORP", "HOLDINGS INC", "CO", "GROUP INC", "LTD")
EXCHANGES = (("NASDAQ", 0.60), ("New York Stock Exchange Inc.", 0.38), ("Nyse Mkt Llc", 0.02))

# Market regimes: from this date on, daily drift and volatility of the broad factor g, drift and
# volatility of the small-cap excess factor s, drift of the junk factor j (loss-makers only).
REGIMES = (
    # from               g_mu     g_sd    s_mu     s_sd    j_mu
    (date(1900, 1, 1), 0.0003, 0.0105, 0.0000, 0.0060, 0.0000),  # long run before 2024 (~8%/yr, ~17% vol)
    (date(2024, 1, 1), 0.0007, 0.0075, -0.0001, 0.0065, 0.0000),  # steady year
    (date(2024, 11, 26), 0.0000, 0.0075, -0.0028, 0.0065, -0.0008),  # small caps fade
    (date(2025, 1, 1), 0.0005, 0.0075, -0.0010, 0.0065, -0.0004),  # large caps up, small caps flat
    (date(2025, 2, 20), -0.0015, 0.0110, -0.0008, 0.0075, -0.0006),  # sell-off
    (date(2025, 4, 3), -0.0250, 0.0150, -0.0040, 0.0080, -0.0020),  # crash week
    (date(2025, 4, 9), 0.0700, 0.0050, 0.0080, 0.0050, 0.0040),  # one-day rebound
    (date(2025, 4, 10), 0.0012, 0.0095, 0.0005, 0.0075, 0.0008),  # rally led by loss-makers
    (date(2025, 8, 1), 0.0006, 0.0070, 0.0006, 0.0065, 0.0005),  # grind higher
    (date(2026, 1, 1), 0.0004, 0.0080, 0.0002, 0.0070, 0.0002),  # 2026
)
# The factors revert towards the path their drifts trace (an Ornstein-Uhlenbeck pull, half-life
# about 23 sessions): daily volatility stays realistic while every seed keeps the regime's shape
# instead of a random walk drowning it.
FACTOR_REVERSION = 0.03
JUNK_SD = 0.004
SMALL_BETA_TO_BROAD = 1.10
IXIC_BETA = 1.25
SECTOR_SD = 0.005
BETA_PROFITABLE = (0.95, 0.20)  # mean, sd
BETA_LOSS = (1.25, 0.25)  # loss-makers carry more market beta (in the sell-off and the rally)
IDIO_SD_PROFITABLE = (0.018, 0.006)  # daily, mean and sd across companies
IDIO_SD_LOSS = (0.030, 0.008)
ALPHA_SD = 0.0003  # per-company daily drift dispersion
VIX_LAMBDA = 0.88  # EWMA decay of squared broad-market returns
VIX_START_SD = 0.0075  # daily broad-market volatility assumed before the first session
# VIX = VIX_FLOOR_PTS + VIX_SLOPE * realized volatility (annualized, in points): implied volatility
# sits above realized in calm markets and reacts less than one for one.
VIX_FLOOR_PTS = 5.0
VIX_SLOPE = 0.85

# Fund holdings: the ETF holds this fraction of every member's shares (cap weights result).
FUND_FRACTION = {"russell2000": 0.022, "sp600": 0.055}

# Reconstitution: last Friday of June; rank on the session RANK_LAG sessions before.
RANK_LAG = 40
DROP_BOTTOM_QUANTILE = 0.05  # members below this cap quantile of members drop out
GRADUATE_MULTIPLE = 12.0  # members above this multiple of the median member cap graduate
DELIST_SHARE = 0.40  # of companies leaving both universes, share that later delist
DELIST_AFTER_SESSIONS = (10, 200)
# Delistings stop short of leaving fewer non-members that could refill the universe (listed, not
# in either universe, below the graduation line) than this share of the starting non-members.
# Without it a market whose listings have ended (the default one after three years) runs out of
# companies to refill from within 15 years; the default market stays far above it for years.
REFILL_FLOOR_SHARE = 0.5

# Fundamentals: quarters from Q1 two years before the start; at least N_QUARTERS of them, more when
# the market runs past them (quarter k's figures never depend on how many there are).
FIRST_QUARTER_YEARS_BEFORE = 2
N_QUARTERS = 48
MISSING_QUARTER_SHARE = 0.06  # companies with one quarter (2023-26) whose net income is missing
ZERO_QUARTER_SHARE = 0.005  # companies with one quarter of exactly zero net income
PREFERRED_SHARE = 0.05  # companies paying preferred dividends (net income > to common)

# Corporate actions.
DIVIDEND_PAYER = {"profitable": 0.55, "loss": 0.08}
DIVIDEND_YIELD = (0.01, 0.05)  # annual, uniform
DIVIDEND_PRICE_LAG = 5  # dividend per share set from the close this many sessions before ex-date
SPLIT_HORIZON_YEARS = 5
FORWARD_SPLIT_SHARE = 0.015  # profitable companies with a forward split in the horizon
REVERSE_SPLIT_SHARE = 0.03  # loss-makers with a reverse split in the horizon

# Generator tags: each stream of draws has its own key, so adding one never shifts another.
TAG_COMPANIES, TAG_SESSION, TAG_QUARTER, TAG_DELIST, TAG_NAMES = 1, 2, 3, 4, 5
# Index-level draws per session: open/high/low noise of the five indexes (3 each), then IXIC's own
# return, GSPC and IXIC volume, VIX's own noise.
N_INDEX_NOISE = 19

# Streaming: closes kept for the rank day of a reconstitution and the dividends' reference close.
RING = max(RANK_LAG, DIVIDEND_PRICE_LAG) + 1
NEVER = np.iinfo(np.int64).max // 2  # delist_idx of a company that never delists
BAR_FIELDS = ("open", "high", "low", "close", "adj_close", "volume")
BAR_BYTES_PER_CELL = 8 * len(BAR_FIELDS)  # float64 prices, int64 volume
BLOCK_SESSIONS = 256  # sessions per block, fewer for a large market (BLOCK_BYTES_MAX per block)
BLOCK_BYTES_MAX = 64 * 2**20
MEMORY_MB = 512  # default of settings.sample_memory_mb: bar blocks kept in memory


# Companies: static attributes, keyed by the seed alone ------------------------------------------


@dataclass(frozen=True)
class _Companies:
    symbol: np.ndarray  # str
    name: np.ndarray
    sector: np.ndarray  # str
    sector_code: np.ndarray  # int
    exchange: np.ndarray
    listing_date: np.ndarray  # datetime64[D]; first session on or after it is the first bar
    is_loss: np.ndarray  # latent profitability: bool
    shares: np.ndarray  # shares outstanding in the horizon split basis
    price0: np.ndarray  # first close
    beta: np.ndarray
    idio_sd: np.ndarray
    alpha: np.ndarray
    turnover: np.ndarray  # daily volume / shares
    sp_score_noise: np.ndarray
    # fundamentals
    earnings_yield: np.ndarray  # annual net income / first market cap
    price_to_sales: np.ndarray
    growth_q: np.ndarray  # quarterly revenue and earnings growth
    report_lag: np.ndarray  # days after quarter end, before per-quarter noise
    first_quarter: np.ndarray  # index of the first quarter with figures
    missing_quarter: np.ndarray  # quarter index with null net income, -1 for none
    zero_quarter: np.ndarray  # quarter index with exactly zero net income, -1 for none
    preferred_q: np.ndarray  # quarterly preferred dividends, USD (0 for most)
    dilution: np.ndarray  # diluted / basic shares
    # dividends
    div_yield: np.ndarray  # 0 for non-payers
    div_offset_days: np.ndarray  # ex-date: this many days into each calendar quarter
    # splits: one per company at most, 0 ratio = none
    split_date: np.ndarray  # datetime64[D]
    split_ratio: np.ndarray  # new shares per old share; 0 = no split


def _quarter_end(first_year: int, q: np.ndarray) -> np.ndarray:
    """Calendar quarter ends (datetime64[D]) of quarter indexes counted from Q1 of first_year."""
    months = np.asarray(q) * 3 + 3  # months after the start of first_year at which the quarter ends
    month_start = np.datetime64(f"{first_year}-01", "M") + months.astype("timedelta64[M]")
    return month_start.astype("datetime64[D]") - np.timedelta64(1, "D")


@dataclass(frozen=True)
class _Layout:
    """How many companies of each kind a market of `n` companies has."""

    n: int
    n_pool: int  # listed non-members at the start
    n_ipo: int  # listings after the start
    ipo_window_days: int  # the listings spread evenly over this many days after the start


def _layout(n_companies: int) -> _Layout:
    """The 2,000 founding members, then the others split as in the default market (four
    non-members at the start for each later listing) with listings at the default pace, about 50 a
    year: 2,750 companies list 150 over 3 years, 10,000 list 1,600 over 32 years. At that pace the
    listings make up for most delistings, and a larger market is a deeper pool to refill from."""
    if not MIN_COMPANIES <= n_companies <= MAX_COMPANIES:
        raise ValueError(
            f"the sample market needs {MIN_COMPANIES:,}..{MAX_COMPANIES:,} companies, got {n_companies:,}: "
            "set SMALLCAPS_SAMPLE_COMPANIES inside that range"
        )
    others = n_companies - N_FOUNDING
    n_pool = round(others * N_POOL / (N_POOL + N_IPO))
    n_ipo = others - n_pool
    return _Layout(n_companies, n_pool, n_ipo, round(IPO_WINDOW_DAYS * n_ipo / N_IPO))


def _companies(seed: int, start: date, n_companies: int = N_COMPANIES) -> _Companies:
    layout = _layout(n_companies)
    rng = np.random.default_rng([seed, TAG_COMPANIES])
    n = layout.n
    kind = np.repeat([0, 1, 2], [N_FOUNDING, layout.n_pool, layout.n_ipo])  # founding, pool, ipo

    sector_names = np.array([s for s, _, _ in SECTORS])
    sector_p = np.array([w for _, w, _ in SECTORS], float)
    sector_code = rng.choice(len(SECTORS), size=n, p=sector_p / sector_p.sum())
    loss_p = np.array([p for _, _, p in SECTORS])[sector_code]
    loss_p = np.where(kind == 2, np.minimum(0.95, loss_p + 0.2), loss_p)  # IPOs lose money more often
    is_loss = rng.random(n) < loss_p

    ex_names = np.array([e for e, _ in EXCHANGES])
    ex_p = np.array([p for _, p in EXCHANGES])
    exchange = ex_names[rng.choice(len(EXCHANGES), size=n, p=ex_p)]

    # Market caps: lognormal, loss-makers smaller; pool companies sit below the founding members.
    median = np.select([kind == 0, kind == 1], [1.0e9, 3.5e8], 8.0e8)
    log_cap = np.log(median) + rng.normal(0, 1, n) * np.select([kind == 0, kind == 1], [0.95, 0.8], 0.8)
    log_cap -= 0.3 * is_loss
    cap0 = np.clip(np.exp(log_cap), 5e7, 1.5e10)
    price0 = np.round(np.clip(np.exp(np.log(20.0) + rng.normal(0, 0.9, n)), 1.0, 400.0), 2)
    shares = np.round(cap0 / price0)

    beta = np.where(
        is_loss, rng.normal(BETA_LOSS[0], BETA_LOSS[1], n), rng.normal(BETA_PROFITABLE[0], BETA_PROFITABLE[1], n)
    )
    beta = np.clip(beta, 0.3, 2.5)
    idio_sd = np.where(
        is_loss,
        rng.normal(IDIO_SD_LOSS[0], IDIO_SD_LOSS[1], n),
        rng.normal(IDIO_SD_PROFITABLE[0], IDIO_SD_PROFITABLE[1], n),
    )
    idio_sd = np.clip(idio_sd, 0.008, 0.06)
    alpha = rng.normal(0, ALPHA_SD, n)
    turnover = np.exp(np.log(0.008) + rng.normal(0, 0.6, n))
    sp_score_noise = rng.normal(0, 0.5, n)

    # Listing: founding and pool companies trade from the start; a few listed recently (they have
    # under four reported quarters at first: the "no data" cohort); IPOs list after the start.
    start64 = np.datetime64(start, "D")
    recent = (kind < 2) & (rng.random(n) < RECENT_LISTING_SHARE)
    before = rng.integers(20, 200, n)
    after = rng.integers(1, layout.ipo_window_days, n)
    # The others have traded for years: since 1990, or before the first quarter of an earlier start.
    long_listed = np.datetime64(min(date(1990, 1, 1), date(start.year - FIRST_QUARTER_YEARS_BEFORE - 1, 1, 1)), "D")
    listing_date = np.where(
        kind == 2, start64 + after.astype("timedelta64[D]"),
        np.where(recent, start64 - before.astype("timedelta64[D]"), long_listed),
    )

    # Earnings: annual net income as a yield on the first market cap; near-zero yields flip sign
    # from quarter to quarter, which is what moves members between cohorts.
    earnings_yield = np.where(is_loss, -rng.uniform(0.005, 0.25, n), rng.uniform(0.005, 0.10, n))
    price_to_sales = np.exp(np.where(is_loss, np.log(4.0), np.log(1.2)) + rng.normal(0, 0.7, n))
    growth_q = rng.normal(0.012, 0.02, n)
    report_lag = rng.integers(30, 46, n)
    first_year = start.year - FIRST_QUARTER_YEARS_BEFORE
    first_q_listing = _quarter_of(listing_date, first_year)
    first_quarter = np.where(listing_date > np.datetime64(f"{first_year}-01-01"), first_q_listing, 0)
    missing_quarter = np.where(rng.random(n) < MISSING_QUARTER_SHARE, rng.integers(4, 20, n), -1)
    zero_quarter = np.where(rng.random(n) < ZERO_QUARTER_SHARE, rng.integers(4, 20, n), -1)
    preferred_q = np.where(rng.random(n) < PREFERRED_SHARE, cap0 * rng.uniform(0.001, 0.004, n), 0.0)
    dilution = 1.0 + np.where(is_loss, 0.0, rng.uniform(0.0, 0.03, n))  # anti-dilution: losses use basic shares

    payer = rng.random(n) < np.where(is_loss, DIVIDEND_PAYER["loss"], DIVIDEND_PAYER["profitable"])
    div_yield = np.where(payer, rng.uniform(*DIVIDEND_YIELD, n), 0.0)
    div_offset_days = rng.integers(5, 85, n)

    # At most one split per company within the fixed horizon: forward for some winners, reverse
    # (1-for-10 and the like) for some loss-makers. A split before listing does not happen.
    u = rng.random(n)
    fwd = ~is_loss & (u < FORWARD_SPLIT_SHARE)
    rev = is_loss & (u < REVERSE_SPLIT_SHARE)
    split_ratio = np.where(fwd, rng.choice([2.0, 3.0, 1.5], n), np.where(rev, rng.choice([0.1, 0.05, 0.125], n), 0.0))
    split_date = start64 + rng.integers(1, int(SPLIT_HORIZON_YEARS * 365.25), n).astype("timedelta64[D]")
    split_ratio = np.where(split_date > listing_date, split_ratio, 0.0)

    symbol = np.array([_symbol(i, n) for i in range(n)])
    name = _names(seed, sector_names[sector_code])

    return _Companies(
        symbol=symbol, name=name, sector=sector_names[sector_code], sector_code=sector_code,
        exchange=exchange, listing_date=listing_date, is_loss=is_loss, shares=shares, price0=price0,
        beta=beta, idio_sd=idio_sd, alpha=alpha, turnover=turnover, sp_score_noise=sp_score_noise,
        earnings_yield=earnings_yield, price_to_sales=price_to_sales, growth_q=growth_q,
        report_lag=report_lag, first_quarter=first_quarter, missing_quarter=missing_quarter,
        zero_quarter=zero_quarter, preferred_q=preferred_q, dilution=dilution, div_yield=div_yield,
        div_offset_days=div_offset_days, split_date=split_date, split_ratio=split_ratio,
    )


def _quarter_of(days: np.ndarray, first_year: int) -> np.ndarray:
    """Index (from Q1 of first_year) of the calendar quarter containing each date."""
    months = days.astype("datetime64[M]") - np.datetime64(f"{first_year}-01", "M")
    return months.astype(int) // 3


def _symbol(i: int, n: int) -> str:
    """SMP0001.. (four digits up to 9,999 companies, five beyond)."""
    return f"SMP{i + 1:0{max(4, len(str(n)))}d}"


def _names(seed: int, sectors: np.ndarray) -> np.ndarray:
    """Unique invented company names, upper case like the iShares files.

    A head and a noun make a name once (400 x 6 pairs per sector); past two thirds of a sector's
    pairs (a market of about 7,500 companies) the suffix tells names apart too, so a large market
    does not spend its draws hunting for the last free pairs."""
    rng = np.random.default_rng([seed, TAG_NAMES])
    heads = [h + t for h in NAME_HEADS for t in NAME_TAILS]
    crowded = 2 * len(heads) * len(next(iter(SECTOR_NOUNS.values()))) // 3
    used: set[tuple[str, str]] = set()
    taken: set[str] = set()
    per_sector: dict[str, int] = {}
    out = []
    for sector in sectors:
        nouns = SECTOR_NOUNS[sector]
        while True:
            head = heads[rng.integers(len(heads))]
            noun = nouns[rng.integers(len(nouns))]
            suffix = NAME_SUFFIXES[rng.integers(len(NAME_SUFFIXES))]
            name = f"{head} {noun} {suffix}"
            is_free = name not in taken if per_sector.get(sector, 0) >= crowded else (head, noun) not in used
            if is_free:
                used.add((head, noun))
                taken.add(name)
                per_sector[sector] = per_sector.get(sector, 0) + 1
                out.append(name)
                break
    return np.array(out)


# The simulated market ------------------------------------------------------------------------------


QUARTER_FIELDS = ("period_end", "report_date", "net_income_common", "exists", "net_income", "eps", "revenue")


@dataclass(frozen=True)
class _Quarters:
    period_end: np.ndarray  # Q datetime64[D]
    report_date: np.ndarray  # Q x N datetime64[D]
    net_income_common: np.ndarray  # Q x N, NaN = missing or not a company yet
    exists: np.ndarray  # Q x N bool
    net_income: np.ndarray
    eps: np.ndarray
    revenue: np.ndarray
    level: np.ndarray  # N: log business level after the last quarter, where the next one continues

    def __len__(self) -> int:
        return len(self.period_end)

    def head(self, k: int) -> "_Quarters":
        """The first k quarters, to read (its `level` stays the last quarter's: never continue from it)."""
        if k >= len(self):
            return self
        return replace(self, **{f: getattr(self, f)[:k] for f in QUARTER_FIELDS})


def _regime_params(session64: np.ndarray) -> np.ndarray:
    starts = np.array([np.datetime64(r[0], "D") for r in REGIMES])
    idx = np.searchsorted(starts, session64, side="right") - 1
    table = np.array([r[1:] for r in REGIMES])
    return table[np.clip(idx, 0, len(REGIMES) - 1)]  # T x 5: g_mu g_sd s_mu s_sd j_mu


def _n_quarters(start: date, last: date) -> int:
    """Quarters to generate for a market simulated up to `last`: through the quarter after it."""
    first_year = start.year - FIRST_QUARTER_YEARS_BEFORE
    return max(N_QUARTERS, (last.year - first_year) * 4 + (last.month - 1) // 3 + 2)


def _quarters(seed: int, start: date, co: _Companies, n_quarters: int = N_QUARTERS, prev: _Quarters | None = None) -> _Quarters:
    """Quarters 0..n_quarters-1: those of `prev` as they are, then the next ones. Quarter k's figures
    come from its own draws and the business level carried from quarter k-1, so they never depend
    on how many quarters are made, nor on whether they were made in one call or several."""
    first_year = start.year - FIRST_QUARTER_YEARS_BEFORE
    q0 = 0 if prev is None else len(prev)
    if q0 >= n_quarters:
        return prev
    q = np.arange(q0, n_quarters)
    period_end = _quarter_end(first_year, q)
    n = len(co.symbol)
    cap0 = co.shares * co.price0
    ni = np.empty((len(q), n))
    rev = np.empty((len(q), n))
    lag = np.empty((len(q), n), dtype=int)
    level = np.zeros(n) if prev is None else np.array(prev.level)
    for r, k in enumerate(q.tolist()):
        rng = np.random.default_rng([seed, TAG_QUARTER, k])
        z = rng.standard_normal((3, n))
        level = level + co.growth_q + 0.03 * z[0]  # log growth of the business
        scale = np.exp(level)
        rev[r] = cap0 / co.price_to_sales / 4 * scale * np.exp(0.04 * z[1])
        ni[r] = cap0 * (co.earnings_yield + 0.02 * z[2]) / 4 * scale
        # Q4 comes with the annual report: later. Then keep 25..60 days and move weekends to Monday.
        lag[r] = co.report_lag + (12 if k % 4 == 3 else 0) + np.round(3 * rng.standard_normal(n)).astype(int)
    lag = np.clip(lag, 25, 58)
    report = period_end[:, None] + lag.astype("timedelta64[D]")
    weekday = (report.astype("datetime64[D]").astype(int) - 4) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    report = report + np.where(weekday == 5, 2, np.where(weekday == 6, 1, 0)).astype("timedelta64[D]")

    exists = q[:, None] >= co.first_quarter[None, :]
    ni = np.where(q[:, None] == co.zero_quarter[None, :], 0.0, ni)
    ni_common = np.where(q[:, None] == co.missing_quarter[None, :], np.nan, ni)
    net_income = ni_common + co.preferred_q[None, :]
    eps = np.round(ni_common / (co.shares[None, :] * np.where(ni_common > 0, co.dilution[None, :], 1.0)), 2)
    ni_common = np.where(exists, ni_common, np.nan)
    # Figures are rounded to thousands of USD, as statements print them (+ 0.0 turns -0.0 into 0.0).
    new = _Quarters(period_end, report, np.round(ni_common, -3) + 0.0, exists, np.round(net_income, -3) + 0.0,
                    eps + 0.0, np.round(rev, -3), level)
    if prev is None:
        return new
    return _Quarters(**{f: np.concatenate([getattr(prev, f), getattr(new, f)]) for f in QUARTER_FIELDS}, level=level)


def _ttm_at(quarters: _Quarters, day: np.datetime64) -> np.ndarray:
    """TTM net income to common known on `day` (report_date <= day) per company; NaN = no data
    (fewer than four reported quarters, or one of the four missing). Callers exclude delisted
    companies themselves."""
    known = quarters.exists & (quarters.report_date <= day)
    count = known.sum(axis=0)  # reported quarters form a prefix of each company's history
    first = np.argmax(quarters.exists, axis=0)
    last = first + count - 1
    ttm = np.full(known.shape[1], np.nan)
    ok = count >= 4
    cols = np.nonzero(ok)[0]
    ttm[cols] = sum(quarters.net_income_common[last[cols] - back, cols] for back in range(4))
    return ttm


def _last_friday_of_june(year: int) -> date:
    d = date(year, 6, 30)
    return d - timedelta(days=(d.weekday() - 4) % 7)


# Storage of the bars: time blocks, in memory up to a budget, then in files --------------------------

# Dividends of a block's sessions: company, session index, USD per share (in session order).
DIVIDEND_DTYPE = np.dtype([("i", np.int64), ("t", np.int64), ("value", np.float64)])
NO_DIVIDENDS = np.zeros(0, DIVIDEND_DTYPE)


class _CacheDamaged(Exception):
    """A file of the market's cache is missing or not what its name promises."""


def _load_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype, *, mmap: bool) -> np.ndarray:
    """`path` as written by this module, or _CacheDamaged saying what is wrong with it."""
    try:
        got = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # missing, truncated (shorter than its header says), not .npy
        raise _CacheDamaged(f"{path}: {exc}") from exc
    if got.shape != shape or got.dtype != dtype:
        raise _CacheDamaged(f"{path}: holds {got.dtype}{list(got.shape)}, expected {np.dtype(dtype)}{list(shape)}")
    return got


class _Block:
    """The bars and dividends of sessions [t0, t1). Bars are one array per field: in memory as
    simulated (`arrays`, sessions x companies), and/or in files in `folder`: FIELD.npy
    company-major (companies x sessions), so that the rows of a chunk of symbols are a few
    contiguous reads; or, for the cache's last block (`is_tail`), FIELD.bin session-major with no
    header, one row of n values per session, so that a night appends its row and reads its last few.
    Dividends (DIVIDEND_DTYPE, in session order) are small: kept once read; a tail's are the first
    `tail_dividends` records of dividends.bin."""

    def __init__(self, t0: int, t1: int, n: int, arrays: dict[str, np.ndarray] | None, folder: Path | None,
                 dividends: np.ndarray | None, *, is_tail: bool = False, tail_dividends: int = 0) -> None:
        self.t0, self.t1, self.n = t0, t1, n
        self.arrays = arrays
        self.folder = folder
        self.is_tail = is_tail
        self.tail_dividends = tail_dividends
        self._dividends = dividends
        self._pinned: dict[str, np.ndarray] | None = None

    @property
    def nbytes(self) -> int:
        return BAR_BYTES_PER_CELL * self.n * (self.t1 - self.t0)

    def _open(self, field: str) -> np.ndarray:
        dtype = np.dtype(np.int64 if field == "volume" else np.float64)
        if not self.is_tail:
            return _load_npy(self.folder / f"{field}.npy", (self.n, self.t1 - self.t0), dtype, mmap=True)
        # The file may hold more rows than this block (a writer appending, or one killed before it
        # recorded them): only the rows of this block are mapped.
        return _map_rows(self.folder / f"{field}.bin", dtype, (self.t1 - self.t0, self.n))

    def pin(self) -> "_Block":
        """Open the files now and keep them open. A market's last block is replaced when the
        market grows and its files are then removed (or, for a tail, grown); an open map stays
        readable after that, so a reader holding this block never sees it vanish."""
        if self.arrays is None and self._pinned is None:
            self._pinned = {f: self._open(f) for f in BAR_FIELDS}
            _ = self.dividends
        return self

    def read(self, field: str, idx: np.ndarray, a: int, b: int) -> np.ndarray:
        """Companies `idx` (in that order) x sessions [a, b) (absolute indexes) of `field`."""
        if self.arrays is not None:
            return self.arrays[field][a - self.t0 : b - self.t0, idx].T
        if self.is_tail:
            return np.asarray(self.pin()._pinned[field][a - self.t0 : b - self.t0, idx]).T
        if self._pinned is not None:
            return np.asarray(self._pinned[field][idx, a - self.t0 : b - self.t0])
        # A memory map read and dropped at once: only the pages of the asked rows are touched.
        mapped = self._open(field)
        try:
            return np.asarray(mapped[idx, a - self.t0 : b - self.t0])
        finally:
            del mapped

    def session_major(self, field: str) -> np.ndarray:
        """All of `field` as sessions x companies (a copy where it comes from a file)."""
        if self.arrays is not None:
            return self.arrays[field]
        if self.is_tail:
            return np.array(self.pin()._pinned[field])
        return np.ascontiguousarray(self.read(field, np.arange(self.n), self.t0, self.t1).T)

    @property
    def dividends(self) -> np.ndarray:
        if self._dividends is None:
            if self.is_tail:
                got = np.array(_map_rows(self.folder / "dividends.bin", DIVIDEND_DTYPE, (self.tail_dividends,)))
            else:
                path = self.folder / "dividends.npy"
                try:
                    got = np.load(path, allow_pickle=False)
                except (OSError, ValueError, EOFError) as exc:
                    raise _CacheDamaged(f"{path}: {exc}") from exc
            if got.dtype != DIVIDEND_DTYPE or got.ndim != 1 or (len(got) and not (self.t0 <= got["t"].min() <= got["t"].max() < self.t1)):
                raise _CacheDamaged(f"{self.folder}: dividends not of sessions {self.t0}..{self.t1 - 1}")
            self._dividends = got
        return self._dividends


def _map_rows(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The first prod(shape) values of a headerless file, mapped read-only; _CacheDamaged when the
    file is missing or shorter."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    try:
        held = path.stat().st_size
        if held < size:
            raise _CacheDamaged(f"{path}: {held:,} bytes, its state names {size:,}")
        if size == 0:
            return np.zeros(shape, dtype)
        return np.memmap(path, dtype=dtype, mode="r", shape=shape)
    except OSError as exc:
        raise _CacheDamaged(f"{path}: {exc}") from exc


def _write_block(folder: Path, arrays: dict[str, np.ndarray], dividends: np.ndarray) -> None:
    """A block's files into `folder` (which exists and is empty): company-major bars, dividends."""
    for field, a in arrays.items():
        np.save(folder / f"{field}.npy", np.ascontiguousarray(a.T))
    np.save(folder / "dividends.npy", dividends)


class _Store:
    """Where finished blocks go. Without a cache: memory while the blocks held there stay within
    `memory_bytes`, then .npy files in a scratch folder of its own under `scratch_root` (the
    system's temporary folder by default), removed with the store. With a cache (`_Cache`): every
    complete block is written to the cache, and kept in memory too while within `memory_bytes`; a
    market's last, incomplete block goes to the cache's tail, by appending the new sessions."""

    def __init__(self, memory_bytes: int, scratch_root: Path | None, cache: "_Cache | None" = None) -> None:
        self.memory_bytes = memory_bytes
        self.held_bytes = 0
        self.spilled_bytes = 0
        self.cached_bytes = 0  # written to the cache by this store
        self.root = scratch_root
        self.cache = cache
        self.folder: Path | None = None
        self._count = 0

    def put(
        self, t0: int, t1: int, arrays: dict[str, np.ndarray], dividends: np.ndarray, *, is_complete: bool,
        is_last: bool, reopened: _Block | None = None,
    ) -> _Block:
        """A block of `arrays` (sessions x companies; the store keeps them: no copy in memory) and
        its `dividends`. `reopened`: the market's earlier last block, whose sessions (the first
        rows of `arrays`, not filled) and dividends this one continues. `is_last`: the market's
        last block, pinned when it lives in files only (see _Block.pin)."""
        n = next(iter(arrays.values())).shape[1]
        k = 0 if reopened is None else reopened.t1 - reopened.t0
        if self.cache is not None and not is_complete:
            # A night adds a row to the tail: it never writes the sessions before it again.
            block = self.cache.append_tail(t0, {f: a[k:] for f, a in arrays.items()}, dividends, reopened)
            self.cached_bytes += BAR_BYTES_PER_CELL * n * (t1 - t0 - k)
            return block.pin()
        if reopened is not None:
            for f in BAR_FIELDS:
                arrays[f][:k] = reopened.session_major(f)
            dividends = np.concatenate([reopened.dividends, dividends])
            self.release(reopened)
        size = BAR_BYTES_PER_CELL * n * (t1 - t0)
        in_memory = self.held_bytes + size <= self.memory_bytes
        if self.cache is not None:
            folder = self.cache.write_block(t0, t1, arrays, dividends)
            self.cached_bytes += size
        elif in_memory:
            folder = None
        else:
            folder = self._folder() / f"block{self._count:05d}"
            self._count += 1
            folder.mkdir()
            _write_block(folder, arrays, dividends)
            self.spilled_bytes += size
        if in_memory:
            self.held_bytes += size
        block = _Block(t0, t1, n, arrays if in_memory else None, folder, dividends)
        return block.pin() if is_last else block

    def release(self, block: _Block) -> None:
        """`block` was replaced by a longer one (the market grew): its memory counts no more, and
        its scratch files go (a reader still holding it has them pinned). The cache removes its
        own replaced files when it records the longer market."""
        if block.arrays is not None:
            self.held_bytes -= block.nbytes
        elif self.cache is None and block.folder is not None:
            _remove_folder(block.folder)

    def _folder(self) -> Path:
        if self.folder is None:
            root = Path(self.root) if self.root is not None else Path(tempfile.gettempdir())
            root.mkdir(parents=True, exist_ok=True)
            _remove_orphans(root)
            self.folder = Path(tempfile.mkdtemp(prefix=f"sample-{os.getpid()}-", dir=root))
            weakref.finalize(self, _remove_folder, self.folder)
        return self.folder


def _remove_folder(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except OSError as exc:  # often at interpreter exit: say what is left; the next store removes it
        print(f"sample source: could not remove its scratch folder {folder}: {exc}", file=sys.stderr)


def _append(path: Path, keep_bytes: int, values: np.ndarray) -> None:
    """`values` written after the first `keep_bytes` of `path` (created if missing): what a killed
    writer appended beyond them is cut off first."""
    with open(path, "r+b" if path.exists() else "wb") as out:
        out.truncate(keep_bytes)
        out.seek(keep_bytes)
        out.write(np.ascontiguousarray(values).tobytes())


def _remove(path: Path) -> None:
    """A file or a folder, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_orphans(root: Path) -> None:
    """Our scratch folders of processes that died without removing them (killed, out of memory)."""
    for folder in root.glob("sample-*-*"):
        pid = folder.name.split("-")[1]
        if not pid.isdigit() or _is_alive(int(pid)) or folder.stat().st_uid != os.getuid():
            continue
        _remove_folder(folder)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _block_sessions(n: int) -> int:
    return max(16, min(BLOCK_SESSIONS, BLOCK_BYTES_MAX // (BAR_BYTES_PER_CELL * n)))


# The simulated market up to one end ----------------------------------------------------------------


@dataclass
class _Carry:
    """What session T needs from the sessions before it: the state a later end continues from."""

    level: np.ndarray  # cumulative g, s, j so far
    trend: np.ndarray  # cumulative drifts of g, s, j so far
    price: np.ndarray  # unrounded price path (NaN before listing)
    c_prev: np.ndarray  # the previous session's close, delisted companies included
    ring: np.ndarray  # RING x n: close of session t in row t % RING (NaN where not listed)
    growth: np.ndarray  # dividend total-return factor since each company's first session
    rus: np.ndarray  # members after the last session (bool)
    sp: np.ndarray
    delist_idx: np.ndarray  # first session without a bar (NEVER, or possibly beyond the sessions)

    def copy(self) -> "_Carry":
        return replace(self, **{k: np.copy(v) for k, v in vars(self).items() if isinstance(v, np.ndarray)})


@dataclass(frozen=True)
class _Epoch:
    """Members from session `t` until the next epoch (membership changes only at reconstitutions)."""

    t: int
    members: dict[str, np.ndarray]  # universe -> sorted company indexes


@dataclass(frozen=True)
class _Market:
    """The market simulated from `start` to `sessions[-1]`; never changed once built (a later end
    builds a new one from `carry`, sharing the blocks), so readers in other threads are safe."""

    sessions: list[date]
    session64: np.ndarray  # datetime64[D]
    first_idx: np.ndarray  # first session index each company trades (T if not yet)
    delist_idx: np.ndarray  # first session without a bar, or a huge number
    epochs: tuple[_Epoch, ...]
    blocks: tuple[_Block, ...]  # bars by time, in order (empty for a membership-only market)
    quarters: "_Quarters"
    g: np.ndarray  # T: broad-market factor
    fac: np.ndarray  # T x N_INDEX_NOISE: index-level noise
    levels: dict[str, np.ndarray]  # ^RUT, ^SP600 levels (T)
    volumes: dict[str, np.ndarray]  # ^RUT, ^SP600 member volume (T)
    carry: _Carry

    @cached_property
    def last_idx(self) -> np.ndarray:
        """Last session index with a bar (T-1 unless delisted before)."""
        return np.minimum(self.delist_idx, len(self.sessions)) - 1

    @cached_property
    def _index_series(self) -> dict[str, tuple[np.ndarray, ...]]:
        return _indexes(self.g, self.fac, self.levels, self.volumes)

    def index_bars(self, symbols: Sequence[str], a: int, b: int) -> pl.DataFrame:
        """Bars of the index `symbols` (in INDEX_SYMBOLS order) for sessions [a, b): the series are
        a few numbers per session, the frame is built for the window only."""
        frames = []
        for sym in (s for s in INDEX_SYMBOLS if s in symbols):
            o, h, lo, c, volume = (x[a:b] if x is not None else None for x in self._index_series[sym])
            frames.append(
                pl.DataFrame(
                    {
                        "symbol": pl.Series([sym]).gather(np.zeros(b - a, dtype=np.int64)),
                        "session_date": self.session64[a:b], "open": o, "high": h, "low": lo, "close": c, "adj_close": c,
                        "volume": pl.Series(volume, dtype=pl.Int64) if volume is not None else pl.Series([None] * (b - a), dtype=pl.Int64),
                    }
                )
            )
        return conform(pl.concat(frames), BARS_SCHEMA, "sample index bars")

    def actions(self, co: _Companies, idx: np.ndarray, a: int, b: int) -> pl.DataFrame:
        """Dividends and splits of companies `idx` with ex-dates in sessions [a, b), ordered by
        session, symbol, action: read from the blocks of those sessions only."""
        divs = [blk.dividends for blk in self.blocks if blk.t0 < b and blk.t1 > a]
        d = np.concatenate(divs) if divs else NO_DIVIDENDS
        d = d[(d["t"] >= a) & (d["t"] < b) & np.isin(d["i"], idx)]
        s_i, s_t = _splits(self.session64, co, self.first_idx, self.last_idx)
        keep = (s_t >= a) & (s_t < b) & np.isin(s_i, idx)
        s_i, s_t = s_i[keep], s_t[keep]
        frame = pl.DataFrame(
            {
                "symbol": co.symbol[np.concatenate([d["i"], s_i])],
                "ex_date": self.session64[np.concatenate([d["t"], s_t])],
                "idx": np.concatenate([d["t"], s_t]),
                "action": ["dividend"] * len(d) + ["split"] * len(s_i),
                "value": np.concatenate([d["value"], co.split_ratio[s_i]]),
            },
            schema=_ACTIONS_WITH_IDX,
        )
        return conform(frame.sort("idx", "symbol", "action"), ACTIONS_SCHEMA, "sample actions")

    def epoch_spans(self, a: int, b: int) -> Iterator[tuple[int, int, _Epoch]]:
        """(from, to, epoch) for the parts of sessions [a, b) each epoch covers."""
        ends = [e.t for e in self.epochs[1:]] + [len(self.sessions)]
        for epoch, end in zip(self.epochs, ends):
            lo, hi = max(a, epoch.t), min(b, end)
            if lo < hi:
                yield lo, hi, epoch

    def members_at(self, universe: str, t: int) -> np.ndarray:
        k = bisect.bisect_right([e.t for e in self.epochs], t) - 1
        return self.epochs[k].members[universe]

    def read(self, field: str, idx: np.ndarray, a: int, b: int) -> np.ndarray:
        """len(idx) x (b - a) values of `field` (company-major), read block by block."""
        parts = [blk.read(field, idx, max(a, blk.t0), min(b, blk.t1)) for blk in self.blocks if blk.t0 < b and blk.t1 > a]
        if not parts:
            dtype = np.int64 if field == "volume" else np.float64
            return np.empty((len(idx), 0), dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _simulate(
    seed: int, start: date, last: date, co: _Companies, prev: _Market | None, store: _Store | None, *, full: bool = True
) -> _Market:
    """The market up to `last`, continuing `prev` (the same market to an earlier end) when given.

    One pass over the sessions, in order: each session's draws, closes, the reconstitution that
    happens on it, then its bars into the current block. Everything a session reads is in `carry`
    or in the per-session series, so the pass never holds more than a block of bars.
    """
    if not full and prev is not None:
        raise ValueError("a membership-only market keeps no closes to continue from: simulate it again")
    sessions = calendar.sessions(start, last)
    if not sessions:
        raise ValueError(f"the sample market has no NYSE session in {start}..{last}")
    T, n = len(sessions), len(co.symbol)
    T0 = 0 if prev is None else len(prev.sessions)
    session64 = np.array(sessions, dtype="datetime64[D]")
    first_idx = np.searchsorted(session64, co.listing_date, side="left")  # first session on/after listing
    quarters = _quarters(seed, start, co, _n_quarters(start, last), prev.quarters if prev is not None else None)
    params = _regime_params(session64[T0:])

    if prev is None:
        carry = _Carry(
            level=np.zeros(3), trend=np.zeros(3), price=np.full(n, np.nan), c_prev=np.full(n, np.nan),
            ring=np.full((RING, n), np.nan), growth=np.ones(n), rus=np.zeros(n, bool), sp=np.zeros(n, bool),
            delist_idx=np.full(n, NEVER),
        )
        epochs: list[_Epoch] = []
        blocks: list[_Block] = []
    else:
        carry = prev.carry.copy()
        epochs, blocks = list(prev.epochs), list(prev.blocks)

    def grown(old: np.ndarray | None, shape_tail: tuple = (), dtype=float) -> np.ndarray:
        out = np.zeros((T, *shape_tail), dtype)
        if old is not None:
            out[:T0] = old
        return out

    g = grown(prev.g if prev else None)
    fac = grown(prev.fac if prev else None, (N_INDEX_NOISE,))
    levels = {u: grown(prev.levels[u] if prev else None) for u in ("^RUT", "^SP600")}
    volumes = {u: grown(prev.volumes[u] if prev else None, dtype=np.int64) for u in ("^RUT", "^SP600")}

    recon: dict[int, int] = {}
    for year in range(sessions[T0].year, sessions[-1].year + 1):
        friday = _last_friday_of_june(year)
        day = calendar.session_on_or_before(friday)
        if (friday - day).days > 6:  # the calendar ends before that June (it runs 400 days ahead)
            continue
        i = bisect.bisect_left(sessions, day)
        if max(T0, 1) <= i < T and sessions[i] == day:
            recon[i] = year
    div_t, div_i = _dividend_schedule(session64, co, T0, T) if full else (np.zeros(0, int), np.zeros(0, int))
    # Without bars, closes matter only where a reconstitution reads them: its rank day and itself.
    close_days = {0} | set(recon) | {max(0, t - RANK_LAG) for t in recon}
    div_at = np.searchsorted(div_t, np.arange(T0, T + 1), side="left")

    B = _block_sessions(n)
    buffers = {f: np.empty((B, n), np.int64 if f == "volume" else np.float64) for f in BAR_FIELDS} if full else {}
    block_t0 = T0
    block_dividends: list[np.ndarray] = []
    # Blocks start every B sessions whatever ends the market was built to: a last block cut short by
    # an earlier end is reopened and completed, so a market grown night by night is stored as the
    # same blocks as one built at once (and its cache as the same files).
    # Its sessions are read only if the block completes (or the store keeps whole blocks): a night
    # on a cached market appends its row to the cache's tail.
    reopened = None
    if full and blocks and blocks[-1].t1 - blocks[-1].t0 < B:
        reopened = blocks.pop()
        block_t0 = reopened.t0
    sig2 = co.idio_sd**2 / 2
    n_z = 3 + len(SECTORS) + N_INDEX_NOISE
    members_idx = {u: np.nonzero(m)[0] for u, m in (("^RUT", carry.rus), ("^SP600", carry.sp))}
    for t in range(T0, T):
        rng = np.random.default_rng([seed, TAG_SESSION, t])
        z = rng.standard_normal(n_z)
        # Membership needs only the closes: their noise is the first row of the bars' four, the
        # same numbers whether or not the other three rows are drawn after it.
        e = rng.standard_normal((4, n) if full else (1, n))
        g_mu, g_sd, s_mu, s_sd, j_mu = params[t - T0]
        mu = np.array([g_mu, s_mu, j_mu])
        carry.trend += mu
        step = mu + FACTOR_REVERSION * (carry.trend - mu - carry.level) + np.array([g_sd, s_sd, JUNK_SD]) * z[:3]
        carry.level += step
        g[t], s_t, j = step
        m = SMALL_BETA_TO_BROAD * g[t] + s_t
        sector = SECTOR_SD * z[3 : 3 + len(SECTORS)]
        fac[t] = z[3 + len(SECTORS) :]
        x = co.alpha + co.beta * m + co.is_loss * j + sector[co.sector_code] + co.idio_sd * e[0] - sig2
        prev_close = carry.c_prev
        price = carry.price * np.exp(x)
        new = first_idx == t
        price[new] = co.price0[new]
        carry.price = price
        if not (full or t in close_days):
            continue
        c = np.round(np.maximum(price, 0.01), 4)  # NaN exactly where not listed yet

        # Index levels: the members of the previous snapshot, priced yesterday and today. Members
        # trade on both sessions (listed before the rank day, never delisted while members).
        if t > 0 and full:
            for u in ("^RUT", "^SP600"):
                idx = members_idx[u]
                before = (co.shares[idx] * prev_close[idx]).sum()
                after = (co.shares[idx] * c[idx]).sum()
                levels[u][t] = levels[u][t - 1] * after / before
        elif t == 0:
            levels["^RUT"][0], levels["^SP600"][0] = INDEX_BASE["^RUT"], INDEX_BASE["^SP600"]

        if t == 0:
            carry.rus[:N_FOUNDING] = True
            cap = np.nan_to_num(c) * co.shares
            carry.sp = _select_sp600(carry.sp, 0, session64, co, quarters, cap, first_idx, carry.delist_idx)
        elif t in recon:
            rank_cap = np.nan_to_num(carry.ring[max(0, t - RANK_LAG) % RING]) * co.shares
            _reconstitute(seed, recon[t], t, carry, session64, co, quarters, rank_cap, np.nan_to_num(c) * co.shares, first_idx)
        if t == 0 or t in recon:
            members_idx = {"^RUT": np.nonzero(carry.rus)[0], "^SP600": np.nonzero(carry.sp)[0]}
            epochs.append(_Epoch(t, {"russell2000": members_idx["^RUT"], "sp600": members_idx["^SP600"]}))

        if full:
            r = t - block_t0
            payers = div_i[div_at[t - T0] : div_at[t - T0 + 1]]
            _bars_row(buffers, r, co, t, c, prev_close, price, new, e, x, carry, first_idx, payers, block_dividends)
            for u in ("^RUT", "^SP600"):
                volumes[u][t] = buffers["volume"][r, members_idx[u]].sum()
            if r == B - 1 or t == T - 1:
                done = {f: buffers[f][: r + 1].copy() if r < B - 1 else buffers[f] for f in BAR_FIELDS}
                dividends = np.concatenate(block_dividends) if block_dividends else NO_DIVIDENDS
                blocks.append(store.put(block_t0, t + 1, done, dividends, is_complete=r == B - 1, is_last=t == T - 1, reopened=reopened))
                block_dividends, reopened = [], None
                if t < T - 1:
                    buffers = {f: np.empty_like(a) for f, a in buffers.items()}
                block_t0 = t + 1
        carry.ring[t % RING] = c
        carry.c_prev = c

    return _Market(
        sessions=sessions, session64=session64, first_idx=first_idx, delist_idx=carry.delist_idx.copy(),
        epochs=tuple(epochs), blocks=tuple(blocks), quarters=quarters, g=g, fac=fac, levels=levels, volumes=volumes,
        carry=carry,
    )


def _bars_row(
    buffers, r, co: _Companies, t, c, prev_close, price, new, e, x, carry: _Carry, first_idx, payers, dividends
) -> None:
    """Session t's bars into row r of the block buffers; its dividends (DIVIDEND_DTYPE) onto `dividends`."""
    # Open: part of the day's move happens overnight; the first bar opens at its close's level.
    o = np.where(new, c * np.exp(0.01 * e[1]), prev_close * np.exp(0.35 * x + 0.25 * co.idio_sd * e[1]))
    o = np.round(o, 4)
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    hi = np.round(top * np.exp(0.4 * co.idio_sd * np.abs(e[2])), 4)
    lo = np.round(bottom * np.exp(-0.4 * co.idio_sd * np.abs(e[3])), 4)
    trading = np.isfinite(price) & (t < carry.delist_idx)  # delisted companies stop trading
    close = buffers["close"][r]
    close[:] = np.where(trading, c, np.nan)
    buffers["open"][r] = np.where(trading, o, np.nan)
    buffers["high"][r] = np.where(trading, np.maximum(hi, top), np.nan)
    buffers["low"][r] = np.where(trading, np.minimum(lo, bottom), np.nan)
    # Busy days trade more: volume rises with the size of the move.
    v = co.shares * co.turnover * np.exp(0.4 * e[2] - 0.08 + 6 * np.abs(x))
    buffers["volume"][r] = np.where(trading, np.maximum(1, np.round(v)), 0).astype(np.int64)

    # Dividends: ex-dates of this session, of companies trading since before it and not delisted;
    # the amount is set from a past close (a known yield on a known price).
    i = payers[(t > first_idx[payers]) & (t < carry.delist_idx[payers])]
    if len(i):
        ref = np.maximum(t - DIVIDEND_PRICE_LAG, first_idx[i])
        dps = np.maximum(0.01, np.round(co.div_yield[i] / 4 * carry.ring[ref % RING, i], 2))
        # Forward-accumulated total-return factor: 1 on a company's first session, never revised.
        carry.growth[i] = carry.growth[i] * ((close[i] + dps) / close[i])
        paid = np.zeros(len(i), DIVIDEND_DTYPE)
        paid["i"], paid["t"], paid["value"] = i, t, dps
        dividends.append(paid)
    buffers["adj_close"][r] = close * carry.growth


def _dividend_schedule(session64: np.ndarray, co: _Companies, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """Ex-date session index and company of every quarterly dividend falling in sessions [t0, t1),
    sorted by session: a fixed number of days into each calendar quarter, the first session on or
    after that day. Listing and delisting are checked when the session comes."""
    payers = np.nonzero(co.div_yield > 0)[0]
    first_q = session64[t0].astype("datetime64[M]").astype(int) // 3 - 1  # an ex-date can roll into t0
    last_q = session64[t1 - 1].astype("datetime64[M]").astype(int) // 3
    rows_i, rows_t = [], []
    for q in range(first_q, last_q + 1):
        q_start = np.datetime64(f"{1970 + q // 4}-{(q % 4) * 3 + 1:02d}-01", "D")
        ex = q_start + co.div_offset_days[payers].astype("timedelta64[D]")
        t = np.searchsorted(session64, ex, side="left")
        ok = (t >= t0) & (t < t1)
        rows_i.append(payers[ok])
        rows_t.append(t[ok])
    i = np.concatenate(rows_i) if rows_i else np.zeros(0, int)
    t = np.concatenate(rows_t) if rows_t else np.zeros(0, int)
    order = np.argsort(t, kind="stable")
    return t[order], i[order]


def _reconstitute(seed, year, t, carry: _Carry, session64, co: _Companies, quarters, rank_cap, cap, first_idx) -> None:
    """The yearly reconstitution on session t: russell2000 by cap on the rank day, sp600 by the
    S&P-like rule, and the delisting of some of the companies that left both."""
    n = len(co.symbol)
    rank_t = max(0, t - RANK_LAG)
    rus, sp = carry.rus, carry.sp
    eligible = (first_idx <= rank_t) & (carry.delist_idx == NEVER)
    c = rank_cap
    lower = np.quantile(c[rus], DROP_BOTTOM_QUANTILE)
    upper = GRADUATE_MULTIPLE * np.median(c[rus])
    keep = rus & eligible & (c >= lower) & (c <= upper)
    # The largest non-members refill, those above the drop line first: only when too few of them
    # are left (after years of small companies drifting down) do smaller ones get a seat.
    candidates = np.nonzero(~rus & eligible & (c <= upper))[0]
    room = N_FOUNDING - keep.sum()
    add = candidates[np.argsort(-c[candidates], kind="stable")][: max(room, 0)]
    new_rus = keep.copy()
    new_rus[add] = True
    new_sp = _select_sp600(sp, t, session64, co, quarters, cap, first_idx, carry.delist_idx)
    # Some of the companies that left both universes later delist (acquired, bankrupt).
    left = (rus | sp) & ~(new_rus | new_sp)
    rng = np.random.default_rng([seed, TAG_DELIST, year])
    u, k = rng.random(n), rng.integers(DELIST_AFTER_SESSIONS[0], DELIST_AFTER_SESSIONS[1], n)
    delisting = left & (u < DELIST_SHARE)
    pool = int((eligible & ~new_rus & ~new_sp & (c <= upper)).sum())
    allowed = max(0, pool - round(REFILL_FLOOR_SHARE * _layout(n).n_pool))
    if delisting.sum() > allowed:  # at the floor: the smallest draws delist, the others stay listed
        chosen = np.nonzero(delisting)[0]
        delisting = np.zeros(n, bool)
        delisting[chosen[np.argsort(u[chosen], kind="stable")][:allowed]] = True
    # A session index, possibly beyond the simulated sessions: it holds whatever the end.
    carry.delist_idx = np.where(delisting, t + k, carry.delist_idx)
    carry.rus, carry.sp = new_rus, new_sp


def _select_sp600(current, t, session64, co, quarters, cap, first_idx, delist_idx):
    """The S&P-600-like rule: positive TTM net income known at the selection session; seats go by a
    size score (log cap plus a fixed per-company taste); members keep seats within a buffer."""
    ttm = _ttm_at(quarters, session64[t])
    eligible = (first_idx <= t) & (delist_idx == NEVER) & (ttm > 0)
    score = np.where(eligible, np.log(np.maximum(cap, 1.0)) + co.sp_score_noise, -np.inf)
    order = np.argsort(-score, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    keep = current & eligible & (rank < SP600_BUFFER)
    room = SP600_SIZE - int(keep.sum())
    fill = [i for i in order[: SP600_SIZE + SP600_BUFFER] if eligible[i] and not keep[i]][: max(room, 0)]
    new = keep.copy()
    new[fill] = True
    return new


_ACTIONS_WITH_IDX = {**ACTIONS_SCHEMA, "idx": pl.Int64}  # idx: session index, for slicing


def _splits(session64, co: _Companies, first_idx, last_idx) -> tuple[np.ndarray, np.ndarray]:
    """Company and session index of every split on a session where the company trades (and has
    traded before: a split on the first bar would change nothing)."""
    T = len(session64)
    has = np.nonzero(co.split_ratio > 0)[0]
    t = np.searchsorted(session64, co.split_date[has], side="left")
    ok = (t < T) & (t > first_idx[has]) & (t <= last_idx[has])
    return has[ok], t[ok]


def _ohlc(close: np.ndarray, noise: np.ndarray, spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open/high/low around an index close path: the open sits between yesterday's and today's close."""
    prev = np.concatenate([[close[0] / np.exp(spread * noise[0, 0])], close[:-1]])
    o = prev + (close - prev) * np.clip(0.3 + 0.2 * noise[:, 0], 0, 1)
    hi = np.maximum(o, close) * np.exp(spread * np.abs(noise[:, 1]))
    lo = np.minimum(o, close) * np.exp(-spread * np.abs(noise[:, 2]))
    return np.round(o, 2), np.round(np.maximum(hi, np.maximum(o, close)), 2), np.round(np.minimum(lo, np.minimum(o, close)), 2)


def _indexes(g, fac, levels_cap, volumes_cap) -> dict[str, tuple[np.ndarray, ...]]:
    """The five index series from the per-session factors and the cap-weighted levels: symbol ->
    open, high, low, close, volume (None for ^VIX), one value per session."""
    T = len(g)
    levels, volumes = dict(levels_cap), dict(volumes_cap)
    # The broad market: the first session is the base level; later sessions compound g.
    g_path = np.concatenate([[0.0], g[1:]])
    levels["^GSPC"] = INDEX_BASE["^GSPC"] * np.exp(np.cumsum(g_path))
    ixic = IXIC_BETA * g_path + 0.004 * fac[:, 15] * (np.arange(T) > 0)
    levels["^IXIC"] = INDEX_BASE["^IXIC"] * np.exp(np.cumsum(ixic))
    volumes["^GSPC"] = np.round(4.0e9 * np.exp(0.15 * fac[:, 16] + 8 * np.abs(g_path))).astype(np.int64)
    volumes["^IXIC"] = np.round(7.0e9 * np.exp(0.15 * fac[:, 17] + 8 * np.abs(ixic))).astype(np.int64)
    # VIX: realized broad-market volatility (EWMA of squared returns), annualized, mapped to implied.
    var = np.empty(T)
    v = VIX_START_SD**2
    for t in range(T):
        v = VIX_LAMBDA * v + (1 - VIX_LAMBDA) * g_path[t] ** 2 if t else v
        var[t] = v
    realized = 100 * np.sqrt(252 * var)
    vix = np.clip((VIX_FLOOR_PTS + VIX_SLOPE * realized) * np.exp(0.04 * fac[:, 18]), 9.0, 90.0)
    levels["^VIX"] = vix

    series = {}
    for k, sym in enumerate(INDEX_SYMBOLS):
        c = np.round(levels[sym], 2)
        spread = 0.03 if sym == "^VIX" else 0.004
        o, h, lo = _ohlc(c, fac[:, 3 * k : 3 * k + 3], spread)
        series[sym] = (o, h, lo, c, volumes.get(sym))
    return series


# The market kept in the data home between runs -------------------------------------------------------

CACHE_FORMAT = 2  # the layout of the cache's files: part of the key, so a new layout starts afresh
LOAD_ATTEMPTS = 5  # a state replaced by a writer while it was read is read again, this many times


@lru_cache(maxsize=1)
def _code_version() -> str:
    """What the simulated values depend on besides seed, start and size: this module's code (any
    edit, even to a comment, starts a new cache: safer than a version number someone must
    remember to bump), numpy's generators (their streams may change between numpy versions) and
    the cache's file layout. The NYSE calendar is checked separately, session by session."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"numpy {np.__version__}; cache format {CACHE_FORMAT}".encode())
    return digest.hexdigest()[:12]


def _cache_key(seed: int, start: date, companies: int) -> str:
    return f"market-{seed}-{start:%Y%m%d}-{companies}-{_code_version()}"


def _sessions_digest(session64: np.ndarray) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(np.ascontiguousarray(session64, dtype="datetime64[D]").tobytes()).digest(), np.uint8)


class _Cache:
    """The simulated market of one key (seed, start, companies, code version) in `root` (the data
    home's cache/sample), so that a run continues from where the last one stopped instead of
    simulating the history again.

    root/market-KEY/state-T.npz                the stream after session T-1 (the carry, the index
                                               factors and levels, the member lists): what the next
                                               session needs, and what reading the first T needs
    root/market-KEY/blocks/T0-T1/FIELD.npy     bars and dividends of sessions [T0, T1) (company-major),
                                               a block every B sessions, written once when complete
    root/market-KEY/tail-T0/FIELD.bin          the sessions since the last complete block, one row
                                               each (session-major, no header): a night appends its row
    root/market-KEY/quarters-Q/FIELD.npy       the first Q quarters of fundamentals
    root/market-KEY/companies.npz              the companies
    root/market-KEY.lock                       held shared by every source using the key
    root/market-KEY.write.lock                 held by the one process writing to the key

    Files are written under a temporary name and renamed into place once complete, except the
    tail, which grows by appending; a state is written only after everything it names, and names
    how many rows (and dividends) of the tail are its own. So a killed writer leaves the last state
    and what it names as they were, plus leftovers the next writer removes (or, for the tail, cuts
    off before appending). Nothing a state names ever changes; a writer removes what the newest
    state does not need: older states, the tail of a block now complete, fewer quarters (a reader
    that loaded them keeps the tail and the quarters open, so they stay readable for it). What a
    load reads is checked (shapes and sizes, sessions against the calendar, every named file
    present); anything wrong removes the key's folder, with a log line, and the market is
    simulated again. Writing a key removes the other keys of `root` that no source is using."""

    def __init__(self, root: Path, seed: int, start: date, companies: int) -> None:
        self.root = Path(root)
        self.seed, self.start, self.n = seed, start, companies
        self.key = _cache_key(seed, start, companies)
        self.folder = self.root / self.key
        self.block_sessions = _block_sessions(companies)
        self._user_fd: int | None = None
        self._write_fd: int | None = None
        self._write_depth = 0

    # locks ----------------------------------------------------------------------------------------

    def attach(self) -> None:
        """Hold the key's lock shared for as long as this cache object lives: a writer of another
        key removes this one only when it can take that lock exclusively, i.e. nobody uses it."""
        if self._user_fd is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{self.key}.lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # the key was removed while we waited for its lock: take the new file's
        self._user_fd = fd
        weakref.finalize(self, os.close, fd)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """The key's write lock (re-entrant within this object; callers serialise their threads)."""
        self.attach()
        if self._write_depth == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / f"{self.key}.write.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._write_fd = fd
        self._write_depth += 1
        try:
            yield
        finally:
            self._write_depth -= 1
            if self._write_depth == 0:
                os.close(self._write_fd)
                self._write_fd = None

    # reading --------------------------------------------------------------------------------------

    def states(self) -> list[int]:
        """Session counts of the states in place, ascending."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(int(name[6:-4]) for name in names if re.fullmatch(r"state-\d{6}\.npz", name))

    def load(self, co: _Companies) -> _Market | None:
        """The longest market in the cache, checked; None when there is none, or when what is
        there is damaged (then it is removed, with a log line)."""
        self.attach()
        for _ in range(LOAD_ATTEMPTS):
            states = self.states()
            if not states:
                return None
            try:
                return self._read(co, states[-1])
            except _CacheDamaged as exc:
                with self.writing():
                    if self.states()[-1:] == states[-1:]:  # still the newest: damaged, not replaced
                        self.discard(str(exc))
                        return None
        raise RuntimeError(
            f"sample market cache {self.folder}: its state changed {LOAD_ATTEMPTS} times while it was read; "
            "is another process rebuilding it in a loop? Stop it, or remove the folder"
        )

    def _read(self, co: _Companies, T: int) -> _Market:
        path = self.folder / f"state-{T:06d}.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                st = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise _CacheDamaged(f"{path}: {exc}") from exc
        n, R = self.n, RING
        shapes = {
            "format": (1,), "companies": (1,), "block_sessions": (1,), "sessions": (1,), "sessions_sha256": (32,),
            "level": (3,), "trend": (3,), "price": (n,), "c_prev": (n,), "ring": (R, n), "growth": (n,),
            "rus": (n,), "sp": (n,), "delist_idx": (n,), "g": (T,), "fac": (T, N_INDEX_NOISE),
            "level_rut": (T,), "level_sp600": (T,), "volume_rut": (T,), "volume_sp600": (T,), "tail_dividends": (1,),
        }
        wrong = [k for k, shape in shapes.items() if k not in st or st[k].shape != shape]
        wrong += [k for k in ("epoch_t", "epoch_counts", "epoch_members") if k not in st]
        if wrong:
            raise _CacheDamaged(f"{path}: missing or misshapen {', '.join(wrong)}")
        expected = {"format": CACHE_FORMAT, "companies": n, "block_sessions": self.block_sessions, "sessions": T}
        for k, want in expected.items():
            if int(st[k][0]) != want:
                raise _CacheDamaged(f"{path}: {k} is {int(st[k][0])}, expected {want}")
        sessions = calendar.sessions(self.start, date.max)[:T]
        session64 = np.array(sessions, dtype="datetime64[D]")
        if len(sessions) < T or not np.array_equal(_sessions_digest(session64), st["sessions_sha256"]):
            raise _CacheDamaged(f"{path}: the NYSE calendar's sessions since {self.start} are not those it was simulated on")
        e_t, counts, members = st["epoch_t"], st["epoch_counts"], st["epoch_members"]
        E = len(e_t)
        if (E == 0 or e_t[0] != 0 or np.any(np.diff(e_t) <= 0) or e_t[-1] >= T or counts.shape != (E, len(UNIVERSES))
                or counts.sum() != len(members) or (len(members) and not 0 <= members.min() <= members.max() < n)):
            raise _CacheDamaged(f"{path}: its member lists are inconsistent")
        bounds = np.concatenate([[0], np.cumsum(counts.ravel())])
        epochs = tuple(
            _Epoch(int(t), {u: members[bounds[k * len(UNIVERSES) + j] : bounds[k * len(UNIVERSES) + j + 1]] for j, u in enumerate(UNIVERSES)})
            for k, t in enumerate(e_t)
        )
        blocks_dir = self.folder / "blocks"
        try:
            present = set(os.listdir(blocks_dir))
        except FileNotFoundError:
            present = set()
        spans = self._spans(T)
        missing = [f"{t0:06d}-{t1:06d}" for t0, t1 in spans if f"{t0:06d}-{t1:06d}" not in present]
        if missing:
            raise _CacheDamaged(f"{path}: names block(s) {', '.join(missing[:3])} that {blocks_dir} does not hold")
        blocks = [_Block(t0, t1, n, None, blocks_dir / f"{t0:06d}-{t1:06d}", None) for t0, t1 in spans]
        tail_t0 = spans[-1][1] if spans else 0
        if tail_t0 < T:
            tail = _Block(tail_t0, T, n, None, self.folder / f"tail-{tail_t0:06d}", None, is_tail=True,
                          tail_dividends=int(st["tail_dividends"][0]))
            blocks.append(tail)
        blocks[-1].pin()
        carry = _Carry(
            level=st["level"], trend=st["trend"], price=st["price"], c_prev=st["c_prev"], ring=st["ring"],
            growth=st["growth"], rus=st["rus"].astype(bool), sp=st["sp"].astype(bool), delist_idx=st["delist_idx"],
        )
        return _Market(
            sessions=sessions, session64=session64,
            first_idx=np.searchsorted(session64, co.listing_date, side="left"), delist_idx=carry.delist_idx.copy(),
            epochs=epochs, blocks=tuple(blocks), quarters=self.quarters(co, _n_quarters(self.start, sessions[-1])),
            g=st["g"], fac=st["fac"], levels={"^RUT": st["level_rut"], "^SP600": st["level_sp600"]},
            volumes={"^RUT": st["volume_rut"], "^SP600": st["volume_sp600"]}, carry=carry,
        )

    def companies(self) -> _Companies:
        """The companies of the key: read from the cache (making 10,000 invented names costs 0.2 s
        of a night), or made and written there."""
        self.attach()
        path = self.folder / "companies.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                got = {k: z[k] for k in z.files}
            names = [f.name for f in fields(_Companies)]
            if sorted(got) != sorted(names) or any(v.shape != (self.n,) for v in got.values()) or got["symbol"][-1] != _symbol(self.n - 1, self.n):
                raise ValueError(f"not the {self.n:,} companies of this market")
            return _Companies(**got)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("sample market cache: %s: %s; making the companies again", path, exc)
            with self.writing():
                _remove(path)
        co = _companies(self.seed, self.start, self.n)
        with self.writing():
            self._write_companies(co)
        return co

    def _write_companies(self, co: _Companies) -> None:
        path = self.folder / "companies.npz"
        if path.exists():
            return
        staged = self.folder / f".tmp-{os.getpid()}-companies.npz"
        with open(staged, "wb") as out:
            np.savez(out, **{f.name: getattr(co, f.name) for f in fields(_Companies)})
        self._place(staged, path)

    def _spans(self, T: int) -> list[tuple[int, int]]:
        """The complete blocks of a market of T sessions (the sessions after them are the tail)."""
        B = self.block_sessions
        return [(t0, t0 + B) for t0 in range(0, T - T % B, B)]

    def quarters(self, co: _Companies, needed: int) -> _Quarters:
        """At least `needed` quarters: the most the cache holds (memory-mapped, opened now), and
        any more computed from them and written."""
        stored = None
        for Q in self._quarter_counts()[::-1]:
            folder = self.folder / f"quarters-{Q:04d}"
            try:
                stored = self._read_quarters(folder, Q)
                break
            except _CacheDamaged as exc:
                with self.writing():
                    # A writer that stored more quarters removes the fewer ones: listed here just
                    # before it did, they are gone, not damaged. Under the write lock nobody
                    # removes any, so the second listing is the one to read.
                    if self._quarter_counts()[-1:] != [Q]:
                        return self.quarters(co, needed)
                    log.warning("sample market cache: %s; computing those quarters again", exc)
                    _remove(folder)
        got = _quarters(self.seed, self.start, co, needed, stored)
        if got is not stored:
            with self.writing():
                self._write_quarters(got)
        return got

    def _quarter_counts(self) -> list[int]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(int(name[9:]) for name in names if re.fullmatch(r"quarters-\d{4}", name))

    def _read_quarters(self, folder: Path, Q: int) -> _Quarters:
        n = self.n
        day, f8 = np.dtype("datetime64[D]"), np.dtype(np.float64)
        spec = {
            "period_end": ((Q,), day), "report_date": ((Q, n), day), "net_income_common": ((Q, n), f8),
            "exists": ((Q, n), np.dtype(bool)), "net_income": ((Q, n), f8), "eps": ((Q, n), f8), "revenue": ((Q, n), f8),
        }
        got = {f: _load_npy(folder / f"{f}.npy", shape, dtype, mmap=True) for f, (shape, dtype) in spec.items()}
        return _Quarters(**got, level=np.array(_load_npy(folder / "level.npy", (n,), f8, mmap=False)))

    # writing (under the write lock) -----------------------------------------------------------------

    def _staging(self) -> Path:
        return Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=self.folder))

    def _place(self, staged: Path, final: Path) -> None:
        """Rename a complete staged file or folder into place. Under the write lock nobody else
        writes; something already there is a leftover of a run that stopped before recording its
        state (tidy() removes those before a market grows), replaced: only what this run wrote
        and checked is named by its state."""
        _remove(final)
        os.rename(staged, final)

    def append_tail(self, t0: int, arrays: dict[str, np.ndarray], dividends: np.ndarray, reopened: _Block | None) -> _Block:
        """The tail from session t0: the rows of `reopened` (the tail as the state the market
        continues names it, or None for a new tail) and `arrays` (sessions x companies) after
        them, with `dividends` after its dividends."""
        assert self._write_depth > 0, "the tail grows under the cache's write lock"
        folder = self.folder / f"tail-{t0:06d}"
        if reopened is None:
            _remove(folder)  # a tail this name had before the state it continues (tidy() removes those first)
            folder.mkdir()
            rows, divs = 0, 0
        else:
            assert reopened.is_tail and reopened.folder == folder and reopened.t0 == t0, (reopened.folder, folder)
            rows, divs = reopened.t1 - reopened.t0, reopened.tail_dividends
        n = next(iter(arrays.values())).shape[1]
        for k, (field, values) in enumerate(arrays.items()):
            _append(folder / f"{field}.bin", rows * n * values.itemsize, values)
            if k == 0:
                crashpoint("sample.cache.tail")
        _append(folder / "dividends.bin", divs * DIVIDEND_DTYPE.itemsize, dividends)
        added = len(next(iter(arrays.values())))
        return _Block(t0, t0 + rows + added, n, None, folder, None, is_tail=True, tail_dividends=divs + len(dividends))

    def write_block(self, t0: int, t1: int, arrays: dict[str, np.ndarray], dividends: np.ndarray) -> Path:
        assert self._write_depth > 0, "blocks are written under the cache's write lock"
        blocks_dir = self.folder / "blocks"
        blocks_dir.mkdir(exist_ok=True)
        staged = self._staging()
        _write_block(staged, arrays, dividends)
        crashpoint("sample.cache.block")
        final = blocks_dir / f"{t0:06d}-{t1:06d}"
        self._place(staged, final)
        return final

    def _write_quarters(self, quarters: _Quarters) -> None:
        Q = len(quarters)
        if self._quarter_counts()[-1:] >= [Q]:
            return
        staged = self._staging()
        for f in (*QUARTER_FIELDS, "level"):
            np.save(staged / f"{f}.npy", np.asarray(getattr(quarters, f)))
        self._place(staged, self.folder / f"quarters-{Q:04d}")

    def commit(self, market: _Market, co: _Companies) -> None:
        """Record `market`, whose blocks are written: the companies and quarters, then the state
        naming the blocks; then remove what that state does not need, and the other keys nobody uses."""
        assert self._write_depth > 0, "a state is recorded under the cache's write lock"
        T, c = len(market.sessions), market.carry
        self._write_companies(co)
        self._write_quarters(market.quarters)
        counts = np.array([[len(e.members[u]) for u in UNIVERSES] for e in market.epochs], np.int64)
        state = {
            "format": [CACHE_FORMAT], "companies": [self.n], "block_sessions": [self.block_sessions], "sessions": [T],
            "sessions_sha256": _sessions_digest(market.session64),
            "level": c.level, "trend": c.trend, "price": c.price, "c_prev": c.c_prev, "ring": c.ring,
            "growth": c.growth, "rus": c.rus, "sp": c.sp, "delist_idx": c.delist_idx,
            "g": market.g, "fac": market.fac, "level_rut": market.levels["^RUT"], "level_sp600": market.levels["^SP600"],
            "volume_rut": market.volumes["^RUT"], "volume_sp600": market.volumes["^SP600"],
            "epoch_t": np.array([e.t for e in market.epochs], np.int64), "epoch_counts": counts,
            "tail_dividends": [market.blocks[-1].tail_dividends if market.blocks[-1].is_tail else 0],
            "epoch_members": np.concatenate([e.members[u] for e in market.epochs for u in UNIVERSES]).astype(np.int64),
        }
        staged = self.folder / f".tmp-{os.getpid()}-state-{T:06d}.npz"
        with open(staged, "wb") as out:
            np.savez(out, **{k: np.asarray(v) for k, v in state.items()})
        crashpoint("sample.cache.state")
        self._place(staged, self.folder / f"state-{T:06d}.npz")
        crashpoint("sample.cache.tidy")
        self.tidy(T)
        self._remove_other_keys()

    def tidy(self, T: int | None) -> None:
        """Remove what the state of T sessions does not need (everything when None): other states,
        blocks and tails it does not name, all but the most quarters, staged files of stopped writers."""
        assert self._write_depth > 0, "the cache is tidied under its write lock"
        counts = self._quarter_counts()
        keep = {"blocks", "companies.npz"}
        if T:
            keep |= {f"state-{T:06d}.npz"} | ({f"quarters-{counts[-1]:04d}"} if counts else set())
            if T % self.block_sessions:
                keep.add(f"tail-{T - T % self.block_sessions:06d}")
        for path in self.folder.iterdir():
            if path.name not in keep:
                _remove(path)
        blocks = {f"{t0:06d}-{t1:06d}" for t0, t1 in self._spans(T)} if T else set()
        if (self.folder / "blocks").is_dir():
            for path in (self.folder / "blocks").iterdir():
                if path.name not in blocks:
                    _remove(path)

    def discard(self, why: str) -> None:
        """Remove this key's files (not its locks) after finding them damaged."""
        log.warning("sample market cache %s: %s; removing it and simulating the market again", self.folder, why)
        with self.writing():
            for path in self.folder.iterdir():
                _remove(path)

    def _remove_other_keys(self) -> None:
        """Other keys' folders and locks, where nobody holds the key's lock (a source of other
        settings on this home right now keeps its key), and scratch folders of dead processes."""
        names = {p.name for p in self.root.iterdir()}
        others = {n.removesuffix(".write.lock").removesuffix(".lock") for n in names if n.startswith("market-")} - {self.key}
        for key in sorted(others):
            lock = self.root / f"{key}.lock"
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                if (self.root / key).is_dir():
                    _remove(self.root / key)
                (self.root / f"{key}.write.lock").unlink(missing_ok=True)
                lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
        _remove_orphans(self.root)

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file()) if self.folder.is_dir() else 0


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
        self.capabilities = Capabilities(first_date=start)
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

    def fundamentals(self, symbols: Sequence[str], as_of: date) -> Fetched:
        """Quarters with report_date <= as_of; a delisted company reports nothing after it delists."""
        return self._reading(lambda: self._fundamentals(symbols, as_of))

    def _bars(self, symbols: Sequence[str], start: date, end: date) -> Fetched:
        symbols = list(dict.fromkeys(symbols))
        if end < self.start:
            return Fetched(failures=_failures([(s, "bars", self._before_start(start, end)) for s in symbols]))
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
        return Fetched(bars=bars, actions=actions, failures=_failures(failures))

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
        return Fetched(holdings=holdings, failures=_failures(failures))

    def _fundamentals(self, symbols: Sequence[str], as_of: date) -> Fetched:
        symbols = list(dict.fromkeys(symbols))
        market = self._market_to(max(as_of, self.start))
        # The quarters a market to as_of makes, however many a longer market (or the cache) holds.
        co, qs = self._companies, market.quarters.head(_n_quarters(self.start, calendar.session_on_or_before(max(as_of, market.sessions[0]))))
        position = self._position()
        idx = np.array([position[s] for s in symbols if s in position], dtype=np.int64)
        failures = [(s, "fundamentals", f"unknown symbol {s!r}: fundamentals exist for {self._symbol_range()}")
                    for s in symbols if s not in position]
        if not len(idx):
            return Fetched(failures=_failures(failures))
        T = len(market.sessions)
        delist_day = np.where(
            market.delist_idx[idx] < T, market.session64[np.minimum(market.delist_idx[idx], T - 1)], np.datetime64("2200-01-01")
        )
        report = qs.report_date[:, idx]
        keep = qs.exists[:, idx] & (report <= np.datetime64(as_of, "D")) & (qs.period_end[:, None] < delist_day[None, :])
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
        return Fetched(fundamentals=conform(frame, FUNDAMENTALS_SCHEMA, "sample fundamentals"), failures=_failures(failures))

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


def _failures(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    if not rows:
        return empty(FAILURES_SCHEMA)
    return pl.DataFrame(rows, schema=FAILURES_SCHEMA, orient="row")


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
