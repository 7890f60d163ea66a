"""Holdings tickers -> Yahoo symbols, and the rule that made each mapping.

iShares prints exchange tickers; Yahoo keys quotes by its own symbols. They differ in two ways
that matter for US small caps:

- Class shares listed on NYSE carry a class suffix that Yahoo writes after a dash (`MOG-A`,
  `BF-B`, `GEF-B`). Older iShares files print it after a dot (`MOG.A`), newer ones glue it on
  (`MOGA`). A dot (or slash, or space) always becomes a dash: rule `dot_to_dash`.
- The glued form cannot be told apart from an ordinary ticker by its letters alone: `BELFA`,
  `RUSHA`, `CENTA` are Nasdaq class shares whose Yahoo symbol is the ticker itself, and `ZETA`
  or `VERA` are not class shares at all. So only the tickers in KNOWN_CLASS_SHARES are split:
  rule `share_class`. Everything else maps to itself (`identity`) unless the override file says
  otherwise (`override`).

The override file is a CSV with the header `ticker,symbol` (one mapping a line, `#` lines are
comments) kept in the data home; the caller passes its path. Overrides win over every rule, so a
wrong rule is fixed without a code change. See docs/sources.md.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Iterable, Literal, Mapping

import polars as pl

Rule = Literal["identity", "share_class", "dot_to_dash", "override"]

# NYSE (and NYSE American) class shares whose holdings ticker glues the class letter onto the
# root. Exact tickers, not a pattern: `CRDA` is Crawford class A, but a five-letter Nasdaq ticker
# ending in A (`BELFA`, `RUSHA`) is already its Yahoo symbol. Extend by the override file first;
# move an entry here once it is known to be right for everyone.
KNOWN_CLASS_SHARES: Mapping[str, str] = {
    "AKOA": "AKO-A",
    "AKOB": "AKO-B",
    "BFA": "BF-A",
    "BFB": "BF-B",
    "BRKA": "BRK-A",
    "BRKB": "BRK-B",
    "CRDA": "CRD-A",
    "CRDB": "CRD-B",
    "CWENA": "CWEN-A",
    "GEFB": "GEF-B",
    "GTNA": "GTN-A",
    "HEIA": "HEI-A",
    "HVTA": "HVT-A",
    "JWA": "JW-A",
    "LENB": "LEN-B",
    "LGFA": "LGF-A",
    "LGFB": "LGF-B",
    "MOGA": "MOG-A",
    "MOGB": "MOG-B",
    "UHALB": "UHAL-B",
    "WSOB": "WSO-B",
}

# A Yahoo US equity symbol: letters and digits, optionally one dash and a class suffix.
_YAHOO_SYMBOL = re.compile(r"^[A-Z0-9]+(-[A-Z0-9]+)?$")
_SEPARATOR = re.compile(r"[./ ]")

SYMBOL_MAP_SCHEMA: dict[str, pl.DataType] = {"ticker": pl.String, "symbol": pl.String, "rule": pl.String}


def load_overrides(path: Path | None) -> dict[str, str]:
    """Read the override file (`ticker,symbol`). None or a missing file means no overrides.

    A malformed file is an error naming the file and the line: a half-read override file would
    silently map some tickers wrongly.
    """
    if path is None or not Path(path).exists():
        return {}
    text = Path(path).read_text(encoding="utf-8-sig")
    rows = csv.reader(io.StringIO(text))
    out: dict[str, str] = {}
    header_seen = False
    for line_no, row in enumerate(rows, start=1):
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if not header_seen:
            if [c.lower() for c in cells] != ["ticker", "symbol"]:
                raise ValueError(f"{path} line {line_no}: expected the header 'ticker,symbol', found {','.join(cells)!r}")
            header_seen = True
            continue
        if len(cells) != 2 or not cells[0] or not cells[1]:
            raise ValueError(f"{path} line {line_no}: expected 'TICKER,SYMBOL', found {','.join(row)!r}")
        ticker, symbol = cells[0].upper(), cells[1].upper()
        if not _YAHOO_SYMBOL.match(symbol) and not symbol.startswith("^"):
            raise ValueError(f"{path} line {line_no}: {symbol!r} does not look like a Yahoo symbol (e.g. MOG-A)")
        if ticker in out and out[ticker] != symbol:
            raise ValueError(f"{path} line {line_no}: {ticker} mapped twice ({out[ticker]} and {symbol})")
        out[ticker] = symbol
    if not header_seen:
        raise ValueError(f"{path}: empty override file; expected the header 'ticker,symbol'")
    return out


def to_yahoo(ticker: str, overrides: Mapping[str, str] | None = None) -> tuple[str, Rule]:
    """The Yahoo symbol of a holdings ticker and the rule used.

    >>> to_yahoo("BRK.B")
    ('BRK-B', 'dot_to_dash')
    >>> to_yahoo("MOGA")
    ('MOG-A', 'share_class')
    >>> to_yahoo("BELFA")
    ('BELFA', 'identity')
    """
    t = ticker.strip().upper()
    if not t:
        raise ValueError("empty ticker: nothing to map")
    if overrides and t in overrides:
        return overrides[t], "override"
    if _SEPARATOR.search(t):
        return _SEPARATOR.sub("-", t), "dot_to_dash"
    if t in KNOWN_CLASS_SHARES:
        return KNOWN_CLASS_SHARES[t], "share_class"
    return t, "identity"


def map_tickers(tickers: Iterable[str], overrides: Mapping[str, str] | None = None) -> pl.DataFrame:
    """One row per distinct ticker: ticker, symbol, rule (the columns meta.symbols needs)."""
    rows = [(t, *to_yahoo(t, overrides)) for t in dict.fromkeys(tickers)]
    return pl.DataFrame(rows, schema=SYMBOL_MAP_SCHEMA, orient="row")
