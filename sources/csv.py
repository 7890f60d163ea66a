"""The `csv` source: market data a user already has, in one folder.

Folder layout (any subset; docs/sources.md has the details and an example of each layout):

- Daily bars, one or more symbols a file. Columns are found by name, case-insensitively, in any
  order (`Adj Close`, `adj_close` and `ADJ CLOSE` are one name); only a date and a close are required:
  - Yahoo's web download and what yfinance's `DataFrame.to_csv()` writes for one symbol
    (`Date,Open,High,Low,Close,Adj Close,Volume`, possibly `Dividends,Stock Splits,Capital Gains`,
    dates possibly as timestamps `2020-01-02 00:00:00-05:00`), snake_case or lower-case exports of
    the same, close-only files (`Date,Close`): the file name is the symbol (`^RUT.csv`, `MOG-A.csv`);
  - yfinance's multi-level `yf.download(...)` layout, three header lines
    (`Price,Close,High,...` / `Ticker,^RUT,^RUT,...` / `Date,,,...`, or Ticker first with
    `group_by='ticker'`): the Ticker line names the symbols, any number of them, any file name.
- iShares holdings files, recognised by their content (a `Ticker,...,Asset Class,...` header or a
  `Fund Holdings as of` line), any file name. The universe comes from the ETF ticker in the file
  name (`IWM_holdings_2025-11-05.csv` -> russell2000) or, failing that, in the preamble.
- `fundamentals.csv`: symbol,period_end_date,report_date (or reported_date),net_income_common_usd,
  net_income_usd,diluted_eps,revenue_usd; empty dates or numbers are null.

Every file is validated whole before anything from it is returned: a malformed file is a
ValueError naming the file, the line and the problem, never a partial result. Cells are parsed by
polars' CSV reader (quoted fields, a BOM, CRLF). Polars pads a short record and cannot say how many
fields a record had, so record widths and first line numbers are taken from the text itself: from
its lines when it holds no quote character (Yahoo and yfinance never quote), else from Python's
csv module in strict mode, which also names the line of broken quoting.

Nothing from the future: rows dated after the latest completed NYSE session are never returned as
bars; each is reported in `Fetched.excluded` whenever a request reaches the end of the file's
history, and a holdings snapshot dated after it likewise.

Why one module of ~750 lines: the folder is one input. Finding which layout a file has, validating
it whole and reporting its line numbers are shared by the three kinds of file; most of the length is
the layouts named above and their error messages.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable, Collection, Mapping, Sequence, TypeVar

import polars as pl

from sources.base import (
    BARS_SCHEMA,
    EXCLUDED_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HOLDINGS_SCHEMA,
    Capabilities,
    Fetched,
    conform,
    empty,
    failures_frame,
)
from sources.ishares import as_of_from_name, looks_like_holdings, parse_holdings, read_preamble
from sources.symbols import load_overrides

FUNDAMENTALS_FILE = "fundamentals.csv"
FUNDAMENTALS_HEADER = tuple(FUNDAMENTALS_SCHEMA)
# The issue that asked for point-in-time report dates calls the column `reported_date`.
FUNDAMENTALS_ALIASES = {"reported_date": "report_date"}

# Bar column names after `_norm` -> BARS_SCHEMA column.
BAR_NAMES = {
    "date": "session_date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adj close": "adj_close",
    "adjusted close": "adj_close",
    "volume": "volume",
}
# Columns yfinance writes beside the bars (actions=True, repair=True): read past, not stored.
BAR_IGNORED = {"dividends", "stock splits", "capital gains", "repaired?"}
VALUE_COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")
ACCEPTED_LAYOUTS = (
    "accepted: Date,Open,High,Low,Close,Adj Close,Volume as Yahoo and yfinance write it (names in any case "
    "and order, snake_case too; only Date and Close required; Dividends, Stock Splits, Capital Gains read past), "
    "or yfinance's multi-level download (Price,Close,... / Ticker,^RUT,... / Date,,...); see docs/sources.md"
)
FUTURE_REASON = "dated after the latest completed NYSE session ({latest})"

# Yahoo's own CSV download writes `null` for a missing value; yfinance writes nothing.
_MISSING = ("", "null", "NaN", "nan")
# yfinance saves timestamps (`2020-01-02 00:00:00-05:00`): the date part is the session.
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2})?(?:[+-]\d{2}:?\d{2}|Z)?)?$")
_BOM = b"\xef\xbb\xbf"
T = TypeVar("T")


def _norm(name: str) -> str:
    """A column name as compared: lower case, a run of spaces, underscores or hyphens as one space
    (`Adj Close` = `adj_close`). Words are not run together: `AdjClose` is not a name Yahoo or
    yfinance write, and guessing at unknown names could take the wrong column for Adj Close."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


# reading a CSV file -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Csv:
    """A CSV file checked for shape: every record has the header's width, no blank line inside.

    `rows` holds every record but trailing blank lines: `line` (the record's first line in the
    file) and the cells `c0..`, one column per header field, stripped of surrounding spaces."""

    path: Path
    rows: pl.DataFrame


def _record_shape(path: Path, text: str) -> tuple[list[int], list[int], list[bool], list[str]]:
    """First line, field count, blankness and text of every record of `text`."""
    if '"' not in text:
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        s = pl.Series(lines, dtype=pl.String)
        widths = (s.str.count_matches(",", literal=True) + 1).to_list()
        blank = (s.str.strip_chars().str.len_bytes() == 0).to_list()
        return list(range(1, len(lines) + 1)), widths, blank, lines
    starts, widths, blank, texts = [], [], [], []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    physical = text.split("\n")
    end = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad = physical[min(reader.line_num, len(physical)) - 1].rstrip("\r")
            raise ValueError(f"{path} line {reader.line_num}: broken quoting ({exc}): {bad[:80]!r}") from exc
        starts.append(end + 1)
        texts.append(physical[end] if end < len(physical) else "")
        end = reader.line_num
        widths.append(len(record))
        blank.append(not record or (len(record) == 1 and not record[0].strip()))
    return starts, widths, blank, texts


def _read_csv(path: Path, *, expected: str, header: Callable[[list[list[str]]], T]) -> tuple[_Csv, T]:
    """Read and shape-check a CSV file. `header` sees the cells of its first (up to) three records
    before any record width is checked, so a header this source cannot read is reported as such."""
    raw = path.read_bytes()
    bom = len(_BOM) if raw.startswith(_BOM) else 0
    raw = raw[bom:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{path} line {line}: not UTF-8 text (byte {exc.start + bom})") from exc
    if not text.strip():
        raise ValueError(f"{path} line 1: empty file, expected {expected}")
    starts, widths, blank, texts = _record_shape(path, text)
    if blank[0]:
        raise ValueError(f"{path} line 1: blank; the header must be the first line (expected {expected})")
    # Blank lines may close the file; one with data after it is an error.
    n = len(blank)
    while blank[n - 1]:
        n -= 1
    width = widths[0]
    top = _cells(path, raw, width, min(n, 3))
    seen = header([list(r) for r in top.rows()])
    last_line = starts[n - 1]
    for i in range(1, n):
        if blank[i]:
            raise ValueError(f"{path} line {starts[i]}: blank line inside the data")
        if widths[i] != width:
            hint = " (truncated last line?)" if starts[i] == last_line and widths[i] < width else ""
            raise ValueError(
                f"{path} line {starts[i]}: {widths[i]} fields where the header has {width}{hint}: {texts[i].rstrip(chr(13))[:80]!r}"
            )
    cells = _cells(path, raw, width, n)
    if cells.height != n:
        raise ValueError(
            f"{path}: the CSV parser read {cells.height} records where the text has {n}; "
            f"check the quoting around line {starts[min(cells.height, n - 1)]}"
        )
    rows = cells.select(pl.Series("line", starts[:n], dtype=pl.Int64), pl.all())
    return _Csv(path, rows), seen


def _cells(path: Path, raw: bytes, width: int, n: int) -> pl.DataFrame:
    """The first `n` records of `raw` as `width` stripped string columns c0.. (a longer record is
    cut, a shorter one padded with empty cells: callers check widths)."""
    names = [f"c{i}" for i in range(width)]
    try:
        cells = pl.read_csv(
            raw,
            has_header=False,
            schema={c: pl.String for c in names},
            empty_string_is_null=False,
            raise_if_empty=False,
            truncate_ragged_lines=True,
            n_rows=n,
        )
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"{path}: the CSV parser failed: {exc}") from exc
    return cells.select(pl.col(c).fill_null("").str.strip_chars() for c in names)


def _missing(col: str) -> pl.Expr:
    return pl.col(col).is_in(list(_MISSING))


# Largest share count an Int64 column holds; a bigger volume is a broken value, not a count.
_MAX_VOLUME = 2.0**63


@dataclass(frozen=True)
class _Field:
    """A text column to type: `kind` is date, number, volume (whole shares) or text."""

    col: str
    kind: str
    required: bool
    shown: str  # the column's name as the file prints it, for messages


def _typed(df: pl.DataFrame, path: Path, fields: Sequence[_Field]) -> pl.DataFrame:
    """`line` and every field typed, in one pass. The first problem, in field order, is a
    ValueError naming the line, the column as printed, the value and how many lines share it."""
    values: list[pl.Expr] = []
    checks: list[tuple[_Field, str, pl.Expr]] = []
    for f in fields:
        missing = _missing(f.col)
        if f.required:
            what = {"date": "a date", "text": "a symbol"}.get(f.kind, "a number")
            checks.append((f, f"is empty; {what} is required", missing))
        if f.kind == "date":
            parsed = pl.col(f.col).str.extract(_DATE_PREFIX.pattern, 1).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
            value = pl.when(missing).then(None).otherwise(parsed)
            checks.append((f, "is not a date like 2024-01-31", parsed.is_null() & ~missing))
        elif f.kind in ("number", "volume"):
            value = pl.when(missing).then(None).otherwise(pl.col(f.col)).cast(pl.Float64, strict=False)
            checks.append((f, "is not a number", (value.is_null() | value.is_nan()) & ~missing))
            if f.kind == "volume":
                checks.append((f, "is not a whole non-negative number of shares", (value != value.round(0)) | (value < 0)))
                checks.append((f, "is too large for a number of shares", value >= _MAX_VOLUME))
                value = pl.when(value < _MAX_VOLUME).then(value).cast(pl.Int64)
        else:
            value = pl.when(missing).then(None).otherwise(pl.col(f.col))
        values.append(value.alias(f.col))
    flags = [bad.fill_null(False).alias(f"_bad{i}") for i, (_, _, bad) in enumerate(checks)]
    out = df.select("line", *values, *flags)
    counts = out.select(pl.col(f"_bad{i}").sum() for i in range(len(checks))).row(0) if checks else ()
    for i, ((f, problem, _), n) in enumerate(zip(checks, counts)):
        if n:
            line = out.filter(pl.col(f"_bad{i}")).get_column("line")[0]
            value = df.filter(pl.col("line") == line).get_column(f.col)[0]
            more = f" ({n - 1:,} more lines like it)" if n > 1 else ""
            raise ValueError(f"{path} line {line}: {f.shown} {value!r} {problem}{more}")
    return out.select("line", *[f.col for f in fields])


# daily bars ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    """Where one symbol's bars are in a file: BARS_SCHEMA column -> (cell index, name as printed)."""

    symbol: str | None  # from the Ticker line; None in a single-level file (the file name decides)
    at: dict[str, tuple[int, str]]


@dataclass(frozen=True)
class _Layout:
    header_lines: int
    columns: list[_Columns]


@dataclass(frozen=True)
class SymbolBars:
    """One symbol's bars from one file: `bars` is BARS_SCHEMA plus `line`, oldest first, dates
    unique; `repeats` are lines that repeated an earlier line exactly (date and every value) and
    were collapsed into it: `line`, `session_date`, `kept_line` and the bar columns."""

    symbol: str
    path: Path
    bars: pl.DataFrame
    repeats: pl.DataFrame


def _layout_error(path: Path, header: Sequence[Sequence[str]], problem: str) -> ValueError:
    shown = " / ".join(",".join(cells) for cells in header)
    return ValueError(f"{path} line 1: {problem}: header {shown!r} is not a daily-bar layout this source reads; {ACCEPTED_LAYOUTS}")


def _named_columns(path: Path, header: Sequence[Sequence[str]], names: Sequence[tuple[int, str]], symbol: str | None) -> _Columns:
    at: dict[str, tuple[int, str]] = {}
    unknown, twice = [], []
    for i, name in names:
        key = _norm(name)
        if key in BAR_IGNORED:
            continue
        col = BAR_NAMES.get(key)
        if col is None:
            unknown.append(repr(name) if name else f"unnamed column {i + 1}")
        elif col in at:
            twice.append(f"{at[col][1]} and {name}")
        else:
            at[col] = (i, name)
    whose = f" for {symbol}" if symbol else ""
    if unknown:
        raise _layout_error(path, header, f"unknown column(s) {', '.join(unknown)}{whose}")
    if twice:
        raise _layout_error(path, header, f"the same column twice{whose} ({'; '.join(twice)})")
    absent = [n for n, c in (("Date", "session_date"), ("Close", "close")) if c not in at]
    if absent:
        raise _layout_error(path, header, f"no {' and no '.join(absent)} column{whose}")
    return _Columns(symbol, at)


def _multi_level(cells: Sequence[Sequence[str]]) -> bool:
    return len(cells) >= 2 and {_norm(cells[0][0]), _norm(cells[1][0])} == {"price", "ticker"}


def _layout(path: Path, top: list[list[str]]) -> _Layout:
    """The layout of a daily-bar file from the cells of its first three records: multi-level when
    its first two lines start with Price and Ticker (in either order), else one header line."""
    if not _multi_level(top):
        return _Layout(1, [_named_columns(path, top[:1], list(enumerate(top[0])), None)])
    header = top
    if len(header) < 3 or _norm(header[2][0]) != "date" or any(header[2][1:]):
        raise _layout_error(path, header, "a multi-level header needs Price and Ticker lines, then a Date line with nothing else")
    prices, tickers = (header[0], header[1]) if _norm(header[0][0]) == "price" else (header[1], header[0])
    by_ticker: dict[str, list[tuple[int, str]]] = {}
    for i in range(1, len(prices)):
        if not tickers[i]:
            raise _layout_error(path, header, f"no ticker above column {i + 1} ({prices[i]})")
        by_ticker.setdefault(tickers[i], []).append((i, prices[i]))
    columns = []
    for ticker, names in by_ticker.items():
        # Every ticker shares the file's Date column (cell 0).
        columns.append(_named_columns(path, header, [(0, header[2][0]), *names], ticker))
    return _Layout(3, columns)


def _symbol_bars(path: Path, data: pl.DataFrame, cols: _Columns, symbol: str, *, skip_empty: bool) -> SymbolBars:
    shown = {c: (f"{name} ({cols.symbol})" if cols.symbol and c != "session_date" else name) for c, (_, name) in cols.at.items()}
    df = data.select("line", *[pl.col(f"c{i}").alias(c) for c, (i, _) in cols.at.items()])
    values = [c for c in VALUE_COLUMNS if c in cols.at]
    if skip_empty:
        # A multi-ticker download is indexed by the union of its tickers' dates: a ticker without
        # a bar that day has every cell empty. That is no bar, not a broken one.
        df = df.filter(~pl.all_horizontal([_missing(c) for c in values]))
    kinds = {"session_date": "date", "volume": "volume"}
    fields = [_Field(c, kinds.get(c, "number"), c in ("session_date", "close"), shown[c]) for c in ("session_date", *values)]
    out = _typed(df, path, fields)
    # Without Adj Close the Close is the only price: yfinance's default (auto_adjust=True) writes an
    # already adjusted Close and no Adj Close; for an index the two are the same.
    if "adj_close" not in out.columns:
        out = out.with_columns(pl.col("close").alias("adj_close"))
    out = out.with_columns(pl.lit(symbol).alias("symbol"))
    for col, dtype in BARS_SCHEMA.items():
        if col not in out.columns:
            out = out.with_columns(pl.lit(None, dtype).alias(col))
    keyed = ["session_date", *VALUE_COLUMNS]
    out = out.with_columns(pl.col("line").min().over(keyed).alias("kept_line"))
    repeats = out.filter(pl.col("line") != pl.col("kept_line")).sort("line")
    out = out.filter(pl.col("line") == pl.col("kept_line"))
    dup = out.filter(pl.col("session_date").is_duplicated()).sort("line")
    if dup.height:
        d = dup.get_column("session_date")[0]
        lines = dup.filter(pl.col("session_date") == d).get_column("line").to_list()
        raise ValueError(
            f"{path} line {lines[1]}: duplicated date {d} (also on line {lines[0]}) with different values; "
            "keep the right one"
        )
    bars = out.sort("session_date").select("line", *[pl.col(c).cast(t, strict=True) for c, t in BARS_SCHEMA.items()])
    return SymbolBars(symbol, path, bars, repeats.select("line", "kept_line", *BARS_SCHEMA))


def read_bar_file(path: Path, symbol: str | None = None, *, only: Collection[str] | None = None) -> dict[str, SymbolBars]:
    """Every symbol's bars in one daily-bar file (see the module docstring for the layouts).

    A single-level file holds one symbol, named `symbol` or else by the file name; a multi-level
    file names its own symbols in its Ticker line, and `only` limits the work to those asked for
    (the whole file is still checked for shape). ValueError on any defect, naming file and line.
    """
    table, layout = _read_csv(
        path, expected="a daily-bar header like Date,Open,High,Low,Close,Adj Close,Volume", header=lambda top: _layout(path, top)
    )
    data = table.rows.slice(layout.header_lines)
    if data.height == 0:
        raise ValueError(f"{path}: no rows after the header")
    many = len(layout.columns) > 1
    out: dict[str, SymbolBars] = {}
    for cols in layout.columns:
        name = cols.symbol or symbol or path.stem
        if only is not None and cols.symbol is not None and name not in only:
            continue
        got = _symbol_bars(path, data, cols, name, skip_empty=many)
        if got.bars.height == 0:
            raise ValueError(f"{path}: no bar for {name} in any row (every {name} cell is empty)")
        out[name] = got
    return out


def read_bars(path: Path, symbol: str | None = None) -> pl.DataFrame:
    """One symbol's bars from a daily-bar file -> BARS_SCHEMA frame, oldest first. ValueError on any defect.

    Close is required; Open/High/Low/Adj Close/Volume may be absent or empty (null; a missing Adj
    Close column means adj_close = Close). Volume may be written as a float (`931800000.0`) but
    must be a whole number. A date may repeat only with the same values (the repeat is collapsed).
    A multi-ticker file needs `symbol`.
    """
    got = read_bar_file(path, symbol)
    if symbol is not None and symbol in got:
        return got[symbol].bars.drop("line")
    if len(got) == 1 and (symbol is None or next(iter(got.values())).symbol == symbol):
        return next(iter(got.values())).bars.drop("line")
    held = ", ".join(sorted(got))
    raise ValueError(f"{path}: holds {held}, not {symbol}" if symbol else f"{path}: holds {held}; name the symbol to read")


def _multi_level_tickers(path: Path, head: bytes) -> list[str] | None:
    """The Ticker line's symbols when `head` starts a multi-level yfinance file, else None."""
    text = head.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()[:2]
    # A cheap look at the first cell before asking the CSV parser.
    if not lines or _norm(lines[0].split(",", 1)[0].strip().strip('"')) not in ("price", "ticker"):
        return None
    try:
        cells = pl.read_csv(
            "\n".join(lines).encode(), has_header=False, infer_schema=False, empty_string_is_null=False,
            truncate_ragged_lines=True,
        ).rows()
    except pl.exceptions.PolarsError:
        return None  # read_bar_file names the problem when the file is read
    if not _multi_level(cells):
        return None
    tickers = cells[0] if _norm(cells[0][0]) == "ticker" else cells[1]
    return list(dict.fromkeys(t.strip() for t in tickers[1:] if t and t.strip()))


# fundamentals -------------------------------------------------------------------------------------


def read_fundamentals(path: Path) -> pl.DataFrame:
    """`fundamentals.csv` -> FUNDAMENTALS_SCHEMA frame. ValueError on any defect.

    Columns are found by name, case-insensitively; `reported_date` is read as `report_date`."""
    expected = ",".join(FUNDAMENTALS_HEADER)

    def columns(top: list[list[str]]) -> tuple[list[str], dict[str, int]]:
        header = top[0]
        position: dict[str, int] = {}
        for i, cell in enumerate(header):
            name = FUNDAMENTALS_ALIASES.get(cell.lower(), cell.lower())
            if name in position:
                also = " (report_date and reported_date are one column)" if name == "report_date" else ""
                raise ValueError(f"{path} line 1: column {name} appears twice{also}")
            position[name] = i
        missing = [c for c in FUNDAMENTALS_HEADER if c not in position]
        if missing:
            raise ValueError(
                f"{path} line 1: missing column(s) {', '.join(missing)}; header is {','.join(header)!r}, expected {expected}"
            )
        return header, position

    table, (header, position) = _read_csv(path, expected=f"the header {expected}", header=columns)
    df = table.rows.slice(1).select("line", *[pl.col(f"c{position[c]}").alias(c) for c in FUNDAMENTALS_HEADER])
    shown = {c: header[position[c]] for c in FUNDAMENTALS_HEADER}
    kinds = {"symbol": "text", "period_end_date": "date", "report_date": "date"}
    required = ("symbol", "period_end_date")
    out = _typed(df, path, [_Field(c, kinds.get(c, "number"), c in required, shown[c]) for c in FUNDAMENTALS_HEADER])
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
            f"{path} line {row['line']}: {shown['report_date']} {row['report_date']} is before period_end_date {row['period_end_date']}"
        )
    return conform(out, FUNDAMENTALS_SCHEMA, str(path))


# the source ---------------------------------------------------------------------------------------


def _excluded_bars(rows: pl.DataFrame, path: Path, dataset: str, reason: pl.Expr) -> pl.DataFrame:
    """EXCLUDED_SCHEMA rows for bars not returned; the key is the gate's row key (symbol|date)."""
    return rows.select(
        pl.lit(dataset).alias("dataset"),
        pl.concat_str([pl.col("symbol"), pl.col("session_date").cast(pl.String)], separator="|").alias("key"),
        reason.alias("reason"),
        pl.struct(*BARS_SCHEMA, pl.lit(path.name).alias("_file"), pl.col("line").alias("_line")).struct.json_encode().alias("row_json"),
    )


class CsvSource:
    """A folder of CSV files behind the Source protocol (see the module docstring)."""

    name = "csv"
    # A folder holds what its user brought (one index, no holdings file): that is the whole answer,
    # and its files say which sessions it covers (date_range).
    capabilities = Capabilities(has_date_range=True, is_complete=False)

    def __init__(
        self,
        path: Path,
        *,
        universes: Mapping[str, str] | None = None,
        overrides_path: Path | None = None,
        index_symbols: Sequence[str] | None = None,
        latest_session_date: date | None = None,
    ) -> None:
        """`universes` maps ETF ticker -> universe name ({u.etf: u.name for u in settings.universes});
        `overrides_path` is the ticker -> symbol override file (sources.symbols); `index_symbols`
        (settings.index_symbols) decides whether an excluded bar is reported under raw.index_bars or
        raw.equity_bars, as pipeline.checks.split does; `latest_session_date` fixes what counts
        as the future (default: the latest completed NYSE session at each call)."""
        self.path = Path(path)
        if not self.path.is_dir():
            raise ValueError(f"csv source: {self.path} is not a folder")
        from ground.settings import DEFAULT_UNIVERSES, Settings

        mapping = universes if universes is not None else {u.etf: u.name for u in DEFAULT_UNIVERSES}
        self.universes = {etf.upper(): name for etf, name in mapping.items()}
        self.overrides = load_overrides(overrides_path)
        if index_symbols is None:
            index_symbols = Settings.model_fields["index_symbols"].get_default(call_default_factory=True)
        self.index_symbols = frozenset(index_symbols)
        self._latest_session_date = latest_session_date
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
                continue
            for symbol in _multi_level_tickers(p, head) or [p.stem]:
                if symbol in bars:
                    raise ValueError(
                        f"csv source: {symbol} has bars in two files, {bars[symbol].name} and {p.name}; keep one"
                    )
                bars[symbol] = p
        return bars, holdings

    def symbols(self) -> list[str]:
        """Symbols with bars in the folder (file names, and the tickers of multi-level files), sorted."""
        return sorted(self._bar_files)

    def holdings_files(self) -> list[Path]:
        return list(self._holdings_files)

    def latest_session_date(self) -> date:
        """The newest date a row may carry: the latest completed NYSE session (or the fixed one)."""
        if self._latest_session_date is not None:
            return self._latest_session_date
        from ground import calendar

        return calendar.latest_completed_session()

    def _bars_dataset(self, symbol: str) -> str:
        # The rule of pipeline.checks.split, so excluded rows name the table their symbol loads into.
        return "raw.index_bars" if symbol in self.index_symbols or symbol.startswith("^") else "raw.equity_bars"

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
        parsed (a broken one fails the call); a universe with no snapshot in range is a failure.

        A snapshot dated after the latest completed session is never returned; its rows (and the
        lines it excluded itself) are reported in `excluded` whenever `end` reaches the universe's
        newest snapshot that is not in the future (or it has none)."""
        wanted = list(dict.fromkeys(universes))
        latest = self.latest_session_date()
        seen: dict[tuple[str, date], Path] = {}
        parts: list[Fetched] = []
        future: list[tuple[str, Path, Fetched]] = []
        for path in self._holdings_files:
            got = self._read_holdings(path)
            universe = got.holdings.get_column("universe")[0]
            as_of = got.holdings.get_column("as_of_date")[0]
            if (universe, as_of) in seen:
                raise ValueError(f"{path}: a second {universe} snapshot as of {as_of} (first: {seen[(universe, as_of)]})")
            seen[(universe, as_of)] = path
            if universe not in wanted:
                continue
            if as_of > latest:
                future.append((universe, path, got))
            elif start <= as_of <= end:
                parts.append(got)
        newest: dict[str, date] = {}
        for u, d in seen:
            if d <= latest and d > newest.get(u, date.min):
                newest[u] = d
        excluded = []
        for universe, path, got in future:
            if universe in newest and end < newest[universe]:
                continue
            excluded.append(
                got.holdings.select(
                    pl.lit("holdings").alias("dataset"),
                    pl.concat_str([pl.col("universe"), pl.col("as_of_date").cast(pl.String), pl.col("symbol")], separator=" ").alias("key"),
                    pl.format("snapshot {}", pl.lit(FUTURE_REASON.format(latest=latest))).alias("reason"),
                    pl.struct(*HOLDINGS_SCHEMA, pl.lit(path.name).alias("_file")).struct.json_encode().alias("row_json"),
                )
            )
            excluded.append(got.excluded)
        out = Fetched.combine(parts)
        have = {u for u, d in seen if start <= d <= end and d <= latest}
        failures = [
            (u, "holdings", f"no holdings file for {u} with an as-of date in {start}..{min(end, latest)} in {self.path}")
            for u in wanted
            if u not in have
        ]
        fails = failures_frame(failures)
        holdings = out.holdings.sort("universe", "as_of_date") if out.holdings.height else empty(HOLDINGS_SCHEMA)
        excl = pl.concat([out.excluded, *excluded]) if excluded else out.excluded
        return Fetched(holdings=holdings, excluded=excl, failures=fails)

    def bars(self, symbols: Sequence[str], start: date, end: date) -> Fetched:
        """Bars of `symbols` in [start, end]; a symbol without a file is a failure, a broken file an error.

        Rows dated after the latest completed session are never returned: each is reported in
        `excluded` whenever `end` reaches the file's last row that is not in the future (so a
        request that reaches the end of the file's history hears of them). Lines collapsed into an
        identical earlier line are reported when their date is in range."""
        latest = self.latest_session_date()
        future_reason = FUTURE_REASON.format(latest=latest)
        parts: list[pl.DataFrame] = []
        excluded: list[pl.DataFrame] = []
        failures: list[tuple[str, str, str]] = []
        by_file: dict[Path, list[str]] = {}
        for symbol in dict.fromkeys(symbols):
            path = self._bar_files.get(symbol)
            if path is None:
                failures.append((symbol, "bars", f"no file {symbol}.csv in {self.path}"))
                continue
            by_file.setdefault(path, []).append(symbol)
        for path, wanted in by_file.items():
            read = read_bar_file(path, wanted[0] if len(wanted) == 1 else None, only=set(wanted))
            for symbol in wanted:
                got = read[symbol]
                dataset = self._bars_dataset(symbol)
                is_past = pl.col("session_date") <= latest
                past = got.bars.filter(is_past)
                last = past.get_column("session_date").max() if past.height else None
                reaches_end = last is None or end >= last
                future = got.bars.filter(~is_past)
                if future.height and reaches_end:
                    excluded.append(_excluded_bars(future, path, dataset, pl.lit(future_reason)))
                repeats = got.repeats.filter(
                    pl.col("session_date").is_between(start, min(end, latest)) | (~is_past & pl.lit(reaches_end))
                )
                if repeats.height:
                    why = pl.format("repeats line {} of {} exactly (same date, same values): kept that line", "kept_line", pl.lit(path.name))
                    excluded.append(_excluded_bars(repeats, path, dataset, why))
                in_range = past.filter(pl.col("session_date").is_between(start, end)).drop("line")
                if in_range.is_empty():
                    if last is None:
                        why = f"{path.name}: every row of {symbol} is {future_reason}"
                    else:
                        first = past.get_column("session_date")[0]
                        why = f"{path.name} covers {first}..{last}, nothing in {start}..{end}"
                    failures.append((symbol, "bars", why))
                    continue
                parts.append(in_range)
        bars = pl.concat(parts) if parts else empty(BARS_SCHEMA)
        fails = failures_frame(failures)
        excl = pl.concat(excluded) if excluded else empty(EXCLUDED_SCHEMA)
        return Fetched(bars=bars, failures=fails, excluded=excl)

    def fundamentals(self, symbols: Sequence[str], as_of: date) -> Fetched:
        """Quarters of `symbols` known on `as_of`: report_date <= as_of, or, where the report date
        is unknown, period_end_date <= as_of (the cohort rule adds its own reporting lag)."""
        wanted = list(dict.fromkeys(symbols))
        path = self.path / FUNDAMENTALS_FILE
        if not path.exists():
            failures = [(s, "fundamentals", f"no {FUNDAMENTALS_FILE} in {self.path}") for s in wanted]
            return Fetched(failures=failures_frame(failures))
        allq = read_fundamentals(path)
        known = allq.filter(
            pl.col("symbol").is_in(wanted)
            & pl.when(pl.col("report_date").is_null())
            .then(pl.col("period_end_date") <= as_of)
            .otherwise(pl.col("report_date") <= as_of)
        ).sort("symbol", "period_end_date")
        have = set(known.get_column("symbol").to_list())
        failures = [(s, "fundamentals", f"no quarter known on {as_of} in {path.name}") for s in wanted if s not in have]
        fails = failures_frame(failures)
        return Fetched(fundamentals=known, failures=fails)

    # conveniences -------------------------------------------------------------------------------

    def date_range(self) -> tuple[date, date] | None:
        """First and last date over the bar files (reads them all), never after the latest completed
        session; None when there are none. Rows after that session do not count (they are reported
        by `bars`); a folder whose every row is in the future is an error."""
        latest = self.latest_session_date()
        firsts, lasts = [], []
        for path in dict.fromkeys(self._bar_files.values()):
            for got in read_bar_file(path).values():
                past = got.bars.get_column("session_date").filter(got.bars.get_column("session_date") <= latest)
                if past.len():
                    firsts.append(past[0])
                    lasts.append(past[-1])
        if not self._bar_files:
            return None
        if not firsts:
            raise ValueError(
                f"csv source: every bar in {self.path} is {FUTURE_REASON.format(latest=latest)}: nothing to load"
            )
        return min(firsts), max(lasts)
