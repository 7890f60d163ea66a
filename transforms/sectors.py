"""The sector marts: `marts.sector_daily`, how each sector of a universe did on each session, and
`marts.sector_performance`, its returns compounded since each anchor.

Grain of sector_daily: one row per universe, sector and session with at least one member in that sector.

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

sector_performance: one row per universe, anchor, sector and session from the anchor session on,
for each sector with a sector_daily row on the session (see `sector_performance`).

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

SECTOR_PERFORMANCE_SCHEMA: dict[str, pl.DataType] = {
    "universe": pl.String,
    "anchor": pl.String,
    "sector": pl.String,
    "session_date": pl.Date,
    "anchor_date": pl.Date,
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


def sector_performance(
    sector_daily: pl.LazyFrame, anchors: pl.LazyFrame, history_start: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """marts.sector_performance: each sector's daily returns compounded since each anchor session.

    `anchors` (anchor, session_date, anchor_date; `transforms.cohort_performance.resolve_anchors`)
    names the rows wanted; `sector_daily` holds at least its rows from the earliest anchor_date of
    them on. `history_start` (universe, history_start) is each universe's first sector_daily
    session; without it, the first in `sector_daily`.

    The return since the anchor on session t is prod(1 + r) - 1 over the sector's sessions after
    the anchor session up to t, r its daily return (a session without one counts as 0, the sector's
    members as of each session: rebalanced daily, not buy and hold); 0 on the anchor session. It is
    computed as G(t) / G(anchor) - 1, G the running product of (1 + r) over the rows given, so
    every anchor costs one pass whatever its distance. A universe whose sector history starts after
    the anchor session has no rows for that anchor (the return would not be "since" it).
    """
    keys = ["universe", "sector"]
    daily = sector_daily.select(
        pl.col("universe").cast(pl.String),
        pl.col("sector").cast(pl.String),
        pl.col("session_date").cast(pl.Date),
        pl.col("return_equal_weight").cast(pl.Float64),
        pl.col("return_cap_weight").cast(pl.Float64),
    ).sort(*keys, "session_date")
    growth = daily.with_columns(
        _g_ew=(1.0 + pl.col("return_equal_weight").fill_null(0.0)).cum_prod().over(keys),
        _g_cw=(1.0 + pl.col("return_cap_weight").fill_null(0.0)).cum_prod().over(keys),
    )
    starts = (
        daily.group_by("universe").agg(history_start=pl.col("session_date").min())
        if history_start is None
        else history_start.select(pl.col("universe").cast(pl.String), pl.col("history_start").cast(pl.Date))
    )
    wanted = anchors.select(
        pl.col("anchor").cast(pl.String), pl.col("session_date").cast(pl.Date), pl.col("anchor_date").cast(pl.Date)
    )
    # The growth at the anchor: the sector's last row on or before the anchor session (1 when it
    # has none there: its first row after the anchor starts from nothing earned yet).
    at_anchor = growth.select(
        *keys, pl.col("session_date").alias("_base_date"), pl.col("_g_ew").alias("_base_ew"), pl.col("_g_cw").alias("_base_cw")
    ).sort("_base_date")
    rows = (
        growth.join(wanted, on="session_date", how="inner")
        .join(starts, on="universe", how="inner")
        .filter(pl.col("history_start") <= pl.col("anchor_date"))
        .sort("anchor_date")
        .join_asof(at_anchor, left_on="anchor_date", right_on="_base_date", by=keys, strategy="backward", check_sortedness=False)
        .with_columns(
            return_equal_weight=pl.col("_g_ew") / pl.col("_base_ew").fill_null(1.0) - 1.0,
            return_cap_weight=pl.col("_g_cw") / pl.col("_base_cw").fill_null(1.0) - 1.0,
        )
    )
    return rows.select([pl.col(c).cast(t) for c, t in SECTOR_PERFORMANCE_SCHEMA.items()]).sort(
        "universe", "anchor", "sector", "session_date"
    )
