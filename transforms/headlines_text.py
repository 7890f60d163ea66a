"""How a headline fact becomes a row of `marts.headlines`: the rounding and wording of its figures,
the definition every family cites, and `fact_rows`, which turns one family's frame into rows.

Split from `transforms.headlines` so each fact-family module (`headlines_index`, `headlines_pairs`,
`headlines_universes`) writes its sentences with the same helpers; `transforms.headlines`
re-exports the formatting helpers its callers use (`rounded`, `pct`, ...). Pure: no I/O, no clock.

Numbers in sentences are rounded half away from zero by one helper (`rounded`); "a" or "an"
before a number follows how it is said ("an 11th", "an 8-session", "an 800 bp").
"""

from __future__ import annotations

import decimal
import math
from datetime import date
from typing import Any, Callable, Mapping, Sequence

import polars as pl

DEFINITIONS = {
    "index_record": "Record close: a close strictly above every earlier close in the loaded history "
    "(marts.index_records.history_start); records_ytd counts record closes in the calendar year up to the session.",
    "index_from_record": "Distance from record: close / highest close so far (today included) - 1, "
    "shown as a positive percentage below the record.",
    "streak": "Outperformance streak: consecutive sessions on which the lead's daily return beat the lag's "
    "strictly; longest_since: the latest earlier session, before this streak began, on which a streak "
    "reached at least this length.",
    "ytd": "YTD return: close / last close of the previous calendar year - 1 (index Close, price return).",
    "ytd_spread": "YTD spread: lead YTD return - lag YTD return, in basis points (1 bp = 0.01 percentage point).",
    "index_since": "Index return since an anchor: close / close on the anchor session - 1 (index Close, price "
    "return; marts.index_performance), for the lead and the lag of the first pair; gap = lead - lag in basis points.",
    "cohort_shares": "Cohort rule v1: TTM net income to common (4 latest quarters counted 45 days after period "
    "end or on report) > 0 is profitable, <= 0 unprofitable, fewer than 4 quarters or a missing one no data; "
    "share of the universe's members on the session.",
    "cohort_spread": "Cohort return since an anchor: buy and hold of the cohort fixed at the anchor session, "
    "equal-weight mean of adj_close(t) / adj_close(anchor) - 1; gap = unprofitable - profitable in basis points.",
    "universe_spread": "Universe return since an anchor: buy and hold of all members fixed at the anchor session, "
    "equal-weight mean of member returns; gap = first universe - second universe in basis points.",
    "rsi": "RSI-14 with Wilder's smoothing of close-to-close gains and losses; above 70 is read as overbought, "
    "below 30 as oversold.",
    "sector_best": "Sector return of the session: equal-weight mean of the members' daily returns (Adj Close); "
    "the highest of the universe's sectors.",
    "sector_worst": "Sector return of the session: equal-weight mean of the members' daily returns (Adj Close); "
    "the lowest of the universe's sectors.",
    "volatility": "Volatility index level (close) and its change over the last 5 sessions (one trading week).",
}

# Reading order of the families within a night, after the lead facts (`headlines._lead_keys`).
FAMILY_ORDER = {
    "index_record": 1,
    "index_from_record": 1,
    "streak": 2,
    "ytd": 3,
    "ytd_spread": 4,
    "index_since": 5,
    "cohort_shares": 6,
    "cohort_spread": 7,
    "universe_spread": 8,
    "rsi": 9,
    "sector_best": 10,
    "sector_worst": 10,
    "volatility": 11,
}


# Formatting ------------------------------------------------------------------------------------

# Enough digits for any double (1e308 to 2 decimals is 311 digits): decimal's default of 28 would
# refuse to quantize a large value.
_DECIMAL = decimal.Context(prec=400, rounding=decimal.ROUND_HALF_UP)


def rounded(x: float, digits: int = 0, *, scale: int = 1) -> decimal.Decimal:
    """x * scale rounded to `digits` decimals, half away from zero: the one rounding rule of every
    figure in a sentence (and of the `value` of a bp fact).

    The rounding applies to the shortest decimal that reads back as x (its repr), scaled exactly:
    0.0125 as a percentage is 1.25 and rounds to 1.3, where float arithmetic (0.0125 * 100 =
    1.2500000000000002) or Python's round() (half to even on the binary value) would decide by
    accident. ROUND_HALF_UP in `decimal` is half away from zero (-1.25 -> -1.3)."""
    if not math.isfinite(x):
        raise ValueError(f"cannot print {x!r} in a headline: not a finite number")
    exact = _DECIMAL.multiply(decimal.Decimal(repr(float(x))), scale)
    return exact.quantize(decimal.Decimal(1).scaleb(-digits), context=_DECIMAL)


def bp_value(x: float | None) -> float | None:
    """A fraction in whole basis points, rounded as in the sentences (0.30705 -> 3071.0)."""
    return None if x is None else float(rounded(x, 0, scale=10_000))


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 101st, 111th."""
    if n % 100 in (11, 12, 13):
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def article(n: int) -> str:
    """The article before a number said aloud, cardinal or ordinal: "an" before eight, eleven and
    eighteen (8, 11, 18, 80-89, 800-899, 8,000, 11,000, ...), "a" otherwise.

    English reads a number by its leading group of three digits ("eleven thousand", "eight hundred
    five"), so that group decides."""
    lead = abs(int(n))
    while lead >= 1000:
        lead //= 1000
    first_digit = int(str(lead)[0])
    return "an" if first_digit == 8 or lead in (11, 18) else "a"


def a_ordinal(n: int) -> str:
    """"an 11th", "a 12th", "an 8th", "an 18th", "a 21st"."""
    return f"{article(n)} {ordinal(n)}"


def points(x: float) -> str:
    """Index points: thousands separators, 2 decimals (2,723.96)."""
    return f"{rounded(x, 2):,.2f}"


def number(x: float, digits: int = 2) -> str:
    """A level that is not a price (the VIX, RSI), with thousands separators."""
    return f"{rounded(x, digits):,.{digits}f}"


def pct(x: float) -> str:
    """A return as a signed percentage with 1 decimal (+53.1%, -1.0%); 0.0% when it rounds to zero."""
    p = rounded(x, 1, scale=100)
    return "0.0%" if p == 0 else f"{p:+.1f}%"


def pct_abs(x: float) -> str:
    return f"{abs(rounded(x, 1, scale=100)):.1f}%"


def share(x: float) -> str:
    """A share of a whole, whole percent, no sign (57%)."""
    return f"{rounded(x, 0, scale=100):.0f}%"


def bp(x: float) -> str:
    """Basis points of a fraction, thousands separators, no sign (0.307 -> 3,070)."""
    return f"{abs(rounded(x, 0, scale=10_000)):,.0f}"


def a_bp(x: float) -> str:
    """"a 3,070 bp", "an 800 bp", "an 11 bp"."""
    return f"{article(int(abs(rounded(x, 0, scale=10_000))))} {bp(x)} bp"


def display_name(names: Mapping[str, str], symbol: str) -> str:
    return names.get(symbol, symbol)


def since_phrase(anchor: str, anchor_date: date) -> str:
    if anchor == "ytd":
        return f"year to date (since {anchor_date.isoformat()})"
    if anchor == "1y":
        return f"over one year (since {anchor_date.isoformat()})"
    if anchor == anchor_date.isoformat():
        return f"since {anchor}"
    return f"since {anchor} (session {anchor_date.isoformat()})"


# Rows ------------------------------------------------------------------------------------------


def fact_rows(
    frame: pl.LazyFrame,
    *,
    family: str,
    key: pl.Expr,
    order: pl.Expr,
    template: Callable[[dict[str, Any]], str],
    fields: Sequence[str],
    value: pl.Expr,
    unit: str | pl.Expr,
    table: str,
) -> pl.LazyFrame:
    """One fact family's rows: sentence from `template` over `fields`, inputs as JSON of `fields`."""

    def render(rows: pl.Series) -> pl.Series:
        return pl.Series([template(r) for r in rows.to_list()], dtype=pl.String)

    return frame.select(
        pl.col("as_of_date"),
        fact_key=pl.lit(family + ":") + key,
        _family=pl.lit(FAMILY_ORDER[family], dtype=pl.Int32),
        _order=order.cast(pl.Int32),
        sentence=pl.struct(fields).map_batches(render, return_dtype=pl.String, is_elementwise=True),
        value=value.cast(pl.Float64),
        unit=unit if isinstance(unit, pl.Expr) else pl.lit(unit, dtype=pl.String),
        definition=pl.lit(DEFINITIONS[family], dtype=pl.String),
        inputs=pl.struct(pl.lit(table).alias("table"), *fields).struct.json_encode(),
    )


def bp_expr(col: str) -> pl.Expr:
    """The `value` of a bp fact: the fraction in whole bp, rounded exactly as the sentence rounds it."""
    return pl.col(col).map_batches(
        lambda s: pl.Series([bp_value(v) for v in s.to_list()], dtype=pl.Float64),
        return_dtype=pl.Float64,
        is_elementwise=True,
    )


def order_of(col: str, order: Sequence[str]) -> pl.Expr:
    """Position of a symbol / universe / anchor in its configured order; unknown ones go last."""
    mapping = {v: i for i, v in enumerate(order)}
    return pl.col(col).replace_strict(mapping, default=len(mapping), return_dtype=pl.Int32)

