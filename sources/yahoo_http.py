"""The HTTP side of the `yahoo` source: every request yfinance makes for it, under the run's rate
limit, request budget, deadlines and unreachable-breaker, on a pool of worker threads
(`YahooClient`). What the answers mean (bars, actions, quarters, report dates) is sources.yahoo's.

- Every request yfinance makes goes through one curl_cffi session that the client owns
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
  with New York time (`seed_tz_cache`): yfinance uses it only to turn dates into request
  timestamps, and reads the timezone of the bars from the chart answer itself.
"""

from __future__ import annotations

import random
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

from curl_cffi import requests as curl_requests
from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError
from curl_cffi.requests.exceptions import DNSError, RequestException, Timeout
from yfinance import cache as yf_cache
from yfinance.data import YfData
from yfinance.exceptions import YFRateLimitError, YFTickerMissingError

EXCHANGE_TZ = "America/New_York"
SUB_CHUNK_SYMBOLS = 25
UNREACHABLE_AFTER = 50
# A request cut by the chunk deadline ends this long after the deadline, so the abandonment (not
# the request's own timeout) decides what the symbol's error says.
_DEADLINE_GRACE_S = 1.0


# errors ------------------------------------------------------------------------------------------


class _Abandoned(Exception):
    """The chunk this request belongs to ran out of network time (settings.chunk_timeout_s)."""


class _BudgetSpent(Exception):
    """The run's request budget (settings.max_requests_per_run) is spent."""


# Every "Yahoo answered, with nothing usable" error starts so (meta.fetch_state.last_error).
NO_DATA = "no data from Yahoo"


_TZ_CACHE_LOCK = threading.Lock()


def seed_tz_cache(symbols: Sequence[str]) -> None:
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



class NoData(Exception):
    """Yahoo answered, but with nothing usable for the symbol. Messages start with NO_DATA."""


_CURL_NOISE = re.compile(r"^Failed to perform, |\. See https://curl\.se/\S+ first for more details\.?$")


def _describe(exc: BaseException) -> tuple[str, str]:
    """(kind, error text) of a symbol's failure. kind: network | rate_limited | no_data | budget |
    abandoned | other. The text keeps the message yfinance or curl gave."""
    if isinstance(exc, _Abandoned):
        return "abandoned", str(exc)
    if isinstance(exc, _BudgetSpent):
        return "budget", str(exc)
    if isinstance(exc, NoData):
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
class Outcome:
    symbol: str
    value: Any = None
    kind: str = "ok"  # ok, or a kind from _describe
    error: str = ""


# the client ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientConfig:
    """The settings the client uses (ground.settings.Settings has their descriptions)."""

    requests_per_second: float
    max_requests_per_run: int
    http_timeout_s: float
    chunk_timeout_s: float
    fetch_concurrency: int
    rate_limit_retries: int
    rate_limit_backoff_s: float
    user_agent: str


class YahooClient:
    """The HTTP client of one run: its session (for yfinance), rate limit, request budget,
    unreachable-breaker and worker threads span every call made on it, from any thread.

    `session_options` go to the curl_cffi Session (a proxy, a CA bundle, a DNS-over-HTTPS URL):
    tests and bench/fetch_yahoo.py route yfinance to a local fake Yahoo with them; yfinance's URLs,
    Host headers, cookies and crumb stay Yahoo's own.
    """

    def __init__(self, config: ClientConfig, session_options: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self._gate = _Gate(config.requests_per_second, config.max_requests_per_run)
        self._breaker = _Breaker(UNREACHABLE_AFTER)
        self._rng = random.Random()
        self._unattributed = _Counter()
        fallback = _Job(_Attempt(float("inf")), self._unattributed)
        headers = {"User-Agent": config.user_agent} if config.user_agent else None
        self.session = _YahooSession(
            self._gate,
            config.http_timeout_s,
            fallback,
            impersonate="chrome",
            headers=headers,
            **dict(session_options or {}),
        )

    @property
    def requests_made(self) -> int:
        """HTTP requests sent to Yahoo so far (the budget's count)."""
        return self._gate.used

    def fetch_all(self, symbols: list[str], fetch_one: Callable[[str], Any]) -> tuple[list[Outcome], int]:
        """Every symbol's outcome (in the order given) and the HTTP requests this call made.

        Sub-chunks run one after the other on the call's workers (kept across sub-chunks, so their
        connections to Yahoo are reused); unfinished or network-failed symbols get one more try
        after the last sub-chunk.
        """
        counter = _Counter()
        outcomes: dict[str, Outcome] = {}
        workers = _Workers(self.config.fetch_concurrency)
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
                        outcomes[symbol] = Outcome(
                            symbol,
                            kind="abandoned",
                            error=f"no complete answer from Yahoo within {self.config.chunk_timeout_s:g} s of "
                            "network time, twice (settings.chunk_timeout_s): the chunk was abandoned",
                        )
        finally:
            workers.close()
        return [outcomes[s] for s in symbols], counter.value

    def _attempt(
        self, workers: "_Workers", symbols: list[str], fetch_one: Callable[[str], Any], counter: _Counter
    ) -> tuple[dict[str, Outcome], list[str]]:
        """Fetch one sub-chunk with a network-time deadline: (finished outcomes, unfinished symbols)."""
        attempt = _Attempt(self.config.chunk_timeout_s)
        job = _Job(attempt, counter)
        futures = {workers.pool.submit(self._one, job, s, fetch_one): s for s in symbols}
        pending = set(futures)
        done: dict[str, Outcome] = {}
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
            self._breaker.failure(f"no answer within {self.config.chunk_timeout_s:g} s")
        return done, unfinished

    def _one(self, job: _Job, symbol: str, fetch_one: Callable[[str], Any]) -> Outcome:
        """One symbol in a worker thread, with the 429 back-off. Never raises."""
        _local.job = job
        try:
            for retry in range(self.config.rate_limit_retries + 1):
                if self._breaker.open:
                    return Outcome(symbol, kind="unreachable", error=self._breaker.message)
                if job.attempt.abandoned.is_set():
                    return Outcome(symbol, kind="abandoned", error="chunk abandoned before this symbol started")
                if self._gate.spent:
                    return Outcome(symbol, kind="budget", error=self._gate.spent_message)
                _local.last_http_error = None
                try:
                    value = fetch_one(symbol)
                except YFRateLimitError:
                    if retry == self.config.rate_limit_retries:
                        return Outcome(
                            symbol,
                            kind="rate_limited",
                            error=f"HTTP 429 Too Many Requests from Yahoo, still after {retry} retries with "
                            f"back-off (settings.rate_limit_retries, rate_limit_backoff_s)",
                        )
                    base = self.config.rate_limit_backoff_s * 2**retry
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
                    return Outcome(symbol, kind=kind, error=error)
                self._breaker.success()
                return Outcome(symbol, value=value)
            raise AssertionError("unreachable")
        finally:
            _local.job = None


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
