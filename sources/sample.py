"""The embedded `sample` source: a deterministic synthetic US small-cap market, offline.

What the market is
------------------
About 2,750 fictional companies (symbols `SMP0001`.., upper-case invented names, the 11 GICS
sectors as iShares prints them, NASDAQ / NYSE listings): 2,000 founding members of a
Russell-2000-like universe, about 600 smaller non-members, and about 150 companies that list
later (IPOs) and can join at a reconstitution. Each has shares outstanding, a price, a latent
profitability (roughly four in ten lose money: biotech and tech more often, banks and utilities
rarely), a beta, an idiosyncratic volatility, maybe a quarterly dividend and maybe a split.

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
beta, positive junk drift) lead. The factors revert gently towards the path their drifts trace, so
the shape survives any seed while daily moves stay random. Records, streaks and cohort gaps are
whatever the draws make of those parameters; no output figure is written here. With the default
seed the small caps bottom on 2025-04-08, make record closes in late 2025 and in 2026, and the
loss-makers lead the profitable members from the low (tests/sources/test_sample.py checks it).

Membership: the 2,000 founding members to start; each year on the last Friday of June a
reconstitution ranks caps as of 40 sessions earlier, drops the smallest 5% and the few that
outgrew the universe, and refills from the largest non-members (IPOs included). The sp600 seats
go to companies with positive TTM net income known that day, by size, with a buffer for sitting
members. Some companies that leave both universes delist 10-200 sessions later: their bars stop.

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
backfill to D and a backfill to D-1 followed by a fetch of D give identical rows.

Per-share conventions (Yahoo's): `close`, open/high/low, volume and dividends are split-adjusted
but `close` is not dividend-adjusted. To stay prefix-stable, split adjustment is against a fixed
horizon (all of a company's splits up to SPLIT_HORIZON_YEARS after `start`), so a split never
rewrites earlier closes; holdings (price, shares) and EPS use the same split basis, so they agree
with the bars. `adj_close` carries dividends as a forward-accumulated total-return factor (1 on a
company's first session): adj_close(t)/adj_close(t-1) = (close(t) + dividend(t)) / close(t-1), the
total return of day t, and earlier values never move when `end` does. So adj_close starts equal to
close and drifts above it, unlike Yahoo's back-adjusted series, where the latest values are equal.

The whole market is simulated once per `SampleSource` instance (cached on it, under a lock: flows
fetch chunks from threads) and sliced per call; asking for a later end rebuilds, identically.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Sequence

import numpy as np
import polars as pl

from smallcaps import calendar
from sources.base import (
    ACTIONS_SCHEMA,
    BARS_SCHEMA,
    FAILURES_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HOLDINGS_SCHEMA,
    Fetched,
    conform,
    empty,
)

# Parameters ------------------------------------------------------------------------------------

INDEX_SYMBOLS = ("^RUT", "^GSPC", "^SP600", "^IXIC", "^VIX")
# Levels on the first session, near the real ones of 2024-01-02.
INDEX_BASE = {"^RUT": 2_000.0, "^GSPC": 4_700.0, "^SP600": 1_300.0, "^IXIC": 14_700.0}

UNIVERSES = ("russell2000", "sp600")
N_FOUNDING = 2_000  # russell2000 members on the first session; reconstitutions refill to this count
N_POOL = 600  # smaller listed companies outside the universe at the start
N_IPO = 150  # companies that list after the start
N_COMPANIES = N_FOUNDING + N_POOL + N_IPO
SP600_SIZE = 600
SP600_BUFFER = 720  # an sp600 member keeps its seat while its score rank is within this buffer
RECENT_LISTING_SHARE = 0.02  # founding/pool companies listed in the half year before the start
IPO_WINDOW_DAYS = 3 * 365

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

# Fundamentals: quarters from Q1 two years before the start; a fixed number of them.
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


def _companies(seed: int, start: date) -> _Companies:
    rng = np.random.default_rng([seed, TAG_COMPANIES])
    n = N_COMPANIES
    kind = np.array([0] * N_FOUNDING + [1] * N_POOL + [2] * N_IPO)  # founding, pool, ipo

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
    after = rng.integers(1, IPO_WINDOW_DAYS, n)
    listing_date = np.where(
        kind == 2, start64 + after.astype("timedelta64[D]"),
        np.where(recent, start64 - before.astype("timedelta64[D]"), np.datetime64("1990-01-01", "D")),
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

    symbol = np.array([f"SMP{i + 1:04d}" for i in range(n)])
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


def _names(seed: int, sectors: np.ndarray) -> np.ndarray:
    """Unique invented company names, upper case like the iShares files."""
    rng = np.random.default_rng([seed, TAG_NAMES])
    heads = [h + t for h in NAME_HEADS for t in NAME_TAILS]
    used: set[str] = set()
    out = []
    for sector in sectors:
        nouns = SECTOR_NOUNS[sector]
        while True:
            head = heads[rng.integers(len(heads))]
            noun = nouns[rng.integers(len(nouns))]
            suffix = NAME_SUFFIXES[rng.integers(len(NAME_SUFFIXES))]
            if (head, noun) not in used:
                used.add((head, noun))
                out.append(f"{head} {noun} {suffix}")
                break
    return np.array(out)


# The simulated market up to one end ----------------------------------------------------------------


@dataclass
class _Market:
    sessions: list[date]
    session64: np.ndarray  # datetime64[D]
    close: np.ndarray  # T x N, NaN where the company does not trade
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    adj_close: np.ndarray
    volume: np.ndarray  # T x N int64 (0 where not trading)
    members: dict[str, np.ndarray]  # universe -> T x N bool
    first_idx: np.ndarray  # first session index each company trades (T if not yet)
    last_idx: np.ndarray  # last session index (T-1 unless delisted before)
    delist_idx: np.ndarray  # first session without a bar, or a huge number
    index_bars: pl.DataFrame
    actions: pl.DataFrame  # all actions of trading companies within the sessions, with "idx"
    quarters: "_Quarters"
    holdings_cache: dict[str, pl.DataFrame]


@dataclass(frozen=True)
class _Quarters:
    period_end: np.ndarray  # Q datetime64[D]
    report_date: np.ndarray  # Q x N datetime64[D]
    net_income_common: np.ndarray  # Q x N, NaN = missing or not a company yet
    exists: np.ndarray  # Q x N bool
    net_income: np.ndarray
    eps: np.ndarray
    revenue: np.ndarray


def _regime_params(session64: np.ndarray) -> np.ndarray:
    starts = np.array([np.datetime64(r[0], "D") for r in REGIMES])
    idx = np.searchsorted(starts, session64, side="right") - 1
    table = np.array([r[1:] for r in REGIMES])
    return table[np.clip(idx, 0, len(REGIMES) - 1)]  # T x 5: g_mu g_sd s_mu s_sd j_mu


def _quarters(seed: int, start: date, co: _Companies) -> _Quarters:
    first_year = start.year - FIRST_QUARTER_YEARS_BEFORE
    q = np.arange(N_QUARTERS)
    period_end = _quarter_end(first_year, q)
    n = len(co.symbol)
    cap0 = co.shares * co.price0
    ni = np.empty((N_QUARTERS, n))
    rev = np.empty((N_QUARTERS, n))
    lag = np.empty((N_QUARTERS, n), dtype=int)
    level = np.zeros(n)
    for k in range(N_QUARTERS):
        rng = np.random.default_rng([seed, TAG_QUARTER, k])
        z = rng.standard_normal((3, n))
        level = level + co.growth_q + 0.03 * z[0]  # log growth of the business
        scale = np.exp(level)
        rev[k] = cap0 / co.price_to_sales / 4 * scale * np.exp(0.04 * z[1])
        ni[k] = cap0 * (co.earnings_yield + 0.02 * z[2]) / 4 * scale
        # Q4 comes with the annual report: later. Then keep 25..60 days and move weekends to Monday.
        lag[k] = co.report_lag + (12 if k % 4 == 3 else 0) + np.round(3 * rng.standard_normal(n)).astype(int)
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
    return _Quarters(period_end, report, np.round(ni_common, -3) + 0.0, exists, np.round(net_income, -3) + 0.0,
                     eps + 0.0, np.round(rev, -3))


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


def _simulate(seed: int, start: date, end: date, co: _Companies, quarters: _Quarters) -> _Market:
    sessions = calendar.sessions(start, end)
    if not sessions:
        raise ValueError(f"the sample market has no NYSE session in {start}..{end}")
    T, n = len(sessions), len(co.symbol)
    session64 = np.array(sessions, dtype="datetime64[D]")
    params = _regime_params(session64)
    first_idx = np.searchsorted(session64, co.listing_date, side="left")  # first session on/after listing

    close = np.full((T, n), np.nan)
    open_ = np.full((T, n), np.nan)
    high = np.full((T, n), np.nan)
    low = np.full((T, n), np.nan)
    volume = np.zeros((T, n), dtype=np.int64)
    g = np.zeros(T)
    level = np.zeros(3)  # cumulative g, s, j so far
    trend = np.zeros(3)  # cumulative drifts of g, s, j so far
    fac = np.zeros((T, N_INDEX_NOISE))  # index-level noise, drawn per session
    price = np.full(n, np.nan)
    c_prev = np.full(n, np.nan)
    sig2 = co.idio_sd**2 / 2
    for t in range(T):
        rng = np.random.default_rng([seed, TAG_SESSION, t])
        z = rng.standard_normal(3 + len(SECTORS) + N_INDEX_NOISE)
        e = rng.standard_normal((4, n))
        g_mu, g_sd, s_mu, s_sd, j_mu = params[t]
        mu = np.array([g_mu, s_mu, j_mu])
        trend += mu
        step = mu + FACTOR_REVERSION * (trend - mu - level) + np.array([g_sd, s_sd, JUNK_SD]) * z[:3]
        level += step
        g[t], s_t, j = step
        m = SMALL_BETA_TO_BROAD * g[t] + s_t
        sector = SECTOR_SD * z[3 : 3 + len(SECTORS)]
        fac[t] = z[3 + len(SECTORS) :]
        x = co.alpha + co.beta * m + co.is_loss * j + sector[co.sector_code] + co.idio_sd * e[0] - sig2
        prev = c_prev
        price = price * np.exp(x)
        new = first_idx == t
        price[new] = co.price0[new]
        c = np.round(np.maximum(price, 0.01), 4)
        # Open: part of the day's move happens overnight; the first bar opens at its close's level.
        o = np.where(new, c * np.exp(0.01 * e[1]), prev * np.exp(0.35 * x + 0.25 * co.idio_sd * e[1]))
        o = np.round(o, 4)
        hi = np.round(np.maximum(o, c) * np.exp(0.4 * co.idio_sd * np.abs(e[2])), 4)
        lo = np.round(np.minimum(o, c) * np.exp(-0.4 * co.idio_sd * np.abs(e[3])), 4)
        trading = np.isfinite(price)
        close[t] = np.where(trading, c, np.nan)
        open_[t] = np.where(trading, o, np.nan)
        high[t] = np.where(trading, np.maximum(hi, np.maximum(o, c)), np.nan)
        low[t] = np.where(trading, np.minimum(lo, np.minimum(o, c)), np.nan)
        # Busy days trade more: volume rises with the size of the move.
        v = co.shares * co.turnover * np.exp(0.4 * e[2] - 0.08 + 6 * np.abs(x))
        volume[t] = np.where(trading, np.maximum(1, np.round(v)), 0).astype(np.int64)
        c_prev = c

    cap = np.nan_to_num(close) * co.shares[None, :]
    members, delist_idx = _membership(seed, sessions, session64, co, quarters, cap, first_idx)
    # Delisted companies stop trading.
    gone = np.arange(T)[:, None] >= delist_idx[None, :]
    for arr in (close, open_, high, low):
        arr[gone] = np.nan
    volume[gone] = 0
    last_idx = np.minimum(delist_idx, T) - 1

    divs, adj_close = _dividends(session64, co, close, first_idx, last_idx)
    splits = _splits(session64, co, first_idx, last_idx)
    actions = pl.concat([divs, splits]).sort("idx", "symbol", "action")

    index_bars = _indexes(sessions, g, fac, close, volume, members, co)
    return _Market(
        sessions=sessions, session64=session64, close=close, open=open_, high=high, low=low,
        adj_close=adj_close, volume=volume, members=members, first_idx=first_idx, last_idx=last_idx,
        delist_idx=delist_idx, index_bars=index_bars, actions=actions, quarters=quarters, holdings_cache={},
    )


def _membership(seed, sessions, session64, co: _Companies, quarters: _Quarters, cap, first_idx):
    """Universe masks (T x N) and delisting session indexes, deciding reconstitutions in order."""
    T, n = cap.shape
    never = np.full(n, np.iinfo(np.int64).max // 2)
    delist_idx = never.copy()
    rus = np.zeros(n, bool)
    rus[:N_FOUNDING] = True
    sp = _select_sp600(np.zeros(n, bool), 0, session64, co, quarters, cap, first_idx, delist_idx)

    recon = {}
    for year in range(sessions[0].year, sessions[-1].year + 1):
        day = calendar.session_on_or_before(_last_friday_of_june(year))
        i = bisect.bisect_left(sessions, day)
        if 0 < i < T and sessions[i] == day:
            recon[i] = year
    out = {u: np.zeros((T, n), bool) for u in UNIVERSES}
    for t in range(T):
        if t in recon:
            rank_t = max(0, t - RANK_LAG)
            eligible = (first_idx <= rank_t) & (delist_idx == never)
            c = cap[rank_t]
            lower = np.quantile(c[rus], DROP_BOTTOM_QUANTILE)
            upper = GRADUATE_MULTIPLE * np.median(c[rus])
            keep = rus & eligible & (c >= lower) & (c <= upper)
            candidates = np.nonzero(~rus & eligible & (c >= lower) & (c <= upper))[0]
            room = N_FOUNDING - keep.sum()
            add = candidates[np.argsort(-c[candidates], kind="stable")][: max(room, 0)]
            new_rus = keep.copy()
            new_rus[add] = True
            new_sp = _select_sp600(sp, t, session64, co, quarters, cap, first_idx, delist_idx)
            # Some of the companies that left both universes later delist (acquired, bankrupt).
            left = (rus | sp) & ~(new_rus | new_sp)
            rng = np.random.default_rng([seed, TAG_DELIST, recon[t]])
            u, k = rng.random(n), rng.integers(DELIST_AFTER_SESSIONS[0], DELIST_AFTER_SESSIONS[1], n)
            delisting = left & (u < DELIST_SHARE)
            # A session index, possibly beyond the simulated sessions: it holds whatever the end.
            delist_idx = np.where(delisting, t + k, delist_idx)
            rus, sp = new_rus, new_sp
        out["russell2000"][t] = rus
        out["sp600"][t] = sp
    return out, delist_idx


def _select_sp600(current, t, session64, co, quarters, cap, first_idx, delist_idx):
    """The S&P-600-like rule: positive TTM net income known at the selection session; seats go by a
    size score (log cap plus a fixed per-company taste); members keep seats within a buffer."""
    never = np.iinfo(np.int64).max // 2
    ttm = _ttm_at(quarters, session64[t])
    eligible = (first_idx <= t) & (delist_idx == never) & (ttm > 0)
    score = np.where(eligible, np.log(np.maximum(cap[t], 1.0)) + co.sp_score_noise, -np.inf)
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


def _dividends(session64, co: _Companies, close, first_idx, last_idx):
    """Quarterly dividends (ex-date: a fixed number of days into each calendar quarter, on or after
    which the first session is the ex-date), priced off a past close; and the adjusted close."""
    T, n = close.shape
    payers = np.nonzero(co.div_yield > 0)[0]
    first_q = session64[0].astype("datetime64[M]").astype(int) // 3
    last_q = session64[-1].astype("datetime64[M]").astype(int) // 3
    rows_i, rows_t = [], []
    for q in range(first_q, last_q + 1):
        q_start = np.datetime64(f"{1970 + q // 4}-{(q % 4) * 3 + 1:02d}-01", "D")
        ex = q_start + co.div_offset_days[payers].astype("timedelta64[D]")
        t = np.searchsorted(session64, ex, side="left")
        ok = (t < T) & (t > first_idx[payers]) & (t <= last_idx[payers])
        rows_i.append(payers[ok])
        rows_t.append(t[ok])
    i = np.concatenate(rows_i) if rows_i else np.zeros(0, int)
    t = np.concatenate(rows_t) if rows_t else np.zeros(0, int)
    ref = np.maximum(t - DIVIDEND_PRICE_LAG, first_idx[i])
    dps = np.maximum(0.01, np.round(co.div_yield[i] / 4 * close[ref, i], 2))
    factor = np.ones((T, n))
    factor[t, i] = (close[t, i] + dps) / close[t, i]
    # Forward-accumulated total-return factor: 1 on a company's first session, never revised.
    growth = np.cumprod(np.where(np.isfinite(close), factor, 1.0), axis=0)
    adj_close = close * growth
    frame = pl.DataFrame(
        {"symbol": co.symbol[i], "ex_date": session64[t], "idx": t, "action": "dividend", "value": dps},
        schema=_ACTIONS_WITH_IDX,
    )
    return frame, adj_close


def _splits(session64, co: _Companies, first_idx, last_idx):
    T = len(session64)
    has = np.nonzero(co.split_ratio > 0)[0]
    t = np.searchsorted(session64, co.split_date[has], side="left")
    ok = (t < T) & (t > first_idx[has]) & (t <= last_idx[has])
    i, t = has[ok], t[ok]
    return pl.DataFrame(
        {"symbol": co.symbol[i], "ex_date": session64[t], "idx": t, "action": "split", "value": co.split_ratio[i]},
        schema=_ACTIONS_WITH_IDX,
    )


def _cap_weighted(close, volume, mask, shares, base):
    """Index levels from the cap-weighted price return of the members of the previous session."""
    T = close.shape[0]
    level = np.empty(T)
    level[0] = base
    c = np.nan_to_num(close)
    for t in range(1, T):
        m = mask[t - 1]
        before = (shares[m] * c[t - 1, m]).sum()
        after = (shares[m] * c[t, m]).sum()
        level[t] = level[t - 1] * after / before
    vol = np.where(mask, volume, 0).sum(axis=1)
    return level, vol


def _ohlc(close: np.ndarray, noise: np.ndarray, spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open/high/low around an index close path: the open sits between yesterday's and today's close."""
    prev = np.concatenate([[close[0] / np.exp(spread * noise[0, 0])], close[:-1]])
    o = prev + (close - prev) * np.clip(0.3 + 0.2 * noise[:, 0], 0, 1)
    hi = np.maximum(o, close) * np.exp(spread * np.abs(noise[:, 1]))
    lo = np.minimum(o, close) * np.exp(-spread * np.abs(noise[:, 2]))
    return np.round(o, 2), np.round(np.maximum(hi, np.maximum(o, close)), 2), np.round(np.minimum(lo, np.minimum(o, close)), 2)


def _indexes(sessions, g, fac, close, volume, members, co: _Companies) -> pl.DataFrame:
    T = len(sessions)
    levels, volumes = {}, {}
    levels["^RUT"], volumes["^RUT"] = _cap_weighted(close, volume, members["russell2000"], co.shares, INDEX_BASE["^RUT"])
    levels["^SP600"], volumes["^SP600"] = _cap_weighted(close, volume, members["sp600"], co.shares, INDEX_BASE["^SP600"])
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

    frames = []
    for k, sym in enumerate(INDEX_SYMBOLS):
        c = np.round(levels[sym], 2)
        spread = 0.03 if sym == "^VIX" else 0.004
        o, h, lo = _ohlc(c, fac[:, 3 * k : 3 * k + 3], spread)
        frames.append(
            pl.DataFrame(
                {
                    "symbol": sym, "session_date": sessions, "open": o, "high": h, "low": lo,
                    "close": c, "adj_close": c,
                    "volume": pl.Series(volumes[sym], dtype=pl.Int64) if sym in volumes else pl.Series([None] * T, dtype=pl.Int64),
                }
            )
        )
    return conform(pl.concat(frames), BARS_SCHEMA, "sample index bars")


# The source ----------------------------------------------------------------------------------------


class SampleSource:
    """The deterministic synthetic market behind `make demo` (see the module docstring)."""

    name = "sample"

    def __init__(self, seed: int = 2025, start: date = date(2024, 1, 2)) -> None:
        self.seed = seed
        self.start = start
        self._lock = threading.Lock()
        self._companies: _Companies | None = None
        self._quarters: _Quarters | None = None
        self._market: _Market | None = None

    # building --------------------------------------------------------------------------------

    def _market_to(self, end: date) -> _Market:
        """The market simulated at least up to `end` (the session on or before it)."""
        with self._lock:
            if self._companies is None:
                self._companies = _companies(self.seed, self.start)
                self._quarters = _quarters(self.seed, self.start, self._companies)
            first = calendar.sessions(self.start, self.start + timedelta(days=10))[0]
            last = max(calendar.session_on_or_before(max(end, first)), first)
            if self._market is None or self._market.sessions[-1] < last:
                self._market = _simulate(self.seed, self.start, last, self._companies, self._quarters)
            return self._market

    @property
    def companies(self) -> _Companies:
        self._market_to(self.start)
        return self._companies

    def _positions(self, market: _Market, start: date, end: date) -> tuple[int, int]:
        a = bisect.bisect_left(market.sessions, start)
        b = bisect.bisect_right(market.sessions, end)
        return a, b

    # Source protocol -------------------------------------------------------------------------------

    def bars(self, symbols: Sequence[str], start: date, end: date) -> Fetched:
        """Daily bars for index and member symbols; splits and dividends in `actions`."""
        symbols = list(dict.fromkeys(symbols))
        if end < self.start:
            return Fetched(failures=_failures([(s, "bars", self._before_start(start, end)) for s in symbols]))
        market = self._market_to(end)
        co = self._companies
        a, b = self._positions(market, start, end)
        position = {s: i for i, s in enumerate(co.symbol)}
        index_syms = [s for s in symbols if s in INDEX_SYMBOLS]
        member_idx = np.array([position[s] for s in symbols if s in position], dtype=np.int64)
        failures = [(s, "bars", f"unknown symbol {s!r}: the sample market has {', '.join(INDEX_SYMBOLS)} and SMP0001..SMP{N_COMPANIES:04d}")
                    for s in symbols if s not in position and s not in INDEX_SYMBOLS]

        parts = []
        if index_syms and b > a:
            window = market.sessions[a:b]
            parts.append(
                market.index_bars.filter(
                    pl.col("symbol").is_in(index_syms) & pl.col("session_date").is_between(window[0], window[-1])
                )
            )
        if len(member_idx) and b > a:
            k, s = len(member_idx), b - a
            close = market.close[a:b, member_idx].T.ravel()
            keep = np.isfinite(close)
            frame = pl.DataFrame(
                {
                    "symbol": pl.Series(co.symbol[member_idx]).gather(np.repeat(np.arange(k), s)[keep]),
                    "session_date": np.tile(market.session64[a:b], k)[keep],
                    "open": market.open[a:b, member_idx].T.ravel()[keep],
                    "high": market.high[a:b, member_idx].T.ravel()[keep],
                    "low": market.low[a:b, member_idx].T.ravel()[keep],
                    "close": close[keep],
                    "adj_close": market.adj_close[a:b, member_idx].T.ravel()[keep],
                    "volume": market.volume[a:b, member_idx].T.ravel()[keep],
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
            actions = conform(
                market.actions.filter(
                    pl.col("symbol").is_in(co.symbol[member_idx].tolist()) & pl.col("idx").is_between(a, b - 1)
                ),
                ACTIONS_SCHEMA,
                "sample actions",
            )
        return Fetched(bars=bars, actions=actions, failures=_failures(failures))

    def holdings(self, universes: Sequence[str], start: date, end: date) -> Fetched:
        """One snapshot per session in [start, end] for each universe: equities only, cap weights."""
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
            snap = self._holdings_frame(market, u)
            parts.append(snap.filter(pl.col("as_of_date").is_between(market.sessions[a], market.sessions[b - 1])))
        holdings = pl.concat(parts) if parts else empty(HOLDINGS_SCHEMA)
        return Fetched(holdings=holdings, failures=_failures(failures))

    def fundamentals(self, symbols: Sequence[str], as_of: date) -> Fetched:
        """Quarters with report_date <= as_of; a delisted company reports nothing after it delists."""
        symbols = list(dict.fromkeys(symbols))
        market = self._market_to(max(as_of, self.start))
        co, qs = self._companies, market.quarters
        position = {s: i for i, s in enumerate(co.symbol)}
        idx = np.array([position[s] for s in symbols if s in position], dtype=np.int64)
        failures = [(s, "fundamentals", f"unknown symbol {s!r}: fundamentals exist for SMP0001..SMP{N_COMPANIES:04d}")
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
        frame = pl.DataFrame(
            {
                "symbol": co.symbol[cols],
                "period_end_date": qs.period_end[qi],
                "report_date": qs.report_date[qi, cols],
                "net_income_common_usd": qs.net_income_common[qi, cols],
                "net_income_usd": qs.net_income[qi, cols],
                "diluted_eps": qs.eps[qi, cols],
                "revenue_usd": qs.revenue[qi, cols],
            }
        ).with_columns(pl.col("net_income_common_usd", "net_income_usd", "diluted_eps").fill_nan(None))
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
        return self._companies.symbol[market.members[universe][t]].tolist()

    def symbols(self) -> list[str]:
        """Every company symbol of the sample (members or not, listed yet or not)."""
        return self.companies.symbol.tolist()

    # helpers ----------------------------------------------------------------------------------------

    def _holdings_frame(self, market: _Market, universe: str) -> pl.DataFrame:
        with self._lock:
            cached = market.holdings_cache.get(universe)
        if cached is not None:
            return cached
        co = self._companies
        t, i = np.nonzero(market.members[universe])
        fund_shares = np.round(co.shares * FUND_FRACTION[universe])
        price = market.close[t, i]
        value = fund_shares[i] * price
        total = np.bincount(t, weights=value, minlength=len(market.sessions))
        # Strings are gathered by polars from one series per company attribute: building them
        # row by row from numpy costs seconds for two million rows.
        at = pl.Series(i)
        frame = pl.DataFrame(
            {
                "universe": pl.Series([universe]).gather(np.zeros(len(i), dtype=np.int64)),
                "as_of_date": market.session64[t],
                "symbol": pl.Series(co.symbol).gather(at),
                "ticker": pl.Series(co.symbol).gather(at),
                "name": pl.Series(co.name).gather(at),
                "sector": pl.Series(co.sector).gather(at),
                "asset_class": pl.Series(["Equity"]).gather(np.zeros(len(i), dtype=np.int64)),
                "exchange": pl.Series(co.exchange).gather(at),
                "weight_pct": 100.0 * value / total[t],
                "market_value_usd": value,
                "shares": fund_shares[i],
                "price_usd": price,
            }
        )
        frame = conform(frame, HOLDINGS_SCHEMA, "sample holdings")
        with self._lock:
            market.holdings_cache[universe] = frame
        return frame

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
