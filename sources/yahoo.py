"""The `yahoo` source: daily bars, splits, dividends and quarterly income statements from Yahoo
Finance through yfinance 1.7; holdings from the iShares files (delegated to sources.ishares).

docs/yahoo.md is the operator's guide (costs, failure handling, settings, measured figures). The
decisions, in short:

- yfinance's own code talks to Yahoo: `Ticker.history(auto_adjust=False, actions=True)` per symbol
  for bars and actions, `Ticker.get_income_stmt(freq="quarterly")` for fundamentals, and the v7
  quote request of `Ticker.info` (through yfinance's YfData, so with its cookie and crumb) for the
  latest earnings release, which dates the newest quarter (`latest_report`). History is
  fetched one symbol at a time (yf.download does the same, one chart request per symbol, but hides
  each symbol's exception in a log line); so every symbol ends with its rows or with the exception
  yfinance raised for it, which becomes its `failures` row.
- yfinance is told to raise (`yf.config.debug.hide_exceptions = False`, process-wide): with the
  default it logs a DNS failure and then reports the symbol as "possibly delisted".
- Every request yfinance makes goes through one curl_cffi session that this module owns
  (`_YahooSession`, yfinance's own backend and browser TLS). Before each request it waits for the
  run's rate limit, counts against the run's request budget, clamps the timeout, and refuses to
  start once the chunk it belongs to was abandoned. That clamp is what bounds a hanging network:
  yfinance's cookie, crumb and timezone requests use fixed 10-30 s timeouts, whatever `timeout`
  says (measured: 100-130 s per symbol against a server that never answers).
- Symbols are fetched in sub-chunks of SUB_CHUNK_SYMBOLS by `fetch_concurrency` worker threads.
  A sub-chunk gets `chunk_timeout_s` of network time (time spent waiting for the rate limit or a
  429 pause does not count); symbols unfinished by then are abandoned, retried once at the end of
  the call, then reported. Symbols that failed on the network are retried once the same way.
- HTTP 429: yfinance retries once at once; then every worker pauses (Yahoo limits the client, not
  the symbol) for rate_limit_backoff_s * 2**n plus jitter, up to rate_limit_retries times.
- After UNREACHABLE_AFTER symbols in a row failed on the network, the rest of the run fails fast:
  an offline night ends in seconds with one clear error instead of timing out symbol by symbol.
- yfinance asks Yahoo for a symbol's exchange timezone before its first chart (one extra request per
  symbol on a cold cache). Every symbol here is a US listing or a US index, so the cache is seeded
  with New York time: yfinance uses it only to turn dates into request timestamps, and reads the
  timezone of the bars from the chart answer itself.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
import threading
import time
import uuid
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, datetime, time as clock_time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import polars as pl
import yfinance as yf
from curl_cffi import requests as curl_requests
from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError
from curl_cffi.requests.exceptions import DNSError, RequestException, Timeout
from yfinance import cache as yf_cache
from yfinance.config import YfConfig
from yfinance.data import YfData
from yfinance.exceptions import YFRateLimitError, YFTickerMissingError

from smallcaps.settings import Settings
from sources.base import (
    ACTIONS_SCHEMA,
    BARS_SCHEMA,
    FAILURES_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    Fetched,
    conform,
    empty,
)
from sources.ishares import IsharesHoldings

# yfinance 1.7 calls pandas APIs that pandas 3 deprecates (inplace=...): its code, not ours.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"yfinance(\.|$)")

EXCHANGE_TZ = "America/New_York"
SUB_CHUNK_SYMBOLS = 25
UNREACHABLE_AFTER = 50
# A request cut by the chunk deadline ends this long after the deadline, so the abandonment (not
# the request's own timeout) decides what the symbol's error says.
_DEADLINE_GRACE_S = 1.0

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
# quoteSummary); the source asks that same request alone, one symbol at a time as yfinance does.
QUOTE_URL = "https://query1.finance.yahoo.com/v7/finance/quote"
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


# errors ------------------------------------------------------------------------------------------


class _Abandoned(Exception):
    """The chunk this request belongs to ran out of network time (settings.chunk_timeout_s)."""


class _BudgetSpent(Exception):
    """The run's request budget (settings.max_requests_per_run) is spent."""


# Every "Yahoo answered, with nothing usable" error starts so (meta.fetch_state.last_error).
NO_DATA = "no data from Yahoo"


_TZ_CACHE_LOCK = threading.Lock()


def _seed_tz_cache(symbols: Sequence[str]) -> None:
    """Tell yfinance's time-zone cache that every symbol trades in New York, before any worker
    thread starts. Without an entry yfinance spends a request per symbol asking Yahoo; and its
    sqlite cache, set up lazily and written from several threads at once, fails with "database is
    locked", which would turn healthy symbols into failures. Here it is set up and written from
    the calling thread only; the workers just read it."""
    with _TZ_CACHE_LOCK:
        tz = yf_cache.get_tz_cache()
        for symbol in symbols:
            if tz.lookup(symbol) is None:
                tz.store(symbol, EXCHANGE_TZ)


class QuoteRequestFailed(RequestException):
    """The v7 quote request for a symbol's latest earnings date failed: a network failure of the
    symbol's fundamentals like any other (retried once at the end of the call)."""


class _NoData(Exception):
    """Yahoo answered, but with nothing usable for the symbol. Messages start with NO_DATA."""


_CURL_NOISE = re.compile(r"^Failed to perform, |\. See https://curl\.se/\S+ first for more details\.?$")


def _describe(exc: BaseException) -> tuple[str, str]:
    """(kind, error text) of a symbol's failure. kind: network | rate_limited | no_data | budget |
    abandoned | other. The text keeps the message yfinance or curl gave."""
    if isinstance(exc, _Abandoned):
        return "abandoned", str(exc)
    if isinstance(exc, _BudgetSpent):
        return "budget", str(exc)
    if isinstance(exc, _NoData):
        return "no_data", str(exc)
    if isinstance(exc, YFTickerMissingError):
        # "$ZZZZ: possibly delisted; no price data found (1d 2020-01-02 -> 2020-01-04)"
        reason = str(exc).split(": ", 1)[-1]
        return "no_data", f"{NO_DATA}: {reason} (yfinance {type(exc).__name__})"
    if isinstance(exc, YFRateLimitError):
        return "rate_limited", "HTTP 429 Too Many Requests from Yahoo"
    if isinstance(exc, RequestException):
        text = _CURL_NOISE.sub("", str(exc)).strip()
        return "network", f"{type(exc).__name__}: {text}"
    return "other", f"{type(exc).__name__}: {exc}"


# the run's gate: rate limit, request budget, 429 pauses ------------------------------------------


class _Attempt:
    """One try at one sub-chunk: its network-time deadline and its abandon flag.

    The clock stops while any of its workers waits for the rate limit or a 429 pause, so a
    rate-limited chunk is not mistaken for a hanging one.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.started = time.monotonic()
        self.abandoned = threading.Event()
        self._lock = threading.Lock()
        self._waiting = 0
        self._wait_since = 0.0
        self._waited = 0.0

    def begin_wait(self) -> None:
        with self._lock:
            if self._waiting == 0:
                self._wait_since = time.monotonic()
            self._waiting += 1

    def end_wait(self) -> None:
        with self._lock:
            self._waiting -= 1
            if self._waiting == 0:
                self._waited += time.monotonic() - self._wait_since

    def left_s(self) -> float:
        """Network time left before the deadline."""
        with self._lock:
            now = time.monotonic()
            waited = self._waited + (now - self._wait_since if self._waiting else 0.0)
            return self.timeout_s - (now - self.started - waited)

    def abandon(self) -> None:
        self.abandoned.set()


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


@dataclass
class _Job:
    """What a worker thread is doing: the attempt it belongs to, and the call counting its requests."""

    attempt: _Attempt
    requests: _Counter


_local = threading.local()


class _Gate:
    """Shared by every request of one source (one run): spacing, budget and pauses."""

    def __init__(self, requests_per_second: float, budget: int) -> None:
        self.interval_s = 1.0 / requests_per_second
        self.budget = budget
        self.used = 0
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @property
    def spent(self) -> bool:
        with self._lock:
            return self.used >= self.budget

    @property
    def spent_message(self) -> str:
        return (
            f"not requested: the run's request budget of {self.budget:,} HTTP requests is spent "
            "(settings.max_requests_per_run)"
        )

    def give_back(self) -> None:
        """The last request never reached Yahoo (DNS failure, connection refused): its slot is free."""
        with self._lock:
            self._next = max(time.monotonic(), self._next - self.interval_s)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def admit(self, job: _Job) -> None:
        """Block until this request may go out; raise when it must not."""
        with self._lock:
            if self.used >= self.budget:
                raise _BudgetSpent(self.spent_message)
            self.used += 1
            now = time.monotonic()
            slot = max(now, self._next, self._paused_until)
            self._next = slot + self.interval_s
        try:
            while True:
                delay = slot - time.monotonic()
                if delay <= 0:
                    break
                job.attempt.begin_wait()
                try:
                    if job.attempt.abandoned.wait(delay):
                        raise _Abandoned("chunk abandoned while this request waited for the rate limit")
                finally:
                    job.attempt.end_wait()
                with self._lock:  # a 429 pause that began while this request waited applies too
                    slot = max(slot, self._paused_until)
        except _Abandoned:
            with self._lock:
                self.used -= 1
            raise
        job.requests.add()


class _YahooSession(curl_requests.Session):
    """yfinance's transport, with the run's gate, timeouts and deadlines on every request."""

    def __init__(self, gate: _Gate, http_timeout_s: float, fallback: _Job, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = gate
        self._http_timeout_s = http_timeout_s
        self._fallback = fallback

    def request(self, method, url, *args, **kwargs):  # noqa: D401 - curl_cffi's signature
        job: _Job = getattr(_local, "job", None) or self._fallback
        attempt = job.attempt
        if attempt.abandoned.is_set() or attempt.left_s() <= 0:
            raise _Abandoned("chunk out of network time: request not sent")
        self._gate.admit(job)  # waiting here does not use the chunk's network time
        asked = kwargs.get("timeout")
        limit = min(self._http_timeout_s, max(attempt.left_s(), 0.0) + _DEADLINE_GRACE_S)
        if isinstance(asked, (int, float)) and asked > 0:
            limit = min(limit, float(asked))
        kwargs["timeout"] = limit
        try:
            response = super().request(method, url, *args, **kwargs)
        except (DNSError, CurlConnectionError) as exc:
            if not isinstance(exc, Timeout):
                self._gate.give_back()
            raise
        if response.status_code >= 400:
            _local.last_http_error = (response.status_code, urlsplit(url).hostname)
        return response


# the breaker ---------------------------------------------------------------------------------------


class _Breaker:
    """Opens after UNREACHABLE_AFTER symbols in a row failed on the network; stays open for the run."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._last = ""
        self.open = False

    def success(self) -> None:
        with self._lock:
            self._in_a_row = 0

    def failure(self, error: str) -> None:
        with self._lock:
            self._in_a_row += 1
            self._last = error
            if self._in_a_row >= self.threshold:
                self.open = True

    @property
    def message(self) -> str:
        return (
            f"not requested: Yahoo looks unreachable ({self.threshold} symbols in a row failed on the "
            f"network, the last with {self._last}); the rest of this run was skipped: check the "
            "network and rerun, or use --source sample"
        )


# per-symbol outcome ----------------------------------------------------------------------------------


@dataclass
class _Outcome:
    symbol: str
    value: Any = None
    kind: str = "ok"  # ok, or a kind from _describe
    error: str = ""


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


_built: dict[str, "YahooSource"] = {}
_built_lock = threading.Lock()


def _for_this_process(settings: Settings, session_options: dict, run: str) -> "YahooSource":
    """The source of run `run` in this process (a Dask worker), built at its first chunk. Its caches
    go under this machine's temporary folder: the flow's data home may not exist here."""
    with _built_lock:
        if run not in _built:
            _built.clear()  # a new run: the previous run's budget and breaker are done with
            home = Path(tempfile.gettempdir()) / f"smallcaps-worker-{os.getuid()}"
            _built[run] = YahooSource(settings.model_copy(update={"home": home}), session_options=session_options)
            _built[run]._run = run
        return _built[run]


class YahooSource:
    """Live data from Yahoo Finance (bars, actions, fundamentals) and iShares (holdings).

    One instance is one run: the request budget, the rate limit and the unreachable-breaker span
    every call made on it, from any thread.

    `session_options` go to the curl_cffi Session (a proxy, a CA bundle, a DNS-over-HTTPS URL):
    tests and bench/fetch_yahoo.py route yfinance to a local fake Yahoo with them; yfinance's URLs,
    Host headers, cookies and crumb stay Yahoo's own.
    """

    name = "yahoo"

    def __init__(
        self,
        settings: Settings,
        *,
        session_options: Mapping[str, Any] | None = None,
        holdings: IsharesHoldings | None = None,
    ) -> None:
        self.settings = settings
        self._session_options = dict(session_options or {})
        self._run = uuid.uuid4().hex
        self._gate = _Gate(settings.requests_per_second, settings.max_requests_per_run)
        self._breaker = _Breaker(UNREACHABLE_AFTER)
        self._rng = random.Random()
        self._unattributed = _Counter()
        fallback = _Job(_Attempt(float("inf")), self._unattributed)
        headers = {"User-Agent": settings.user_agent} if settings.user_agent else None
        self._session = _YahooSession(
            self._gate,
            settings.http_timeout_s,
            fallback,
            impersonate="chrome",
            headers=headers,
            **dict(session_options or {}),
        )
        self._ishares = holdings or IsharesHoldings.from_settings(
            settings, overrides_path=settings.home / "symbol_overrides.csv"
        )
        cache = Path(settings.cache_dir) / "yfinance"
        cache.mkdir(parents=True, exist_ok=True)
        yf.set_tz_cache_location(str(cache))
        yf.config.debug.hide_exceptions = False

    def __reduce__(self):
        # How a Dask worker gets the source (flows/runner.py): a session, locks and counters do not
        # travel; the worker builds its own source for this run once and reuses it for every chunk
        # it fetches. So the rate limit, the request budget and the unreachable-breaker hold per
        # worker process on a cluster (docs/operations.md says how to set them).
        return (_for_this_process, (self.settings, self._session_options, self._run))

    def __dask_tokenize__(self):
        # Dask names a submitted call by its arguments; without this it would pickle and unpickle
        # the source (building one) in the flow's process just to check the name is stable.
        return ("yahoo", self._run)

    @property
    def requests_made(self) -> int:
        """HTTP requests this source sent to Yahoo so far (the budget's count)."""
        return self._gate.used

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
        _seed_tz_cache(wanted)
        outcomes, requests = self._fetch_all(wanted, lambda s: self._chart(s, start, end))
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
        (`latest_report`); two requests per symbol with quarters, one without. Which symbols are
        due is the caller's choice (see `fundamentals_due`)."""
        wanted = list(dict.fromkeys(symbols))
        outcomes, requests = self._fetch_all(wanted, lambda s: self._income(s, as_of))
        return Fetched(
            fundamentals=_frame([o.value for o in outcomes if o.kind == "ok"], FUNDAMENTALS_SCHEMA, "yahoo fundamentals"),
            failures=self._failures(outcomes, "fundamentals"),
            requests=requests,
        )

    # one symbol ----------------------------------------------------------------------------------------

    def _ticker(self, symbol: str) -> yf.Ticker:
        return yf.Ticker(symbol, session=self._session)

    def _chart(self, symbol: str, start: date, end: date) -> _Chart:
        # yfinance's end is exclusive; ours is inclusive.
        history = self._ticker(symbol).history(
            start=start.isoformat(),
            end=(end + timedelta(days=1)).isoformat(),
            interval="1d",
            auto_adjust=False,
            actions=True,
            timeout=self.settings.http_timeout_s,
        )
        if history.empty:
            raise _NoData(f"{NO_DATA}: it answered with no bars for {start}..{end}")
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
            raise _NoData(f"{NO_DATA}: no bar with a close for {start}..{end}")
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

    def _income(self, symbol: str, as_of: date) -> pl.DataFrame:
        # yfinance falls back to three shorter requests when the one long fundamentals URL fails,
        # and then keeps doing so for every later symbol. Our failures are network errors and
        # 429s, not URL length, so each symbol starts with the one request again.
        YfData().fundamentals_use_chunked = False
        table = self._ticker(symbol).get_income_stmt(freq="quarterly")
        if table is None or table.empty:
            raise _NoData(f"{NO_DATA}: no quarterly income statement (yfinance returned an empty table)")
        periods = [ts.date() for ts in table.columns]
        data: dict[str, Any] = {
            "symbol": [symbol] * len(periods),
            "period_end_date": periods,
            "report_date": [None] * len(periods),  # the statements carry none; see _latest_release
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
            raise _NoData(
                f"{NO_DATA}: no quarter with net income, EPS or revenue ended on or before {as_of}"
            )
        release_at, call_at = self._latest_release(symbol)
        dated = latest_report(frame.get_column("period_end_date").to_list(), release_at, call_at, as_of)
        if dated is not None:
            period_end, report = dated
            frame = frame.with_columns(
                pl.when(pl.col("period_end_date") == period_end).then(pl.lit(report)).alias("report_date")
            )
        return frame.select(list(FUNDAMENTALS_SCHEMA))

    def _latest_release(self, symbol: str) -> tuple[datetime | None, datetime | None]:
        """(earningsTimestamp, earningsCallTimestampStart) of the symbol's v7 quote, each None
        where Yahoo gives none (an ETF, a company without a scheduled report)."""
        params = {"symbols": symbol, "formatted": "false", "lang": YfConfig.locale.lang, "region": YfConfig.locale.region}
        try:
            answer = YfData(session=self._session).get_raw_json(QUOTE_URL, params=params, timeout=self.settings.http_timeout_s)
        except RequestException as exc:
            raise QuoteRequestFailed(f"{exc} (asking the latest earnings date, {QUOTE_URL})") from exc
        results = (answer.get("quoteResponse") or {}).get("result") or []
        quote = next((q for q in results if q.get("symbol") == symbol), None)
        if quote is None:
            return None, None
        return _epoch(quote.get("earningsTimestamp")), _epoch(quote.get("earningsCallTimestampStart"))

    # many symbols ------------------------------------------------------------------------------------

    def _fetch_all(self, symbols: list[str], fetch_one: Callable[[str], Any]) -> tuple[list[_Outcome], int]:
        """Every symbol's outcome (in the order given) and the HTTP requests this call made.

        Sub-chunks run one after the other on the call's workers (kept across sub-chunks, so their
        connections to Yahoo are reused); unfinished or network-failed symbols get one more try
        after the last sub-chunk.
        """
        counter = _Counter()
        outcomes: dict[str, _Outcome] = {}
        workers = _Workers(self.settings.fetch_concurrency)
        try:
            again: list[str] = []
            for part in _chunks(symbols, SUB_CHUNK_SYMBOLS):
                done, unfinished = self._attempt(workers, part, fetch_one, counter)
                outcomes.update(done)
                again += unfinished + [s for s, o in done.items() if o.kind == "network"]
            if again:
                # yfinance keeps answered requests in memory; a retry must ask Yahoo again.
                YfData.cache_get.cache_clear()
                for part in _chunks(again, SUB_CHUNK_SYMBOLS):
                    done, unfinished = self._attempt(workers, part, fetch_one, counter)
                    for symbol, outcome in done.items():
                        if outcome.kind == "unreachable" and symbol in outcomes:
                            continue  # not retried after all: its own first error says more
                        if outcome.kind == "network":
                            outcome.error += " (failed twice)"
                        outcomes[symbol] = outcome
                    for symbol in unfinished:
                        outcomes[symbol] = _Outcome(
                            symbol,
                            kind="abandoned",
                            error=f"no complete answer from Yahoo within {self.settings.chunk_timeout_s:g} s of "
                            "network time, twice (settings.chunk_timeout_s): the chunk was abandoned",
                        )
        finally:
            workers.close()
        return [outcomes[s] for s in symbols], counter.value

    def _attempt(
        self, workers: "_Workers", symbols: list[str], fetch_one: Callable[[str], Any], counter: _Counter
    ) -> tuple[dict[str, _Outcome], list[str]]:
        """Fetch one sub-chunk with a network-time deadline: (finished outcomes, unfinished symbols)."""
        attempt = _Attempt(self.settings.chunk_timeout_s)
        job = _Job(attempt, counter)
        futures = {workers.pool.submit(self._one, job, s, fetch_one): s for s in symbols}
        pending = set(futures)
        done: dict[str, _Outcome] = {}
        try:
            while pending:
                left = attempt.left_s()
                if left <= 0:
                    break
                finished, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
                for f in finished:
                    outcome = f.result()
                    done[outcome.symbol] = outcome
        finally:
            if pending:
                # Abandoned workers stop before their next request; one in flight ends by its
                # clamped timeout. Their results are dropped: the symbols are retried or reported.
                attempt.abandon()
                workers.replace()
        unfinished = [futures[f] for f in pending]
        for _ in unfinished:
            self._breaker.failure(f"no answer within {self.settings.chunk_timeout_s:g} s")
        return done, unfinished

    def _one(self, job: _Job, symbol: str, fetch_one: Callable[[str], Any]) -> _Outcome:
        """One symbol in a worker thread, with the 429 back-off. Never raises."""
        _local.job = job
        try:
            for retry in range(self.settings.rate_limit_retries + 1):
                if self._breaker.open:
                    return _Outcome(symbol, kind="unreachable", error=self._breaker.message)
                if job.attempt.abandoned.is_set():
                    return _Outcome(symbol, kind="abandoned", error="chunk abandoned before this symbol started")
                if self._gate.spent:
                    return _Outcome(symbol, kind="budget", error=self._gate.spent_message)
                _local.last_http_error = None
                try:
                    value = fetch_one(symbol)
                except YFRateLimitError:
                    if retry == self.settings.rate_limit_retries:
                        return _Outcome(
                            symbol,
                            kind="rate_limited",
                            error=f"HTTP 429 Too Many Requests from Yahoo, still after {retry} retries with "
                            f"back-off (settings.rate_limit_retries, rate_limit_backoff_s)",
                        )
                    base = self.settings.rate_limit_backoff_s * 2**retry
                    self._gate.pause(base + self._rng.uniform(0, base))
                    continue
                except Exception as exc:  # every symbol ends as rows or as a failures row
                    kind, error = _describe(exc)
                    http = getattr(_local, "last_http_error", None)
                    if kind == "other" and http is not None:
                        # e.g. an HTML error page that yfinance then failed to read as JSON
                        status, host = http
                        error = f"HTTP {status} from {host} ({error})"
                        kind = "network" if status >= 500 else kind
                    if kind in ("network", "abandoned"):
                        self._breaker.failure(error)
                    else:
                        self._breaker.success()
                    return _Outcome(symbol, kind=kind, error=error)
                self._breaker.success()
                return _Outcome(symbol, value=value)
            raise AssertionError("unreachable")
        finally:
            _local.job = None

    @staticmethod
    def _failures(outcomes: list[_Outcome], dataset: str) -> pl.DataFrame:
        rows = [(o.symbol, dataset, o.error) for o in outcomes if o.kind != "ok"]
        if not rows:
            return empty(FAILURES_SCHEMA)
        return pl.DataFrame(rows, schema=FAILURES_SCHEMA, orient="row")


class _Workers:
    """The worker threads of one call. After an abandonment the stuck ones are left to finish on
    their own (bounded by the clamped timeout) and fresh ones take over."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pool = self._new()

    def _new(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="yahoo-fetch")

    def replace(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
