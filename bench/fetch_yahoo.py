"""Time one nightly fetch through the yahoo source against a fake Yahoo with realistic latency.

Usage: .venv/bin/python bench/fetch_yahoo.py [--symbols 2600] [--rps 25] [--latency 0.15 0.40]
                                             [--first-night] [--compare 100]

A fake Yahoo on 127.0.0.1 (tests/fixtures/yahoo-http/fake_yahoo.py: HTTPS, yfinance's real URLs,
cookie and crumb) answers every request after 150-400 ms, with a generated chart in the real
answer's shape for any symbol (the recorded AAPL meta, one bar per NYSE session asked for) and
the recorded AAPL quarterly financials for any symbol's fundamentals. The night is fetched the way
flows/run.py fans it out: bars of the five indexes and the members in chunks of settings.chunk_size
over the overlap window, plus fundamentals of the symbols `fundamentals_due` picks from a simulated
stored state (every symbol with --first-night), four tasks at a time (the flow's thread pool).

The run uses --rps requests per second (default 40) so that it ends in about two minutes; the
setting's default is 4, and the figures printed include the wall time the same requests take at
that rate. --compare N also counts the requests yf.download spends on N symbols on a cold cache,
against the source's own path.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
HTTP_FIXTURES = ROOT / "tests" / "fixtures" / "yahoo-http"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HTTP_FIXTURES))

import polars as pl  # noqa: E402

import fake_yahoo as fy  # noqa: E402
from smallcaps import calendar  # noqa: E402
from smallcaps.settings import Settings  # noqa: E402
from sources.base import Fetched  # noqa: E402
from sources.yahoo import YahooSource, fundamentals_due  # noqa: E402

NY = ZoneInfo("America/New_York")
INDEXES = ["^RUT", "^GSPC", "^SP600", "^IXIC", "^VIX"]
RECORDED_CHART = json.loads((HTTP_FIXTURES / "chart-AAPL-2020-08-31-to-2020-11-07.json").read_text())
META = RECORDED_CHART["response"]["bodyJson"]["chart"]["result"][0]["meta"]
FINANCIALS = json.loads((HTTP_FIXTURES / "fundamentalsTimeSeries-AAPL-financials-quarterly.json").read_text())[
    "response"
]["bodyJson"]


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


def answer(request: fy.Request) -> fy.Reply | None:
    if request.kind == "chart":
        return fy.json_reply(generated_chart(request.symbol, request.params))
    if request.kind == "timeseries":
        return fy.json_reply(FINANCIALS)
    return None


def simulated_stored(symbols: list[str], as_of: date, seed: int = 7) -> pl.DataFrame:
    """What the warehouse would hold after months of nightly runs: the newest reported quarter end
    (a quarter counts 45 days after it ends) and a last fetch 0-110 days ago."""
    rng = random.Random(seed)
    ends = sorted({date(y, m, 1) - timedelta(days=1) for y in (as_of.year - 1, as_of.year, as_of.year + 1) for m in (1, 4, 7, 10)})
    reported = [e for e in ends if e + timedelta(days=45) <= as_of]
    rows = []
    for s in symbols:
        end = reported[-1] if rng.random() < 0.8 else reported[-2]
        rows.append((s, end, datetime.combine(as_of - timedelta(days=rng.randint(0, 110)), datetime.min.time())))
    return pl.DataFrame(
        rows, schema={"symbol": pl.String, "period_end_date": pl.Date, "last_success_at": pl.Datetime("us")}, orient="row"
    )


def _serve(conn, latency_s: tuple[float, float]) -> None:
    """The fake Yahoo in a child process, so that its own work does not compete with the client's
    for the interpreter lock: port out, then on request the counts of what it served."""
    with fy.FakeYahoo(answer, latency_s=latency_s, seed=1) as fake:
        conn.send(fake.port)
        while conn.recv() == "counts":
            conn.send({k: len(fake.asked(k)) for k in ("cookie", "crumb", "chart", "timeseries")})


class ChildYahoo:
    def __init__(self, latency_s: tuple[float, float]) -> None:
        self._conn, child = multiprocessing.get_context("spawn").Pipe()
        self._process = multiprocessing.get_context("spawn").Process(target=_serve, args=(child, latency_s), daemon=True)
        self._process.start()
        self.session_options = {"proxy": f"http://127.0.0.1:{self._conn.recv()}", "verify": str(fy.CA_FILE)}

    def counts(self) -> dict[str, int]:
        self._conn.send("counts")
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)


def night(source: YahooSource, settings: Settings, members: list[str], due: list[str], start: date, as_of: date):
    def chunks(items: list[str]) -> list[list[str]]:
        return [items[i : i + settings.chunk_size] for i in range(0, len(items), settings.chunk_size)]

    with ThreadPoolExecutor(max_workers=4) as pool:  # flows/nightly.py: ThreadPoolTaskRunner(max_workers=4)
        bars = [pool.submit(source.bars, c, start, as_of) for c in chunks(INDEXES + members)]
        funds = [pool.submit(source.fundamentals, c, as_of) for c in chunks(due)]
        got_bars = Fetched.combine([f.result() for f in bars])
        got_funds = Fetched.combine([f.result() for f in funds])
    return got_bars, got_funds


def compare_download(fake: ChildYahoo, source: YahooSource, n: int, start: date, as_of: date) -> tuple[float, float]:
    """Requests per symbol of yf.download (cold timezone cache) and of the source's own path."""
    import yfinance as yf

    def served() -> int:
        return sum(fake.counts().values())

    end = as_of + timedelta(days=1)
    before = served()
    yf.download([f"DL{i:04d}" for i in range(n)], start=start.isoformat(), end=end.isoformat(), auto_adjust=False,
                actions=True, progress=False, threads=source.settings.fetch_concurrency, session=source._session)
    download = (served() - before) / n
    before = served()
    source.bars([f"YS{i:04d}" for i in range(n)], start, as_of)
    return download, (served() - before) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2600, help="symbols in the night, indexes included")
    parser.add_argument("--rps", type=float, default=40.0, help="requests_per_second for this run")
    parser.add_argument("--latency", type=float, nargs=2, default=(0.15, 0.40), metavar=("MIN_S", "MAX_S"))
    parser.add_argument("--first-night", action="store_true", help="every symbol's fundamentals are due")
    parser.add_argument("--compare", type=int, default=30, help="symbols for the yf.download comparison (0: skip)")
    args = parser.parse_args()

    as_of = calendar.latest_completed_session()
    fake = ChildYahoo(tuple(args.latency))
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), source="yahoo", requests_per_second=args.rps)
        start = as_of
        for _ in range(settings.overlap_sessions):
            start = calendar.previous_session(start)
        members = [f"SC{i:04d}" for i in range(max(0, args.symbols - len(INDEXES)))]
        due = members if args.first_night else fundamentals_due(
            simulated_stored(members, as_of), members, as_of, settings.fundamentals_max_age_days
        )
        source = YahooSource(settings, session_options=fake.session_options)
        source.bars(["^GSPC"], start, as_of)  # warm-up outside the timing: imports, caches, connection

        warm = fake.counts()
        t, cpu = time.perf_counter(), time.process_time()
        bars, funds = night(source, settings, members, due, start, as_of)
        wall_s, cpu_s = time.perf_counter() - t, time.process_time() - cpu
        kinds = {k: n - warm[k] for k, n in fake.counts().items()}
        served = sum(kinds.values())

        symbols = len(INDEXES) + len(members)
        sessions = len(calendar.sessions(start, as_of))
        total = bars.requests + funds.requests
        default_rps = Settings.model_fields["requests_per_second"].default
        latency = statistics.mean(args.latency)
        print(f"night of {as_of}: {symbols:,} symbols ({len(INDEXES)} indexes), bars for {sessions} sessions "
              f"({start}..{as_of}), fundamentals due for {len(due):,}"
              + (" (first night: all)" if args.first_night else " (simulated stored state)"))
        print(f"fake Yahoo latency {args.latency[0]:g}-{args.latency[1]:g} s per answer; run at {args.rps:g} requests/s, "
              f"{settings.fetch_concurrency} workers per call, 4 calls at a time")
        print(f"requests: {total:,} in all = bars {bars.requests:,} ({bars.requests / symbols:.3f} per symbol) "
              f"+ fundamentals {funds.requests:,} ({funds.requests / max(len(due), 1):.3f} per due symbol); "
              f"{total / symbols:.3f} per symbol")
        print(f"  the fake served {served:,}: {kinds['cookie']} cookie, {kinds['crumb']} crumb, "
              f"{kinds['chart']:,} chart, {kinds['timeseries']:,} fundamentals")
        print(f"rows: {bars.bars.height:,} bars, {bars.actions.height:,} actions, {funds.fundamentals.height:,} "
              f"quarters; failures: {bars.failures.height + funds.failures.height}")
        print(f"wall time: {wall_s:.1f} s ({total / wall_s:.1f} requests/s achieved); client CPU {cpu_s:.1f} s "
              f"({1000 * cpu_s / total:.0f} ms per request: yfinance's parsing, TLS, our frames)")
        print(f"at the default requests_per_second={default_rps:g}: at least {total / default_rps / 60:.1f} min "
              f"for these requests (latency-bound floor with 8 workers: {total * latency / 8 / 60:.1f} min)")

        if args.compare:
            download, ours = compare_download(fake, source, args.compare, start, as_of)
            print(f"cold cache, {args.compare} new symbols: yf.download {download:.2f} requests per symbol "
                  f"(timezone lookup + chart), this source {ours:.2f} (chart only)")
    fake.close()


if __name__ == "__main__":
    main()
