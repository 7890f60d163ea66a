"""The yahoo source running yfinance's real code against recorded Yahoo answers.

A fake Yahoo (tests/fixtures/yahoo-http/fake_yahoo.py) on 127.0.0.1 serves the recorded answers
over HTTPS; yfinance reaches it through curl's proxy support, so its URLs, cookie and crumb flow
are the real ones. Failure modes are served the same way: 404 "No data found", HTTP 429, HTTP 500,
a server that never answers, a DNS failure. `fundamentals_due` is a pure function, tested by cases.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import polars as pl
import pytest

from ground.settings import Settings
from sources import make_source
from sources.base import ACTIONS_SCHEMA, BARS_SCHEMA, FAILURES_SCHEMA, FUNDAMENTALS_SCHEMA, HOLDINGS_SCHEMA, Source
from sources.ishares import IsharesHoldings
from sources.yahoo import YahooConfig, YahooSource, fundamentals_due, latest_report
from sources.yahoo_http import UNREACHABLE_AFTER

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HTTP = FIXTURES / "yahoo-http"
sys.path.insert(0, str(HTTP))
import fake_yahoo as fy  # noqa: E402

# yfinance 1.7 uses pandas APIs that pandas 3 deprecates; its warnings, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:yfinance.*")

NY = ZoneInfo("America/New_York")
AAPL_FILE = "chart-AAPL-2020-08-31-to-2020-11-07.json"
AAPL = fy.recorded(AAPL_FILE)
AAPL_JAN = fy.recorded("chart-AAPL-2020-01-01-to-2020-01-03.json")
EPAC_JAN = fy.recorded("chart-EPAC-2020-01-01-to-2020-01-03.json")
NO_DATA = fy.recorded("chart-404-no-data-constructed.json")
TOO_MANY = fy.Reply(429, "Too Many Requests\r\n", {"Content-Type": "text/html"})


@pytest.fixture(autouse=True)
def fresh_yfinance():
    """yfinance keeps process-wide state: one session with its cookie and crumb, answers kept in
    memory, and caches opened at the first location used. Each test starts from none of it, as a
    new process would, so request counts do not depend on test order."""
    from yfinance import cache, data

    data.YfData._instances.clear()
    data.YfData.cache_get.cache_clear()
    cache._TzCacheManager._tz_cache = None
    cache._CookieCacheManager._Cookie_cache = None
    yield
    data.YfData._instances.clear()
    data.YfData.cache_get.cache_clear()


def settings(tmp_path: Path, **overrides) -> Settings:
    values = dict(
        home=tmp_path / "home",
        source="yahoo",
        requests_per_second=1000.0,
        http_timeout_s=5.0,
        chunk_timeout_s=10.0,
        rate_limit_backoff_s=0.05,
    )
    values.update(overrides)
    return Settings(**values)


def config(tmp_path: Path, **overrides) -> YahooConfig:
    return YahooConfig.from_settings(settings(tmp_path, **overrides))


def windowed(body: dict):
    """Serve a recorded chart as Yahoo would: cut to the requested period1..period2."""
    return lambda r: fy.json_reply(fy.chart_window(body, r.params))


def serve(charts: dict | None = None, series: dict | None = None, quotes: dict | None = None):
    """An `answer` for FakeYahoo: chart, timeseries and v7 quote replies per symbol (Reply or
    callable). A quote request for a list of symbols gets their entries in one answer, or the first
    error reply among theirs; a symbol without a quote reply is left out of it."""
    tables = {"chart": charts or {}, "timeseries": series or {}, "quote": quotes or {}}

    def reply_of(r: fy.Request, symbol: str | None):
        reply = tables.get(r.kind, {}).get(symbol)
        return reply(r) if callable(reply) else reply

    def quote_entry(r: fy.Request, symbol: str):
        reply = reply_of(r, symbol)
        if reply is None or reply.status != 200:
            return reply
        entries = reply.body["quoteResponse"]["result"]
        return next((q for q in entries if q["symbol"] == symbol), None)

    def answer(r: fy.Request):
        if r.kind == "quote":
            return fy.quote_list(r, lambda symbol: quote_entry(r, symbol))
        return reply_of(r, r.symbol)

    return answer


def recorded_quote(name: str, symbol: str) -> dict:
    """One symbol's entry of a recorded v7 quote answer."""
    body = json.loads((HTTP / name).read_text())["response"]["bodyJson"]
    return next(q for q in body["quoteResponse"]["result"] if q["symbol"] == symbol)


NO_QUOTE = fy.json_reply({"quoteResponse": {"result": [], "error": None}})  # Yahoo's answer for a symbol it has no quote of


def aapl_json() -> dict:
    return json.loads((HTTP / AAPL_FILE).read_text())["response"]["bodyJson"]["chart"]["result"][0]


def epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=NY).timestamp())


# bars: the AAPL split and dividend ----------------------------------------------------------------


def test_aapl_chart_gives_raw_bars_adjusted_closes_and_actions(tmp_path):
    with fy.FakeYahoo(serve({"AAPL": windowed(AAPL.body)})) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        assert isinstance(source, Source)
        got = source.bars(["AAPL"], date(2020, 8, 31), date(2020, 11, 6))

    assert dict(got.bars.schema) == BARS_SCHEMA
    assert dict(got.actions.schema) == ACTIONS_SCHEMA
    assert got.failures.is_empty()
    bars = got.bars.sort("session_date")
    assert bars.height == 49
    assert bars.get_column("session_date").to_list()[0] == date(2020, 8, 31)
    assert bars.get_column("session_date").to_list()[-1] == date(2020, 11, 6)

    # Values as recorded: the split day and the dividend day.
    first = bars.row(0, named=True)
    assert first["open"] == pytest.approx(127.58000183105469)
    assert first["high"] == pytest.approx(131.0)
    assert first["low"] == pytest.approx(126.0)
    assert first["close"] == pytest.approx(129.0399932861328)
    assert first["adj_close"] == pytest.approx(125.82673645019531)
    assert first["volume"] == 225_702_700
    last = bars.row(-1, named=True)
    assert last["session_date"] == date(2020, 11, 6)
    assert last["close"] == pytest.approx(118.69000244140625)
    assert last["adj_close"] == pytest.approx(115.93415069580078)  # adjusted for dividends up to the 2025 recording
    assert last["volume"] == 114_457_900

    # Every bar equals the recorded arrays, session by session.
    result = aapl_json()
    quote = result["indicators"]["quote"][0]
    days = [datetime.fromtimestamp(t, NY).date() for t in result["timestamp"]]
    assert bars.get_column("session_date").to_list() == days
    assert bars.get_column("close").to_list() == pytest.approx(quote["close"])
    assert bars.get_column("open").to_list() == pytest.approx(quote["open"])
    assert bars.get_column("adj_close").to_list() == pytest.approx(result["indicators"]["adjclose"][0]["adjclose"])
    assert bars.get_column("volume").to_list() == quote["volume"]

    assert got.actions.sort("ex_date").rows() == [
        ("AAPL", date(2020, 8, 31), "split", 4.0),  # 4:1, new shares per old share
        ("AAPL", date(2020, 11, 6), "dividend", 0.205),  # USD per share
    ]

    # One chart request for the symbol, after yfinance's cookie and crumb; end sent exclusive.
    charts = fake.asked("chart", "AAPL")
    assert len(charts) == 1
    assert int(charts[0].params["period1"]) == epoch(date(2020, 8, 31))
    assert int(charts[0].params["period2"]) == epoch(date(2020, 11, 7))
    assert [r.kind for r in fake.requests] == ["cookie", "crumb", "chart"]
    assert got.requests == 3 == source.requests_made


def test_only_sessions_in_the_range_come_back_even_when_yahoo_sends_more(tmp_path):
    # This fake ignores the requested period and always sends all 49 sessions.
    with fy.FakeYahoo(serve({"AAPL": AAPL})) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.bars(["AAPL"], date(2020, 9, 1), date(2020, 11, 5))
    days = got.bars.get_column("session_date")
    assert days.min() == date(2020, 9, 1) and days.max() == date(2020, 11, 5)
    assert got.bars.height == 47
    assert got.actions.is_empty()  # the split (08-31) and the dividend (11-06) are outside
    assert got.failures.is_empty()


def test_end_is_inclusive(tmp_path):
    with fy.FakeYahoo(serve({"AAPL": windowed(AAPL.body)})) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.bars(["AAPL"], date(2020, 11, 6), date(2020, 11, 6))
    assert got.bars.get_column("session_date").to_list() == [date(2020, 11, 6)]
    assert got.actions.rows() == [("AAPL", date(2020, 11, 6), "dividend", 0.205)]


def test_index_without_volume_gets_null_volume_and_equities_keep_zero(tmp_path):
    # Yahoo writes 0 volume for ^VIX; shown here on the recorded AAPL answer with volume zeroed.
    body = json.loads(json.dumps(AAPL.body))
    body["chart"]["result"][0]["indicators"]["quote"][0]["volume"] = [0] * 49
    zero = fy.json_reply(body)
    with fy.FakeYahoo(serve({"^VIX": zero, "ZERO": zero, "^RUT": AAPL})) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.bars(["^VIX", "ZERO", "^RUT"], date(2020, 8, 31), date(2020, 11, 6))
    assert got.failures.is_empty(), got.failures.to_dicts()
    volume = {s: got.bars.filter(pl.col("symbol") == s).get_column("volume") for s in ("^VIX", "ZERO", "^RUT")}
    assert volume["^VIX"].null_count() == 49
    assert volume["ZERO"].to_list() == [0] * 49
    assert volume["^RUT"].null_count() == 0 and volume["^RUT"][0] == 225_702_700


def test_make_source_builds_the_yahoo_source(tmp_path):
    assert isinstance(make_source(settings(tmp_path)), YahooSource)


# fundamentals ------------------------------------------------------------------------------------------


def test_quarterly_income_statements_from_the_timeseries_answers(tmp_path):
    series = {
        "AAPL": fy.recorded("fundamentalsTimeSeries-AAPL-financials-quarterly.json"),
        "EPAC": fy.recorded("fundamentalsTimeSeries-EPAC-financials-quarterly.json"),
        "QQQ": fy.recorded("fundamentalsTimeSeries-QQQ-financials-quarterly.json"),
    }
    quotes = {"AAPL": fy.recorded("quote-AAPL.json"), "EPAC": fy.recorded("quote-EPAC.json")}
    with fy.FakeYahoo(serve(series=series, quotes=quotes)) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.fundamentals(["AAPL", "EPAC", "QQQ"], date(2025, 3, 1))

    assert dict(got.fundamentals.schema) == FUNDAMENTALS_SCHEMA
    f = got.fundamentals.sort("symbol", "period_end_date")
    aapl = f.filter(pl.col("symbol") == "AAPL")
    assert aapl.select("period_end_date", "net_income_common_usd", "net_income_usd", "diluted_eps", "revenue_usd").rows() == [
        (date(2024, 3, 31), 23_636_000_000.0, 23_636_000_000.0, 1.53, 90_753_000_000.0),
        (date(2024, 6, 30), 21_448_000_000.0, 21_448_000_000.0, 1.40, 85_777_000_000.0),
        (date(2024, 9, 30), 14_736_000_000.0, 14_736_000_000.0, 0.97, 94_930_000_000.0),
        (date(2024, 12, 31), 36_330_000_000.0, 36_330_000_000.0, 2.40, 124_300_000_000.0),
    ]
    # AAPL's latest release (quote of 2025-02-17): 2025-01-30 16:30 New York, after the close, so
    # the quarter ending 2024-12-31 counts from 2025-01-31. Earlier quarters: Yahoo does not say.
    assert aapl.get_column("report_date").to_list() == [None, None, None, date(2025, 1, 31)]
    epac = f.filter(pl.col("symbol") == "EPAC")  # fiscal quarters ending May, Aug, Nov
    assert epac.select("period_end_date", "net_income_common_usd", "diluted_eps", "revenue_usd").rows() == [
        (date(2023, 5, 31), 12_380_000.0, 0.22, 156_253_000.0),
        (date(2023, 8, 31), 22_231_000.0, 0.40, 160_609_000.0),
        (date(2023, 11, 30), 17_738_000.0, 0.32, 141_970_000.0),
    ]
    # EPAC's latest release (2024-12-18) reports a quarter a year after the newest one this
    # statement answer holds (it was asked for 2020-2023): it dates none of them.
    assert epac.get_column("report_date").null_count() == epac.height

    # The ETF has every series empty: reported, not silently missing.
    assert got.failures.rows() == [
        ("QQQ", "fundamentals", "no data from Yahoo: no quarterly income statement (yfinance returned an empty table)")
    ]
    # Per symbol one statement request; one quote request for the three; yfinance's cookie and crumb.
    assert [len(fake.asked("timeseries", s)) for s in ("AAPL", "EPAC", "QQQ")] == [1, 1, 1]
    assert [r.symbol for r in fake.asked("quote")] == ["AAPL,EPAC,QQQ"]
    assert got.requests == 6


def test_release_dates_are_asked_in_batches_and_a_failed_batch_fails_only_its_symbols(tmp_path, monkeypatch):
    """QUOTE_BATCH symbols a quote request, answered as Yahoo answers a list (the recorded
    AAPL,BABA answer); a batch that fails (after the retry) fails its symbols, whose statements are
    then not asked, and leaves the other batches' symbols alone."""
    import sources.yahoo as yahoo

    monkeypatch.setattr(yahoo, "QUOTE_BATCH", 2)
    series = {
        "AAPL": fy.recorded("fundamentalsTimeSeries-AAPL-financials-quarterly.json"),
        "BABA": fy.recorded("fundamentalsTimeSeries-AAPL-financials-quarterly.json"),
        "EPAC": fy.recorded("fundamentalsTimeSeries-EPAC-financials-quarterly.json"),
    }
    both = fy.recorded("quote-AAPL-BABA.json")
    broken = fy.Reply(500, "<html>Internal Server Error</html>", {"Content-Type": "text/html"})
    with fy.FakeYahoo(serve(series=series, quotes={"AAPL": both, "BABA": both, "EPAC": broken})) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.fundamentals(["AAPL", "BABA", "EPAC"], date(2025, 3, 1))
    # One answer for AAPL and BABA (asked again by nobody); EPAC's batch: twice by yfinance, twice by the client.
    assert [r.symbol for r in fake.asked("quote")] == ["AAPL,BABA"] + ["EPAC"] * 4
    aapl = got.fundamentals.filter(pl.col("symbol") == "AAPL").sort("period_end_date")
    assert aapl.get_column("report_date").to_list()[-1] == date(2025, 1, 31)  # as with its own quote
    assert got.fundamentals.filter(pl.col("symbol") == "BABA").height == 4  # its entry is in the same answer
    assert got.failures.select("symbol", "dataset").rows() == [("EPAC", "fundamentals")]
    assert got.failures.get_column("error")[0].startswith("QuoteRequestFailed: HTTP Error 500")
    assert not fake.asked("timeseries", "EPAC")


def test_fundamentals_keep_only_quarters_ended_by_as_of(tmp_path):
    series = {"AAPL": fy.recorded("fundamentalsTimeSeries-AAPL-financials-quarterly.json")}
    with fy.FakeYahoo(serve(series=series, quotes={"AAPL": fy.recorded("quote-AAPL.json")})) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.fundamentals(["AAPL"], date(2024, 8, 1))
    assert got.fundamentals.get_column("period_end_date").to_list() == [date(2024, 3, 31), date(2024, 6, 30)]
    # The release of 2025-01-30 came after as_of: it dates nothing of a night in 2024.
    assert got.fundamentals.get_column("report_date").null_count() == 2


def test_a_symbol_without_a_quote_keeps_unknown_report_dates(tmp_path):
    series = {"AAPL": fy.recorded("fundamentalsTimeSeries-AAPL-financials-quarterly.json")}
    with fy.FakeYahoo(serve(series=series, quotes={"AAPL": NO_QUOTE})) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.fundamentals(["AAPL"], date(2025, 3, 1))
    assert got.failures.is_empty()
    assert got.fundamentals.height == 4 and got.fundamentals.get_column("report_date").null_count() == 4


def test_a_failed_quote_fails_the_symbol_which_stays_due(tmp_path):
    """The quote is part of the symbol's fetch: a server error on it is retried once like any
    other, then the symbol is a failure (its fundamentals stay due), not silently undated; its
    statements are not asked."""
    series = {"AAPL": fy.recorded("fundamentalsTimeSeries-AAPL-financials-quarterly.json")}
    broken = fy.Reply(500, "<html>Internal Server Error</html>", {"Content-Type": "text/html"})
    with fy.FakeYahoo(serve(series=series, quotes={"AAPL": broken})) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.fundamentals(["AAPL"], date(2025, 3, 1))
    assert got.fundamentals.is_empty()
    assert got.failures.select("symbol", "dataset").rows() == [("AAPL", "fundamentals")]
    error = got.failures.get_column("error")[0]
    assert error.startswith("QuoteRequestFailed: HTTP Error 500") and "asking the latest earnings date" in error, error
    # yfinance repeats a request answered >= 400 once; the source retries the symbol once.
    assert error.endswith("(failed twice)") and len(fake.asked("quote", "AAPL")) == 4
    assert not fake.asked("timeseries")


NY_TIME = ZoneInfo("America/New_York")


def _release(name: str, symbol: str) -> tuple[datetime, datetime | None]:
    quote = recorded_quote(name, symbol)
    call = quote.get("earningsCallTimestampStart")
    return (datetime.fromtimestamp(quote["earningsTimestamp"], NY_TIME),
            None if call is None else datetime.fromtimestamp(call, NY_TIME))


@pytest.mark.parametrize(
    "quote, symbol, newest, as_of, expected, why",
    [
        ("quote-AAPL.json", "AAPL", date(2024, 12, 31), date(2025, 2, 17), (date(2024, 12, 31), date(2025, 1, 31)),
         "released 2025-01-30 16:30, after the close: counts from the next day"),
        ("quote-ABBV.json", "ABBV", date(2024, 12, 31), date(2025, 2, 17), (date(2024, 12, 31), date(2025, 1, 31)),
         "released 2025-01-31 07:36, before the open: counts that day"),
        ("quote-EPAC.json", "EPAC", date(2024, 11, 30), date(2025, 2, 17), (date(2024, 11, 30), date(2024, 12, 19)),
         "released 2024-12-18 16:30, call the next morning"),
        ("quote-AAPL.json", "AAPL", date(2024, 12, 31), date(2025, 1, 30), (date(2024, 12, 31), date(2025, 1, 31)),
         "the night of the release itself: dated, from the next day"),
        ("quote-AAPL.json", "AAPL", date(2024, 12, 31), date(2025, 1, 29), None, "released after as_of"),
        ("quote-AAPL-BABA.json", "BABA", date(2024, 12, 31), date(2025, 2, 17), None,
         "2025-02-20 is a confirmed date three days after the recording, not a report"),
        ("quote-BFLY.json", "BFLY", date(2024, 9, 30), date(2025, 2, 17), None,
         "2025-01-08 was a preliminary announcement: the last earnings call was 2024-11-01"),
        ("quote-EPAC.json", "EPAC", date(2023, 11, 30), date(2025, 2, 17), None,
         "a release 384 days after the newest quarter reports a later one"),
        ("quote-AAPL.json", "AAPL", date(2025, 3, 31), date(2025, 4, 30), None, "released before the quarter ended"),
    ],
)
def test_latest_report_on_recorded_release_dates(quote, symbol, newest, as_of, expected, why):
    release_at, call_at = _release(quote, symbol)
    ends = [newest - timedelta(days=91 * k) for k in range(4)]
    assert latest_report(ends, release_at, call_at, as_of) == expected, why


def test_latest_report_lag_bounds():
    end = date(2024, 12, 31)
    at = lambda day, hour=8: datetime(day.year, day.month, day.day, hour, tzinfo=NY_TIME)  # noqa: E731
    assert latest_report([end], at(end + timedelta(days=105)), None, date(2025, 12, 31)) == (end, end + timedelta(days=105))
    assert latest_report([end], at(end + timedelta(days=106)), None, date(2025, 12, 31)) is None
    assert latest_report([end], at(end), None, date(2025, 12, 31)) is None  # on the period end: not a report of it
    assert latest_report([end], None, None, date(2025, 12, 31)) is None
    assert latest_report([], at(date(2025, 1, 30)), None, date(2025, 12, 31)) is None
    assert latest_report([end], at(date(2025, 1, 30), 16), None, date(2025, 12, 31)) == (end, date(2025, 1, 31))


# failures ------------------------------------------------------------------------------------------------


def test_some_symbols_fail_and_each_says_why(tmp_path):
    charts = {
        "AAPL": AAPL_JAN,
        "EPAC": EPAC_JAN,
        "ZZZZ": NO_DATA,
        "BROKEN": fy.Reply(500, "<html><body>Internal error</body></html>", {"Content-Type": "text/html"}),
    }
    asked = ["AAPL", "ZZZZ", "EPAC", "BROKEN"]
    with fy.FakeYahoo(serve(charts)) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.bars(asked, date(2020, 1, 2), date(2020, 1, 2))

    assert got.bars.sort("symbol").select("symbol", "session_date", "close").rows() == [
        ("AAPL", date(2020, 1, 2), pytest.approx(75.0875015258789)),
        ("EPAC", date(2020, 1, 2), pytest.approx(26.15999984741211)),
    ]
    assert dict(got.failures.schema) == FAILURES_SCHEMA
    errors = dict(zip(got.failures.get_column("symbol"), got.failures.get_column("error")))
    assert errors["ZZZZ"] == "no data from Yahoo: No data found, symbol may be delisted (yfinance YFPricesMissingError)"
    assert errors["BROKEN"].startswith("HTTP 500 from query2.finance.yahoo.com (")
    assert errors["BROKEN"].endswith("(failed twice)")  # a server error is retried once
    assert set(got.failures.get_column("dataset")) == {"bars"}
    # Nothing silently dropped: every symbol asked has bars or a failure.
    assert set(got.bars.get_column("symbol")) | set(errors) == set(asked)
    assert len(fake.asked("chart", "ZZZZ")) == 2  # yfinance retries a 4xx once with a fresh crumb
    assert got.requests == len(fake.requests)


def test_every_symbol_failing_on_dns(tmp_path):
    # A DNS-over-HTTPS resolver that refuses connections: every Yahoo host is unresolvable, as on
    # a machine without network, whatever this one's DNS would answer.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    source = YahooSource(config(tmp_path), session_options={"doh_url": f"https://127.0.0.1:{dead}/dns-query"})
    started = time.monotonic()
    got = source.bars(["^RUT", "AAPL", "EPAC"], date(2020, 1, 2), date(2020, 1, 3))
    assert time.monotonic() - started < 5
    assert got.bars.is_empty() and got.actions.is_empty()
    assert got.failures.get_column("symbol").to_list() == ["^RUT", "AAPL", "EPAC"]
    for error in got.failures.get_column("error"):
        assert error == "DNSError: curl: (6) Could not resolve host: query2.finance.yahoo.com (failed twice)"
    assert got.requests > 0


def test_unreachable_yahoo_stops_the_run_after_a_few_symbols(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    source = YahooSource(
        config(tmp_path, fetch_concurrency=1), session_options={"doh_url": f"https://127.0.0.1:{dead}/dns-query"}
    )
    symbols = [f"S{i:03d}" for i in range(UNREACHABLE_AFTER + 10)]
    got = source.bars(symbols, date(2020, 1, 2), date(2020, 1, 3))
    errors = got.failures.get_column("error").to_list()
    assert got.failures.get_column("symbol").to_list() == symbols
    assert all("Could not resolve host" in e for e in errors[:UNREACHABLE_AFTER])
    assert all(e.startswith("not requested: Yahoo looks unreachable") for e in errors[UNREACHABLE_AFTER:])
    assert "Could not resolve host: query2.finance.yahoo.com" in errors[-1]  # the cause, named
    requests_then = source.requests_made
    later = source.fundamentals(["AAPL"], date(2025, 3, 1))  # the rest of the run fails fast
    assert later.requests == 0 and source.requests_made == requests_then
    assert later.failures.get_column("error")[0].startswith("not requested: Yahoo looks unreachable")


def test_http_429_backs_off_then_succeeds(tmp_path):
    served = {"n": 0}

    def aapl(r):
        served["n"] += 1
        return TOO_MANY if served["n"] <= 2 else AAPL

    with fy.FakeYahoo(serve({"AAPL": aapl})) as fake:
        source = YahooSource(config(tmp_path, rate_limit_backoff_s=0.2), session_options=fake.session_options)
        started = time.monotonic()
        got = source.bars(["AAPL"], date(2020, 8, 31), date(2020, 11, 6))
        elapsed = time.monotonic() - started
    assert got.failures.is_empty()
    assert got.bars.height == 49
    # yfinance retried the first 429 at once (new crumb); the second raised; our back-off waited
    # at least 0.2 s; the third answer was the data.
    assert len(fake.asked("chart", "AAPL")) == 3
    assert elapsed >= 0.2
    assert got.requests == len(fake.requests)


def test_http_429_forever_is_a_failure_after_bounded_retries(tmp_path):
    with fy.FakeYahoo(serve({"AAPL": TOO_MANY, "EPAC": EPAC_JAN})) as fake:
        source = YahooSource(
            config(tmp_path, rate_limit_retries=2, rate_limit_backoff_s=0.01, fetch_concurrency=1),
            session_options=fake.session_options,
        )
        got = source.bars(["AAPL", "EPAC"], date(2020, 1, 2), date(2020, 1, 2))
    assert got.failures.rows() == [
        (
            "AAPL",
            "bars",
            "HTTP 429 Too Many Requests from Yahoo, still after 2 retries with back-off "
            "(settings.rate_limit_retries, rate_limit_backoff_s)",
        )
    ]
    assert len(fake.asked("chart", "AAPL")) == 6  # 3 tries, each answered 429 twice
    assert got.bars.get_column("symbol").to_list() == ["EPAC"]


def test_a_server_that_never_answers_costs_seconds_not_minutes(tmp_path):
    # Every request hangs, cookie and crumb included. yfinance alone would wait 30 s per cookie
    # request and 10-30 s per data request; the chunk deadline bounds all of it.
    with fy.FakeYahoo(lambda r: fy.HANG) as fake:
        source = YahooSource(
            config(tmp_path, http_timeout_s=30.0, chunk_timeout_s=1.0), session_options=fake.session_options
        )
        started = time.monotonic()
        got = source.bars(["AAPL", "EPAC"], date(2020, 1, 2), date(2020, 1, 2))
        elapsed = time.monotonic() - started
        # The abandoned workers' requests end by their clamped timeout, not after yfinance's 30 s,
        # while the server is still hanging.
        assert _fetch_threads_gone(within_s=4), "abandoned fetch threads still running"
    assert elapsed < 6
    assert got.bars.is_empty()
    assert got.failures.get_column("symbol").to_list() == ["AAPL", "EPAC"]
    for error in got.failures.get_column("error"):
        assert error == (
            "no complete answer from Yahoo within 1 s of network time, twice (settings.chunk_timeout_s): "
            "the chunk was abandoned"
        )
    assert fake.requests  # the connection was accepted and asked


def test_every_request_is_bounded_by_http_timeout_whatever_yfinance_asks(tmp_path):
    # yfinance asks for 30 s on its cookie requests and 10 s by default on data; settings say 0.3 s.
    with fy.FakeYahoo(lambda r: fy.HANG) as fake:
        source = YahooSource(config(tmp_path, http_timeout_s=0.3), session_options=fake.session_options)
        started = time.monotonic()
        got = source.bars(["AAPL"], date(2020, 1, 2), date(2020, 1, 2))
        elapsed = time.monotonic() - started
    assert elapsed < 5
    [error] = got.failures.get_column("error").to_list()
    assert error.startswith("Timeout: curl: (28) Operation timed out after 3")
    assert error.endswith("(failed twice)")


def _fetch_threads_gone(within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not any(t.name.startswith("yahoo-fetch") and t.is_alive() for t in threading.enumerate()):
            return True
        time.sleep(0.05)
    return False


def test_an_empty_chart_is_a_failure(tmp_path):
    # 2020-09-05..2020-09-07 is a weekend and Labor Day: Yahoo answers meta and no bars.
    with fy.FakeYahoo(serve({"AAPL": windowed(AAPL.body)})) as fake:
        source = YahooSource(config(tmp_path), session_options=fake.session_options)
        got = source.bars(["AAPL"], date(2020, 9, 5), date(2020, 9, 7))
    assert got.bars.is_empty()
    [(symbol, dataset, error)] = got.failures.rows()
    assert (symbol, dataset) == ("AAPL", "bars")
    assert error == (
        "no data from Yahoo: possibly delisted; no price data found  (1d 2020-09-05 -> 2020-09-08) "
        "(yfinance YFPricesMissingError)"
    )


def test_request_budget_turns_the_rest_into_failures(tmp_path):
    with fy.FakeYahoo(serve({s: AAPL_JAN for s in ("A", "B", "C", "D", "E")})) as fake:
        source = YahooSource(
            config(tmp_path, max_requests_per_run=4, fetch_concurrency=1), session_options=fake.session_options
        )
        got = source.bars(["A", "B", "C", "D", "E"], date(2020, 1, 2), date(2020, 1, 2))
    # cookie, crumb, A, B: then the budget is spent.
    assert len(fake.requests) == 4 == got.requests == source.requests_made
    assert got.bars.get_column("symbol").to_list() == ["A", "B"]
    assert got.failures.get_column("symbol").to_list() == ["C", "D", "E"]
    assert set(got.failures.get_column("error")) == {
        "not requested: the run's request budget of 4 HTTP requests is spent (settings.max_requests_per_run)"
    }


def test_the_user_agent_names_the_project_and_caches_live_in_the_home(tmp_path):
    with fy.FakeYahoo(serve({"AAPL": AAPL_JAN})) as fake:
        source = YahooSource(config(tmp_path, user_agent="smallcaps-test/1.0"), session_options=fake.session_options)
        source.bars(["AAPL"], date(2020, 1, 2), date(2020, 1, 2))
    assert {r.user_agent for r in fake.requests} == {"smallcaps-test/1.0"}
    assert (tmp_path / "home" / "cache" / "yfinance" / "tkr-tz.db").exists()


# holdings ---------------------------------------------------------------------------------------------------


def _ishares(tmp_path: Path, handler) -> IsharesHoldings:
    s = settings(tmp_path)
    return IsharesHoldings(s.universes, user_agent=s.user_agent, timeout_s=1.0, client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_holdings_come_from_the_ishares_download(tmp_path):
    iwm = (FIXTURES / "ishares-iwm" / "IWM_holdings_2025-11-05.csv").read_bytes()
    holdings = _ishares(tmp_path, lambda request: httpx.Response(200, content=iwm))
    source = YahooSource(config(tmp_path), holdings=holdings)
    got = source.holdings(["russell2000"], date(2025, 11, 5), date(2025, 11, 5))
    assert dict(got.holdings.schema) == HOLDINGS_SCHEMA
    assert got.holdings.height > 1_900
    assert got.failures.is_empty()


def test_a_failed_holdings_download_is_a_failure_row(tmp_path):
    holdings = _ishares(tmp_path, lambda request: httpx.Response(503))
    source = YahooSource(config(tmp_path), holdings=holdings)
    got = source.holdings(["russell2000", "sp600"], date(2025, 11, 5), date(2025, 11, 5))
    assert got.holdings.is_empty()
    assert got.failures.get_column("symbol").to_list() == ["russell2000", "sp600"]
    assert set(got.failures.get_column("dataset")) == {"holdings"}
    assert all("HTTP 503" in e for e in got.failures.get_column("error"))


# fundamentals_due --------------------------------------------------------------------------------------------

AS_OF = date(2025, 6, 2)


def _stored(rows):
    return pl.DataFrame(
        rows,
        schema={"symbol": pl.String, "period_end_date": pl.Date, "last_success_at": pl.Datetime("us"), "report_lag_days": pl.Int64},
        orient="row",
    )


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 22, 30)


def _ago(days: int) -> datetime:
    return _at(AS_OF - timedelta(days=days))


@pytest.mark.parametrize(
    "row, due, why",
    [
        (None, True, "never fetched"),
        (("X", date(2025, 3, 31), None, None), True, "never answered"),
        (("X", date(2025, 3, 31), _ago(3), None), False, "fresh; Q2 expected on Aug 16 (Mar 31 + 91 + 45 + 2)"),
        (("X", date(2025, 3, 31), _ago(100), None), False, "100 days old is not older than 100"),
        (("X", date(2025, 3, 31), _ago(101), None), True, "older than max_age_days"),
        (("X", date(2024, 12, 31), _ago(20), None), True, "Q1 expected on May 18, not looked at since"),
        (("X", date(2024, 12, 31), _ago(6), None), False, "looked at 6 days ago, after it was expected: weekly"),
        (("X", date(2024, 12, 31), _ago(7), None), True, "looked at a week ago"),
        (("X", AS_OF - timedelta(days=138), _ago(30), None), True, "expected today"),
        (("X", AS_OF - timedelta(days=137), _ago(30), None), False, "expected tomorrow"),
        # A company that reports 30 days after its quarter ends (fiscal quarters ending Jan, Apr, ...):
        (("X", date(2025, 1, 31), _ago(90), 29), True, "its Q1 expected today: Jan 31 + 91 + 29 + 2"),
        (("X", date(2025, 1, 31), _ago(90), None), False, "without its lag: expected on Jun 18"),
        (("X", date(2025, 1, 31), _ago(2), 29), True, "the first look when expected, however recent the last"),
        (("X", date(2025, 1, 31), _ago(20), 200), False, "a lag is at most 105 days"),
        (("X", date(2025, 1, 31), _ago(20), 2), True, "a lag is at least 10 days: expected on May 14"),
        # Expected on Apr 17, 46 days ago: overdue, looked for monthly.
        (("X", date(2024, 11, 30), _ago(10), None), False, "overdue, looked at 10 days ago"),
        (("X", date(2024, 11, 30), _ago(28), None), True, "overdue, looked at 28 days ago"),
        (("X", None, _ago(28), None), True, "Yahoo had no quarter: looked at again after 28 days"),
        (("X", None, _ago(27), None), False, "Yahoo had no quarter 27 days ago"),
    ],
)
def test_fundamentals_due(row, due, why):
    stored = _stored([row] if row else [])
    assert fundamentals_due(stored, ["X"], AS_OF, max_age_days=100) == (["X"] if due else []), why


def test_fundamentals_due_keeps_order_and_dedupes_and_accepts_dates():
    stored = pl.DataFrame(
        {"symbol": ["B", "C"], "period_end_date": [date(2025, 3, 31)] * 2, "last_success_at": [AS_OF, date(2025, 1, 1)]}
    )
    assert fundamentals_due(stored, ["D", "C", "B", "D", "A"], AS_OF, max_age_days=100) == ["D", "C", "A"]
    assert fundamentals_due(stored, [], AS_OF, max_age_days=100) == []
    with pytest.raises(ValueError, match="last_success_at"):
        fundamentals_due(stored.drop("last_success_at"), ["B"], AS_OF, max_age_days=100)
