"""marts.sector_daily: how each sector of a universe did on each session.

Grain: one row per universe, sector and session with at least one member in that sector.

- members: the universe's members in the sector on the session (core.cohorts rows).
- return_equal_weight: mean of the members' ret_1d that session (core.equity_returns); a member
  without a return that day (no bar, or its first bar) is left out; null when none has one.
- return_cap_weight: sum(w * ret_1d) / sum(w) over the members with both a return and a weight.
  w is the member's weight on the universe's previous session (start-of-day weight: the return
  of day t is earned on the holdings at the close of t-1, as an index computes it); a member
  without one there (it joined on the session, or had no weight then) uses its weight of the session. Weights are
  re-normalized over the sector's members that count, so they need not sum to 1 beforehand.
- sector: as in the holdings snapshot (core.cohorts.sector); a member without one is reported
  under "Unknown" rather than dropped, so that sector members add up to the universe's members.

Pure: LazyFrame in, LazyFrame out.
"""

from __future__ import annotations

import polars as pl

from transforms.agg import stable_mean, stable_sum

SECTOR_DAILY_SCHEMA: dict[str, pl.DataType] = {
    "universe": pl.String,
    "sector": pl.String,
    "session_date": pl.Date,
    "members": pl.Int32,
    "return_equal_weight": pl.Float64,
    "return_cap_weight": pl.Float64,
}

UNKNOWN_SECTOR = "Unknown"


def sector_daily(cohorts: pl.LazyFrame, equity_returns: pl.LazyFrame) -> pl.LazyFrame:
    """core.cohorts, core.equity_returns -> marts.sector_daily."""
    rows = cohorts.select(
        pl.col("universe").cast(pl.String),
        pl.col("symbol").cast(pl.String),
        pl.col("session_date").cast(pl.Date),
        pl.col("sector").cast(pl.String).fill_null(UNKNOWN_SECTOR),
        pl.col("weight").cast(pl.Float64),
    )
    # The universe's previous session: the previous date on which it had members.
    previous = (
        rows.select("universe", "session_date")
        .unique()
        .sort("universe", "session_date")
        .with_columns(pl.col("session_date").shift(1).over("universe").alias("_previous_date"))
    )
    previous_weight = rows.select(
        "universe", "symbol", pl.col("session_date").alias("_previous_date"), pl.col("weight").alias("_previous_weight")
    )
    rets = equity_returns.select(
        pl.col("symbol").cast(pl.String), pl.col("session_date").cast(pl.Date), pl.col("ret_1d").cast(pl.Float64)
    )
    day = (
        rows.join(previous, on=["universe", "session_date"], how="left")
        .join(previous_weight, on=["universe", "symbol", "_previous_date"], how="left")
        .join(rets, on=["symbol", "session_date"], how="left")
        .with_columns(pl.coalesce("_previous_weight", "weight").alias("_w"))
    )
    counts = pl.col("ret_1d").is_not_null() & pl.col("_w").is_not_null()
    return (
        day.group_by("universe", "sector", "session_date")
        .agg(
            pl.len().cast(pl.Int32).alias("members"),
            stable_mean(pl.col("ret_1d")).alias("return_equal_weight"),
            stable_sum((pl.col("_w") * pl.col("ret_1d")).filter(counts)).alias("_weighted_sum"),
            stable_sum(pl.col("_w").filter(counts)).alias("_weight_sum"),
            counts.sum().alias("_weighted"),
        )
        .select(
            "universe",
            "sector",
            "session_date",
            "members",
            "return_equal_weight",
            pl.when((pl.col("_weighted") > 0) & (pl.col("_weight_sum") != 0))
            .then(pl.col("_weighted_sum") / pl.col("_weight_sum"))
            .alias("return_cap_weight"),
        )
        .sort("universe", "sector", "session_date")
    )
