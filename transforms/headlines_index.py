"""The index fact families of `marts.headlines`, one function each: the record close or the
distance from it (`index_record` / `index_from_record`), the YTD return (`ytd`), an RSI-14 outside
30..70 (`rsi`), the volatility line (`volatility`). All read `marts.index_daily` (plus
`marts.index_records.history_start`) through one frame of the nights' rows, `index_nights`.

Pure: LazyFrame in, LazyFrame out (`transforms.headlines` assembles and ranks the families).
"""

from __future__ import annotations

from typing import Mapping

import polars as pl

from transforms.headlines_text import display_name, fact_rows, number, order_of, ordinal, pct, pct_abs, points, rounded


def index_facts(
    nights: pl.LazyFrame,
    index_daily: pl.LazyFrame,
    index_records: pl.LazyFrame,
    names: Mapping[str, str],
    vol: list[str],
    symbol_order: list[str],
) -> list[pl.LazyFrame]:
    """Every index family. Volatility indexes (`vol`) get the volatility line and none of the
    price-index lines (a record or YTD return of the VIX is not a headline)."""
    history = index_nights(nights, index_daily, index_records, symbol_order)
    prices = history.filter(~pl.col("symbol").is_in(vol))
    return [
        *record_facts(prices, names),
        ytd_facts(prices, names),
        rsi_facts(prices, names),
        volatility_facts(history.filter(pl.col("symbol").is_in(vol)), names),
    ]


def index_nights(
    nights: pl.LazyFrame, index_daily: pl.LazyFrame, index_records: pl.LazyFrame, symbol_order: list[str]
) -> pl.LazyFrame:
    """index_daily's rows of the nights, with what the index families add from the rows before:
    the close 5 sessions earlier and its date, history_start."""
    daily = index_daily.sort("symbol", "session_date")
    # record_close, record_date and prev_year_close (the YTD base) are index_daily's own columns: a
    # night reads a window of rows, not the history a running maximum or a year's end would need.
    return (
        daily.with_columns(
            close_5_sessions_ago=pl.col("close").shift(5).over("symbol"),
            date_5_sessions_ago=pl.col("session_date").shift(5).over("symbol"),
        )
        .join(nights, left_on="session_date", right_on="as_of_date", how="semi")
        .with_columns(as_of_date=pl.col("session_date"))
        .join(index_records.group_by("symbol").agg(pl.col("history_start").min()), on="symbol", how="left")
        .with_columns(_order=order_of("symbol", symbol_order))
    )


def record_facts(prices: pl.LazyFrame, names: Mapping[str, str]) -> list[pl.LazyFrame]:
    """`index_record` on a record close, `index_from_record` on any other session (one of the two
    per index and night)."""

    def record(r: dict) -> str:
        return (
            f"{display_name(names, r['symbol'])} closed at a record {points(r['close'])}, "
            f"its {ordinal(r['records_ytd'])} record close of {r['session_date'].year}"
        )

    def from_record(r: dict) -> str:
        name, dd = display_name(names, r["symbol"]), r["drawdown_from_record"]
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
    return [
        fact_rows(
            with_history.filter(pl.col("is_record_close")),
            family="index_record", key=pl.col("symbol"), order=pl.col("_order"), template=record,
            fields=record_fields, value=pl.col("close"), unit="index_points", table="marts.index_daily",
        ),
        fact_rows(
            with_history.filter(~pl.col("is_record_close")),
            family="index_from_record", key=pl.col("symbol"), order=pl.col("_order"), template=from_record,
            fields=from_fields, value=pl.col("drawdown_from_record"), unit="fraction", table="marts.index_daily",
        ),
    ]


def ytd_facts(prices: pl.LazyFrame, names: Mapping[str, str]) -> pl.LazyFrame:
    """`ytd`: the YTD return with the two closes it compares (both index_daily's)."""

    def ytd(r: dict) -> str:
        return (
            f"{display_name(names, r['symbol'])} {pct(r['ytd_return'])} year to date, at {points(r['close'])} "
            f"against {points(r['prev_year_close'])} at the end of {r['session_date'].year - 1}"
        )

    return fact_rows(
        prices.filter(pl.col("ytd_return").is_not_null() & pl.col("prev_year_close").is_not_null()),
        family="ytd", key=pl.col("symbol"), order=pl.col("_order"), template=ytd,
        fields=["symbol", "session_date", "close", "prev_year_close", "ytd_return"],
        value=pl.col("ytd_return"), unit="fraction", table="marts.index_daily",
    )


def rsi_facts(prices: pl.LazyFrame, names: Mapping[str, str]) -> pl.LazyFrame:
    """`rsi`: only when RSI-14 is above 70 or below 30."""

    def rsi(r: dict) -> str:
        level = r["rsi_14"]
        side = "above 70 (overbought)" if level > 70 else "below 30 (oversold)"
        return f"{display_name(names, r['symbol'])} RSI-14 at {number(level, 1)}, {side}"

    return fact_rows(
        prices.filter((pl.col("rsi_14") > 70) | (pl.col("rsi_14") < 30)),
        family="rsi", key=pl.col("symbol"), order=pl.col("_order"), template=rsi,
        fields=["symbol", "session_date", "close", "rsi_14"],
        value=pl.col("rsi_14"), unit="level", table="marts.index_daily",
    )


def volatility_facts(volatility: pl.LazyFrame, names: Mapping[str, str]) -> pl.LazyFrame:
    """`volatility`: the level of each volatility index and its move over 5 sessions."""

    def sentence(r: dict) -> str:
        # The change is the mart's change_5d / ret_5d (one definition); the earlier close and its
        # date are shown so the reader can check it.
        name, close, change = display_name(names, r["symbol"]), r["close"], r["change_5d"]
        if change is None or r["ret_5d"] is None:
            return f"{name} at {number(close)}"
        moved_points = rounded(change, 2)
        direction = "up" if moved_points > 0 else "down" if moved_points < 0 else "unchanged"
        moved = f"{direction} {number(abs(change))} points" if moved_points != 0 else direction
        return (
            f"{name} at {number(close)}, {moved} ({pct(r['ret_5d'])}) over the week "
            f"(5 sessions, from {number(r['close_5_sessions_ago'])} on {r['date_5_sessions_ago'].isoformat()})"
        )

    return fact_rows(
        volatility,
        family="volatility", key=pl.col("symbol"), order=pl.col("_order"), template=sentence,
        fields=[
            "symbol", "session_date", "close", "change_5d", "ret_5d", "close_5_sessions_ago", "date_5_sessions_ago",
        ],
        value=pl.col("close"), unit="level", table="marts.index_daily",
    )  # fmt: skip
