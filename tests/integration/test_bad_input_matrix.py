"""Bad input through the real pipeline: each case corrupts one night of real-shaped data and runs
`flows.run.run_load` on a copy of one good warehouse, then checks the outcome, the message, and
that nothing a reader sees moved when the night was blocked, failed or held.

The good data is the sample market cut down to a few dozen members (a short simulation: fast),
with its holdings served as real iShares files (the IWM file of tests/fixtures is the template:
preamble, columns, cash and futures lines, disclaimer footer) and parsed by the real parser, and,
where a case needs a file, its bars written as Yahoo CSVs and read by the csv source's reader.
Corruptions are applied to what the source returns for the night (or to the file text before it
is parsed), so every case goes through fetch, split, the gate, the load, completeness and publish.

Outcomes (docs/data-quality.md):
- blocked: an error-level expectation failed; offending rows in dq.quarantine with their reason,
  the good rows there too as `held_by_block`; raw, core, marts and the published snapshot unchanged.
- failed: the source could not deliver (no data, an unreadable file); nothing changed.
- held: the completeness gate held the night: loaded in the private warehouse, not published.
- warning: loaded and published; the finding is in the run's warnings and in dq.results.
- quarantined: loaded and published; the offending rows (a quarantine-level expectation: a holiday
  or weekend row, a row after the night, an identical repeat) or the rows the source deliberately
  did not keep are in dq.quarantine with their reason, every other row is loaded.

The last part loads real Yahoo index files through the csv source and the backfill flow, as a user
would: a holiday and a weekend row are quarantined, a file running past today ends the backfill at
the last completed session, a 1e308 close and a 1e30 volume are stopped with a message naming them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Callable

import duckdb
import polars as pl
import pytest
from prefect import flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from flows.run import run_load
from expectations.gate import row_key
from expectations.suites import suite
from pipeline.checks import Batch, split
from pipeline.load_run import LoadBlocked, LoadFailed, NightHeld
from ground.settings import DEFAULT_UNIVERSES, Settings
from sources.base import FAILURES_SCHEMA, Fetched
from sources.csv import read_bars
from sources.ishares import parse_holdings
from sources.sample import SampleSource
from warehouse.db import checksums, table_names

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IWM_FILE = FIXTURES / "ishares-iwm" / "IWM_holdings_2025-11-05.csv"

SEED = 2025
START = date(2025, 2, 3)  # the sample market starts here: a short simulation
END = date(2025, 3, 14)  # the good warehouse: a backfill START..END
NIGHT = date(2025, 3, 17)  # the corrupted night (a Monday)
SATURDAY = date(2025, 3, 15)
PRESIDENTS_DAY = date(2025, 2, 17)  # an NYSE holiday on a Monday
TOMORROW = date(2025, 3, 18)
REVISED = date(2025, 3, 12)  # a stored session inside the nightly overlap window
ETF = {"russell2000": ("IWM", "iShares Russell 2000 ETF"), "sp600": ("IJR", "iShares Core S&P Small-Cap ETF")}
EVERY = {"russell2000": 50, "sp600": 40}  # every 50th member: 40 companies; every 40th of sp600: 15
CASH_TICKERS = ("XTSLA", "USD", "RTYZ5")  # money market, cash, futures lines of the real file


# the good market -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    sample: SampleSource
    members: dict[str, list[str]]

    @property
    def equity(self) -> str:
        """The member whose bar most cases corrupt."""
        return self.members["russell2000"][0]


def _template() -> tuple[list[str], list[str], list[str]]:
    """Preamble (to the column header), the real cash/futures lines, and the footer of the IWM file."""
    lines = IWM_FILE.read_text(encoding="utf-8-sig").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Ticker,"))
    blank = next(i for i in range(header + 1, len(lines)) if not lines[i].strip(" \u00a0,"))
    cash = [line for line in lines[header + 1 : blank] if line.split(",")[0].strip('"') in CASH_TICKERS]
    return lines[: header + 1], cash, lines[blank:]


PREAMBLE, CASH_LINES, FOOTER = _template()


def holdings_file(frame: pl.DataFrame, universe: str, day: date) -> str:
    """An iShares holdings file (IWM 2025 layout) for `frame`: equity weights of 99.5% of the fund
    as published (two decimals), the real file's cash and futures lines, its disclaimer footer."""
    etf, title = ETF[universe]
    total = frame.get_column("market_value_usd").sum()
    preamble = [title] + [
        f'Fund Holdings as of,"{day:%b %d, %Y}"' if line.startswith("Fund Holdings as of") else line for line in PREAMBLE[1:]
    ]
    rows = [
        ",".join(
            f'"{v}"'
            for v in (
                r["ticker"], r["name"], r["sector"], "Equity", f"{r['market_value_usd']:,.2f}",
                f"{99.5 * r['market_value_usd'] / total:.2f}", f"{r['market_value_usd']:,.2f}", f"{r['shares']:,.2f}",
                f"{r['price_usd']:,.2f}", "United States", r["exchange"], "USD", "1.00", "USD", "-",
            )
        )
        for r in frame.iter_rows(named=True)
    ]
    return "\ufeff" + "\n".join([*preamble, *rows, *CASH_LINES, *FOOTER]) + "\n"


def yahoo_csv(bars: pl.DataFrame) -> str:
    """Bars of one symbol as yfinance saves them (Date,Open,High,Low,Close,Adj Close,Volume)."""
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for r in bars.sort("session_date").iter_rows(named=True):
        volume = "" if r["volume"] is None else f"{float(r['volume'])}"
        lines.append(f"{r['session_date']},{r['open']!r},{r['high']!r},{r['low']!r},{r['close']!r},{r['adj_close']!r},{volume}")
    return "\n".join(lines) + "\n"


# corruptions ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    outcome: str  # blocked | failed | held | warning | quarantined
    says: tuple[str, ...]  # what the message must name
    expectation: str | None = None  # the dq expectation that must have caught it (blocked, warning)
    bars: Callable[[pl.DataFrame, Market], pl.DataFrame] | None = None
    bar_failures: Callable[[list[str], Market], list[tuple[str, str]]] | None = None
    bars_file: Callable[[str], str] | None = None  # the ^RUT Yahoo CSV text, before it is read
    holdings_file: Callable[[str, str, date], str] | None = None  # (text, universe, day) -> text
    holdings_failure: str | None = None  # the universe iShares did not deliver
    fundamentals: Callable[[pl.DataFrame, Market], pl.DataFrame] | None = None
    actions: Callable[[pl.DataFrame, Market], pl.DataFrame] | None = None
    real_iwm: bool = False  # russell2000 holdings from the real IWM file (default member band)


def _row(df: pl.DataFrame, symbol: str, day: date = NIGHT) -> pl.Expr:
    return (pl.col("symbol") == symbol) & (pl.col("session_date") == day)


def _set(df: pl.DataFrame, symbol: str, day: date = NIGHT, **values) -> pl.DataFrame:
    at = _row(df, symbol, day)
    assert df.filter(at).height == 1, (symbol, day)
    return df.with_columns(
        **{c: pl.when(at).then(v(pl.col(c)) if callable(v) else pl.lit(v, dtype=df.schema[c])).otherwise(pl.col(c)) for c, v in values.items()}
    )


def _copy_to(df: pl.DataFrame, symbol: str, day: date) -> pl.DataFrame:
    return pl.concat([df, df.filter(_row(df, symbol)).with_columns(pl.lit(day).alias("session_date"))])


PRICES = ("open", "high", "low", "close", "adj_close")


def _stale(df: pl.DataFrame, symbol: str) -> pl.DataFrame:
    mine = pl.col("symbol") == symbol
    last = df.filter(_row(df, symbol)).get_column("close")[0]
    return df.with_columns(
        *[pl.when(mine).then(pl.lit(last)).otherwise(pl.col(c)).alias(c) for c in PRICES],
        pl.when(mine).then(pl.lit(0, dtype=pl.Int64)).otherwise(pl.col("volume")).alias("volume"),
    )


def _weights(text: str, factor: float | None = None, nan_for: str | None = None) -> str:
    """Scale the Weight (%) cell of every equity line, or write NaN into one member's."""
    out = []
    for line in text.split("\n"):
        cells = line.split('","')
        if len(cells) == 15 and cells[3] == "Equity":
            if factor is not None:
                cells[5] = f"{float(cells[5]) * factor:.2f}"
            if nan_for is not None and cells[0].lstrip('"') == nan_for:
                cells[5] = "NaN"
            line = '","'.join(cells)
        out.append(line)
    return "\n".join(out)


def _cell(text: str, ticker: str, index: int, value: str) -> str:
    """Write `value` into one cell (by column index) of one member's equity line."""
    out = []
    for line in text.split("\n"):
        cells = line.split('","')
        if len(cells) == 15 and cells[0].lstrip('"') == ticker:
            cells[index] = value
            line = '","'.join(cells)
        out.append(line)
    return "\n".join(out)


def _dated(text: str, day: date) -> str:
    """The file's "Fund Holdings as of" line set to `day`."""
    return re.sub(r'^Fund Holdings as of,"[^"]*"', f'Fund Holdings as of,"{day:%b %d, %Y}"', text, count=1, flags=re.M)


def _truncate(text: str, fraction: float = 0.5) -> str:
    """A download cut off mid-line."""
    cut = int(len(text) * fraction)
    return text[:cut]


HTML = (
    "<!DOCTYPE html>\n<html lang=\"en\"><head><title>iShares Russell 2000 ETF | IWM</title></head>\n"
    "<body><div class=\"error\">We're sorry, the page you requested cannot be found.</div></body></html>\n"
)


def _double(text: str) -> str:
    """Every equity line twice (a download that repeated a page of the table)."""
    out = []
    for line in text.split("\n"):
        out.append(line)
        if line.count('","') == 14 and '"Equity"' in line:
            out.append(line)
    return "\n".join(out)


def _night_file(edit: Callable[[str], str], universe: str = "russell2000") -> Callable[[str, str, date], str]:
    return lambda text, u, d: edit(text) if (u, d) == (universe, NIGHT) else text


def _stub_quarter(df: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """A period end 31 days after the company's latest quarter (a fiscal-year change)."""
    last = df.filter(pl.col("symbol") == symbol).sort("period_end_date").tail(1)
    stub = last.with_columns(
        (pl.col("period_end_date") + pl.duration(days=31)).alias("period_end_date"), pl.lit(REVISED).alias("report_date")
    )
    return pl.concat([df, stub])


def _member(i: int) -> Callable[[Market], str]:
    return lambda m: m.members["russell2000"][i]


# Loads that must not go through: each run alone on a copy of the good warehouse.
CASES = [
    # prices ------------------------------------------------------------------------------------
    Case("nan-close", "blocked", ("raw.equity_bars", "close_not_null", "prices_finite", "close=NaN"), "close_not_null",
         bars=lambda df, m: _set(df, m.equity, close=float("nan"))),
    Case("negative-close", "blocked", ("raw.equity_bars", "close_positive", "close=-17.669"), "close_positive",
         bars=lambda df, m: _set(df, m.equity, close=lambda c: -c, adj_close=lambda c: -c)),
    Case("infinite-index-high", "blocked", ("raw.index_bars", "prices_finite", "^RUT 2025-03-17", "high=inf"), "prices_finite",
         bars=lambda df, m: _set(df, "^RUT", high=float("inf"))),
    Case("high-below-low", "blocked", ("raw.equity_bars", "high_ge_low", "SMP0001 2025-03-17 high=8.89585 low=17.2955"), "high_ge_low",
         bars=lambda df, m: _set(df, m.equity, high=lambda c: c * 0.5)),
    Case("negative-volume", "blocked", ("raw.equity_bars", "volume_non_negative", "volume=-1000"), "volume_non_negative",
         bars=lambda df, m: _set(df, m.equity, volume=-1_000)),
    Case("duplicate-key-two-versions", "blocked", ("raw.equity_bars", "keys_unique failed for 2 of", "SMP0001 2025-03-17 versions=2"),
         "keys_unique", bars=lambda df, m: pl.concat([df, df.filter(_row(df, m.equity)).with_columns(pl.col("volume") + 1)])),
    Case("close-1e308", "blocked", ("raw.equity_bars", "prices_plausible failed for 1 of", "SMP0001 2025-03-17", "close=1e+308"),
         "prices_plausible", bars=lambda df, m: _set(df, m.equity, high=1e308, close=1e308, adj_close=1e308)),
    Case("volume-1e13", "blocked", ("raw.equity_bars", "volume_plausible failed for 1 of", "SMP0001 2025-03-17 volume=10000000000000"),
         "volume_plausible", bars=lambda df, m: _set(df, m.equity, volume=10**13)),
    Case("null-symbol", "blocked", ("raw.equity_bars", "symbol_not_null failed for 1 of"), "symbol_not_null",
         bars=lambda df, m: df.with_columns(pl.when(_row(df, m.equity)).then(None).otherwise(pl.col("symbol")).alias("symbol"))),
    # shape -------------------------------------------------------------------------------------
    Case("column-renamed", "blocked", ("raw.equity_bars", "columns_present", "missing column(s) adj_close", "Adj Close (renamed?)"),
         "columns_present", bars=lambda df, m: df.rename({"adj_close": "Adj Close"})),
    Case("column-missing", "blocked", ("raw.index_bars", "columns_present", "missing column(s) volume"), "columns_present",
         bars=lambda df, m: df.drop("volume")),
    Case("strings-for-numbers", "blocked", ("raw.equity_bars", "column_types", "close is String, expected Float64 (e.g. '"), "column_types",
         bars=lambda df, m: df.with_columns(pl.col("close").round(2).cast(pl.String))),
    # what did not arrive -------------------------------------------------------------------------
    Case("empty-answer", "failed", ("returned no data for 60 of 60 symbols", "connection refused", "nothing was loaded"),
         bars=lambda df, m: df.clear(), bar_failures=lambda symbols, m: [(s, "connection refused") for s in symbols]),
    Case("empty-answer-silent", "failed", ("returned no bars for 2025-03-07..2025-03-17", "nothing was loaded"),
         bars=lambda df, m: df.clear()),
    Case("missing-index", "held", ("night held, not published", "1 of 5 expected index(es) have no bar for 2025-03-17: ^RUT"),
         bars=lambda df, m: df.filter(~_row(df, "^RUT"))),
    Case("half-members-missing", "held", ("night held, not published", "russell2000: only 20 of 40 members (50.0%)",
                                          "below the required 98.0%", "missing 20: SMP0001"),
         bars=lambda df, m: df.filter(~pl.col("symbol").is_in(m.members["russell2000"][::2])),
         bar_failures=lambda symbols, m: [(s, "HTTP 429 Too Many Requests") for s in m.members["russell2000"][::2] if s in symbols]),
    Case("one-member-missing", "held", ("russell2000: only 39 of 40 members (97.5%)", "missing 1: SMP0051"),
         bars=lambda df, m: df.filter(~_row(df, m.members["russell2000"][1]))),
    # files ---------------------------------------------------------------------------------------
    Case("truncated-bars-csv", "failed", ("^RUT.csv line 8", "fields where the header has 7 (truncated last line?)"),
         bars_file=lambda text: text[: len(text) - 25]),
    Case("strings-in-bars-csv", "failed", ("^RUT.csv line 8", "Close 'n/a 1783.31' is not a number"),
         bars_file=lambda text: re.sub(r"^(2025-03-17,[^,]*,[^,]*,[^,]*,)", r"\1n/a ", text, flags=re.M)),
    Case("renamed-column-in-bars-csv", "failed", ("^RUT.csv line 1", "unknown column(s) 'AdjClose'"),
         bars_file=lambda text: text.replace("Adj Close", "AdjClose", 1)),
    Case("close-1e308-in-bars-csv", "blocked", ("raw.index_bars", "prices_plausible failed for 1 of", "^RUT 2025-03-17", "close=1e+308"),
         "prices_plausible", bars_file=lambda text: re.sub(
             r"^(2025-03-17,[^,]*,)[^,]*(,[^,]*,)[^,]*,[^,]*", r"\g<1>1e308\g<2>1e308,1e308", text, flags=re.M)),
    Case("truncated-holdings-csv", "failed", ("IWM_holdings_2025-03-17.csv (russell2000) line", "(truncated line?)"),
         holdings_file=_night_file(_truncate)),
    Case("html-instead-of-holdings", "failed", ("IWM_holdings_2025-03-17.csv (russell2000)", "got an HTML page, not a holdings CSV"),
         holdings_file=_night_file(lambda text: HTML)),
    Case("renamed-column-in-holdings-csv", "failed", ("IWM_holdings_2025-03-17.csv (russell2000) line 10", "missing column(s) 'Weight (%)'"),
         holdings_file=_night_file(lambda text: text.replace(",Weight (%),", ",Weight,", 1))),
    Case("holdings-weights-40pct", "blocked", ("raw.holdings", "weight_sum_band", "russell2000 2025-03-17 weight_sum_pct=39.81"),
         "weight_sum_band", holdings_file=_night_file(lambda text: _weights(text, factor=0.4))),
    Case("real-iwm-weights-40pct", "blocked", ("raw.holdings", "weight_sum_band", "russell2000 2025-03-17 weight_sum_pct=38.48"),
         "weight_sum_band", real_iwm=True, holdings_file=_night_file(lambda text: _weights(text, factor=0.4))),
    Case("holdings-nan-weight", "blocked", ("raw.holdings", "weight_finite", "SMP0001 weight_pct=NaN"), "weight_finite",
         holdings_file=_night_file(lambda text: _weights(text, nan_for="SMP0001"))),
    Case("holdings-nan-price", "blocked", ("raw.holdings", "values_finite failed for 1 of", "SMP0001", "price_usd=NaN"), "values_finite",
         holdings_file=_night_file(lambda text: _cell(text, "SMP0001", 8, "NaN"))),
    # fundamentals and actions -----------------------------------------------------------------------
    Case("fundamentals-duplicate-quarter", "blocked", ("raw.fundamentals", "keys_unique", "SMP1992 2024-12-31"), "keys_unique",
         fundamentals=lambda df, m: pl.concat([df, df.tail(1).with_columns(pl.col("net_income_common_usd") * 2)])),
    Case("unknown-corporate-action", "blocked", ("raw.corporate_actions", "action_known", "action=merger"), "action_known",
         actions=lambda df, m: pl.concat(
             [df, pl.DataFrame({"symbol": [m.equity], "ex_date": [NIGHT], "action": ["merger"], "value": [1.0]}, schema=df.schema)]
         )),
]

# Corruptions that must load: all in one night (each on its own member), which must load, publish,
# and name every one of them.
WARNINGS = [
    Case("spike-100x", "warning", ("raw.equity_bars", "price_jump_100x", "SMP0101 2025-03-17", "prev_close="), "price_jump_100x",
         bars=lambda df, m: _set(df, _member(2)(m), **{c: (lambda x: x * 100) for c in PRICES})),
    Case("index-spike-100x", "warning", ("raw.index_bars", "price_jump_100x", "^IXIC 2025-03-17"), "price_jump_100x",
         bars=lambda df, m: _set(df, "^IXIC", **{c: (lambda x: x * 100) for c in PRICES})),
    Case("stale-symbol", "warning", ("raw.equity_bars", "stale_symbol", "SMP0151", "volume=0"), "stale_symbol",
         bars=lambda df, m: _stale(df, _member(3)(m))),
    Case("big-revision", "warning", ("raw.equity_bars", "big_revision", "SMP0201 2025-03-12", "stored_close="), "big_revision",
         bars=lambda df, m: _set(df, _member(4)(m), REVISED, **{c: (lambda x: x * 1.1) for c in ("high", "close", "adj_close")})),
    Case("extra-column", "warning", ("raw.equity_bars: no_unexpected_columns", "dividends"), "no_unexpected_columns",
         bars=lambda df, m: df.with_columns(pl.lit(0.0).alias("dividends"))),
    Case("holdings-zero-price", "warning", ("raw.holdings", "price_usd_positive", "SMP0251", "price_usd=0"), "price_usd_positive",
         holdings_file=_night_file(lambda text: re.sub(r'^("SMP0251",(?:"[^"]*",){7})"[^"]*"', r'\1"0.00"', text, flags=re.M))),
    Case("fundamentals-stub-quarter", "warning", ("raw.fundamentals", "quarters_spaced", "SMP0301", "days_to_neighbour=31"),
         "quarters_spaced", fundamentals=lambda df, m: _stub_quarter(df, _member(6)(m))),
    Case("holdings-missing", "warning", ("sample: no holdings snapshot for sp600 (HTTP 503 Service Unavailable)",
                                         "membership is not updated"), holdings_failure="sp600"),
    Case("holdings-doubled-lines", "quarantined", ("excluded: duplicate: line", "already holds SMP0001"), "excluded_by_source",
         holdings_file=_night_file(_double)),
    # Vendor quirks and rows from the future: set aside with a named reason, the rest of the night loads.
    Case("saturday-session", "quarantined", ("session_on_calendar: not an NYSE session: session_date=2025-03-15 weekday=Saturday",),
         "session_on_calendar", bars=lambda df, m: _copy_to(df, _member(7)(m), SATURDAY)),
    Case("vix-on-a-holiday", "quarantined", ("session_on_calendar: not an NYSE session: session_date=2025-02-17 weekday=Monday",),
         "session_on_calendar", bars=lambda df, m: _copy_to(df, "^VIX", PRESIDENTS_DAY)),
    Case("future-session", "quarantined", ("session_not_future: after the load's as-of session: session_date=2025-03-18 as_of=2025-03-17",),
         "session_not_future", bars=lambda df, m: _copy_to(df, "^RUT", TOMORROW)),
    Case("repeated-bar", "quarantined", ("rows_not_repeated: an identical copy of an earlier row:",), "rows_not_repeated",
         bars=lambda df, m: pl.concat([df, df.filter(_row(df, _member(8)(m)))])),
    Case("fundamentals-future-quarter", "quarantined",
         ("period_end_past: quarter ends after the load's as-of session: period_end_date=2025-06-30",), "period_end_past",
         fundamentals=lambda df, m: pl.concat(
             [df, df.filter(pl.col("symbol") == _member(9)(m)).tail(1).with_columns(pl.lit(date(2025, 6, 30)).alias("period_end_date"))]
         )),
    Case("holdings-from-the-future", "quarantined",
         ("as_of_not_future: snapshot dated after the load's as-of session: as_of_date=2025-03-18",), "as_of_not_future",
         holdings_file=_night_file(lambda text: _dated(text, TOMORROW))),
]


def all_at_once(cases: list[Case]) -> Case:
    """One corruption made of several: file edits and frame edits applied in turn."""

    def chain(name: str):
        fns = [getattr(c, name) for c in cases if getattr(c, name)]
        if not fns:
            return None
        if name == "holdings_file":
            def run_file(text, u, d):
                for f in fns:
                    text = f(text, u, d)
                return text
            return run_file

        def run_frame(df, m):
            for f in fns:
                df = f(df, m)
            return df
        return run_frame

    failures = [c.holdings_failure for c in cases if c.holdings_failure]
    assert len(failures) <= 1
    return Case(
        "all-warnings", "warning", (), bars=chain("bars"), holdings_file=chain("holdings_file"), fundamentals=chain("fundamentals"),
        holdings_failure=failures[0] if failures else None,
    )


class SmallMarket:
    """The sample market cut down to `market.members`, holdings as real iShares files, with one
    case's corruption applied to what it returns. Counts every row it hands over."""

    name = "sample"

    def __init__(self, market: Market, case: Case | None = None, folder: Path | None = None):
        self.market = market
        self.capabilities = market.sample.capabilities
        self.case = case or Case("good", "succeeded", ())
        self.folder = folder
        self.returned: list[Fetched] = []  # every answer, for the nothing-is-lost checks

    @property
    def rows(self) -> int:
        return sum(f.bars.height + f.actions.height + f.fundamentals.height + f.holdings.height + f.excluded.height for f in self.returned)

    def _count(self, got: Fetched) -> Fetched:
        self.returned.append(got)
        return got

    def holdings(self, universes, start, end):
        parts, failures = [], []
        for u in universes:
            if u == self.case.holdings_failure:
                failures.append((u, "holdings", "HTTP 503 Service Unavailable"))
                continue
            snaps = self.market.sample.holdings([u], start, end).holdings.filter(pl.col("symbol").is_in(self.market.members[u]))
            for (day,), snap in snaps.partition_by("as_of_date", as_dict=True, maintain_order=True).items():
                name = f"{ETF[u][0]}_holdings_{day}.csv"
                text = real_iwm_text(day) if self.case.real_iwm and u == "russell2000" else holdings_file(snap, u, day)
                if self.case.holdings_file:
                    text = self.case.holdings_file(text, u, day)
                parts.append(parse_holdings(text.encode(), universe=u, source_name=name))
        got = Fetched.combine(parts)
        if failures:
            got = replace(got, failures=pl.DataFrame(failures, schema=FAILURES_SCHEMA, orient="row"))
        return self._count(got)

    def bars(self, symbols, start, end):
        got = self.market.sample.bars(symbols, start, end)
        if not start <= NIGHT <= end:
            # An earlier stretch (a symbol's history fetched again after a new dividend or split):
            # the corruptions are the night's.
            return self._count(got)
        bars, actions, failures = got.bars, got.actions, got.failures
        if self.case.bars_file and "^RUT" in symbols:
            path = self.folder / "^RUT.csv"
            path.write_text(self.case.bars_file(yahoo_csv(bars.filter(pl.col("symbol") == "^RUT"))))
            bars = pl.concat([bars.filter(pl.col("symbol") != "^RUT"), read_bars(path, "^RUT")])
        if self.case.bars:
            bars = self.case.bars(bars, self.market)
        if self.case.actions:
            actions = self.case.actions(actions, self.market)
        if self.case.bar_failures:
            extra = pl.DataFrame(
                [(s, "bars", e) for s, e in self.case.bar_failures(list(symbols), self.market)], schema=FAILURES_SCHEMA, orient="row"
            )
            failures = pl.concat([failures, extra])
        return self._count(Fetched(bars=bars, actions=actions, failures=failures))

    def fundamentals(self, symbols, as_of, since=None):
        # It declares the sample's capabilities, takes_since included.
        got = self.market.sample.fundamentals(symbols, as_of, since=since)
        if self.case.fundamentals:
            got = replace(got, fundamentals=self.case.fundamentals(got.fundamentals, self.market))
        return self._count(got)


def real_iwm_text(day: date) -> str:
    """The real IWM file of 2025-11-05, dated `day`."""
    text = IWM_FILE.read_text(encoding="utf-8-sig")
    return "\ufeff" + text.replace('Fund Holdings as of,"Nov 05, 2025"', f'Fund Holdings as of,"{day:%b %d, %Y}"', 1)


# running ---------------------------------------------------------------------------------------


def settings_for(home: Path, market: Market, *, real_iwm: bool = False) -> Settings:
    r, s = DEFAULT_UNIVERSES
    n_r, n_s = len(market.members["russell2000"]), len(market.members["sp600"])
    universes = [
        r if real_iwm else r.model_copy(update={"min_members": n_r - 5, "max_members": n_r + 5}),
        s.model_copy(update={"min_members": n_s - 3, "max_members": n_s + 3}),
    ]
    return Settings(home=home, source="sample", sample_seed=SEED, sample_start=START, universes=universes)


def run(settings: Settings, source, kind: str = "nightly", as_of: date = NIGHT, start: date | None = None) -> dict:
    @flow(name=f"bad-input-{kind}", task_runner=ThreadPoolTaskRunner(max_workers=4))
    def one_load() -> dict:
        return run_load(settings, kind, as_of=as_of, start=start, source=source)

    return one_load()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class State:
    data: dict  # checksums of raw, core, marts in the private warehouse
    files: dict  # sha256 of every published and exported file
    published: dict  # checksums of every table of the published snapshot


def state(home: Path) -> State:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    data = checksums(con, table_names(con, ("raw", "core", "marts")))
    con.close()
    files = {
        str(p.relative_to(home)): _sha256(p)
        for folder in ("published", "exports")
        for p in sorted((home / folder).rglob("*"))
        if p.is_file()
    }
    pub = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    published = checksums(pub, table_names(pub))
    pub.close()
    return State(data, files, published)


def query(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def no_heartbeat_wait():
    """A flow run's exit waits for its heartbeat thread to wake (up to 1 s): dozens of short loads
    here would spend half a minute asleep. Crash detection by heartbeat is not under test."""
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(scope="module")
def market() -> Market:
    sample = SampleSource(SEED, START)
    members = {}
    for u in ("russell2000", "sp600"):
        staying = set(sample.members(u, NIGHT))
        members[u] = [s for s in sample.members(u, START)[:: EVERY[u]] if s in staying]
    return Market(sample, members)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, market) -> Path:
    home = tmp_path_factory.mktemp("good-home")
    result = run(settings_for(home, market), SmallMarket(market), kind="backfill", as_of=END, start=START)
    assert result["status"] == "succeeded", result
    return home


@pytest.fixture
def home(baseline, tmp_path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(baseline, copy, symlinks=True)  # report/latest is a relative link
    return copy


# the matrix ---------------------------------------------------------------------------------------

RAISES = {"blocked": LoadBlocked, "failed": (LoadFailed, ValueError), "held": NightHeld}
STATUS = {"blocked": "blocked", "failed": "failed", "held": "held", "warning": "succeeded", "quarantined": "succeeded"}


def test_the_matrix_has_enough_distinct_cases():
    ids = [c.id for c in CASES + WARNINGS]
    assert len(set(ids)) == len(ids) >= 20


def last_load(home: Path) -> tuple[str, str, str]:
    return query(home, "SELECT load_id, status, message FROM meta.loads ORDER BY started_at DESC LIMIT 1")[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_stopped_and_named(case: Case, market: Market, home: Path, tmp_path: Path):
    settings = settings_for(home, market, real_iwm=case.real_iwm)
    before = state(home)
    source = SmallMarket(market, case, tmp_path)

    with pytest.raises(RAISES[case.outcome]) as raised:
        run(settings, source)
    message = str(raised.value)
    load_id, status, recorded = last_load(home)
    assert status == STATUS[case.outcome], (status, recorded)
    for needle in case.says:
        assert needle in message, f"{needle!r} not in {message!r}"
        assert needle in recorded, f"{needle!r} not in meta.loads.message {recorded!r}"

    after = state(home)
    if case.outcome == "held":
        # Held: the night is in the private warehouse, readers still see the previous one.
        assert after.data != before.data
        assert query(home, "SELECT max(session_date) FROM raw.index_bars")[0][0] == NIGHT
    else:
        assert after.data == before.data, "raw, core or marts changed"
    assert after.files == before.files, "a published or exported file changed"
    assert after.published == before.published

    if case.outcome == "blocked":
        # Nothing lost: every row the source handed over is in dq.quarantine, the culprits with
        # their reason, the rest held by the block; meta.loads counts them.
        rows = query(home, "SELECT expectation, reason FROM dq.quarantine WHERE load_id = ?", [load_id])
        assert len(rows) == source.rows
        assert query(home, "SELECT rows_in, rows_loaded, rows_quarantined FROM meta.loads WHERE load_id = ?", [load_id]) == [
            (source.rows, 0, source.rows)
        ]
        culprits = [r for e, r in rows if e not in ("held_by_block", "excluded_by_source")]
        assert culprits and any(f"{case.expectation}:" in r for r in culprits), culprits[:3]
        failed = query(
            home, "SELECT DISTINCT severity FROM dq.results WHERE load_id = ? AND expectation = ? AND NOT success", [load_id, case.expectation]
        )
        assert failed == [("error",)]
    else:
        assert not query(home, "SELECT 1 FROM dq.quarantine WHERE load_id = ? AND expectation <> 'excluded_by_source'", [load_id])


@pytest.fixture(scope="module")
def warned(baseline, market, tmp_path_factory):
    """One night carrying every non-blocking corruption."""
    home = tmp_path_factory.mktemp("warned") / "home"
    shutil.copytree(baseline, home, symlinks=True)
    before = state(home)
    source = SmallMarket(market, all_at_once(WARNINGS), home.parent)
    result = run(settings_for(home, market), source)
    return home, before, result, source


@pytest.mark.parametrize("case", WARNINGS, ids=[c.id for c in WARNINGS])
def test_input_that_must_load_is_loaded_published_and_named(case: Case, warned):
    home, before, result, _ = warned
    assert result["status"] == "succeeded", result
    load_id, status, _ = last_load(home)
    assert status == "succeeded" and load_id == result["load_id"]
    after = state(home)
    assert after.data != before.data and after.files != before.files
    assert query(home, "SELECT max(session_date) FROM marts.index_daily")[0][0] == NIGHT
    pub = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    assert pub.execute("SELECT as_of_date FROM meta.snapshot").fetchone()[0] == NIGHT
    pub.close()
    if case.outcome == "warning":
        message = "\n".join(result["warnings"])
        for needle in case.says:
            assert needle in message, f"{needle!r} not in {message!r}"
        if case.expectation:  # a finding of the gate, recorded in dq.results
            failed = query(
                home, "SELECT DISTINCT severity FROM dq.results WHERE load_id = ? AND expectation = ? AND NOT success",
                [load_id, case.expectation],
            )
            assert failed == [("warning",)]
    else:
        reasons = [r for r, in query(home, "SELECT reason FROM dq.quarantine WHERE load_id = ? AND expectation = ?", [load_id, case.expectation])]
        for needle in case.says:
            assert any(needle in r for r in reasons), (needle, reasons[:3])


# nothing lost -------------------------------------------------------------------------------------


def _bars_of(source: SmallMarket, day: date) -> pl.DataFrame:
    return pl.concat([f.bars for f in source.returned if f.bars.height]).filter(pl.col("session_date") == day)


def account(home: Path, load_id: str, given: Batch) -> dict[str, tuple[int, int, int]]:
    """Every row a source gave, per raw table: in dq.quarantine (with the values it arrived with) or
    in raw (with the same values), never both and never neither. Returns table -> (given, loaded,
    quarantined), where excluded rows (quarantined by the source) count as given and quarantined."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    out = {}
    try:
        for table, frame in given.frames.items():
            q = pl.DataFrame(
                con.execute(
                    "SELECT row_key, row_json FROM dq.quarantine WHERE load_id = ? AND table_name = ? AND expectation <> 'excluded_by_source'",
                    [load_id, table],
                ).fetchall(),
                schema={"row_key": pl.String, "row_json": pl.String}, orient="row",
            )
            occurrence = pl.int_range(pl.len()).over("row_key", "row_json").alias("n")
            rows = frame.with_columns(pl.struct(pl.all()).struct.json_encode().alias("row_json"))
            rows = rows.with_columns(row_key(table, frame).alias("row_key")).with_columns(occurrence)
            q = q.with_columns(occurrence)
            # Each quarantined row is one the source gave, as given (a repeat counts once per copy).
            assert q.join(rows, on=["row_key", "row_json", "n"], how="anti").is_empty(), (table, q.head(3).rows())
            # Compared on the table's contract: a column outside it is dropped on load (a warning).
            columns = [c for c in frame.columns if c in suite(table).schema]
            rest = rows.join(q, on=["row_key", "row_json", "n"], how="anti").select(columns)
            stored = con.sql(f"SELECT {', '.join(columns)} FROM {table}").pl().cast({c: frame.schema[c] for c in columns})
            missing = rest.join(stored, on=columns, how="anti", nulls_equal=True)
            assert missing.is_empty(), (table, "given rows neither loaded nor quarantined", missing.head(3).rows())
            excluded = given.excluded.filter(pl.col("dataset") == table).height
            in_quarantine = con.execute(
                "SELECT count(*) FROM dq.quarantine WHERE load_id = ? AND table_name = ? AND expectation = 'excluded_by_source'",
                [load_id, table],
            ).fetchone()[0]
            assert in_quarantine == excluded, (table, in_quarantine, excluded)
            recorded = con.execute(
                "SELECT rows_in, rows_quarantined FROM meta.load_tables WHERE load_id = ? AND table_name = ?", [load_id, table]
            ).fetchone()
            assert recorded == (frame.height, q.height), (table, recorded)
            out[table] = (frame.height + excluded, rest.height, q.height + excluded)
            assert out[table][0] == out[table][1] + out[table][2]
        loads = con.execute("SELECT rows_in, rows_quarantined FROM meta.loads WHERE load_id = ?", [load_id]).fetchone()
        assert loads == (sum(g for g, _, _ in out.values()), sum(q for _, _, q in out.values()))
    finally:
        con.close()
    return out


def test_every_row_of_a_night_is_loaded_or_quarantined_with_its_reason(warned, market):
    """docs/data-quality.md: warning-level rows load; quarantine-level rows (and the lines the source
    excluded) are in dq.quarantine with their reason; per table, rows given = loaded + quarantined."""
    home, _, result, source = warned
    load_id = result["load_id"]
    given = split(Fetched.combine(source.returned), Settings().index_symbols)
    counted = account(home, load_id, given)
    excluded = given.excluded.height  # cash and futures lines, and the doubled equity lines
    assert excluded > len(market.members["russell2000"])
    assert set(given.excluded.get_column("dataset")) == {"raw.holdings"}
    members = len(market.members["russell2000"])  # the night's russell2000 snapshot is dated tomorrow
    quarantined = {t: q for t, (_, _, q) in counted.items() if q}
    assert quarantined == {"raw.index_bars": 2, "raw.equity_bars": 2, "raw.holdings": members + excluded, "raw.fundamentals": 1}
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    by_reason = dict(con.execute("SELECT expectation, count(*) FROM dq.quarantine WHERE load_id = ? GROUP BY 1", [load_id]).fetchall())
    note = con.execute("SELECT message FROM meta.loads WHERE load_id = ?", [load_id]).fetchone()[0]
    con.close()
    assert by_reason == {
        "session_on_calendar": 2, "session_not_future": 1, "rows_not_repeated": 1, "period_end_past": 1,
        "as_of_not_future": members, "excluded_by_source": excluded,
    }
    # The run says what did not load and why, and so does meta.loads (smallcaps status, smallcaps dq).
    said = "\n".join(result["quarantined"])
    for needle in ("raw.index_bars: session_on_calendar failed for 1 of", "(not an NYSE session)",
                   "raw.equity_bars: rows_not_repeated failed for 1 of", f"raw.holdings: {excluded} row(s) excluded by the source"):
        assert needle in said, (needle, said)
    assert note.startswith("loaded; ") and "raw.index_bars session_not_future 1" in note, note
    # The rows of the night that did not fail load as received (the 100x close too: a warning loads).
    fetched = _bars_of(source, NIGHT).unique(maintain_order=True).select("symbol", "close").sort("symbol")
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    stored = pl.DataFrame(
        con.execute(
            "SELECT symbol, close FROM raw.index_bars WHERE session_date = ? UNION ALL "
            "SELECT symbol, close FROM raw.equity_bars WHERE session_date = ? ORDER BY symbol",
            [NIGHT, NIGHT],
        ).fetchall(),
        schema=["symbol", "close"],
        orient="row",
    )
    con.close()
    assert stored.equals(fetched)


def test_good_rows_of_a_blocked_load_are_held_then_load_on_the_next_run(market, home, tmp_path):
    """The policy the code implements (docs/data-quality.md, "Quarantine policy"): one bad row blocks
    the load; the good rows fetched with it wait in dq.quarantine as `held_by_block`, keyed like the
    table, with the row as received; the next run that passes fetches them again and loads them."""
    settings = settings_for(home, market)
    bad = SmallMarket(market, CASES[0], tmp_path)  # nan-close: one NaN close among 1,041 rows
    with pytest.raises(LoadBlocked):
        run(settings, bad)
    blocked_id = last_load(home)[0]
    held = pl.DataFrame(
        query(home, "SELECT table_name, row_key, expectation, row_json FROM dq.quarantine WHERE load_id = ?", [blocked_id]),
        schema=["table_name", "row_key", "expectation", "row_json"],
        orient="row",
    )
    assert held.height == bad.rows
    assert held.group_by("expectation").len().sort("expectation").rows() == [
        ("close_not_null", 1), ("excluded_by_source", 18), ("held_by_block", bad.rows - 19),
    ]
    # Every good bar of the night is held, with its values; row_key is the table's key.
    fetched = _bars_of(bad, NIGHT)
    good = fetched.filter(pl.col("symbol") != market.equity)
    bars = held.filter(pl.col("table_name").is_in(["raw.index_bars", "raw.equity_bars"]) & (pl.col("expectation") == "held_by_block"))
    on_night = bars.filter(pl.col("row_key").str.ends_with(f"|{NIGHT}"))
    as_held = pl.DataFrame([json.loads(j) for j in on_night.get_column("row_json")]).select("symbol", "close").sort("symbol")
    assert as_held.equals(good.select("symbol", "close").sort("symbol"))
    assert set(on_night.get_column("row_key")) == {f"{s}|{NIGHT}" for s in good.get_column("symbol")}
    # Excluded lines are filed under raw.holdings too, keyed as the source names them (file line).
    holdings_keys = held.filter((pl.col("table_name") == "raw.holdings") & (pl.col("expectation") == "held_by_block")).get_column("row_key")
    assert holdings_keys.str.contains(rf"^russell2000\|{NIGHT}\|SMP\d{{4}}$").any()  # universe|as_of_date|symbol
    assert holdings_keys.str.contains(r"^(russell2000|sp600)\|\d{4}-\d{2}-\d{2}\|[A-Z0-9^.-]+$").all()
    counts = query(home, "SELECT sum(rows_in), sum(rows_loaded), sum(rows_quarantined) FROM meta.load_tables WHERE load_id = ?", [blocked_id])
    assert counts == [(bad.rows - 18, 0, bad.rows - 18)]  # excluded lines are counted in meta.loads only

    # The next run that passes fetches the night again and loads every held row.
    good_run = run(settings, SmallMarket(market, None, tmp_path))
    assert good_run["status"] == "succeeded"
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    stored = con.execute(
        "SELECT symbol, close FROM raw.index_bars WHERE session_date = ? UNION ALL "
        "SELECT symbol, close FROM raw.equity_bars WHERE session_date = ?",
        [NIGHT, NIGHT],
    ).fetchall()
    con.close()
    assert pl.DataFrame(stored, schema=["symbol", "close"], orient="row").filter(pl.col("symbol") != market.equity).sort("symbol").equals(
        as_held
    )
    assert market.equity in {s for s, _ in stored}


# csv backfills of real Yahoo files -----------------------------------------------------------------
#
# The repo's real ^RUT/^GSPC/^VIX files (tests/fixtures/yahoo-daily-csv: no off-calendar row in
# them), cut to 2021-10-01..2022-11-18 (a year boundary for the YTD figures, Memorial Day 2022 inside),
# loaded as a user would: `smallcaps backfill --source csv --path DIR` (flows.backfill).

YAHOO = FIXTURES / "yahoo-daily-csv"
CSV_FIRST, CSV_LAST = date(2021, 10, 1), date(2022, 11, 18)
MEMORIAL_DAY = date(2022, 5, 30)
CSV_SATURDAY = date(2022, 11, 12)
STRAY = date(2031, 1, 2)


def real_folder(folder: Path, edit: Callable[[str, list[str]], list[str]] | None = None) -> Path:
    """The real files cut to CSV_FIRST..CSV_LAST; `edit(symbol, data lines)` returns the lines to write."""
    folder.mkdir(parents=True, exist_ok=True)
    for symbol in ("^RUT", "^GSPC", "^VIX"):
        header, *lines = (YAHOO / f"{symbol}.csv").read_text().splitlines()
        lines = [line for line in lines if str(CSV_FIRST) <= line[:10] <= str(CSV_LAST)]
        if edit:
            lines = edit(symbol, lines)
        (folder / f"{symbol}.csv").write_text("\n".join([header, *lines]) + "\n")
    return folder


def _add(symbol: str, day: date, like: date) -> Callable[[str, list[str]], list[str]]:
    """A row dated `day` with the values of the row of `like`, in date order."""

    def edit(s: str, lines: list[str]) -> list[str]:
        if s != symbol:
            return lines
        row = next(line for line in lines if line.startswith(str(like)))
        return sorted([*lines, f"{day}{row[10:]}"])

    return edit


def _last_row(symbol: str, **cells: str) -> Callable[[str, list[str]], list[str]]:
    """The last row of one file with some cells replaced (by column name)."""
    at = {"Open": 1, "High": 2, "Low": 3, "Close": 4, "Adj Close": 5, "Volume": 6}

    def edit(s: str, lines: list[str]) -> list[str]:
        if s != symbol:
            return lines
        row = lines[-1].split(",")
        for name, value in cells.items():
            row[at[name]] = value
        return [*lines[:-1], ",".join(row)]

    return edit


def _chain(*edits):
    def edit(s, lines):
        for e in edits:
            lines = e(s, lines)
        return lines

    return edit


def csv_backfill(folder: Path, home: Path) -> dict:
    from flows.backfill import backfill

    return backfill(source="csv", csv_path=str(folder), home=str(home))


@pytest.fixture(scope="module")
def csv_home(tmp_path_factory) -> Path:
    """A data home holding the good cut folder, backfilled and published (copy it; don't change it)."""
    home = tmp_path_factory.mktemp("csv-good") / "home"
    result = csv_backfill(real_folder(home.parent / "folder"), home)
    assert result["status"] == "succeeded" and result["as_of"] == str(CSV_LAST), result
    return home


def test_csv_backfill_quarantines_holiday_and_weekend_rows_and_stops_at_the_last_completed_session(tmp_path):
    from sources.csv import CsvSource
    from smallcaps.dq import collect

    folder = real_folder(
        tmp_path / "folder",
        _chain(
            _add("^VIX", MEMORIAL_DAY, date(2022, 5, 27)),  # Yahoo's ^VIX on an NYSE holiday
            _add("^RUT", CSV_SATURDAY, date(2022, 11, 11)),  # a weekend row
            _add("^GSPC", STRAY, CSV_LAST),  # a stray row years ahead: the file runs past today
        ),
    )
    home = tmp_path / "home"
    result = csv_backfill(folder, home)

    assert result["status"] == "succeeded" and result["as_of"] == str(CSV_LAST), result  # not 2031, not today
    said = "\n".join(result["quarantined"])
    assert "raw.index_bars: session_on_calendar failed for 2 of" in said and "(not an NYSE session)" in said, said
    # Per table, every row the csv source gave is loaded or quarantined with its reason.
    given = split(CsvSource(folder).bars(["^RUT", "^GSPC", "^VIX"], CSV_FIRST, CSV_LAST), Settings().index_symbols)
    counted = account(home, result["load_id"], given)
    rows = 3 * len(calendar_sessions(CSV_FIRST, CSV_LAST))
    assert counted["raw.index_bars"][1:] == (rows, 2 + given.excluded.height), counted
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    quarantined = con.execute(
        "SELECT row_key, reason FROM dq.quarantine WHERE load_id = ? AND expectation = 'session_on_calendar' ORDER BY row_key",
        [result["load_id"]],
    ).fetchall()
    stray = con.execute("SELECT count(*) FROM raw.index_bars WHERE session_date > ?", [CSV_LAST]).fetchone()[0]
    # The row after the latest completed session is set aside by the source, with its reason.
    future = con.execute(
        "SELECT table_name, reason FROM dq.quarantine WHERE load_id = ? AND row_key LIKE ?", [result["load_id"], f"%{STRAY}%"]
    ).fetchall()
    con.close()
    assert quarantined == [
        (f"^RUT|{CSV_SATURDAY}", f"session_on_calendar: not an NYSE session: session_date={CSV_SATURDAY} weekday=Saturday"),
        (f"^VIX|{MEMORIAL_DAY}", f"session_on_calendar: not an NYSE session: session_date={MEMORIAL_DAY} weekday=Monday"),
    ]
    assert stray == 0
    assert [(t, "dated after the latest completed NYSE session" in r) for t, r in future] == [("raw.index_bars", True)], future
    pub = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    assert pub.execute("SELECT as_of_date FROM meta.snapshot").fetchone()[0] == CSV_LAST
    pub.close()
    # `smallcaps dq` shows the load, its message and the quarantined rows with their reason.
    report = collect(Settings(home=home))
    assert report.load[5].startswith(
        "loaded; 3 row(s) in dq.quarantine: raw.index_bars session_on_calendar 2; raw.index_bars excluded_by_source 1"
    ), report.load[5]
    assert sorted((t, e, n) for t, e, n, _, _ in report.quarantine) == [
        ("raw.index_bars", "excluded_by_source", 1), ("raw.index_bars", "session_on_calendar", 2)
    ]
    assert any("not an NYSE session" in q[3] for q in report.quarantine)
    from typer.testing import CliRunner

    from smallcaps.cli import app

    shown = CliRunner().invoke(app, ["dq", "--home", str(home)])
    assert shown.exit_code == 0 and "quarantined" in shown.output and "session_on_calendar" in shown.output, shown.output


def calendar_sessions(first: date, last: date) -> list[date]:
    from ground import calendar

    return calendar.sessions(first, last)


def test_csv_backfill_blocks_a_1e308_close_that_crashed_the_headlines(csv_home, tmp_path):
    """A 1e308 close once loaded and then crashed the headlines with OverflowError (YTD spread in bp);
    the gate now stops it with prices_plausible, and nothing a reader sees moves."""
    home = tmp_path / "home"
    shutil.copytree(csv_home, home, symlinks=True)
    before = state(home)
    folder = real_folder(tmp_path / "folder", _last_row("^RUT", High="1e308", Close="1e308", **{"Adj Close": "1e308"}))
    with pytest.raises(LoadBlocked) as raised:
        csv_backfill(folder, home)
    message = str(raised.value)
    for needle in ("raw.index_bars: prices_plausible failed for 1 of", f"^RUT {CSV_LAST}", "close=1e+308"):
        assert needle in message, message
    after = state(home)
    assert after.data == before.data and after.files == before.files and after.published == before.published


def test_csv_backfill_names_a_1e30_volume(csv_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(csv_home, home, symlinks=True)
    before = state(home)
    folder = real_folder(tmp_path / "folder", _last_row("^RUT", Volume="1e30"))
    try:
        result = csv_backfill(folder, home)
    except ValueError as exc:  # a clear error before anything loads
        message = str(exc)
        assert "^RUT.csv" in message and "line " in message and "Volume" in message, message
        after = state(home)
        assert after.data == before.data and after.files == before.files
        return
    # Or the row is set aside with its reason and the rest loads.
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    reasons = [r for r, in con.execute("SELECT reason FROM dq.quarantine WHERE load_id = ?", [result["load_id"]]).fetchall()]
    con.close()
    assert any("volume" in r.lower() and ("1e+30" in r or "1e30" in r) for r in reasons), reasons


def test_a_night_after_the_latest_completed_session_is_refused(tmp_path):
    """`smallcaps run --as-of <future>` and `backfill --end <future>`: a clear message, nothing written."""
    from flows.backfill import backfill
    from flows.nightly import nightly
    from typer.testing import CliRunner

    from smallcaps.cli import app

    home = tmp_path / "home"
    for call in (lambda: nightly(as_of=STRAY, source="sample", home=str(home)),
                 lambda: backfill(end=STRAY, source="sample", home=str(home))):
        with pytest.raises(ValueError, match=rf"{STRAY} is after the latest completed NYSE session \(\d{{4}}-\d\d-\d\d\): nobody has that close yet"):
            call()
    shown = CliRunner().invoke(app, ["run", "--as-of", str(STRAY), "--home", str(home)])
    assert shown.exit_code == 2, shown.output
    assert not (home / "warehouse.duckdb").exists() and not (home / "published").exists()


def test_a_load_that_committed_but_could_not_publish_says_so(market, home, monkeypatch, caplog):
    """The night's rows are merged and committed, then writing the snapshot fails (a full disk):
    meta.loads and the error say the rows are in the private warehouse and readers still see the
    previous snapshot, not that nothing was loaded. The load step logged its stages on the way."""
    import logging

    from flows import tasks
    from flows.run import PublishFailed

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tasks, "publish_snapshot", disk_full)
    before = state(home)
    with pytest.raises(PublishFailed, match=r"committed [\d,]+ rows to the private warehouse .* readers still see the previous snapshot"):
        with caplog.at_level(logging.INFO):
            run(settings_for(home, market), SmallMarket(market))
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("merged raw.equity_bars: ") for m in logged), logged
    assert any(m.startswith("derived in ") for m in logged), logged
    status, message, rows_loaded = query(home, "SELECT status, message, rows_loaded FROM meta.loads ORDER BY started_at DESC LIMIT 1")[0]
    assert status == "failed" and rows_loaded > 0, (status, rows_loaded)
    assert "No space left on device" in message and f"committed {rows_loaded:,} rows" in message
    after = state(home)
    assert after.files == before.files and after.published == before.published  # readers see the previous night
    assert after.data != before.data  # the night's rows are in the private warehouse
