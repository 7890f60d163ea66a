"""Bounded-window columns of `marts.index_daily`: the weekly change and support / resistance levels.

Grain: one row per index symbol and session of its loaded history (the grain of index_daily, which
joins these columns on (symbol, session_date)). Definitions, with worked examples, are in
docs/definitions.md ("Weekly change", "Support and resistance").

Every column here depends only on the closes of the same symbol on the row's own session and on at
most `INDEX_LEVELS_LOOKBACK_SESSIONS` rows before it, never on a later row. So an incremental night
can recompute a new session from that many earlier rows of each symbol, and appending sessions
never changes a row already computed. "Sessions" are rows of the symbol's loaded history, as for
ret_1d: a session missing from the bars is not invented.

Pure: LazyFrame in, LazyFrame out.
"""

from __future__ import annotations

import polars as pl

# The weekly change compares with the close this many sessions earlier (one trading week).
CHANGE_SESSIONS = 5
# A swing high (low) is a close strictly above (below) each of the SWING_SESSIONS closes before it
# and each of the SWING_SESSIONS closes after it. It becomes known only on the SWING_SESSIONS-th
# session after it: before that, the closes that confirm it have not happened.
SWING_SESSIONS = 5
# Support and resistance look at swings whose own session lies within the last
# LEVELS_WINDOW_SESSIONS sessions, today included (126 sessions: about six months).
LEVELS_WINDOW_SESSIONS = 126
# The earliest close any column of a row reads, in sessions before the row: a swing at the far end
# of the window (LEVELS_WINDOW_SESSIONS - 1 back) is confirmed by the SWING_SESSIONS closes before it.
INDEX_LEVELS_LOOKBACK_SESSIONS = max(CHANGE_SESSIONS, LEVELS_WINDOW_SESSIONS - 1 + SWING_SESSIONS)

INDEX_LEVELS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "session_date": pl.Date,
    "change_5d": pl.Float64,
    "ret_5d": pl.Float64,
    "support_level": pl.Float64,
    "support_date": pl.Date,
    "resistance_level": pl.Float64,
    "resistance_date": pl.Date,
}

if LEVELS_WINDOW_SESSIONS - 1 < SWING_SESSIONS:
    raise AssertionError("the levels window must be long enough to hold a confirmed swing")


def _swings(closes: pl.LazyFrame) -> pl.LazyFrame:
    """symbol, _pos, session_date, close, is_swing_high, is_swing_low: the swing flag of each row,
    read with the closes on both sides of it (only ever used from SWING_SESSIONS rows later)."""
    k = SWING_SESSIONS
    close = pl.col("close")
    before_max = close.shift(1).rolling_max(window_size=k, min_samples=k)
    before_min = close.shift(1).rolling_min(window_size=k, min_samples=k)
    after_max = close.rolling_max(window_size=k, min_samples=k).shift(-k)
    after_min = close.rolling_min(window_size=k, min_samples=k).shift(-k)
    return closes.with_columns(
        # Null (too close to either end of the history) counts as no swing.
        is_swing_high=((close > before_max) & (close > after_max)).fill_null(False).over("symbol"),
        is_swing_low=((close < before_min) & (close < after_min)).fill_null(False).over("symbol"),
    )


def _nearest(closes: pl.LazyFrame, swings: pl.LazyFrame, flag: str, side: str) -> pl.LazyFrame:
    """For each row, the nearest confirmed swing in the window on one side of its close.

    A swing at position i is visible to rows i + SWING_SESSIONS .. i + LEVELS_WINDOW_SESSIONS - 1:
    each swing is expanded to those positions and joined to the rows there (a handful of swings
    per row, so this stays small)."""
    name = "support" if side == "below" else "resistance"
    visible = (
        swings.filter(pl.col(flag))
        .select(
            "symbol",
            pl.int_ranges(
                pl.col("_pos") + SWING_SESSIONS, pl.col("_pos") + LEVELS_WINDOW_SESSIONS, dtype=pl.Int64
            ).alias("_pos"),
            pl.col("close").alias("_level"),
            pl.col("session_date").alias("_level_date"),
        )
        .explode("_pos")
    )
    level = pl.col("_level")
    on_side = level < pl.col("close") if side == "below" else level > pl.col("close")
    below = side == "below"
    return (
        closes.select("symbol", "_pos", "close")
        .join(visible, on=["symbol", "_pos"], how="inner")
        .filter(on_side)
        .group_by("symbol", "_pos")
        .agg(
            (level.max() if below else level.min()).alias(f"{name}_level"),
            # The date of that level; of two swings at one level, the more recent.
            pl.col("_level_date")
            .sort_by(["_level", "_level_date"], descending=[below, True])
            .first()
            .alias(f"{name}_date"),
        )
    )


def index_levels(index_bars: pl.LazyFrame) -> pl.LazyFrame:
    """symbol, session_date, close (any frame with them) -> INDEX_LEVELS_SCHEMA, one row per input row.

    - change_5d = close - close 5 sessions earlier (index points; for the VIX, points of volatility)
    - ret_5d = close / close 5 sessions earlier - 1 (fraction); both null for the first 5 sessions
    - support_level: the highest confirmed swing low strictly below the close, within the window;
      resistance_level: the lowest confirmed swing high strictly above it; null when there is none.
      support_date / resistance_date: the session of that swing.
    """
    closes = (
        index_bars.select(
            pl.col("symbol").cast(pl.String), pl.col("session_date").cast(pl.Date), pl.col("close").cast(pl.Float64)
        )
        .sort("symbol", "session_date")
        .with_columns(_pos=pl.int_range(pl.len(), dtype=pl.Int64).over("symbol"))
    )
    before = pl.col("close").shift(CHANGE_SESSIONS).over("symbol")
    weekly = closes.with_columns(change_5d=pl.col("close") - before, ret_5d=pl.col("close") / before - 1.0)
    swings = _swings(closes)
    return (
        weekly.join(_nearest(closes, swings, "is_swing_low", "below"), on=["symbol", "_pos"], how="left")
        .join(_nearest(closes, swings, "is_swing_high", "above"), on=["symbol", "_pos"], how="left")
        .sort("symbol", "session_date")
        .select([pl.col(c).cast(t) for c, t in INDEX_LEVELS_SCHEMA.items()])
    )
