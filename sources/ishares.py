"""iShares ETF holdings files: parse them, download today's.

A holdings file is a snapshot: the fund's positions "as of" one date. iShares serves only the
current file, so a live run can fetch one snapshot a day and membership history builds going
forward from the first nightly run; history before it comes from saved files (the csv source).

Parsing rules (docs/sources.md repeats them for users)
-----------------------------------------------------
- Text is UTF-8, with or without a BOM; CRLF or LF line ends.
- Preamble: any lines before the column header, e.g. the fund title, `Inception Date`,
  `Fund Holdings as of,"Nov 05, 2025"`, `Shares Outstanding`. Only the as-of line is used; older
  files put the title and `Inception Date` before it, newer ones after: position does not matter.
- The column header is the first line whose first cell is `Ticker`. Columns are found by name,
  so every layout parses the same way: 2017-19 (`Shares` for `Quantity`, SEDOL/ISIN columns,
  another order), 2025 (`Weight (%)`, `Quantity`) and 2026 (a `Type` column, `Market Weight` and
  `Notional Weight` instead of `Weight (%)`).
- The table ends at the first blank line (iShares writes one made of a no-break space and commas);
  what follows is the disclaimer footer, one quoted cell over several lines, and is ignored. A
  file without that blank line is treated as truncated.
- Numbers may be quoted with thousands separators (`"731,205,514.79"`); `-` or empty is null.
- Kept: the stocks, i.e. rows of Type `EQUITY` where the file has a Type column, else rows of
  Asset Class `Equity`, that are listed shares. Everything else goes to `Fetched.excluded` with the
  reason (see `_exclusion`): swaps, warrants, collateral, cash, money market (STIF), futures;
  tickers `-` (warrants, private placements, some CVRs); CVRs and escrow lines that carry a
  ticker; unlisted lines; a second line for a ticker already kept.
- `weight_pct` is the fund's published share of the whole fund in percent: `Weight (%)`, or in the
  2026 layout `Market Weight` (the same quantity: market value over the fund's net assets).
  `Notional Weight` is not used: it counts a derivative's full exposure (a swap's or a future's
  notional), so it is a different quantity that sums to more than 100 when the fund holds them.
- A file without a preamble (it starts at the column header) has no as-of date: the caller must
  pass `as_of`. A file whose as-of is `-`, an HTML page served instead of the CSV, a row with the
  wrong number of fields or a non-numeric value kept is a ValueError naming the file, universe and line.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Mapping, Sequence

import polars as pl

from ground.settings import Settings, Universe
from sources.base import EXCLUDED_SCHEMA, FAILURES_SCHEMA, HOLDINGS_SCHEMA, Fetched, conform, empty
from sources.symbols import load_overrides, to_yahoo

AS_OF_LABEL = "fund holdings as of"
HEADER_FIRST_CELL = "Ticker"
_BLANK_CHARS = " \t\u00a0,\ufeff"

# Column names in the file -> HOLDINGS_SCHEMA column; each tuple lists the names the layouts use,
# first found wins. `Market Weight` (2026 layout) is what `Weight (%)` was: market value over the
# fund's net assets, in percent. `Notional Weight` is deliberately absent (see the module docstring).
COLUMNS: dict[str, tuple[str, ...]] = {
    "ticker": ("Ticker",),
    "name": ("Name",),
    "sector": ("Sector",),
    "asset_class": ("Asset Class",),
    "exchange": ("Exchange",),
    "weight_pct": ("Weight (%)", "Market Weight"),
    "market_value_usd": ("Market Value",),
    "shares": ("Quantity", "Shares"),
    "price_usd": ("Price",),
}
NUMERIC = ("weight_pct", "market_value_usd", "shares", "price_usd")
TYPE_COLUMN = "Type"  # 2026 layout: the instrument type of each line; `EQUITY` is a stock
STOCK_TYPE = "EQUITY"
STOCK_ASSET_CLASS = "Equity"
# Why a line of another Type is not a member. A Type not listed here is excluded all the same
# (only EQUITY lines are stocks), with a reason that names it.
TYPE_REASONS: dict[str, str] = {
    "SWAP": "an equity swap: exposure through a derivative contract, not shares the fund holds",
    "WARRANT": "a warrant: a right to buy shares, not a share",
    "COLLATERAL": "collateral for derivatives, not a holding",
    "STIF": "a short-term investment fund, the fund's cash sweep",
    "INDEX": "an index future",
    "FUTURE": "a future",
    "CASH": "cash",
    "MONEY MARKET": "a money market fund",
}

_CVR = re.compile(r"(\bCVR|- ?CVR)\s*$", re.IGNORECASE)
_ESCROW = re.compile(r"\bESCROW\b", re.IGNORECASE)
_DATE_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%m/%d/%Y", "%Y-%m-%d", "%d-%b-%Y")
_ISO_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class Preamble:
    """What precedes the column header of a holdings file."""

    fund_name: str | None
    as_of_date: date | None  # None: the file has no "Fund Holdings as of" line
    as_of_line: int | None
    header_line: int  # 1-based line number of the column header
    lines: tuple[str, ...]  # every line of the file, BOM removed


def _label(source_name: str, universe: str | None) -> str:
    return f"{source_name} ({universe})" if universe else source_name


def _decode(content: bytes, what: str) -> str:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what}: not UTF-8 text (byte {exc.start}): not an iShares holdings CSV") from exc
    head = text.lstrip(_BLANK_CHARS + "\r\n")[:200].lower()
    if head.startswith("<") or "<html" in head or "<!doctype" in head:
        raise ValueError(
            f"{what}: got an HTML page, not a holdings CSV (iShares serves one when the fund URL changed "
            "or the request was blocked); check the universe's holdings_url"
        )
    if not text.strip(_BLANK_CHARS + "\r\n"):
        raise ValueError(f"{what}: the file is empty")
    return text.lstrip("\ufeff")


def _cells(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _is_blank(line: str) -> bool:
    return not line.strip(_BLANK_CHARS)


def parse_as_of(text: str, what: str, line_no: int | None = None) -> date:
    """`Nov 05, 2025` (and a few other spellings) -> date; `-` or garbage is a ValueError."""
    value = text.strip().strip('"').strip()
    where = f" line {line_no}" if line_no else ""
    if value in ("", "-"):
        raise ValueError(
            f"{what}{where}: the 'Fund Holdings as of' date is {value or 'empty'!r}: iShares publishes that "
            "while the fund's holdings are not available; this file is not a usable snapshot"
        )
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{what}{where}: cannot read the as-of date {value!r} (expected e.g. 'Nov 05, 2025')")


def read_preamble(content: bytes, *, source_name: str, universe: str | None = None) -> Preamble:
    """Find the column header and the as-of date. Raises ValueError for anything that is not a holdings file."""
    what = _label(source_name, universe)
    lines = tuple(_decode(content, what).splitlines())
    fund_name = as_of = as_of_line = None
    for i, line in enumerate(lines, start=1):
        cells = [c.strip().lstrip("\ufeff") for c in _cells(line)]
        first = cells[0] if cells else ""
        if first == HEADER_FIRST_CELL:
            return Preamble(fund_name, as_of, as_of_line, i, lines)
        if first.lower() == AS_OF_LABEL:
            as_of = parse_as_of(cells[1] if len(cells) > 1 else "", what, i)
            as_of_line = i
        elif fund_name is None and first and not any(cells[1:]):
            fund_name = first
        if i >= 50:
            break
    raise ValueError(
        f"{what}: no column header (a line starting with '{HEADER_FIRST_CELL}') in the first "
        f"{min(len(lines), 50)} lines: not an iShares holdings CSV"
    )


def looks_like_holdings(content: bytes) -> bool:
    """True when the text has an iShares holdings header near the top (used to sort csv-folder files)."""
    text = content[:20_000].decode("utf-8-sig", errors="replace")
    for line in text.splitlines()[:50]:
        cells = [c.strip().lstrip("\ufeff") for c in _cells(line)]
        if cells and cells[0] == HEADER_FIRST_CELL and ("Asset Class" in cells or TYPE_COLUMN in cells):
            return True
        if cells and cells[0].lower() == AS_OF_LABEL:
            return True
    return False


def as_of_from_name(name: str) -> date | None:
    """A YYYY-MM-DD in a file name (`IJR_holdings_2017-02-28.csv`), or None."""
    m = _ISO_IN_NAME.search(name)
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


def _exclusion(ticker: str, name: str, asset_class: str | None, exchange: str, kind: str | None) -> str | None:
    """Why a holdings line is not a member, or None to keep it. Order matters: first reason wins.

    `kind` is the line's Type where the file has that column (2026 layout), else None; then the
    asset class decides. `asset_class` is None where the file has no Asset Class column.
    """
    if kind is not None:
        label = kind.upper()
        if label != STOCK_TYPE:
            if label in TYPE_REASONS:
                return f"not a stock: Type {kind!r} is {TYPE_REASONS[label]}"
            return f"not a stock: Type {kind!r} (only Type {STOCK_TYPE!r} lines are stocks)"
        if asset_class is not None and asset_class != STOCK_ASSET_CLASS:
            return f"Type {kind!r} but asset class {asset_class!r}: the file contradicts itself on this line"
    elif asset_class != STOCK_ASSET_CLASS:
        return f"not an equity: asset class {asset_class!r}"
    if ticker in ("", "-"):
        return "no ticker ('-'): warrant, private placement or CVR, not a listed share"
    if _CVR.search(name):
        return "contingent value right (CVR), not a share"
    if _ESCROW.search(name):
        return "escrow line of a former holding, not a traded share"
    if exchange.upper().startswith("NO MARKET"):
        return f"unlisted ({exchange}): no market price"
    return None


def parse_holdings(
    content: bytes,
    *,
    universe: str,
    source_name: str,
    as_of: date | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Fetched:
    """Parse one iShares holdings file into `Fetched.holdings` (members) and `Fetched.excluded`.

    `as_of` is for files without a preamble (no "Fund Holdings as of" line). When the file has
    an as-of date and `as_of` is also given, they must agree: a mislabelled file is an error.
    `overrides` are ticker -> Yahoo symbol mappings (sources.symbols.load_overrides).
    """
    what = _label(source_name, universe)
    pre = read_preamble(content, source_name=source_name, universe=universe)
    if pre.as_of_date is None and as_of is None:
        raise ValueError(
            f"{what}: no as-of date: the file has no 'Fund Holdings as of' line (it starts at the column "
            "header) and none was given; pass as_of= (the csv source reads a YYYY-MM-DD from the file name)"
        )
    if pre.as_of_date is not None and as_of is not None and pre.as_of_date != as_of:
        raise ValueError(
            f"{what} line {pre.as_of_line}: the file is as of {pre.as_of_date}, the caller says {as_of}"
        )
    snapshot = pre.as_of_date or as_of
    assert snapshot is not None

    header = [c.strip().lstrip("\ufeff") for c in _cells(pre.lines[pre.header_line - 1])]
    type_at = header.index(TYPE_COLUMN) if TYPE_COLUMN in header else None
    position: dict[str, int] = {}
    missing = []
    for col, names in COLUMNS.items():
        found = next((header.index(n) for n in names if n in header), None)
        if found is not None:
            position[col] = found
        elif not (col == "asset_class" and type_at is not None):  # the Type column tells the stocks
            missing.append(" or ".join(repr(n) for n in names))
    if missing:
        raise ValueError(
            f"{what} line {pre.header_line}: missing column(s) {', '.join(missing)} in the header "
            f"({', '.join(header)})"
        )

    kept: list[tuple[int, list[str]]] = []
    excluded: list[dict] = []
    kept_line_of: dict[str, int] = {}
    swaps: list[tuple[int, str]] = []  # (index in `excluded`, symbol) of SWAP lines
    end_line = None
    for line_no in range(pre.header_line + 1, len(pre.lines) + 1):
        line = pre.lines[line_no - 1]
        if _is_blank(line):
            end_line = line_no
            break
        cells = _cells(line)
        if len(cells) != len(header):
            raise ValueError(
                f"{what} line {line_no}: {len(cells)} fields where the header has {len(header)}"
                f"{' (truncated line?)' if len(cells) < len(header) else ''}: {line[:120]!r}"
            )
        get = {col: cells[i].strip() for col, i in position.items()}
        kind = cells[type_at].strip() if type_at is not None else None
        ticker = get["ticker"]
        reason = _exclusion(ticker, get["name"], get.get("asset_class"), get["exchange"], kind)
        symbol = None
        if reason is None:
            symbol, _ = to_yahoo(ticker, overrides)
            if symbol in kept_line_of:
                reason = f"duplicate: line {kept_line_of[symbol]} already holds {symbol} (kept that one)"
        if reason is not None:
            if kind is not None and kind.upper() == "SWAP" and ticker not in ("", "-"):
                swaps.append((len(excluded), to_yahoo(ticker, overrides)[0]))
            row = dict(zip(header, cells))
            row["_file"] = source_name
            excluded.append(
                {
                    "dataset": "holdings",
                    "key": f"{universe} {snapshot} line {line_no} {ticker or '-'}",
                    "reason": f"excluded: {reason}",
                    "row_json": json.dumps(row, ensure_ascii=False),
                }
            )
            continue
        # Without an Asset Class column a kept line is a stock by its Type: store it as the older
        # layouts do, so raw.holdings.asset_class stays "Equity" for every member.
        get.setdefault("asset_class", STOCK_ASSET_CLASS)
        kept_line_of[symbol] = line_no
        kept.append((line_no, [symbol] + [get[c] for c in COLUMNS]))
    if end_line is None:
        raise ValueError(
            f"{what}: no blank line after the holdings table (iShares files end the table with one, then "
            f"the disclaimer): the file looks truncated after line {len(pre.lines)}"
        )
    if not kept:
        rule = f"Type {STOCK_TYPE!r}" if type_at is not None else f"asset class {STOCK_ASSET_CLASS!r}"
        raise ValueError(f"{what}: no equity rows ({rule}) between line {pre.header_line} and line {end_line}")
    # A swap on a stock the fund also holds is the usual case in the 2026 IJR files: say so, so
    # that nobody reads the exclusion as a lost member.
    for index, symbol in swaps:
        if symbol in kept_line_of:
            excluded[index]["reason"] += f"; the stock itself is kept from line {kept_line_of[symbol]}"

    names = ["symbol", *COLUMNS]
    raw = pl.DataFrame(
        {"line": [n for n, _ in kept], **{c: [r[i] for _, r in kept] for i, c in enumerate(names)}},
        schema={"line": pl.Int64, **{c: pl.String for c in names}},
    )
    numbers = {}
    for col in NUMERIC:
        text = pl.col(col).str.replace_all(",", "").str.strip_chars()
        text = pl.when(text.is_in(["", "-"])).then(None).otherwise(text)
        numbers[col] = text.cast(pl.Float64, strict=False)
    parsed = raw.with_columns(**{f"_{c}": e for c, e in numbers.items()})
    for col in NUMERIC:
        bad = parsed.filter(pl.col(f"_{col}").is_null() & ~pl.col(col).str.strip_chars().is_in(["", "-"]))
        if bad.height:
            first = bad.row(0, named=True)
            raise ValueError(
                f"{what} line {first['line']}: {header[position[col]]!r} is {first[col]!r}, not a number "
                f"(ticker {first['ticker']})"
            )
    frame = parsed.select(
        pl.lit(universe).alias("universe"),
        pl.lit(snapshot).alias("as_of_date"),
        "symbol",
        "ticker",
        "name",
        "sector",
        "asset_class",
        "exchange",
        *[pl.col(f"_{c}").alias(c) for c in NUMERIC],
    )
    holdings = conform(frame, HOLDINGS_SCHEMA, what)
    excl = pl.DataFrame(excluded, schema=EXCLUDED_SCHEMA) if excluded else empty(EXCLUDED_SCHEMA)
    return Fetched(holdings=holdings, excluded=excl)


class HoldingsDownloadError(RuntimeError):
    """iShares did not deliver a holdings file."""


class IsharesHoldings:
    """Live holdings from ishares.com: one current snapshot per universe and call.

    Not a full Source (no bars, no fundamentals): the yahoo source delegates `holdings` to it.
    """

    name = "ishares"

    def __init__(
        self,
        universes: Sequence[Universe],
        *,
        user_agent: str,
        timeout_s: float,
        overrides_path: Path | None = None,
        client=None,  # an httpx.Client; tests pass one with a MockTransport
    ) -> None:
        self.universes = {u.name: u for u in universes}
        self.user_agent = user_agent
        self.timeout_s = timeout_s
        self.overrides = load_overrides(overrides_path)
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings, overrides_path: Path | None = None) -> "IsharesHoldings":
        return cls(
            settings.universes,
            user_agent=settings.user_agent,
            timeout_s=settings.http_timeout_s,
            overrides_path=overrides_path,
        )

    def _get(self, url: str) -> bytes:
        import httpx

        client = self._client or httpx.Client(follow_redirects=True)
        try:
            response = client.get(url, headers={"User-Agent": self.user_agent}, timeout=self.timeout_s)
            response.raise_for_status()
            return response.content
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            raise HoldingsDownloadError(
                f"HTTP {status} {exc.response.reason_phrase} from {url}"
                + ("; iShares throttles or blocks this client: retry later" if status in (403, 429) else "")
            ) from exc
        except httpx.TimeoutException as exc:
            raise HoldingsDownloadError(f"no answer within {self.timeout_s:g} s from {url}") from exc
        except httpx.HTTPError as exc:
            raise HoldingsDownloadError(f"{type(exc).__name__} for {url}: {exc}") from exc
        finally:
            if self._client is None:
                client.close()

    def fetch(self, universe: Universe) -> Fetched:
        """Download and parse today's holdings file of `universe`. Raises on any failure."""
        try:
            content = self._get(universe.holdings_url)
        except HoldingsDownloadError as exc:
            raise HoldingsDownloadError(f"iShares holdings of {universe.name} ({universe.etf}): {exc}") from exc
        got = parse_holdings(
            content, universe=universe.name, source_name=f"{universe.etf} holdings download", overrides=self.overrides
        )
        return Fetched(holdings=got.holdings, excluded=got.excluded, requests=1)

    def holdings(self, universes: Sequence[str], start: date, end: date) -> Fetched:
        """Today's snapshot of each universe, kept when its as-of date is in [start, end].

        iShares serves only the current file: a range in the past cannot be filled from here, and
        that is reported in `failures` rather than returned empty.
        """
        parts: list[Fetched] = []
        failures: list[tuple[str, str, str]] = []
        for name in dict.fromkeys(universes):
            universe = self.universes.get(name)
            if universe is None:
                failures.append((name, "holdings", f"unknown universe {name!r}; configured: {', '.join(self.universes)}"))
                continue
            try:
                got = self.fetch(universe)
            except (HoldingsDownloadError, ValueError) as exc:
                failures.append((name, "holdings", str(exc)))
                parts.append(Fetched(requests=1))
                continue
            as_of = got.holdings.get_column("as_of_date")[0]
            if not start <= as_of <= end:
                failures.append(
                    (
                        name,
                        "holdings",
                        f"iShares serves only the current file, as of {as_of}, outside {start}..{end}; "
                        "older snapshots must come from saved files (csv source)",
                    )
                )
                parts.append(Fetched(requests=got.requests))
                continue
            parts.append(got)
        out = Fetched.combine(parts)
        fails = pl.DataFrame(failures, schema=FAILURES_SCHEMA, orient="row") if failures else empty(FAILURES_SCHEMA)
        return Fetched(
            holdings=out.holdings, excluded=out.excluded, failures=pl.concat([out.failures, fails]), requests=out.requests
        )
