"""The `csv` source: market data a user already has, in one folder.

Folder layout (any subset; docs/sources.md has the details and examples):

- `<SYMBOL>.csv`: Yahoo-style daily bars, header `Date,Open,High,Low,Close,Adj Close,Volume`, one
  file per symbol, the file name is the symbol (`^RUT.csv`, `MOG-A.csv`).
- iShares holdings files, recognised by their content (a `Ticker,...,Asset Class,...` header or a
  `Fund Holdings as of` line), any file name. The universe comes from the ETF ticker in the file
  name (`IWM_holdings_2025-11-05.csv` -> russell2000) or, failing that, in the preamble.
- `fundamentals.csv`: symbol,period_end_date,report_date,net_income_common_usd,net_income_usd,
  diluted_eps,revenue_usd; empty report_date or numbers are null.

Every file is validated whole before anything from it is returned: a malformed file is a
ValueError naming the file, the line and the problem, never a partial result. Files are small
(about 5,800 rows of bars a symbol), so lines are split in Python, which keeps exact line numbers,
and the columns are cast and checked with polars.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Mapping, Sequence

import polars as pl

from sources.base import (
    BARS_SCHEMA,
    FAILURES_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HOLDINGS_SCHEMA,
    Fetched,
    conform,
    empty,
)
from sources.ishares import as_of_from_name, looks_like_holdings, parse_holdings, read_preamble
from sources.symbols import load_overrides

BARS_HEADER = ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume")
BARS_COLUMNS = {"Date": "session_date", "Open": "open", "High": "high", "Low": "low", "Close": "close",
                "Adj Close": "adj_close", "Volume": "volume"}
FUNDAMENTALS_FILE = "fundamentals.csv"
FUNDAMENTALS_HEADER = tuple(FUNDAMENTALS_SCHEMA)
# Yahoo's own CSV download writes `null` for a missing value; yfinance writes nothing.
_MISSING = ("", "null", "NaN", "nan")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# yfinance may save timestamps (`2020-01-02 00:00:00-05:00`): the date part is the session.
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2})?(?:[+-]\d{2}:?\d{2}|Z)?)?$")


@dataclass(frozen=True)
class _Table:
    """A CSV file split into lines: header cells and, per data row, its line number and cells."""

    path: Path
    header: list[str]
    lines: list[int]
    rows: list[list[str]]


def _split(path: Path, *, expected: Sequence[str], required: Sequence[str]) -> _Table:
    """Read a plain (unquoted) CSV keeping line numbers; check the header and every row's width."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    raw_lines = text.splitlines()
    if not raw_lines or not raw_lines[0].strip():
        raise ValueError(f"{path} line 1: empty file, expected the header {','.join(expected)}")
    header = [c.strip() for c in raw_lines[0].split(",")]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(
            f"{path} line 1: missing column(s) {', '.join(missing)}; header is {','.join(header)!r}, "
            f"expected {','.join(expected)}"
        )
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise ValueError(f"{path} line 1: column(s) {', '.join(dupes)} appear twice")
    width = len(header)
    lines: list[int] = []
    rows: list[list[str]] = []
    last = len(raw_lines)
    for n, line in enumerate(raw_lines[1:], start=2):
        if not line.strip():
            if any(raw_lines[k].strip() for k in range(n, last)):
                raise ValueError(f"{path} line {n}: blank line inside the data")
            break
        if '"' in line:
            raise ValueError(f"{path} line {n}: quoted fields are not supported in this file: {line[:80]!r}")
        cells = line.split(",")
        if len(cells) != width:
            truncated = n == last or all(not raw_lines[k].strip() for k in range(n, last))
            hint = " (truncated last line?)" if truncated and len(cells) < width else ""
            raise ValueError(f"{path} line {n}: {len(cells)} fields where the header has {width}{hint}: {line[:80]!r}")
        lines.append(n)
        rows.append([c.strip() for c in cells])
    return _Table(path, header, lines, rows)


def _frame(table: _Table, columns: Sequence[str]) -> pl.DataFrame:
    idx = {c: table.header.index(c) for c in columns}
    data = {"line": table.lines}
    for c in columns:
        data[c] = [r[idx[c]] for r in table.rows]
    return pl.DataFrame(data, schema={"line": pl.Int64, **{c: pl.String for c in columns}})


def _missing(col: str) -> pl.Expr:
    return pl.col(col).is_in(list(_MISSING))


def _first_bad(df: pl.DataFrame, bad: pl.Expr, path: Path, col: str, problem: str) -> None:
    hit = df.filter(bad)
    if hit.height:
        row = hit.row(0, named=True)
        more = f" ({hit.height - 1:,} more lines like it)" if hit.height > 1 else ""
        raise ValueError(f"{path} line {row['line']}: {col} {row[col]!r} {problem}{more}")


def _dates(df: pl.DataFrame, col: str, path: Path, *, nullable: bool) -> pl.Expr:
    """Validate a date column of strings; return the expression that parses it."""
    text = pl.col(col).str.extract(_DATE_PREFIX.pattern, 1)
    parsed = text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    if not nullable:
        _first_bad(df, _missing(col), path, col, "is empty; a date is required")
    checked = df.select("line", col, parsed.alias("_d"))
    _first_bad(checked, pl.col("_d").is_null() & ~_missing(col), path, col, "is not a date like 2024-01-31")
    return pl.when(_missing(col)).then(None).otherwise(parsed)


def _numbers(df: pl.DataFrame, col: str, path: Path, *, nullable: bool) -> pl.Expr:
    value = pl.when(_missing(col)).then(None).otherwise(pl.col(col)).cast(pl.Float64, strict=False)
    if not nullable:
        _first_bad(df, _missing(col), path, col, "is empty; a number is required")
    checked = df.select("line", col, value.alias("_v"))
    _first_bad(checked, (pl.col("_v").is_null() | pl.col("_v").is_nan()) & ~_missing(col), path, col, "is not a number")
    return value


def read_bars(path: Path, symbol: str | None = None) -> pl.DataFrame:
    """One Yahoo-style daily CSV -> BARS_SCHEMA frame, oldest first. ValueError on any defect.

    Close is required; Open/High/Low/Adj Close/Volume may be empty (null). Volume may be written
    as a float (`931800000.0`) but must be a whole number. Dates must be unique.
    """
    symbol = symbol or path.stem
    table = _split(path, expected=BARS_HEADER, required=BARS_HEADER)
    df = _frame(table, BARS_HEADER)
    if df.height == 0:
        raise ValueError(f"{path}: no rows after the header")
    exprs = {"session_date": _dates(df, "Date", path, nullable=False)}
    for col in ("Open", "High", "Low", "Close", "Adj Close"):
        exprs[BARS_COLUMNS[col]] = _numbers(df, col, path, nullable=col != "Close")
    volume = _numbers(df, "Volume", path, nullable=True)
    checked = df.select("line", "Volume", volume.alias("_v"))
    _first_bad(checked, (pl.col("_v") != pl.col("_v").round(0)) | (pl.col("_v") < 0), path, "Volume",
               "is not a whole non-negative number of shares")
    exprs["volume"] = volume.cast(pl.Int64)
    out = df.select("line", *[e.alias(k) for k, e in exprs.items()])
    dup = out.filter(pl.col("session_date").is_duplicated()).sort("line")
    if dup.height:
        d = dup.get_column("session_date")[0]
        lines = dup.filter(pl.col("session_date") == d).get_column("line").to_list()
        raise ValueError(f"{path} line {lines[1]}: duplicated date {d} (also on line {lines[0]})")
    out = out.sort("session_date").with_columns(pl.lit(symbol).alias("symbol"))
    return conform(out, BARS_SCHEMA, str(path))


def read_fundamentals(path: Path) -> pl.DataFrame:
    """`fundamentals.csv` -> FUNDAMENTALS_SCHEMA frame. ValueError on any defect."""
    table = _split(path, expected=FUNDAMENTALS_HEADER, required=FUNDAMENTALS_HEADER)
    df = _frame(table, FUNDAMENTALS_HEADER)
    _first_bad(df, _missing("symbol"), path, "symbol", "is empty; a symbol is required")
    exprs = {
        "symbol": pl.col("symbol"),
        "period_end_date": _dates(df, "period_end_date", path, nullable=False),
        "report_date": _dates(df, "report_date", path, nullable=True),
    }
    for col in FUNDAMENTALS_HEADER[3:]:
        exprs[col] = _numbers(df, col, path, nullable=True)
    out = df.select("line", *[e.alias(k) for k, e in exprs.items()])
    dup = out.filter(pl.struct("symbol", "period_end_date").is_duplicated()).sort("line")
    if dup.height:
        first = dup.row(0, named=True)
        other = dup.filter(
            (pl.col("symbol") == first["symbol"]) & (pl.col("period_end_date") == first["period_end_date"])
        ).get_column("line").to_list()
        raise ValueError(
            f"{path} line {other[1]}: duplicated quarter {first['symbol']} {first['period_end_date']} (also on line {other[0]})"
        )
    late = out.filter(pl.col("report_date") < pl.col("period_end_date"))
    if late.height:
        row = late.row(0, named=True)
        raise ValueError(
            f"{path} line {row['line']}: report_date {row['report_date']} is before period_end_date {row['period_end_date']}"
        )
    return conform(out, FUNDAMENTALS_SCHEMA, str(path))


class CsvSource:
    """A folder of CSV files behind the Source protocol (see the module docstring)."""

    name = "csv"

    def __init__(
        self,
        path: Path,
        *,
        universes: Mapping[str, str] | None = None,
        overrides_path: Path | None = None,
    ) -> None:
        """`universes` maps ETF ticker -> universe name ({u.etf: u.name for u in settings.universes});
        `overrides_path` is the ticker -> symbol override file (sources.symbols)."""
        self.path = Path(path)
        if not self.path.is_dir():
            raise ValueError(f"csv source: {self.path} is not a folder")
        from smallcaps.settings import DEFAULT_UNIVERSES

        mapping = universes if universes is not None else {u.etf: u.name for u in DEFAULT_UNIVERSES}
        self.universes = {etf.upper(): name for etf, name in mapping.items()}
        self.overrides = load_overrides(overrides_path)
        self._bar_files, self._holdings_files = self._scan()

    # folder ------------------------------------------------------------------------------------

    def _scan(self) -> tuple[dict[str, Path], list[Path]]:
        bars: dict[str, Path] = {}
        holdings: list[Path] = []
        for p in sorted(self.path.iterdir()):
            if not p.is_file() or p.name.startswith(".") or p.suffix.lower() != ".csv":
                continue
            if p.name.lower() == FUNDAMENTALS_FILE:
                continue
            with p.open("rb") as fh:
                head = fh.read(20_000)
            if looks_like_holdings(head):
                holdings.append(p)
            else:
                bars[p.stem] = p
        return bars, holdings

    def symbols(self) -> list[str]:
        """Symbols that have a bar file in the folder (file name without `.csv`), sorted."""
        return sorted(self._bar_files)

    def holdings_files(self) -> list[Path]:
        return list(self._holdings_files)

    def _etf_universes(self, text: str) -> set[str]:
        tokens = {t.upper() for t in re.split(r"[^A-Za-z0-9]+", text) if t}
        return {self.universes[t] for t in tokens if t in self.universes}

    def _read_holdings(self, path: Path) -> Fetched:
        content = path.read_bytes()
        # The ETF ticker in the file name decides; the preamble is read only when the name has none.
        found = self._etf_universes(path.stem)
        pre = read_preamble(content, source_name=str(path), universe=next(iter(found)) if len(found) == 1 else None)
        if not found:
            found = self._etf_universes("\n".join(pre.lines[: pre.header_line - 1]))
        if len(found) != 1:
            problem = "no" if not found else "more than one"
            raise ValueError(
                f"{path}: {problem} known ETF ticker in the file name or preamble "
                f"(known: {', '.join(f'{e} -> {u}' for e, u in self.universes.items())}); "
                "name the file like IWM_holdings_2025-11-05.csv"
            )
        universe = found.pop()
        as_of = None
        if pre.as_of_date is None:
            as_of = as_of_from_name(path.name)
            if as_of is None:
                raise ValueError(
                    f"{path} ({universe}): no as-of date: the file has no 'Fund Holdings as of' line and its "
                    "name has no YYYY-MM-DD; rename it like IJR_holdings_2019-06-28.csv"
                )
        return parse_holdings(content, universe=universe, source_name=str(path), as_of=as_of, overrides=self.overrides)

    # Source protocol ----------------------------------------------------------------------------

    def holdings(self, universes: Sequence[str], start: date, end: date) -> Fetched:
        """Snapshots of `universes` with as-of in [start, end]. Every holdings file in the folder is
        parsed (a broken one fails the call); a universe with no snapshot in range is a failure."""
        wanted = list(dict.fromkeys(universes))
        seen: dict[tuple[str, date], Path] = {}
        parts: list[Fetched] = []
        for path in self._holdings_files:
            got = self._read_holdings(path)
            universe = got.holdings.get_column("universe")[0]
            as_of = got.holdings.get_column("as_of_date")[0]
            if (universe, as_of) in seen:
                raise ValueError(f"{path}: a second {universe} snapshot as of {as_of} (first: {seen[(universe, as_of)]})")
            seen[(universe, as_of)] = path
            if universe in wanted and start <= as_of <= end:
                parts.append(got)
        out = Fetched.combine(parts)
        have = {u for u, d in seen if start <= d <= end}
        failures = [
            (u, "holdings", f"no holdings file for {u} with an as-of date in {start}..{end} in {self.path}")
            for u in wanted
            if u not in have
        ]
        fails = pl.DataFrame(failures, schema=FAILURES_SCHEMA, orient="row") if failures else empty(FAILURES_SCHEMA)
        holdings = out.holdings.sort("universe", "as_of_date") if out.holdings.height else empty(HOLDINGS_SCHEMA)
        return Fetched(holdings=holdings, excluded=out.excluded, failures=fails)

    def bars(self, symbols: Sequence[str], start: date, end: date) -> Fetched:
        """Bars of `symbols` in [start, end]; a symbol without a file is a failure, a broken file an error."""
        parts: list[pl.DataFrame] = []
        failures: list[tuple[str, str, str]] = []
        for symbol in dict.fromkeys(symbols):
            path = self._bar_files.get(symbol)
            if path is None:
                failures.append((symbol, "bars", f"no file {symbol}.csv in {self.path}"))
                continue
            bars = read_bars(path, symbol)
            in_range = bars.filter(pl.col("session_date").is_between(start, end))
            if in_range.is_empty():
                first, last = bars.get_column("session_date")[0], bars.get_column("session_date")[-1]
                failures.append((symbol, "bars", f"{path.name} covers {first}..{last}, nothing in {start}..{end}"))
                continue
            parts.append(in_range)
        bars = pl.concat(parts) if parts else empty(BARS_SCHEMA)
        fails = pl.DataFrame(failures, schema=FAILURES_SCHEMA, orient="row") if failures else empty(FAILURES_SCHEMA)
        return Fetched(bars=bars, failures=fails)

    def fundamentals(self, symbols: Sequence[str], as_of: date) -> Fetched:
        """Quarters of `symbols` known on `as_of`: report_date <= as_of, or, where the report date
        is unknown, period_end_date <= as_of (the cohort rule adds its own reporting lag)."""
        wanted = list(dict.fromkeys(symbols))
        path = self.path / FUNDAMENTALS_FILE
        if not path.exists():
            failures = [(s, "fundamentals", f"no {FUNDAMENTALS_FILE} in {self.path}") for s in wanted]
            return Fetched(failures=pl.DataFrame(failures, schema=FAILURES_SCHEMA, orient="row") if failures else empty(FAILURES_SCHEMA))
        allq = read_fundamentals(path)
        known = allq.filter(
            pl.col("symbol").is_in(wanted)
            & pl.when(pl.col("report_date").is_null())
            .then(pl.col("period_end_date") <= as_of)
            .otherwise(pl.col("report_date") <= as_of)
        ).sort("symbol", "period_end_date")
        have = set(known.get_column("symbol").to_list())
        failures = [(s, "fundamentals", f"no quarter known on {as_of} in {path.name}") for s in wanted if s not in have]
        fails = pl.DataFrame(failures, schema=FAILURES_SCHEMA, orient="row") if failures else empty(FAILURES_SCHEMA)
        return Fetched(fundamentals=known, failures=fails)

    # conveniences -------------------------------------------------------------------------------

    def date_range(self) -> tuple[date, date] | None:
        """First and last session over the bar files (reads them all), None when there are none."""
        firsts, lasts = [], []
        for symbol, path in self._bar_files.items():
            bars = read_bars(path, symbol)
            firsts.append(bars.get_column("session_date")[0])
            lasts.append(bars.get_column("session_date")[-1])
        return (min(firsts), max(lasts)) if firsts else None
