"""Index marts: `marts.index_daily` and `marts.index_records`.

Grain:
- `index_daily`: one row per index symbol and session in the loaded history.
- `index_records`: one row per index symbol and calendar year present in that history.

Both are pure: LazyFrame in, LazyFrame out. Definitions are written down in docs/definitions.md;
the choices that are ours (not a market convention) are commented where they are made.
"""

from __future__ import annotations

import polars as pl

from transforms.index_levels import INDEX_LEVELS_LOOKBACK_SESSIONS, INDEX_LEVELS_SCHEMA, index_levels

INDEX_DAILY_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "session_date": pl.Date,
    "close": pl.Float64,
    "ret_1d": pl.Float64,
    "ytd_return": pl.Float64,
    "prev_year_close": pl.Float64,
    "is_record_close": pl.Boolean,
    "records_ytd": pl.Int32,
    "drawdown_from_record": pl.Float64,
    "record_close": pl.Float64,
    "record_date": pl.Date,
    "rsi_14": pl.Float64,
    "rsi_avg_gain": pl.Float64,
    "rsi_avg_loss": pl.Float64,
    "sma_50": pl.Float64,
    "sma_200": pl.Float64,
    "high_52w": pl.Float64,
    "low_52w": pl.Float64,
    # The bounded-window columns of transforms/index_levels.py.
    **{c: t for c, t in INDEX_LEVELS_SCHEMA.items() if c not in ("symbol", "session_date")},
}

INDEX_RECORDS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "year": pl.Int32,
    "record_closes": pl.Int32,
    "first_record_date": pl.Date,
    "last_record_date": pl.Date,
    "history_start": pl.Date,
}

RSI_PERIOD = 14
# 52 weeks of NYSE sessions: 252 is the market convention (a year has 250-253 sessions).
SESSIONS_52W = 252
# The most sessions a calendar year has had (253): the previous year's last close, the YTD base, is
# at most that many rows before any row of a year.
YEAR_SESSIONS_MAX = 253
# What a night re-reads of a symbol's earlier history before its first new row: every window column
# (SMA-200, 52-week range, YTD base, support and resistance) reaches no further back. The running
# figures (record, records this year, RSI averages) continue from the stored row instead.
INDEX_LOOKBACK_SESSIONS = max(SESSIONS_52W, YEAR_SESSIONS_MAX, INDEX_LEVELS_LOOKBACK_SESSIONS) + 1
# The stored columns a later night continues from (the carried state).
INDEX_STATE_COLUMNS = ("session_date", "record_close", "record_date", "records_ytd", "rsi_avg_gain", "rsi_avg_loss")


def _wilder_average(x: pl.Expr, idx: pl.Expr, carried: pl.Expr | None, period: int = RSI_PERIOD) -> pl.Expr:
    """Wilder's smoothing of `x` (gains or losses) per symbol (use inside `.over("symbol")`).

    Without carried state: the first average is the simple mean of the first `period` values (the
    first row has none), available at row index `period`; after that
    avg_t = (avg_{t-1} * (period - 1) + x_t) / period. That recursion is exactly an exponential mean
    with alpha = 1/period and adjust=False started at the seed, so the seed is placed at index
    `period`, earlier values are null, and `ewm_mean` runs the recursion in native code.
    With carried state (a night): the stored average stands on the state row and the recursion
    continues from it on the rows after, the same arithmetic as an uninterrupted run.
    """
    seeded = (
        pl.when(idx < period)
        .then(None)
        .when(idx == period)
        .then(x.rolling_mean(window_size=period, min_samples=period))
        .otherwise(x)
    )
    if carried is not None:
        seeded = pl.when(pl.col("_part") < 0).then(None).when(pl.col("_part") == 0).then(carried).otherwise(
            pl.when(pl.col("_state_date").is_null()).then(seeded).otherwise(x)
        )
    return seeded.ewm_mean(alpha=1.0 / period, adjust=False, ignore_nulls=True)


def _rsi(avg_gain: pl.Expr, avg_loss: pl.Expr) -> pl.Expr:
    """RSI = 100 - 100 / (1 + avg_gain / avg_loss); 100 when avg_loss is 0 (no losses in the
    window, including a perfectly flat series: our choice, documented)."""
    return (
        pl.when(avg_loss.is_null())
        .then(None)
        .when(avg_loss == 0.0)
        .then(100.0)
        .otherwise(100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    )


def index_daily(index_bars: pl.LazyFrame, state: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """marts.index_daily from index bars (BARS_SCHEMA columns, any number of symbols).

    One row per symbol and session. "Previous session" means the previous row of that symbol's
    loaded history: a session missing from the bars is not invented.

    `state` (a night): per symbol, its stored index_daily row (INDEX_STATE_COLUMNS) on the last
    session before the rows to compute. `index_bars` then holds, for that symbol, at least the
    INDEX_LOOKBACK_SESSIONS bars up to and including that session (the window columns read them),
    and only the rows after it are returned; the record, this year's record count and the RSI
    averages continue from the state row. A symbol without a state row is computed from its first
    bar, all rows returned. With no state at all this is the whole-history computation.
    """
    bars = (
        index_bars.select(
            pl.col("symbol").cast(pl.String),
            pl.col("session_date").cast(pl.Date),
            pl.col("close").cast(pl.Float64),
        )
        .sort("symbol", "session_date")
        .with_columns(year=pl.col("session_date").dt.year().cast(pl.Int32))
    )
    if state is not None:
        carried = state.select(
            pl.col("symbol").cast(pl.String),
            pl.col("session_date").cast(pl.Date).alias("_state_date"),
            pl.col("record_close").cast(pl.Float64).alias("_record_close"),
            pl.col("record_date").cast(pl.Date).alias("_record_date"),
            pl.col("records_ytd").cast(pl.Int32).alias("_records_ytd"),
            pl.col("rsi_avg_gain").cast(pl.Float64).alias("_avg_gain"),
            pl.col("rsi_avg_loss").cast(pl.Float64).alias("_avg_loss"),
        )
        bars = bars.join(carried, on="symbol", how="left")
    else:
        bars = bars.with_columns(
            pl.lit(None, dtype=pl.Date).alias("_state_date"),
            pl.lit(None, dtype=pl.Float64).alias("_record_close"),
            pl.lit(None, dtype=pl.Date).alias("_record_date"),
            pl.lit(None, dtype=pl.Int32).alias("_records_ytd"),
            pl.lit(None, dtype=pl.Float64).alias("_avg_gain"),
            pl.lit(None, dtype=pl.Float64).alias("_avg_loss"),
        )
    # _part: -1 a context row before the state row, 0 the state row, 1 a row to compute.
    bars = bars.with_columns(
        pl.when(pl.col("_state_date").is_null())
        .then(1)
        .when(pl.col("session_date") < pl.col("_state_date"))
        .then(-1)
        .when(pl.col("session_date") == pl.col("_state_date"))
        .then(0)
        .otherwise(1)
        .alias("_part")
    ).sort("symbol", "session_date")

    # Last close of each calendar year, joined to the following year as the YTD base. A year with
    # no loaded close before it (the first year of history, or a gap year) has no YTD return.
    year_end = (
        bars.group_by("symbol", "year")
        .agg(prev_year_close=pl.col("close").sort_by("session_date").last())
        .with_columns(year=(pl.col("year") + 1).cast(pl.Int32))
    )

    context, state_row, fresh = pl.col("_part") < 0, pl.col("_part") == 0, pl.col("_part") > 0
    first_row = pl.int_range(pl.len()) == 0
    # Running figures: from the state row's stored values (earlier rows ignored), else from row 0.
    record_base = pl.when(context).then(None).when(state_row).then(pl.col("_record_close")).otherwise(pl.col("close"))
    record_close = record_base.cum_max()
    is_record = (fresh & (pl.col("close") > record_close.shift(1))).fill_null(False)
    change = pl.col("close").diff()
    idx = pl.int_range(pl.len())
    avg_gain = _wilder_average(change.clip(lower_bound=0.0), idx, pl.col("_avg_gain"))
    avg_loss = _wilder_average((-change).clip(lower_bound=0.0), idx, pl.col("_avg_loss"))
    out = (
        bars.join(year_end, on=["symbol", "year"], how="left")
        .sort("symbol", "session_date")
        .with_columns(
            ret_1d=(pl.col("close") / pl.col("close").shift(1) - 1.0).over("symbol"),
            ytd_return=pl.col("close") / pl.col("prev_year_close") - 1.0,
            # Strictly above every earlier close; the first row has no earlier close, so it is not
            # a record (the comparison is null there and filled with False).
            is_record_close=is_record.over("symbol"),
            record_close=record_close.over("symbol"),
            rsi_avg_gain=avg_gain.over("symbol"),
            rsi_avg_loss=avg_loss.over("symbol"),
            sma_50=pl.col("close").rolling_mean(window_size=50, min_samples=50).over("symbol"),
            sma_200=pl.col("close").rolling_mean(window_size=200, min_samples=200).over("symbol"),
            # Full windows only: a "52-week high" over less than 52 weeks of history would be a
            # different, smaller number under the same name, so it stays null until 252 sessions.
            high_52w=pl.col("close")
            .rolling_max(window_size=SESSIONS_52W, min_samples=SESSIONS_52W)
            .over("symbol"),
            low_52w=pl.col("close")
            .rolling_min(window_size=SESSIONS_52W, min_samples=SESSIONS_52W)
            .over("symbol"),
        )
        .with_columns(
            drawdown_from_record=pl.col("close") / pl.col("record_close") - 1.0,
            rsi_14=_rsi(pl.col("rsi_avg_gain"), pl.col("rsi_avg_loss")),
            # First session on which today's record level was reached (records are strict, so a
            # later tie does not move it); on the state row, the stored one.
            record_date=pl.when(context)
            .then(None)
            .when(state_row)
            .then(pl.col("_record_date"))
            .when(pl.col("is_record_close") | (first_row & pl.col("_state_date").is_null()))
            .then(pl.col("session_date"))
            .forward_fill()
            .over("symbol"),
            # This year's count continues the state row's when it is of the same year.
            records_ytd=pl.when(context)
            .then(None)
            .when(state_row)
            .then(pl.col("_records_ytd"))
            .otherwise(pl.col("is_record_close").cast(pl.Int32))
            .cum_sum()
            .over("symbol", "year"),
        )
        # The bounded-window columns (weekly change, support and resistance) live in their own
        # module so an incremental night can run them on a look-back window alone.
        .join(index_levels(bars.select("symbol", "session_date", "close", "year")), on=["symbol", "session_date"], how="left")
        .filter(fresh)
        .sort("symbol", "session_date")
    )
    return out.select([pl.col(c).cast(t) for c, t in INDEX_DAILY_SCHEMA.items()])


def index_records(index_daily: pl.LazyFrame, history_start: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """marts.index_records: record closes per symbol and calendar year, from marts.index_daily.

    Every year present in a symbol's history gets a row, with 0 record closes and null dates when
    it had none. `history_start` is the symbol's first loaded session: records are only "records"
    relative to that history. A night passes only the rows of the years it recomputes, with each
    symbol's history start (symbol, history_start) from the stored rows.
    """
    daily = index_daily.select("symbol", "session_date", "is_record_close").with_columns(
        year=pl.col("session_date").dt.year().cast(pl.Int32)
    )
    record_date = pl.col("session_date").filter(pl.col("is_record_close"))
    per_year = daily.group_by("symbol", "year").agg(
        record_closes=pl.col("is_record_close").sum().cast(pl.Int32),
        first_record_date=record_date.min(),
        last_record_date=record_date.max(),
    )
    starts = daily.group_by("symbol").agg(history_start=pl.col("session_date").min()) if history_start is None else history_start
    return (
        per_year.join(starts, on="symbol", how="left")
        .sort("symbol", "year")
        .select([pl.col(c).cast(t) for c, t in INDEX_RECORDS_SCHEMA.items()])
    )
