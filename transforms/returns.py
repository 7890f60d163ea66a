"""core.equity_returns: the daily return of every constituent on its adjusted close.

Grain: one row per constituent symbol and session it has a bar for.

`ret_1d = adj_close / adj_close of the symbol's previous row - 1`, null on a symbol's first row.
"Previous row" is the previous bar of that symbol in the loaded history, as for indexes
(docs/definitions.md, "Daily return"): a session without a bar is not filled in, so the return
after a gap (a halt, a hole in the source) spans the gap. Adj Close carries splits and dividends,
so a split day is not a -50% return.

Pure: LazyFrame in, LazyFrame out.
"""

from __future__ import annotations

import polars as pl

EQUITY_RETURNS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "session_date": pl.Date,
    "adj_close": pl.Float64,
    "ret_1d": pl.Float64,
}


def equity_returns(equity_bars: pl.LazyFrame, previous: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """raw.equity_bars (symbol, session_date, adj_close, ...) -> core.equity_returns.

    `previous` (symbol, adj_close) carries state into a window of bars: the symbol's last adj_close
    before the window's first bar, so that first bar gets its return. Without it (or for a symbol
    it does not name) the first bar of the window is the symbol's first: ret_1d is null.
    """
    bars = (
        equity_bars.select(
            pl.col("symbol").cast(pl.String),
            pl.col("session_date").cast(pl.Date),
            pl.col("adj_close").cast(pl.Float64),
        )
        # core.equity_returns.adj_close is NOT NULL; raw has the same constraint, this only
        # keeps a frame built elsewhere (a test, a csv import) from breaking the contract.
        .filter(pl.col("adj_close").is_not_null())
    )
    before = pl.col("adj_close").shift(1).over("symbol", order_by="session_date")
    if previous is not None:
        bars = bars.join(
            previous.select(pl.col("symbol").cast(pl.String), pl.col("adj_close").cast(pl.Float64).alias("_prev")),
            on="symbol",
            how="left",
        )
        before = before.fill_null(pl.col("_prev"))
    return (
        bars.sort("symbol", "session_date")
        .with_columns((pl.col("adj_close") / before - 1.0).alias("ret_1d"))
        .select(list(EQUITY_RETURNS_SCHEMA))
    )
