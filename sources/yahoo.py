"""The `yahoo` source: daily bars, splits, dividends and quarterly income statements from Yahoo
Finance through yfinance 1.7; holdings from the iShares files (delegated to sources.ishares).
This module reads Yahoo's answers and maps them to the schemas of sources.base; the requests
themselves (rate limit, budget, deadlines, breaker, worker threads) are sources.yahoo_http's.

docs/yahoo.md is the operator's guide (costs, failure handling, settings, measured figures). The
decisions, in short:

- yfinance's own code talks to Yahoo: `Ticker.history(auto_adjust=False, actions=True)` per symbol
  for bars and actions, `Ticker.get_income_stmt(freq="quarterly")` for fundamentals, and the v7
  quote request of `Ticker.info` (through yfinance's YfData, so with its cookie and crumb) for the
  latest earnings release, which dates the newest quarter (`latest_report`), asked for
  QUOTE_BATCH symbols at a time (the v7 quote takes a list). History is
  fetched one symbol at a time (yf.download does the same, one chart request per symbol, but hides
  each symbol's exception in a log line); so every symbol ends with its rows or with the exception
  yfinance raised for it, which becomes its `failures` row.
- yfinance is told to raise (`yf.config.debug.hide_exceptions = False`, process-wide): with the
  default it logs a DNS failure and then reports the symbol as "possibly delisted".
- Every request goes through the run's `YahooClient` (sources.yahoo_http): one curl_cffi session
  with the rate limit, the request budget, clamped timeouts and chunk deadlines, 429 back-off, and
  a breaker that ends an offline night in seconds.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
import warnings
from dataclasses import dataclass, replace
from datetime import date, datetime, time as clock_time, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

import polars as pl
import yfinance as yf
from curl_cffi.requests.exceptions import RequestException
from yfinance.config import YfConfig
from yfinance.data import YfData

from ground.settings import Settings, Universe
from sources.base import (
    ACTIONS_SCHEMA,
    BARS_SCHEMA,
    FAILURES_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    Capabilities,
    Fetched,
    conform,
    empty,
)
from sources.ishares import IsharesHoldings
from sources.yahoo_http import (
    EXCHANGE_TZ,
    NO_DATA,
    ClientConfig,
    NoData,
    Outcome,
    YahooClient,
    seed_tz_cache,
)

# yfinance 1.7 calls pandas APIs that pandas 3 deprecates (inplace=...): its code, not ours.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"yfinance(\.|$)")

# yfinance income-statement rows (quarterly, pretty=False) -> FUNDAMENTALS_SCHEMA columns.
INCOME_ROWS: dict[str, str] = {
    "NetIncomeCommonStockholders": "net_income_common_usd",
    "NetIncome": "net_income_usd",
    "DilutedEPS": "diluted_eps",
    "TotalRevenue": "revenue_usd",
}

# Report dates (see `latest_report`). Yahoo's v7 quote answer is the one real answer that dates a
# quarterly report: `earningsTimestamp` is the company's latest earnings release (or, once Yahoo
# has it confirmed, the next one). yfinance asks for it in `Ticker.info` (its second request, after
# quoteSummary); the source asks that same request for QUOTE_BATCH symbols at a time.
QUOTE_URL = "https://query1.finance.yahoo.com/v7/finance/quote"
# The v7 quote answers a comma-separated list of symbols in one request (recorded:
# quote-AAPL-BABA.json), omitting those it has no quote of. fundamentals() asks the release dates of
# all its symbols this many at a time before their statements: a first night's 2,100 members cost
# 42 quote requests instead of one per member.
QUOTE_BATCH = 50
NEW_YORK = ZoneInfo(EXCHANGE_TZ)
MARKET_CLOSE = clock_time(16, 0)
# A release more than this long after the newest quarter of the answer reports a later quarter
# (one Yahoo's statements do not hold yet): 90 days is the 10-K deadline of the smallest filers,
# plus the 15 days of an NT 10-K extension.
MAX_REPORT_LAG_DAYS = 105
# The earnings call of a real quarterly report is held the same day or the next; a release with a
# call months away is something else (a preliminary announcement, an investor day).
CALL_WITHIN_DAYS = 3

# fundamentals_due: when the quarter after the newest stored one can be at Yahoo. A quarter lasts
# 90 to 92 days; its release comes the company's usual report lag after it ends (45 days, the 10-Q
# deadline, where no lag is known), give or take a few days. STATEMENT_DELAY_DAYS is a margin for
# that and for Yahoo's statements carrying a release a day or so after it (an assumption: no
# recorded answer says how long Yahoo takes); in bench/fetch_yahoo.py's model of a market, 2 days
# cost 7.8 looks a company a year, 1 day 8.3 (more first looks too early), 3 days 7.4 (but a later
# first look).
QUARTER_DAYS = 91
DEFAULT_REPORT_LAG_DAYS = 45
MIN_REPORT_LAG_DAYS = 10
STATEMENT_DELAY_DAYS = 2
# Not there at the first look: looked for weekly; a quarter still missing this long after it was
# expected (a delinquent filer, a foreign company reporting half-yearly) monthly.
RECHECK_DAYS = 7
OVERDUE_AFTER_DAYS = 45
OVERDUE_RECHECK_DAYS = 28


# fundamentals_due ------------------------------------------------------------------------------

STORED_FUNDAMENTALS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "period_end_date": pl.Date,  # newest stored quarter end of the symbol; null when Yahoo had none
    "last_success_at": pl.Datetime("us"),  # last fetch of its fundamentals that Yahoo answered (a Date works too)
}
# Optional: the days from period end to report the next quarter should take (the same fiscal
# quarter a year earlier, or the newest quarter's); null or absent: unknown.
REPORT_LAG_COLUMN = "report_lag_days"


def fundamentals_due(stored: pl.DataFrame, symbols: Sequence[str], as_of: date, max_age_days: int) -> list[str]:
    """The symbols among `symbols` whose quarterly income statement should be fetched on `as_of`.

    `stored` has at most one row per symbol (STORED_FUNDAMENTALS_SCHEMA, and optionally
    REPORT_LAG_COLUMN), e.g. the newest `raw.fundamentals.period_end_date` and
    `meta.fetch_state.last_success_at` per symbol. The next quarter is *expected* at Yahoo on
    `period_end_date + QUARTER_DAYS + report lag + STATEMENT_DELAY_DAYS`, the report lag being
    `report_lag_days` where known (at least MIN_REPORT_LAG_DAYS, at most MAX_REPORT_LAG_DAYS) and
    DEFAULT_REPORT_LAG_DAYS where not. A symbol is due when
    - it was never fetched (no row, or a null `last_success_at`);
    - its last fetch is more than `max_age_days` before `as_of` (revisions and restatements);
    - its next quarter is expected by `as_of` and it was not looked at since that day, or the last
      look is RECHECK_DAYS old (OVERDUE_RECHECK_DAYS once the quarter is OVERDUE_AFTER_DAYS late);
    - Yahoo had no quarter for it (`period_end_date` null) and the last look is OVERDUE_RECHECK_DAYS
      old (a new listing's first quarter appears eventually; an ETF-like or foreign listing may never
      have one).
    So a company is asked about once a quarter, shortly after its usual report date, and the
    nights spread over an earnings season as the reports do. A symbol whose fetch failed keeps its
    older `last_success_at`, so it stays due. Pure: no clock, no I/O. Returns symbols in the order
    given, each once.
    """
    missing = [c for c in STORED_FUNDAMENTALS_SCHEMA if c not in stored.columns]
    if missing:
        raise ValueError(
            f"fundamentals_due: stored is missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(STORED_FUNDAMENTALS_SCHEMA)}"
        )
    wanted = list(dict.fromkeys(symbols))
    if not wanted:
        return []
    if stored.get_column("symbol").is_duplicated().any():
        raise ValueError("fundamentals_due: stored has more than one row for some symbol")
    lag = pl.col(REPORT_LAG_COLUMN) if REPORT_LAG_COLUMN in stored.columns else pl.lit(None)
    known = stored.select(
        pl.col("symbol").cast(pl.String),
        pl.col("period_end_date").cast(pl.Date),
        pl.col("last_success_at").cast(pl.Date).alias("_fetched_date"),
        lag.cast(pl.Int64).clip(MIN_REPORT_LAG_DAYS, MAX_REPORT_LAG_DAYS).fill_null(DEFAULT_REPORT_LAG_DAYS).alias("_lag"),
    )
    frame = pl.DataFrame({"symbol": wanted, "_order": range(len(wanted))}).join(known, on="symbol", how="left")
    fetched = pl.col("_fetched_date")
    age_days = (pl.lit(as_of) - fetched).dt.total_days()
    expected = pl.col("period_end_date") + pl.duration(days=QUARTER_DAYS + STATEMENT_DELAY_DAYS) + pl.duration(days=pl.col("_lag"))
    late_days = (pl.lit(as_of) - expected).dt.total_days()
    recheck = pl.when(late_days >= OVERDUE_AFTER_DAYS).then(OVERDUE_RECHECK_DAYS).otherwise(RECHECK_DAYS)
    due = (
        fetched.is_null()
        | (age_days > max_age_days)
        | ((late_days >= 0) & ((fetched < expected) | (age_days >= recheck)))
        | (pl.col("period_end_date").is_null() & (age_days >= OVERDUE_RECHECK_DAYS))
    )
    return frame.filter(due.fill_null(False)).sort("_order").get_column("symbol").to_list()


# report dates ------------------------------------------------------------------------------------


def latest_report(
    period_ends: Sequence[date], release_at: datetime | None, call_at: datetime | None, as_of: date
) -> tuple[date, date] | None:
    """(period_end_date, report_date) of the quarter that Yahoo's latest earnings release reported,
    or None where the release does not pin one quarter down. Pure.

    `period_ends`: the quarters of the statement answer; `release_at`: the quote's
    `earningsTimestamp`, `call_at` its `earningsCallTimestampStart` (aware datetimes, or None).
    The release dates the newest quarter when
    - it came out on or before `as_of` (after the close of `as_of` included): a later date is a
      scheduled release, not a report;
    - it came after that quarter ended and at most MAX_REPORT_LAG_DAYS later (a later release is
      of a quarter the statements do not hold yet);
    - the earnings call, where Yahoo gives one, is within CALL_WITHIN_DAYS of it.
    report_date is the first day on whose close the figure was public: the release's New York date,
    or the next day for a release at or after the 16:00 close (cohort rule v1 counts a quarter on
    its report_date's session).
    """
    if release_at is None or not period_ends:
        return None
    local = release_at.astimezone(NEW_YORK)
    released = local.date()
    newest = max(period_ends)
    if released > as_of or not newest < released <= newest + timedelta(days=MAX_REPORT_LAG_DAYS):
        return None
    if call_at is not None and abs((call_at.astimezone(NEW_YORK).date() - released).days) > CALL_WITHIN_DAYS:
        return None
    return newest, released + timedelta(days=1) if local.time() >= MARKET_CLOSE else released


def _epoch(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if isinstance(value, (int, float)) and value > 0 else None


# A company's latest earnings release: (earningsTimestamp, earningsCallTimestampStart) of its quote.
Release = tuple[datetime | None, datetime | None]


def _release_of(quote: Mapping[str, Any] | None) -> Release:
    """(earningsTimestamp, earningsCallTimestampStart) of one v7 quote entry, each None where Yahoo
    gives none (an ETF, a company without a scheduled report, a symbol it has no quote of)."""
    if quote is None:
        return None, None
    return _epoch(quote.get("earningsTimestamp")), _epoch(quote.get("earningsCallTimestampStart"))


class QuoteRequestFailed(RequestException):
    """The v7 quote request for a batch's latest earnings dates failed: a network failure of each
    of its symbols' fundamentals like any other (retried once at the end of the call)."""


@dataclass
class _Chart:
    bars: pl.DataFrame
    actions: pl.DataFrame


def _frame(rows: list[pl.DataFrame], schema: dict[str, pl.DataType], what: str) -> pl.DataFrame:
    rows = [r for r in rows if r.height]
    if not rows:
        return empty(schema)
    return conform(pl.concat(rows, how="vertical"), schema, what)


# the source ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YahooConfig:
    """What the yahoo source uses of the settings: the client's limits, where yfinance keeps its
    caches, and what the iShares download needs (sources.SOURCES builds it with `from_settings`)."""

    client: ClientConfig
    cache_dir: Path  # yfinance's timezone and cookie caches go to cache_dir/yfinance
    universes: tuple[Universe, ...]
    overrides_path: Path  # the ticker -> symbol override file (sources.symbols)

    @classmethod
    def from_settings(cls, settings: Settings) -> "YahooConfig":
        return cls(
            client=ClientConfig(
                requests_per_second=settings.requests_per_second,
                max_requests_per_run=settings.max_requests_per_run,
                http_timeout_s=settings.http_timeout_s,
                chunk_timeout_s=settings.chunk_timeout_s,
                fetch_concurrency=settings.fetch_concurrency,
                rate_limit_retries=settings.rate_limit_retries,
                rate_limit_backoff_s=settings.rate_limit_backoff_s,
                user_agent=settings.user_agent,
            ),
            cache_dir=settings.cache_dir,
            universes=tuple(settings.universes),
            overrides_path=settings.home / "symbol_overrides.csv",
        )


_built: dict[str, "YahooSource"] = {}
_built_lock = threading.Lock()


def _for_this_process(config: YahooConfig, session_options: dict, run: str) -> "YahooSource":
    """The source of run `run` in this process (a Dask worker), built at its first chunk. Its caches
    go under this machine's temporary folder: the flow's data home may not exist here."""
    with _built_lock:
        if run not in _built:
            _built.clear()  # a new run: the previous run's budget and breaker are done with
            home = Path(tempfile.gettempdir()) / f"smallcaps-worker-{os.getuid()}"
            here = replace(config, cache_dir=home / "cache", overrides_path=home / "symbol_overrides.csv")
            _built[run] = YahooSource(here, session_options=session_options)
            _built[run]._run = run
        return _built[run]


class YahooSource:
    """Live data from Yahoo Finance (bars, actions, fundamentals) and iShares (holdings).

    One instance is one run: its `YahooClient` holds the request budget, the rate limit and the
    unreachable-breaker across every call made on it, from any thread.

    `session_options` go to the client's curl_cffi Session (a proxy, a CA bundle, a DNS-over-HTTPS
    URL): tests and bench/fetch_yahoo.py route yfinance to a local fake Yahoo with them.
    """

    name = "yahoo"
    # Yahoo rate-limits and answers each symbol with a request or two: a backfill asks once for its
    # range, and fundamentals only when a quarter can be out (fundamentals_due).
    capabilities = Capabilities(is_metered=True)

    def __init__(
        self,
        config: YahooConfig,
        *,
        session_options: Mapping[str, Any] | None = None,
        holdings: IsharesHoldings | None = None,
    ) -> None:
        self.config = config
        self._session_options = dict(session_options or {})
        self._run = uuid.uuid4().hex
        self._client = YahooClient(config.client, session_options=session_options)
        self._ishares = holdings or IsharesHoldings(
            config.universes,
            user_agent=config.client.user_agent,
            timeout_s=config.client.http_timeout_s,
            overrides_path=config.overrides_path,
        )
        cache = Path(config.cache_dir) / "yfinance"
        cache.mkdir(parents=True, exist_ok=True)
        yf.set_tz_cache_location(str(cache))
        yf.config.debug.hide_exceptions = False

    def __reduce__(self):
        # How a Dask worker gets the source (flows/runner.py): a session, locks and counters do not
        # travel; the worker builds its own source for this run once and reuses it for every chunk
        # it fetches. So the rate limit, the request budget and the unreachable-breaker hold per
        # worker process on a cluster (docs/operations.md says how to set them).
        return (_for_this_process, (self.config, self._session_options, self._run))

    def __dask_tokenize__(self):
        # Dask names a submitted call by its arguments; without this it would pickle and unpickle
        # the source (building one) in the flow's process just to check the name is stable.
        return ("yahoo", self._run)

    @property
    def requests_made(self) -> int:
        """HTTP requests this source sent to Yahoo so far (the budget's count)."""
        return self._client.requests_made

    # Source protocol ----------------------------------------------------------------------------------

    def holdings(self, universes: Sequence[str], start: date, end: date) -> Fetched:
        """Today's iShares snapshot of each universe; a failed download is a `failures` row."""
        return self._ishares.holdings(universes, start, end)

    def bars(self, symbols: Sequence[str], start: date, end: date) -> Fetched:
        """Daily bars of `symbols` for sessions in [start, end] (both inclusive), with splits and
        dividends in `actions`; each symbol without bars is a `failures` row saying why."""
        if start > end:
            raise ValueError(f"bars: start {start} is after end {end}")
        wanted = list(dict.fromkeys(symbols))
        seed_tz_cache(wanted)
        outcomes, requests = self._client.fetch_all(wanted, lambda s: self._chart(s, start, end))
        charts = [o.value for o in outcomes if o.kind == "ok"]
        return Fetched(
            bars=_frame([c.bars for c in charts], BARS_SCHEMA, "yahoo bars"),
            actions=_frame([c.actions for c in charts], ACTIONS_SCHEMA, "yahoo actions"),
            failures=self._failures(outcomes, "bars"),
            requests=requests,
        )

    def fundamentals(self, symbols: Sequence[str], as_of: date) -> Fetched:
        """Quarterly income statement lines (quarters ended on or before `as_of`) of `symbols`,
        with the newest quarter's report date where Yahoo's latest earnings release pins it down
        (`latest_report`): one statement request per symbol, plus one quote request per
        QUOTE_BATCH symbols (`_releases`). Which symbols are due is the caller's choice (see
        `fundamentals_due`)."""
        wanted = list(dict.fromkeys(symbols))
        releases, unreleased, quote_requests = self._releases(wanted)
        dated = [s for s in wanted if s in releases]
        outcomes, requests = self._client.fetch_all(dated, lambda s: self._income(s, as_of, releases[s]))
        return Fetched(
            fundamentals=_frame([o.value for o in outcomes if o.kind == "ok"], FUNDAMENTALS_SCHEMA, "yahoo fundamentals"),
            failures=self._failures(outcomes + unreleased, "fundamentals"),
            requests=quote_requests + requests,
        )

    def _releases(self, symbols: list[str]) -> tuple[dict[str, Release], list[Outcome], int]:
        """Each symbol's latest release (`_release_of`) from quote requests of QUOTE_BATCH symbols,
        asked before any statement: (releases by symbol, the failures of the symbols whose batch
        failed after the client's retry, requests made). A symbol whose release is unknown is not
        fetched: its fundamentals stay due, as when any other request of it fails."""
        batches = [",".join(symbols[i : i + QUOTE_BATCH]) for i in range(0, len(symbols), QUOTE_BATCH)]
        outcomes, requests = self._client.fetch_all(batches, self._quote_batch)
        releases: dict[str, Release] = {}
        unreleased: list[Outcome] = []
        for outcome in outcomes:
            if outcome.kind == "ok":
                releases.update(outcome.value)
            else:
                unreleased += [Outcome(s, kind=outcome.kind, error=outcome.error) for s in outcome.symbol.split(",")]
        return releases, unreleased, requests

    def _quote_batch(self, batch: str) -> dict[str, Release]:
        """The releases of the comma-separated `batch` from one quote request (raises
        QuoteRequestFailed)."""
        params = {"symbols": batch, "formatted": "false", "lang": YfConfig.locale.lang, "region": YfConfig.locale.region}
        try:
            answer = YfData(session=self._client.session).get_raw_json(QUOTE_URL, params=params, timeout=self.config.client.http_timeout_s)
        except RequestException as exc:
            raise QuoteRequestFailed(f"{exc} (asking the latest earnings date, {QUOTE_URL})") from exc
        results = (answer.get("quoteResponse") or {}).get("result") or []
        quotes = {q["symbol"]: q for q in results if isinstance(q, dict) and q.get("symbol")}
        return {s: _release_of(quotes.get(s)) for s in batch.split(",")}

    # one symbol ----------------------------------------------------------------------------------------

    def _ticker(self, symbol: str) -> yf.Ticker:
        return yf.Ticker(symbol, session=self._client.session)

    def _chart(self, symbol: str, start: date, end: date) -> _Chart:
        # yfinance's end is exclusive; ours is inclusive.
        history = self._ticker(symbol).history(
            start=start.isoformat(),
            end=(end + timedelta(days=1)).isoformat(),
            interval="1d",
            auto_adjust=False,
            actions=True,
            timeout=self.config.client.http_timeout_s,
        )
        if history.empty:
            raise NoData(f"{NO_DATA}: it answered with no bars for {start}..{end}")
        # Daily rows are indexed at midnight of the session in the exchange's timezone.
        days = [ts.date() for ts in history.index]

        def column(name: str) -> Any:
            return history[name].to_numpy(dtype="float64") if name in history.columns else [None] * len(days)

        frame = pl.DataFrame(
            {
                "symbol": [symbol] * len(days),
                "session_date": days,
                "open": column("Open"),
                "high": column("High"),
                "low": column("Low"),
                "close": column("Close"),
                "adj_close": column("Adj Close"),
                "volume": history["Volume"].to_numpy(dtype="int64"),
                "dividend": column("Dividends"),
                "split": column("Stock Splits"),
            },
            schema_overrides={"session_date": pl.Date},
        ).with_columns(pl.col(pl.Float64).fill_nan(None))
        frame = frame.filter(pl.col("session_date").is_between(start, end))
        if frame.filter(pl.col("close").is_not_null()).is_empty():
            raise NoData(f"{NO_DATA}: no bar with a close for {start}..{end}")
        if symbol.startswith("^"):
            # Yahoo has no volume for some indexes (^VIX) and writes 0, which yfinance keeps: null
            # says "none" where 0 would claim nothing traded.
            frame = frame.with_columns(pl.when(pl.col("volume") != 0).then(pl.col("volume")).alias("volume"))
        actions = pl.concat(
            [
                frame.filter(pl.col(column).is_not_null() & (pl.col(column) != 0)).select(
                    "symbol",
                    pl.col("session_date").alias("ex_date"),
                    pl.lit(column).alias("action"),
                    pl.col(column).alias("value"),
                )
                for column in ("split", "dividend")
            ]
        )
        # yfinance adds a row without prices for an action dated off the bars (a dividend on a
        # non-trading day): the action is kept above, the priceless row is not a bar.
        bars = frame.filter(pl.col("close").is_not_null()).select(list(BARS_SCHEMA))
        return _Chart(bars=bars, actions=actions)

    def _income(self, symbol: str, as_of: date, release: Release) -> pl.DataFrame:
        # yfinance falls back to three shorter requests when the one long fundamentals URL fails,
        # and then keeps doing so for every later symbol. Our failures are network errors and
        # 429s, not URL length, so each symbol starts with the one request again.
        YfData().fundamentals_use_chunked = False
        table = self._ticker(symbol).get_income_stmt(freq="quarterly")
        if table is None or table.empty:
            raise NoData(f"{NO_DATA}: no quarterly income statement (yfinance returned an empty table)")
        periods = [ts.date() for ts in table.columns]
        data: dict[str, Any] = {
            "symbol": [symbol] * len(periods),
            "period_end_date": periods,
            "report_date": [None] * len(periods),  # the statements carry none; see _quote_batch
        }
        for row, col in INCOME_ROWS.items():
            data[col] = table.loc[row].to_numpy(dtype="float64") if row in table.index else [None] * len(periods)
        types = {"period_end_date": pl.Date, "report_date": pl.Date, **{c: pl.Float64 for c in INCOME_ROWS.values()}}
        frame = (
            pl.DataFrame(data, schema_overrides=types)
            .with_columns(pl.col(pl.Float64).fill_nan(None))
            # A period listed only because another income line has a value there says nothing about ours.
            .filter(pl.any_horizontal(pl.col(list(INCOME_ROWS.values())).is_not_null()))
            .filter(pl.col("period_end_date") <= as_of)
            .sort("period_end_date")
        )
        if frame.is_empty():
            raise NoData(
                f"{NO_DATA}: no quarter with net income, EPS or revenue ended on or before {as_of}"
            )
        release_at, call_at = release
        dated = latest_report(frame.get_column("period_end_date").to_list(), release_at, call_at, as_of)
        if dated is not None:
            period_end, report = dated
            frame = frame.with_columns(
                pl.when(pl.col("period_end_date") == period_end).then(pl.lit(report)).alias("report_date")
            )
        return frame.select(list(FUNDAMENTALS_SCHEMA))

    # many symbols ------------------------------------------------------------------------------------

    @staticmethod
    def _failures(outcomes: list[Outcome], dataset: str) -> pl.DataFrame:
        rows = [(o.symbol, dataset, o.error) for o in outcomes if o.kind != "ok"]
        if not rows:
            return empty(FAILURES_SCHEMA)
        return pl.DataFrame(rows, schema=FAILURES_SCHEMA, orient="row")
