"""The sample market's parameters, its companies (static attributes keyed by the seed) and their
quarterly fundamentals; the model is described in the docstring of sources/sample.py."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import numpy as np


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


def bar_dtype(field: str) -> np.dtype:
    """How a bar field is held and stored: int64 volume, float64 prices."""
    return np.dtype(np.int64 if field == "volume" else np.float64)


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


# Quarters: figures keyed by the quarter ---------------------------------------------------------


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

