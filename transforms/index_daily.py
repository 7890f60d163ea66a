"""Index marts: `marts.index_daily` and `marts.index_records`.

Grain:
- `index_daily`: one row per index symbol and session in the loaded history.
- `index_records`: one row per index symbol and calendar year present in that history.

Both are pure: LazyFrame in, LazyFrame out. Definitions are written down in docs/definitions.md;
the choices that are ours (not a market convention) are commented where they are made.
"""

from __future__ import annotations

import polars as pl

from transforms.index_levels import INDEX_LEVELS_SCHEMA, index_levels

INDEX_DAILY_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "session_date": pl.Date,
    "close": pl.Float64,
    "ret_1d": pl.Float64,
    "ytd_return": pl.Float64,
    "is_record_close": pl.Boolean,
    "records_ytd": pl.Int32,
    "drawdown_from_record": pl.Float64,
    "rsi_14": pl.Float64,
    "sma_50": pl.Float64,
    "sma_200": pl.Float64,
    "high_52w": pl.Float64,
    "low_52w": pl.Float64,
    # Added by migration 0005 (at the end of the table, hence here): transforms/index_levels.py.
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


def _wilder_rsi(close: pl.Expr, period: int = RSI_PERIOD) -> pl.Expr:
    """RSI with Wilder's smoothing, evaluated per symbol (use inside `.over("symbol")`).

    Gains and losses are close-to-close changes (the first session has none). The first average is
    the simple mean of the first `period` gains (losses), available at session index `period`; after
    that avg_t = (avg_{t-1} * (period - 1) + x_t) / period. That recursion is exactly an exponential
    mean with alpha = 1/period and adjust=False started at the seed, so the seed is placed at index
    `period`, earlier values are null, and `ewm_mean` runs the recursion in native code.
    RSI = 100 - 100 / (1 + avg_gain / avg_loss); 100 when avg_loss is 0 (no losses in the window,
    including a perfectly flat series: our choice, documented).
    """
    idx = pl.int_range(pl.len())
    change = close.diff()
    gain = change.clip(lower_bound=0.0)
    loss = (-change).clip(lower_bound=0.0)

    def smoothed(x: pl.Expr) -> pl.Expr:
        seeded = (
            pl.when(idx < period)
            .then(None)
            .when(idx == period)
            .then(x.rolling_mean(window_size=period, min_samples=period))
            .otherwise(x)
        )
        return seeded.ewm_mean(alpha=1.0 / period, adjust=False, ignore_nulls=True)

    avg_gain = smoothed(gain)
    avg_loss = smoothed(loss)
    return (
        pl.when(avg_loss.is_null())
        .then(None)
        .when(avg_loss == 0.0)
        .then(100.0)
        .otherwise(100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    )


def index_daily(index_bars: pl.LazyFrame) -> pl.LazyFrame:
    """marts.index_daily from index bars (BARS_SCHEMA columns, any number of symbols).

    One row per symbol and session. "Previous session" means the previous row of that symbol's
    loaded history: a session missing from the bars is not invented.
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

    # Last close of each calendar year, joined to the following year as the YTD base. A year with
    # no loaded close before it (the first year of history, or a gap year) has no YTD return.
    year_end = (
        bars.group_by("symbol", "year")
        .agg(prev_year_close=pl.col("close").sort_by("session_date").last())
        .with_columns(year=(pl.col("year") + 1).cast(pl.Int32))
    )

    prior_max = pl.col("close").shift(1).cum_max()
    out = (
        bars.join(year_end, on=["symbol", "year"], how="left")
        .sort("symbol", "session_date")
        .with_columns(
            ret_1d=(pl.col("close") / pl.col("close").shift(1) - 1.0).over("symbol"),
            ytd_return=pl.col("close") / pl.col("prev_year_close") - 1.0,
            # Strictly above every earlier close; the first row has no earlier close, so it is not
            # a record (prior_max is null there and the comparison is filled with False).
            is_record_close=(pl.col("close") > prior_max).fill_null(False).over("symbol"),
            drawdown_from_record=(pl.col("close") / pl.col("close").cum_max() - 1.0).over("symbol"),
            rsi_14=_wilder_rsi(pl.col("close")).over("symbol"),
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
            records_ytd=pl.col("is_record_close").cast(pl.Int32).cum_sum().over("symbol", "year"),
        )
        # The bounded-window columns (weekly change, support and resistance) live in their own
        # module so an incremental night can run them on a look-back window alone.
        .join(index_levels(bars), on=["symbol", "session_date"], how="left")
        .sort("symbol", "session_date")
    )
    return out.select([pl.col(c).cast(t) for c, t in INDEX_DAILY_SCHEMA.items()])


def index_records(index_daily: pl.LazyFrame) -> pl.LazyFrame:
    """marts.index_records: record closes per symbol and calendar year, from marts.index_daily.

    Every year present in a symbol's history gets a row, with 0 record closes and null dates when
    it had none. `history_start` is the symbol's first loaded session: records are only "records"
    relative to that history.
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
    starts = daily.group_by("symbol").agg(history_start=pl.col("session_date").min())
    return (
        per_year.join(starts, on="symbol", how="left")
        .sort("symbol", "year")
        .select([pl.col(c).cast(t) for c, t in INDEX_RECORDS_SCHEMA.items()])
    )
