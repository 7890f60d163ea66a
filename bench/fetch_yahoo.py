"""HTTP requests per member of a live yahoo night, first and normal, against a fake Yahoo.

Usage: .venv/bin/python bench/fetch_yahoo.py [--members 2100] [--rps 40] [--latency 0.15 0.40]
                                             [--anchors ytd,1y,...] [--no-http] [--compare 30]

Two parts.

1. A year of nights, simulated (no HTTP). A market of --members current members (the union of the
   configured universes) with a membership history from 2024-01-02: each June's reconstitution
   replaces 12% of the members (they keep trading), 4% a year leave between reconstitutions and
   keep trading, 4% a year are acquired (they stop trading: not priced once gone). Each company
   reports its quarters (85% on calendar quarters, the rest one or two months off) after a lag of
   its own, 20-45 days for a 10-Q and 10-35 days more for its 10-K, a few days of noise, and 4% of
   the reports 10-60 days late; Yahoo's statements carry a report 1-3 days after it; 3% of the
   companies have no statements at Yahoo. Every night runs the pipeline's own rules:
   `pipeline.planning.last_needed_sessions` (which former members are still priced, with the
   default anchors) and `sources.yahoo.fundamentals_due` (whose fundamentals are asked: current
   members only, as `pipeline.planning.fundamentals_symbols` does), on the
   state the earlier simulated nights left; a symbol whose fundamentals are fetched costs one
   statement request, and each fetch task's symbols share v7 quote requests (the release dates
   that date the newest quarters), sources.yahoo.QUOTE_BATCH symbols a request. Printed: requests per member per night over the last year of nights (median,
   mean, 90th percentile, worst) and the first night (nothing stored: every symbol's
   fundamentals asked).

2. Two of those nights fetched for real through YahooSource from a fake Yahoo on 127.0.0.1
   (tests/fixtures/yahoo-http/fake_yahoo.py: HTTPS, yfinance's real URLs, cookie and crumb) that
   answers after 150-400 ms: the first night, and the normal night (the one with the median
   request count). Charts are generated in the recorded AAPL answer's shape, statements are the
   recorded AAPL quarterly financials (the recorded empty QQQ answer for a company without
   statements), quotes the recorded AAPL quote, each under the symbol's name. The night is
   fanned out as flows/run.py does: chunks of settings.chunk_size, four tasks at a time.
   Requests are counted twice: by the source's request budget and by the fake. Both nights use
   one data home, as a deployment does: the first gets yfinance's cookie, the second (a new
   process) reuses it and asks only a crumb.

A member = a current member of a universe; requests per member = every HTTP request of the night
(bars of indexes, members and still-needed former members, fundamentals and quotes, cookie and
crumb) / current members. --rps is the run's rate (the setting's default is 4; the time the same
requests take at that rate is printed too).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
HTTP_FIXTURES = ROOT / "tests" / "fixtures" / "yahoo-http"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HTTP_FIXTURES))

import polars as pl  # noqa: E402

import fake_yahoo as fy  # noqa: E402
from ground import calendar  # noqa: E402
from pipeline.planning import chunks, last_needed_sessions  # noqa: E402
from ground.settings import Settings  # noqa: E402
from sources.base import Fetched  # noqa: E402
from sources.yahoo import QUOTE_BATCH, YahooConfig, YahooSource, fundamentals_due  # noqa: E402

# yfinance 1.7 calls pandas APIs that pandas deprecates: its warnings, not ours.
warnings.filterwarnings("ignore", module=r"yfinance(\.|$)")
warnings.filterwarnings("ignore", message="Series.values returning an ndarray")

NY = ZoneInfo("America/New_York")
INDEXES = ["^RUT", "^GSPC", "^SP600", "^IXIC", "^VIX"]
HISTORY_START = date(2024, 1, 2)


def _recorded(name: str) -> dict:
    return json.loads((HTTP_FIXTURES / name).read_text())["response"]["bodyJson"]


RECORDED_CHART = _recorded("chart-AAPL-2020-08-31-to-2020-11-07.json")
META = RECORDED_CHART["chart"]["result"][0]["meta"]
FINANCIALS = _recorded("fundamentalsTimeSeries-AAPL-financials-quarterly.json")
NO_STATEMENTS = _recorded("fundamentalsTimeSeries-QQQ-financials-quarterly.json")
QUOTE = _recorded("quote-AAPL.json")["quoteResponse"]["result"][0]
CHUNK_SIZE = Settings.model_fields["chunk_size"].default  # symbols per fetch task (flows/run.py)


# the simulated market ---------------------------------------------------------------------------


@dataclass
class Company:
    symbol: str
    fiscal_offset_months: int  # 0: quarters end in Mar, Jun, Sep, Dec
    lag_10q_days: int
    extra_10k_days: int
    has_statements: bool
    intervals: list[tuple[date, date | None]] = field(default_factory=list)
    delisted_date: date | None = None  # acquired: no bars after it
    # state the pipeline stores
    newest_end: date | None = None
    last_success: date | None = None
    lags: dict[date, int] = field(default_factory=dict)  # period end -> report lag, where dated


def quarter_ends(company: Company, first: date, last: date) -> list[date]:
    ends = []
    for year in range(first.year - 1, last.year + 1):
        for month in (3, 6, 9, 12):
            m = month + company.fiscal_offset_months
            y = year + (m - 1) // 12
            m = (m - 1) % 12 + 1
            end = (date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1))
            if first <= end <= last:
                ends.append(end)
    return sorted(ends)


def report_lag(company: Company, end: date, rng: random.Random) -> int:
    fiscal_year_end = (end.month - company.fiscal_offset_months - 1) % 12 + 1 == 12
    lag = company.lag_10q_days + (company.extra_10k_days if fiscal_year_end else 0) + round(rng.gauss(0, 2))
    if rng.random() < 0.04:
        lag += rng.randint(10, 60)
    return max(15, lag)


class Market:
    def __init__(self, members: int, as_of: date, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.companies: list[Company] = []
        self.sessions = calendar.sessions(HISTORY_START, as_of)
        for _ in range(members):
            self._new(HISTORY_START)
        # Membership changes, session by session: exits between reconstitutions (half of them
        # acquisitions, which stop trading) and each June's reconstitution (4th Friday) replacing
        # 12% (they keep trading). Every leaver is replaced by a new member the same day.
        daily_exit = 0.08 / 252
        for day in self.sessions[1:]:
            current = [c for c in self.companies if c.intervals[-1][1] is None]
            leaving = {id(c): (c, self.rng.random() < 0.5) for c in current if self.rng.random() < daily_exit}
            if day.month == 6 and 22 <= day.day <= 28 and day.weekday() == 4:
                leaving.update({id(c): (c, False) for c in self.rng.sample(current, round(0.12 * len(current)))})
            for c, is_acquired in leaving.values():
                c.intervals[-1] = (c.intervals[-1][0], calendar.previous_session(day))
                if is_acquired:
                    c.delisted_date = day
                self._new(day)
        self.reports: dict[str, list[tuple[date, date]]] = {}  # symbol -> (period end, release date)
        for c in self.companies:
            ends = quarter_ends(c, date(2023, 1, 1), as_of)
            self.reports[c.symbol] = [(e, e + timedelta(days=report_lag(c, e, self.rng))) for e in ends]
        self.yahoo_delay = {c.symbol: self.rng.randint(1, 3) for c in self.companies}

    def _new(self, day: date) -> None:
        c = Company(
            symbol=f"SC{len(self.companies):05d}",
            fiscal_offset_months=0 if self.rng.random() < 0.85 else self.rng.choice([1, 2]),
            lag_10q_days=round(self.rng.triangular(20, 45, 33)),
            extra_10k_days=self.rng.randint(10, 35),
            has_statements=self.rng.random() >= 0.03,
        )
        c.intervals.append((day, None))
        self.companies.append(c)

    def membership(self) -> pl.DataFrame:
        rows = [("universe", c.symbol, a, b) for c in self.companies for a, b in c.intervals]
        return pl.DataFrame(
            rows, schema={"universe": pl.String, "symbol": pl.String, "valid_from_date": pl.Date, "valid_to_date": pl.Date},
            orient="row",
        )

    def at_yahoo(self, c: Company, night: date) -> tuple[date, date] | None:
        """(newest quarter end, its release) that Yahoo's statements hold on `night`."""
        if not c.has_statements:
            return None
        seen = [(e, r) for e, r in self.reports[c.symbol] if r + timedelta(days=self.yahoo_delay[c.symbol]) <= night]
        return seen[-1] if seen else None


@dataclass
class Night:
    day: date
    members: int
    former_priced: int
    fundamentals: int  # symbols whose fundamentals are asked
    with_statements: int  # of them, with statements
    priced: list[str]
    due: list[str]

    @property
    def quotes(self) -> int:
        """Quote requests: each fetch task of fundamentals (settings.chunk_size symbols) asks its
        symbols' release dates QUOTE_BATCH at a time (sources.yahoo.YahooSource._releases)."""
        return sum(-(-len(chunk) // QUOTE_BATCH) for chunk in chunks(self.due, CHUNK_SIZE))

    @property
    def requests(self) -> int:
        return len(INDEXES) + len(self.priced) + self.fundamentals + self.quotes

    @property
    def per_member(self) -> float:
        return self.requests / self.members


def simulate(market: Market, anchors: list[str], max_age_days: int, first: date, overlap: int) -> list[Night]:
    """Every night from `first` to the market's as_of, each on the state the ones before left."""
    membership = market.membership()
    by_symbol = {c.symbol: c for c in market.companies}
    nights = []
    for day in calendar.sessions(first, market.as_of):
        current = [c.symbol for c in market.companies if any(a <= day and (b is None or b >= day) for a, b in c.intervals)]
        window_start = day
        for _ in range(overlap):
            window_start = calendar.previous_session(window_start)
        past = membership.filter(pl.col("valid_from_date") <= day, ~pl.col("symbol").is_in(current))
        needed = last_needed_sessions(past.with_columns(pl.col("valid_to_date").clip(upper_bound=day)), anchors, day)
        # Every former member in the simulation is priced up to its last needed session (a night's
        # state is that of the pipeline run nightly), so "needed in the window" decides.
        former = [
            s for s, last in needed.iter_rows()
            if last >= window_start and (by_symbol[s].delisted_date is None or by_symbol[s].delisted_date > day)
        ]
        priced = current + former
        # Fundamentals of current members only (pipeline.planning.fundamentals_symbols).
        stored = pl.DataFrame(
            [
                (s, by_symbol[s].newest_end, by_symbol[s].last_success, _expected_lag(by_symbol[s]))
                for s in current if by_symbol[s].last_success is not None
            ],
            schema={"symbol": pl.String, "period_end_date": pl.Date, "last_success_at": pl.Date, "report_lag_days": pl.Int64},
            orient="row",
        )
        due = fundamentals_due(stored, current, day, max_age_days)
        with_statements = 0
        for s in due:
            c = by_symbol[s]
            got = market.at_yahoo(c, day)
            c.last_success = day
            if got is not None:
                with_statements += 1
                end, released = got
                if c.newest_end is None or end > c.newest_end:
                    c.newest_end = end
                    if released < end + timedelta(days=105):  # dated by the quote (sources.yahoo.latest_report)
                        c.lags[end] = (released - end).days
            elif c.has_statements and c.newest_end is None:
                with_statements += 1  # statements asked and answered with no quarter yet
        nights.append(Night(day, len(current), len(former), len(due), with_statements, priced, due))
    return nights


def _expected_lag(c: Company) -> int | None:
    """The report lag pipeline.planning.fundamentals_symbols reads from raw.fundamentals: the
    same fiscal quarter a year before the next one (the 4th newest), else the newest."""
    if c.newest_end is None:
        return None
    ends = sorted(e for e in c.lags if e <= c.newest_end)
    year_ago = [e for e in ends if abs((c.newest_end - e).days - 273) <= 10]
    if year_ago:
        return c.lags[year_ago[0]]
    return c.lags.get(c.newest_end)


def summary(nights: list[Night]) -> str:
    ratios = sorted(n.per_member for n in nights)
    over = sum(r > 1.1 for r in ratios)
    p90 = ratios[int(0.9 * (len(ratios) - 1))]
    funds = statistics.mean(n.fundamentals / n.members for n in nights)
    return (f"median {statistics.median(ratios):.3f}, mean {statistics.mean(ratios):.3f}, 90th percentile {p90:.3f}, "
            f"worst {ratios[-1]:.3f}; {over} of {len(ratios)} nights above 1.1; fundamentals asked for "
            f"{funds:.3f} of the members a night on average")


def describe(night: Night) -> str:
    return (f"{night.day}: {night.members:,} members, {night.former_priced:,} former members still priced, "
            f"fundamentals of {night.fundamentals:,} ({night.with_statements:,} with statements; {night.quotes:,} quote requests): "
            f"{night.requests:,} requests, {night.per_member:.3f} per member")


# the fake Yahoo -----------------------------------------------------------------------------------


def generated_chart(symbol: str, params: dict[str, str]) -> dict:
    """A daily chart answer for any symbol: one bar per NYSE session in [period1, period2), or the
    latest session for `range=1d` (yfinance's timezone lookup)."""
    if "period1" in params:
        first = datetime.fromtimestamp(int(params["period1"]), NY).date()
        last = datetime.fromtimestamp(int(params["period2"]) - 1, NY).date()
        days = calendar.sessions(first, last)
    else:
        days = [calendar.latest_completed_session()]
    rng = random.Random(symbol)
    price = rng.uniform(5, 80)
    stamps, opens, highs, lows, closes, volumes = [], [], [], [], [], []
    for day in days:
        stamps.append(int(datetime(day.year, day.month, day.day, 9, 30, tzinfo=NY).timestamp()))
        open_ = price * (1 + rng.gauss(0, 0.01))
        price = open_ * (1 + rng.gauss(0, 0.02))
        opens.append(open_)
        closes.append(price)
        highs.append(max(open_, price) * 1.01)
        lows.append(min(open_, price) * 0.99)
        volumes.append(0 if symbol == "^VIX" else rng.randint(10_000, 5_000_000))
    meta = dict(META, symbol=symbol, instrumentType="INDEX" if symbol.startswith("^") else "EQUITY")
    result = {"meta": meta, "timestamp": stamps, "indicators": {
        "quote": [{"open": opens, "high": highs, "low": lows, "close": closes, "volume": volumes}],
        "adjclose": [{"adjclose": closes}],
    }}
    if not days:
        result.pop("timestamp")
        result["indicators"] = {"quote": [{}], "adjclose": [{}]}
    return {"chart": {"result": [result], "error": None}}


def make_answer(without_statements: set[str]):
    """Generated charts; the recorded AAPL statements (quarters to 2024-12-31) and quote (released
    2025-01-30 16:30, so the newest quarter is dated 2025-01-31) under every symbol's name; the
    recorded empty QQQ statements for a company without any."""

    def answer(request: fy.Request) -> fy.Reply | None:
        if request.kind == "chart":
            return fy.json_reply(generated_chart(request.symbol, request.params))
        if request.kind == "timeseries":
            return fy.json_reply(NO_STATEMENTS if request.symbol in without_statements else FINANCIALS)
        if request.kind == "quote":
            return fy.quote_list(request, lambda symbol: dict(QUOTE, symbol=symbol))
        return None

    return answer


def _serve(conn, latency_s: tuple[float, float], without: set[str]) -> None:
    """The fake Yahoo in a child process, so that its own work does not compete with the client's
    for the interpreter lock: port out, then on request the counts of what it served."""
    with fy.FakeYahoo(make_answer(without), latency_s=latency_s, seed=1) as fake:
        conn.send(fake.port)
        while conn.recv() == "counts":
            conn.send({k: len(fake.asked(k)) for k in ("cookie", "crumb", "chart", "timeseries", "quote")})


class ChildYahoo:
    def __init__(self, latency_s: tuple[float, float], without: set[str]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, latency_s, without), daemon=True)
        self._process.start()
        self.session_options = {"proxy": f"http://127.0.0.1:{self._conn.recv()}", "verify": str(fy.CA_FILE)}

    def counts(self) -> dict[str, int]:
        self._conn.send("counts")
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)


def new_process() -> None:
    """Forget yfinance's process-wide state (its session, answers kept in memory, caches opened at
    a location), as a new nightly process starts; the cookie kept in the home's cache stays."""
    from yfinance import cache, data

    data.YfData._instances.clear()
    data.YfData.cache_get.cache_clear()
    cache._TzCacheManager._tz_cache = None
    cache._CookieCacheManager._Cookie_cache = None


def fetch_night(fake: ChildYahoo, home: Path, rps: float, night: Night, overlap: int) -> tuple[int, dict[str, int], Fetched, Fetched, float]:
    """One night through a fresh YahooSource, as its own process would fetch it."""
    new_process()
    settings = Settings(home=home, source="yahoo", requests_per_second=rps)
    start = night.day
    for _ in range(overlap):
        start = calendar.previous_session(start)
    source = YahooSource(YahooConfig.from_settings(settings), session_options=fake.session_options)

    before = fake.counts()
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:  # flows/nightly.py: ThreadPoolTaskRunner(max_workers=4)
        bars = [pool.submit(source.bars, c, start, night.day) for c in chunks(INDEXES + night.priced, settings.chunk_size)]
        funds = [pool.submit(source.fundamentals, c, night.day) for c in chunks(night.due, settings.chunk_size)]
        got_bars = Fetched.combine([f.result() for f in bars])
        got_funds = Fetched.combine([f.result() for f in funds])
    wall_s = time.perf_counter() - t
    served = {k: n - before[k] for k, n in fake.counts().items()}
    return source.requests_made, served, got_bars, got_funds, wall_s


def compare_download(fake: ChildYahoo, home: Path, rps: float, n: int, start: date, as_of: date) -> tuple[float, float]:
    """Requests per symbol of yf.download (cold timezone cache) and of the source's own path."""
    import yfinance as yf

    new_process()
    source = YahooSource(
        YahooConfig.from_settings(Settings(home=home, source="yahoo", requests_per_second=rps)), session_options=fake.session_options
    )
    source.bars(["^GSPC"], start, as_of)  # cookie and crumb outside the count

    def served() -> int:
        return sum(fake.counts().values())

    before = served()
    yf.download([f"DL{i:04d}" for i in range(n)], start=start.isoformat(), end=(as_of + timedelta(days=1)).isoformat(),
                auto_adjust=False, actions=True, progress=False, threads=source.config.client.fetch_concurrency,
                session=source._client.session)
    download = (served() - before) / n
    before = served()
    source.bars([f"YS{i:04d}" for i in range(n)], start, as_of)
    return download, (served() - before) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2100, help="current members (union of the universes)")
    parser.add_argument("--rps", type=float, default=40.0, help="requests_per_second for the HTTP runs")
    parser.add_argument("--latency", type=float, nargs=2, default=(0.15, 0.40), metavar=("MIN_S", "MAX_S"))
    parser.add_argument("--anchors", help="cohort_performance anchors, comma-separated (default: the settings' default)")
    parser.add_argument("--no-http", action="store_true", help="the simulation only")
    parser.add_argument("--compare", type=int, default=30, help="symbols for the yf.download comparison (0: skip)")
    args = parser.parse_args()

    defaults = Settings()
    anchors = args.anchors.split(",") if args.anchors else defaults.anchors
    max_age, overlap = defaults.fundamentals_max_age_days, defaults.overlap_sessions
    as_of = calendar.latest_completed_session()
    t = time.perf_counter()
    market = Market(args.members, as_of)
    warm_up = calendar.sessions(as_of - timedelta(days=730), as_of)[0]
    nights = simulate(market, anchors, max_age, warm_up, overlap)
    year = [n for n in nights if n.day > as_of - timedelta(days=365)]
    print(f"simulated {len(nights)} nights {nights[0].day}..{as_of} in {time.perf_counter() - t:.0f} s: "
          f"{args.members:,} current members, {len(market.companies):,} companies since {HISTORY_START}, "
          f"anchors {','.join(anchors)}")
    # The first night: nothing stored, so no former member and every member's fundamentals asked.
    members_now = [c for c in market.companies if c.intervals[-1][1] is None]
    first_night = Night(as_of, len(members_now), 0, len(members_now), sum(c.has_statements for c in members_now),
                        [c.symbol for c in members_now], [c.symbol for c in members_now])
    normal = sorted(year, key=lambda n: (n.per_member, n.day))[len(year) // 2]
    print(f"first night  {describe(first_night)}")
    print(f"normal night {describe(normal)} (the median of the last year's nights)")
    print(f"requests per member, last year's {len(year)} nights: {summary(year)}")
    busiest = max(year, key=lambda n: n.per_member)
    print(f"busiest night {describe(busiest)}")
    if args.no_http:
        return

    without = {c.symbol for c in market.companies if not c.has_statements}
    fake = ChildYahoo(tuple(args.latency), without)
    default_rps = Settings.model_fields["requests_per_second"].default
    # One data home for the runs, as for a real deployment: the first night gets yfinance's cookie
    # and keeps it in <home>/cache/yfinance, later nights (new processes) reuse it.
    home = Path(tempfile.mkdtemp(prefix="fetch-yahoo-"))
    try:
        for label, night in (("first night", first_night), ("normal night", normal)):
            made, served, bars, funds, wall_s = fetch_night(fake, home, args.rps, night, overlap)
            total = sum(served.values())
            print(f"HTTP, {label} {night.day}: the source made {made:,} requests, the fake served {total:,} "
                  f"({served['cookie']} cookie, {served['crumb']} crumb, {served['chart']:,} chart, "
                  f"{served['timeseries']:,} statements, {served['quote']:,} quote): {made / night.members:.3f} per member, "
                  f"{made / (len(INDEXES) + len(night.priced)):.3f} per symbol priced")
            print(f"  rows: {bars.bars.height:,} bars, {funds.fundamentals.height:,} quarters "
                  f"({funds.fundamentals.get_column('report_date').is_not_null().sum():,} dated); failures: "
                  f"{bars.failures.height} bars, {funds.failures.height} fundamentals (no statements at Yahoo); "
                  f"wall {wall_s:.0f} s at {args.rps:g} requests/s (at the default {default_rps:g}/s: at least "
                  f"{made / default_rps / 60:.1f} min)")
        if args.compare:
            start = as_of
            for _ in range(overlap):
                start = calendar.previous_session(start)
            download, ours = compare_download(fake, home, args.rps, args.compare, start, as_of)
            print(f"cold cache, {args.compare} new symbols: yf.download {download:.2f} requests per symbol "
                  f"(timezone lookup + chart), this source {ours:.2f} (chart only)")
    finally:
        fake.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
