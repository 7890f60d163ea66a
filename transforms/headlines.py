"""`marts.headlines`: the facts a strategist leads with, as sentences, for each night.

Grain: one row per as_of_date and fact_key. Every sentence is made from mart rows of that night
(`session_date == as_of_date`), plus the history those marts already carry; `inputs` holds those
figures as JSON so a reader can check the sentence. A fact whose inputs are absent that night is
skipped, never invented. Pure: LazyFrame in, LazyFrame out.

Speed: every fact family is one vectorized polars query over all nights at once (joins on the
night's date). Python runs only to format the sentences of the output rows (thousands separators
and ordinals are not polars expressions), via `map_batches` over those rows.

Reading order (`rank`) within a night: first the five facts a market note opens with, when the
night has them (`_lead_keys`): the main index's record or distance from it, the main pair's
streak, its YTD comparison, the main universe's cohort gap since the first dated anchor, its
cohort shares. Then every other fact, by family in this order, then by the configured order of
symbols, pairs, universes and anchors:
  index_record:SYM / index_from_record:SYM   record close, or the distance from the record
  streak:LEAD/LAG                            outperformance streak and longest_since
  ytd:SYM                                    YTD return per index
  ytd_spread:LEAD/LAG                        YTD return of a pair, spread in bp
  index_since:LEAD/LAG:ANCHOR                the first pair's own returns since each dated anchor, in bp
  cohort_shares:UNIVERSE                     profitable / unprofitable / no data shares
  cohort_spread:UNIVERSE:ANCHOR              unprofitable vs profitable since an anchor, in bp
  universe_spread:ANCHOR                     Russell 2000 members vs S&P 600 members since an anchor
  rsi:SYM                                    only when RSI-14 is above 70 or below 30
  sector_best:UNIVERSE / sector_worst:UNIVERSE
  volatility:SYM                             VIX level and change over 5 sessions (change_5d, ret_5d)

Numbers in sentences are rounded half away from zero by one helper (`rounded`); "a" or "an"
before a number follows how it is said ("an 11th", "an 8-session", "an 800 bp").
"""

from __future__ import annotations

import decimal
import math
from datetime import date
from typing import Any, Callable, Collection, Mapping, Sequence

import polars as pl

HEADLINES_SCHEMA: dict[str, pl.DataType] = {
    "as_of_date": pl.Date,
    "fact_key": pl.String,
    "rank": pl.Int32,
    "sentence": pl.String,
    "value": pl.Float64,
    "unit": pl.String,
    "definition": pl.String,
    "inputs": pl.String,
}

UNIVERSE_NAMES: dict[str, str] = {"russell2000": "Russell 2000", "sp600": "S&P 600"}
# Friendly names of the index symbols, for the headlines and the report.
INDEX_NAMES: dict[str, str] = {
    "^RUT": "Russell 2000",
    "^GSPC": "S&P 500",
    "^SP600": "S&P SmallCap 600",
    "^IXIC": "Nasdaq Composite",
    "^VIX": "VIX",
    "^NDX": "Nasdaq-100",
    "^DJI": "Dow Jones Industrial Average",
}

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

# Reading order of the families within a night, after the lead facts (`_lead_keys`).
_FAMILY_ORDER = {
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


def _name(names: Mapping[str, str], symbol: str) -> str:
    return names.get(symbol, symbol)


def _since(anchor: str, anchor_date: date) -> str:
    if anchor == "ytd":
        return f"year to date (since {anchor_date.isoformat()})"
    if anchor == "1y":
        return f"over one year (since {anchor_date.isoformat()})"
    if anchor == anchor_date.isoformat():
        return f"since {anchor}"
    return f"since {anchor} (session {anchor_date.isoformat()})"


# Assembly --------------------------------------------------------------------------------------


def _finish(
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
        _family=pl.lit(_FAMILY_ORDER[family], dtype=pl.Int32),
        _order=order.cast(pl.Int32),
        sentence=pl.struct(fields).map_batches(render, return_dtype=pl.String, is_elementwise=True),
        value=value.cast(pl.Float64),
        unit=unit if isinstance(unit, pl.Expr) else pl.lit(unit, dtype=pl.String),
        definition=pl.lit(DEFINITIONS[family], dtype=pl.String),
        inputs=pl.struct(pl.lit(table).alias("table"), *fields).struct.json_encode(),
    )


def _bp_expr(col: str) -> pl.Expr:
    """The `value` of a bp fact: the fraction in whole bp, rounded exactly as the sentence rounds it."""
    return pl.col(col).map_batches(
        lambda s: pl.Series([bp_value(v) for v in s.to_list()], dtype=pl.Float64),
        return_dtype=pl.Float64,
        is_elementwise=True,
    )


def _order_of(col: str, order: Sequence[str]) -> pl.Expr:
    """Position of a symbol / universe / anchor in its configured order; unknown ones go last."""
    mapping = {v: i for i, v in enumerate(order)}
    return pl.col(col).replace_strict(mapping, default=len(mapping), return_dtype=pl.Int32)


def headlines(
    as_of_dates: Sequence[date],
    index_daily: pl.LazyFrame,
    index_records: pl.LazyFrame,
    relative_performance: pl.LazyFrame,
    cohort_composition: pl.LazyFrame,
    cohort_performance: pl.LazyFrame,
    sector_daily: pl.LazyFrame,
    *,
    pairs: Sequence[tuple[str, str]],
    anchors: Sequence[str],
    names: Mapping[str, str],
    universe_names: Mapping[str, str] = UNIVERSE_NAMES,
    volatility_symbols: Collection[str] = ("^VIX",),
    universe_pair: tuple[str, str] = ("russell2000", "sp600"),
    index_performance: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """marts.headlines for every night in `as_of_dates` (any number of sessions).

    `names` maps index symbols to friendly names ("^RUT" -> "Russell 2000"); `universe_names` does
    the same for universes. Volatility indexes (`volatility_symbols`) get the volatility line and
    none of the price-index lines (a record or YTD return of the VIX is not a headline).
    `index_performance` (marts.index_performance) gives the `index_since` lines; without it there
    are none.
    """
    nights = pl.LazyFrame(
        {"as_of_date": sorted(set(as_of_dates))}, schema={"as_of_date": pl.Date}
    )
    pair_keys = [(p.lead, p.lag) if hasattr(p, "lead") else tuple(p) for p in pairs]
    vol = list(volatility_symbols)
    symbol_order = list(names)
    universe_order = list(universe_names)

    families = [
        *_index_facts(nights, index_daily, index_records, names, vol, symbol_order),
        *_pair_facts(
            nights, index_daily, index_records, relative_performance, index_performance, pair_keys, names, anchors
        ),
        *_cohort_facts(nights, cohort_composition, cohort_performance, anchors, universe_names, universe_order, universe_pair),
        *_sector_facts(nights, sector_daily, universe_names, universe_order),
    ]
    lead = _lead_keys(pair_keys, vol, symbol_order, anchors, universe_pair)
    return (
        pl.concat(families, how="vertical")
        .with_columns(_lead=pl.col("fact_key").replace_strict(lead, default=None, return_dtype=pl.Int32))
        .sort("as_of_date", "_lead", "_family", "_order", "fact_key", nulls_last=True)
        .with_columns(rank=(pl.int_range(pl.len()) + 1).over("as_of_date"))
        .select([pl.col(c).cast(t) for c, t in HEADLINES_SCHEMA.items()])
    )


def _lead_keys(
    pair_keys: list[tuple[str, str]],
    vol: list[str],
    symbol_order: list[str],
    anchors: Sequence[str],
    universe_pair: tuple[str, str],
) -> dict[str, int]:
    """The facts a market note opens with, in its order: the main index's record (or its distance
    from it), the main pair's streak, the main pair's YTD comparison, the main universe's cohort gap
    since the first dated anchor, and its cohort shares. fact_key -> position (0..4).

    "Main" is what the settings put first: the first pair (its lead is the main index; without
    pairs, the first price index of `names`), the first universe of `universe_pair`."""
    out: dict[str, int] = {}
    prices = [s for s in symbol_order if s not in vol]
    main = pair_keys[0][0] if pair_keys else (prices[0] if prices else None)
    if main is not None:
        out[f"index_record:{main}"] = 0
        out[f"index_from_record:{main}"] = 0  # one of the two exists on a night
    if pair_keys:
        lead, lag = pair_keys[0]
        out[f"streak:{lead}/{lag}"] = 1
        out[f"ytd_spread:{lead}/{lag}"] = 2
    dated = [a for a in anchors if a not in ("ytd", "1y")]
    anchor = dated[0] if dated else (anchors[0] if anchors else None)
    universe = universe_pair[0]
    if anchor is not None:
        out[f"cohort_spread:{universe}:{anchor}"] = 3
    out[f"cohort_shares:{universe}"] = 4
    return out


# Index facts -----------------------------------------------------------------------------------


def _index_facts(
    nights: pl.LazyFrame,
    index_daily: pl.LazyFrame,
    index_records: pl.LazyFrame,
    names: Mapping[str, str],
    vol: list[str],
    symbol_order: list[str],
) -> list[pl.LazyFrame]:
    daily = index_daily.sort("symbol", "session_date")
    year_end = (
        daily.group_by("symbol", year=pl.col("session_date").dt.year())
        .agg(prev_year_close=pl.col("close").sort_by("session_date").last())
        .with_columns(pl.col("year") + 1)
    )
    # record_close and record_date are index_daily's own columns: a night reads a window of rows,
    # not the history a running maximum would need.
    history = (
        daily.with_columns(
            year=pl.col("session_date").dt.year(),
            close_5_sessions_ago=pl.col("close").shift(5).over("symbol"),
            date_5_sessions_ago=pl.col("session_date").shift(5).over("symbol"),
        )
        .join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .with_columns(as_of_date=pl.col("session_date"))
        .join(year_end, on=["symbol", "year"], how="left")
        .join(index_records.group_by("symbol").agg(pl.col("history_start").min()), on="symbol", how="left")
        .with_columns(_order=_order_of("symbol", symbol_order))
    )
    prices = history.filter(~pl.col("symbol").is_in(vol))

    def record(r: dict) -> str:
        return (
            f"{_name(names, r['symbol'])} closed at a record {points(r['close'])}, "
            f"its {ordinal(r['records_ytd'])} record close of {r['session_date'].year}"
        )

    def from_record(r: dict) -> str:
        name, dd = _name(names, r["symbol"]), r["drawdown_from_record"]
        head = f"{name} closed at {points(r['close'])}, "
        ref = f"its record close of {points(r['record_close'])} on {r['record_date'].isoformat()}"
        if dd == 0:
            head += f"level with {ref} (equal is not a new record)"
        elif rounded(dd, 1, scale=100) == 0:
            head += f"less than 0.1% below {ref}"
        else:
            head += f"{pct_abs(dd)} below {ref}"
        n, year = r["records_ytd"], r["session_date"].year
        count = "no record close" if n == 0 else f"{n} record close{'s' if n != 1 else ''}"
        return f"{head}; {count} so far in {year}"

    record_fields = ["symbol", "session_date", "close", "is_record_close", "records_ytd", "history_start"]
    from_fields = [
        "symbol", "session_date", "close", "records_ytd", "drawdown_from_record",
        "record_close", "record_date", "history_start",
    ]  # fmt: skip
    # The first session of a history has nothing earlier to compare with: no record line at all.
    with_history = prices.filter(pl.col("session_date") > pl.col("history_start"))
    out = [
        _finish(
            with_history.filter(pl.col("is_record_close")),
            family="index_record", key=pl.col("symbol"), order=pl.col("_order"), template=record,
            fields=record_fields, value=pl.col("close"), unit="index_points", table="marts.index_daily",
        ),
        _finish(
            with_history.filter(~pl.col("is_record_close")),
            family="index_from_record", key=pl.col("symbol"), order=pl.col("_order"), template=from_record,
            fields=from_fields, value=pl.col("drawdown_from_record"), unit="fraction", table="marts.index_daily",
        ),
    ]

    def ytd(r: dict) -> str:
        return (
            f"{_name(names, r['symbol'])} {pct(r['ytd_return'])} year to date, at {points(r['close'])} "
            f"against {points(r['prev_year_close'])} at the end of {r['session_date'].year - 1}"
        )

    out.append(
        _finish(
            prices.filter(pl.col("ytd_return").is_not_null() & pl.col("prev_year_close").is_not_null()),
            family="ytd", key=pl.col("symbol"), order=pl.col("_order"), template=ytd,
            fields=["symbol", "session_date", "close", "prev_year_close", "ytd_return"],
            value=pl.col("ytd_return"), unit="fraction", table="marts.index_daily",
        )
    )

    def rsi(r: dict) -> str:
        level = r["rsi_14"]
        side = "above 70 (overbought)" if level > 70 else "below 30 (oversold)"
        return f"{_name(names, r['symbol'])} RSI-14 at {number(level, 1)}, {side}"

    out.append(
        _finish(
            prices.filter((pl.col("rsi_14") > 70) | (pl.col("rsi_14") < 30)),
            family="rsi", key=pl.col("symbol"), order=pl.col("_order"), template=rsi,
            fields=["symbol", "session_date", "close", "rsi_14"],
            value=pl.col("rsi_14"), unit="level", table="marts.index_daily",
        )
    )

    def volatility(r: dict) -> str:
        # The change is the mart's change_5d / ret_5d (one definition); the earlier close and its
        # date are shown so the reader can check it.
        name, close, change = _name(names, r["symbol"]), r["close"], r["change_5d"]
        if change is None or r["ret_5d"] is None:
            return f"{name} at {number(close)}"
        moved_points = rounded(change, 2)
        direction = "up" if moved_points > 0 else "down" if moved_points < 0 else "unchanged"
        moved = f"{direction} {number(abs(change))} points" if moved_points != 0 else direction
        return (
            f"{name} at {number(close)}, {moved} ({pct(r['ret_5d'])}) over the week "
            f"(5 sessions, from {number(r['close_5_sessions_ago'])} on {r['date_5_sessions_ago'].isoformat()})"
        )

    out.append(
        _finish(
            history.filter(pl.col("symbol").is_in(vol)),
            family="volatility", key=pl.col("symbol"), order=pl.col("_order"), template=volatility,
            fields=[
                "symbol", "session_date", "close", "change_5d", "ret_5d", "close_5_sessions_ago", "date_5_sessions_ago",
            ],
            value=pl.col("close"), unit="level", table="marts.index_daily",
        )  # fmt: skip
    )
    return out


# Pair facts ------------------------------------------------------------------------------------


def _pair_facts(
    nights: pl.LazyFrame,
    index_daily: pl.LazyFrame,
    index_records: pl.LazyFrame,
    relative_performance: pl.LazyFrame,
    index_performance: pl.LazyFrame | None,
    pair_keys: list[tuple[str, str]],
    names: Mapping[str, str],
    anchors: Sequence[str],
) -> list[pl.LazyFrame]:
    if not pair_keys:
        return []
    starts = index_records.group_by("symbol").agg(pl.col("history_start").min())
    wanted = pl.LazyFrame(
        {
            "lead_symbol": [p[0] for p in pair_keys],
            "lag_symbol": [p[1] for p in pair_keys],
            "_order": list(range(len(pair_keys))),
        },
        schema={"lead_symbol": pl.String, "lag_symbol": pl.String, "_order": pl.Int32},
    )
    pair = ["lead_symbol", "lag_symbol"]
    rel = (
        relative_performance.join(wanted, on=pair, how="inner")
        .sort(*pair, "session_date")
        .with_columns(
            previous_streak=pl.col("streak").shift(1).over(pair),
            pair_first_session=pl.col("session_date").min().over(pair),
        )
        .join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .join(starts.rename({"symbol": "lead_symbol", "history_start": "_lead_start"}), on="lead_symbol", how="left")
        .join(starts.rename({"symbol": "lag_symbol", "history_start": "_lag_start"}), on="lag_symbol", how="left")
        .with_columns(
            as_of_date=pl.col("session_date"),
            # The pair's loaded history starts where the later of its two indexes starts
            # (index_records.history_start); its first row comes a session later, when both have a
            # daily return.
            history_start=pl.coalesce(pl.max_horizontal("_lead_start", "_lag_start"), "pair_first_session"),
        )
    )
    key = pl.col("lead_symbol") + "/" + pl.col("lag_symbol")

    def streak(r: dict) -> str:
        lead, lag = _name(names, r["lead_symbol"]), _name(names, r["lag_symbol"])
        rets = f"{pct(r['lead_ret'])} vs {pct(r['lag_ret'])}"
        if pct(r["lead_ret"]) == pct(r["lag_ret"]):
            # One decimal hides the difference that decided the session: say it in bp.
            rets += f", {bp(r['spread'])} bp apart"
        n = r["streak"]
        if n >= 2:
            since = r["longest_since"]
            tail = (
                f"the longest streak since {since.isoformat()}"
                if since is not None
                else f"the longest streak in the loaded history, which starts {r['history_start'].isoformat()}"
            )
            return f"{lead} beat the {lag} for {a_ordinal(n)} straight session, {tail} ({rets})"
        if n == 1:
            return f"{lead} beat the {lag} ({rets}), the first session of a new streak"
        verb = "lagged" if r["spread"] < 0 else "did not beat"
        prev = r["previous_streak"] or 0
        ended = f", ending {article(prev)} {prev}-session winning streak" if prev >= 2 else ""
        return f"{lead} {verb} the {lag} ({rets}){ended}"

    out = [
        _finish(
            rel,
            family="streak", key=key, order=pl.col("_order"), template=streak,
            fields=[
                "lead_symbol", "lag_symbol", "session_date", "lead_ret", "lag_ret", "spread",
                "streak", "longest_since", "previous_streak", "history_start",
            ],
            value=pl.col("streak"), unit="sessions", table="marts.relative_performance",
        )  # fmt: skip
    ]

    ytd = index_daily.select("symbol", "session_date", "ytd_return")
    rel_ytd = (
        rel.filter(pl.col("ytd_spread").is_not_null())
        .join(ytd.rename({"symbol": "lead_symbol", "ytd_return": "lead_ytd"}), on=["lead_symbol", "session_date"])
        .join(ytd.rename({"symbol": "lag_symbol", "ytd_return": "lag_ytd"}), on=["lag_symbol", "session_date"])
    )

    def ytd_spread(r: dict) -> str:
        lead, lag = _name(names, r["lead_symbol"]), _name(names, r["lag_symbol"])
        s = r["ytd_spread"]
        side = "ahead" if s > 0 else "behind" if s < 0 else "level"
        gap = f"{bp(s)} bp {side}" if rounded(s, 0, scale=10_000) != 0 else "level"
        return f"Year to date the {lead} is {pct(r['lead_ytd'])} vs {pct(r['lag_ytd'])} for the {lag}, {gap}"

    out.append(
        _finish(
            rel_ytd,
            family="ytd_spread", key=key, order=pl.col("_order"), template=ytd_spread,
            fields=["lead_symbol", "lag_symbol", "session_date", "lead_ytd", "lag_ytd", "ytd_spread"],
            value=_bp_expr("ytd_spread"), unit="bp", table="marts.relative_performance",
        )  # fmt: skip
    )
    if index_performance is not None:
        out.append(_index_since(nights, index_performance, pair_keys[0], names, anchors))
    return out


def _index_since(
    nights: pl.LazyFrame,
    index_performance: pl.LazyFrame,
    pair: tuple[str, str],
    names: Mapping[str, str],
    anchors: Sequence[str],
) -> pl.LazyFrame:
    """The first configured pair's own returns since each dated anchor (ytd has its own line)."""
    lead_symbol, lag_symbol = pair
    dated = [a for a in dict.fromkeys(anchors) if a not in ("ytd", "1y")]
    perf = (
        index_performance.filter(pl.col("anchor").is_in(dated))
        .join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .select("symbol", "anchor", "session_date", "anchor_date", "anchor_close", "close", "return_since_anchor")
    )

    def side(symbol: str, prefix: str) -> pl.LazyFrame:
        return perf.filter(pl.col("symbol") == symbol).select(
            "anchor", "session_date", "anchor_date",
            **{f"{prefix}_symbol": pl.col("symbol"), f"{prefix}_anchor_close": pl.col("anchor_close"),
               f"{prefix}_close": pl.col("close"), f"{prefix}_return": pl.col("return_since_anchor")},
        )  # fmt: skip

    rows = (
        side(lead_symbol, "lead")
        .join(side(lag_symbol, "lag"), on=["anchor", "session_date", "anchor_date"], how="inner")
        .with_columns(
            as_of_date=pl.col("session_date"),
            gap=pl.col("lead_return") - pl.col("lag_return"),
            _order=pl.col("anchor").replace_strict({a: i for i, a in enumerate(dated)}, default=99, return_dtype=pl.Int32),
        )
    )

    def sentence(r: dict) -> str:
        lead, lag, gap = _name(names, r["lead_symbol"]), _name(names, r["lag_symbol"]), r["gap"]
        since = _since(r["anchor"], r["anchor_date"])
        tail = "level" if rounded(gap, 0, scale=10_000) == 0 else f"{bp(gap)} bp {'ahead' if gap > 0 else 'behind'}"
        return (
            f"{since[0].upper()}{since[1:]} the {lead} is {pct(r['lead_return'])} vs {pct(r['lag_return'])} "
            f"for the {lag}, {tail}"
        )

    return _finish(
        rows,
        family="index_since",
        key=pl.col("lead_symbol") + "/" + pl.col("lag_symbol") + ":" + pl.col("anchor"),
        order=pl.col("_order"), template=sentence,
        fields=[
            "lead_symbol", "lag_symbol", "anchor", "session_date", "anchor_date", "lead_anchor_close", "lead_close",
            "lead_return", "lag_anchor_close", "lag_close", "lag_return", "gap",
        ],
        value=_bp_expr("gap"), unit="bp", table="marts.index_performance",
    )  # fmt: skip


# Cohort facts ----------------------------------------------------------------------------------


def _cohort_facts(
    nights: pl.LazyFrame,
    cohort_composition: pl.LazyFrame,
    cohort_performance: pl.LazyFrame,
    anchors: Sequence[str],
    universe_names: Mapping[str, str],
    universe_order: list[str],
    universe_pair: tuple[str, str],
) -> list[pl.LazyFrame]:
    def uname(u: str) -> str:
        return universe_names.get(u, u)

    composition = (
        cohort_composition.join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .group_by("universe", "session_date")
        .agg(
            members=pl.col("members").sum(),
            rule_version=pl.col("rule_version").first(),
            # The mart has a row for every cohort (members 0 when empty); a missing one would read as 0 too.
            **{
                f"share_{c}": pl.col("share_of_members").filter(pl.col("cohort") == c).sum()
                for c in ("profitable", "unprofitable", "no_data")
            },
        )
        .with_columns(as_of_date=pl.col("session_date"), _order=_order_of("universe", universe_order))
    )

    def shares(r: dict) -> str:
        return (
            f"{share(r['share_profitable'])} of {uname(r['universe'])} members are profitable, "
            f"{share(r['share_unprofitable'])} unprofitable, {share(r['share_no_data'])} without earnings data "
            f"({r['members']:,} members, cohort rule {r['rule_version']})"
        )

    out = [
        _finish(
            composition,
            family="cohort_shares", key=pl.col("universe"), order=pl.col("_order"), template=shares,
            fields=[
                "universe", "session_date", "members", "share_profitable", "share_unprofitable",
                "share_no_data", "rule_version",
            ],
            value=pl.col("share_profitable"), unit="fraction", table="marts.cohort_composition",
        )  # fmt: skip
    ]

    anchor_order = {a: i for i, a in enumerate(anchors)}
    perf = (
        cohort_performance.filter(pl.col("anchor").is_in(list(anchors)))
        .join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .select("universe", "anchor", "cohort", "session_date", "anchor_date", "members", "return_equal_weight")
    )

    def side(cohort: str, prefix: str) -> pl.LazyFrame:
        return perf.filter(pl.col("cohort") == cohort, pl.col("return_equal_weight").is_not_null()).select(
            "universe", "anchor", "session_date", "anchor_date",
            **{f"{prefix}_return": pl.col("return_equal_weight"), f"{prefix}_members": pl.col("members")},
        )  # fmt: skip

    spread = (
        side("unprofitable", "unprofitable")
        .join(side("profitable", "profitable"), on=["universe", "anchor", "session_date", "anchor_date"])
        .with_columns(
            as_of_date=pl.col("session_date"),
            gap=pl.col("unprofitable_return") - pl.col("profitable_return"),
            _order=_order_of("universe", universe_order) * 100
            + pl.col("anchor").replace_strict(anchor_order, default=99, return_dtype=pl.Int32),
        )
    )

    def cohort_spread(r: dict) -> str:
        gap = r["gap"]
        gap_bp = rounded(gap, 0, scale=10_000)
        tail = (
            f"{a_bp(gap)} gap"
            if gap_bp > 0
            else "no gap"
            if gap_bp == 0
            else f"{a_bp(gap)} gap in favour of profitable ones"
        )
        return (
            f"{uname(r['universe'])}: unprofitable members {pct(r['unprofitable_return'])} "
            f"{_since(r['anchor'], r['anchor_date'])} vs {pct(r['profitable_return'])} for profitable ones, {tail}"
        )

    out.append(
        _finish(
            spread,
            family="cohort_spread", key=pl.col("universe") + ":" + pl.col("anchor"), order=pl.col("_order"),
            template=cohort_spread,
            fields=[
                "universe", "anchor", "session_date", "anchor_date", "unprofitable_return", "unprofitable_members",
                "profitable_return", "profitable_members", "gap",
            ],
            value=_bp_expr("gap"), unit="bp", table="marts.cohort_performance",
        )  # fmt: skip
    )

    first, second = universe_pair

    def whole(universe: str, prefix: str) -> pl.LazyFrame:
        return perf.filter(
            pl.col("universe") == universe, pl.col("cohort") == "all", pl.col("return_equal_weight").is_not_null()
        ).select(
            "anchor", "session_date",
            **{
                f"{prefix}_universe": pl.col("universe"), f"{prefix}_anchor_date": pl.col("anchor_date"),
                f"{prefix}_return": pl.col("return_equal_weight"), f"{prefix}_members": pl.col("members"),
            },
        )  # fmt: skip

    universes = (
        whole(first, "first")
        .join(whole(second, "second"), on=["anchor", "session_date"])
        .with_columns(
            as_of_date=pl.col("session_date"),
            gap=pl.col("first_return") - pl.col("second_return"),
            _order=pl.col("anchor").replace_strict(anchor_order, default=99, return_dtype=pl.Int32),
        )
    )

    def universe_spread(r: dict) -> str:
        gap = r["gap"]
        tail = "level" if rounded(gap, 0, scale=10_000) == 0 else f"{bp(gap)} bp {'ahead' if gap > 0 else 'behind'}"
        return (
            f"{uname(r['first_universe'])} members {pct(r['first_return'])} "
            f"{_since(r['anchor'], r['first_anchor_date'])} vs {pct(r['second_return'])} for "
            f"{uname(r['second_universe'])} members (equal weight), {tail}"
        )

    out.append(
        _finish(
            universes,
            family="universe_spread", key=pl.col("anchor"), order=pl.col("_order"), template=universe_spread,
            fields=[
                "anchor", "session_date", "first_universe", "first_anchor_date", "first_return", "first_members",
                "second_universe", "second_anchor_date", "second_return", "second_members", "gap",
            ],
            value=_bp_expr("gap"), unit="bp", table="marts.cohort_performance",
        )  # fmt: skip
    )
    return out


# Sector facts ----------------------------------------------------------------------------------


def _sector_facts(
    nights: pl.LazyFrame,
    sector_daily: pl.LazyFrame,
    universe_names: Mapping[str, str],
    universe_order: list[str],
) -> list[pl.LazyFrame]:
    day = sector_daily.filter(pl.col("return_equal_weight").is_not_null()).join(
        nights, left_on="session_date", right_on="as_of_date", how="semi"
    )
    # Best and worst only mean something with at least two sectors; ties go to the sector name.
    ret = pl.col("return_equal_weight")
    ranked = (
        day.sort("universe", "session_date", "sector")
        .with_columns(
            sectors=pl.len().over("universe", "session_date"),
            _best=ret.rank("ordinal", descending=True).over("universe", "session_date"),
            _worst=ret.rank("ordinal").over("universe", "session_date"),
        )
        .filter(pl.col("sectors") >= 2)
    )

    out = []
    for family, flag, word in (("sector_best", "_best", "Best"), ("sector_worst", "_worst", "Worst")):

        def sentence(r: dict, word: str = word) -> str:
            u = universe_names.get(r["universe"], r["universe"])
            return (
                f"{word} {u} sector of the day: {r['sector']} {pct(r['return_equal_weight'])} "
                f"(equal weight, {r['members']:,} members; {r['sectors']} sectors)"
            )

        rows = ranked.filter(pl.col(flag) == 1).with_columns(
            as_of_date=pl.col("session_date"), _order=_order_of("universe", universe_order)
        )
        out.append(
            _finish(
                rows,
                family=family, key=pl.col("universe"), order=pl.col("_order"), template=sentence,
                fields=["universe", "sector", "session_date", "members", "return_equal_weight", "sectors"],
                value=pl.col("return_equal_weight"), unit="fraction", table="marts.sector_daily",
            )  # fmt: skip
        )
    return out
