"""core.membership: validity intervals of each symbol in each universe, from holdings snapshots.

Grain: one row per universe, symbol and membership interval.

Rule (per universe; snapshots are the distinct as_of_dates of its holdings, oldest first):
- A symbol becomes a member on the first session on or after the as_of_date of the first snapshot
  that contains it (valid_from_date).
- It stays a member through consecutive snapshots that contain it. The first later snapshot that
  lacks it ends the interval: valid_to_date = the last session strictly before that snapshot's
  as_of_date. So monthly snapshots give month-long intervals, daily snapshots day-long steps.
- A later snapshot that contains it again opens a new interval.
- A symbol in the newest snapshot of its universe has valid_to_date null (still a member).
- Intervals are computed on session positions: one that holds no session (two snapshots on the
  same weekend) is dropped, and two that touch with no session between them are merged. An
  interval starting after the last session in `sessions` is not emitted yet.

Pure polars: no I/O, no clock. `sessions` must cover every snapshot date (core.sessions does).
"""

from __future__ import annotations

import polars as pl

MEMBERSHIP_SCHEMA: dict[str, pl.DataType] = {
    "universe": pl.String,
    "symbol": pl.String,
    "valid_from_date": pl.Date,
    "valid_to_date": pl.Date,
}


def _sessions_before(dates: pl.LazyFrame, col: str, sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Add `_n_<col>`: the number of sessions strictly before each date in `col` (= the position of
    the first session on or after it)."""
    indexed = sessions.with_row_index("_pos").select(pl.col("session_date").alias("_s"), (pl.col("_pos") + 1).alias("_n"))
    return (
        dates.sort(col)
        .join_asof(indexed, left_on=col, right_on="_s", strategy="backward", allow_exact_matches=False)
        .with_columns(pl.col("_n").fill_null(0).cast(pl.Int64).alias(f"_n_{col}"))
        .drop("_s", "_n")
    )


def membership(holdings: pl.LazyFrame, sessions: pl.LazyFrame) -> pl.LazyFrame:
    """holdings (universe, as_of_date, symbol, ...) and sessions (session_date) -> core.membership."""
    sess = sessions.select(pl.col("session_date").cast(pl.Date)).unique().sort("session_date")
    n_sessions = sess.select(pl.len().cast(pl.Int64).alias("_n_sessions"))

    members = holdings.select("universe", "as_of_date", "symbol").unique()
    snaps = (
        members.select("universe", "as_of_date")
        .unique()
        .sort("universe", "as_of_date")
        .with_columns(
            pl.col("as_of_date").rank("ordinal").over("universe").cast(pl.Int64).alias("_k"),
            pl.col("as_of_date").shift(-1).over("universe", order_by="as_of_date").alias("_next_as_of"),
        )
    )
    snaps = _sessions_before(snaps, "as_of_date", sess)
    # The next snapshot's position; null for the newest snapshot of the universe.
    snaps = _sessions_before(snaps.with_columns(pl.col("_next_as_of").fill_null(pl.date(9999, 12, 31)).alias("_nx")), "_nx", sess)
    snaps = snaps.with_columns(
        pl.col("_n_as_of_date").alias("_from_pos"),
        pl.when(pl.col("_next_as_of").is_null()).then(None).otherwise(pl.col("_n__nx") - 1).alias("_to_pos"),
        (pl.col("_k") == pl.col("_k").max().over("universe")).alias("_is_newest"),
    ).select("universe", "as_of_date", "_k", "_from_pos", "_to_pos", "_is_newest")

    runs = (
        members.join(snaps.select("universe", "as_of_date", "_k"), on=["universe", "as_of_date"])
        .sort("universe", "symbol", "_k")
        .with_columns(
            (pl.col("_k").diff().over("universe", "symbol", order_by="_k").fill_null(0) != 1)
            .cum_sum()
            .over("universe", "symbol", order_by="_k")
            .alias("_run")
        )
        .group_by("universe", "symbol", "_run")
        .agg(pl.col("_k").min().alias("_k_first"), pl.col("_k").max().alias("_k_last"))
    )
    intervals = (
        runs.join(
            snaps.select("universe", pl.col("_k").alias("_k_first"), "_from_pos"), on=["universe", "_k_first"]
        )
        .join(snaps.select("universe", pl.col("_k").alias("_k_last"), "_to_pos", "_is_newest"), on=["universe", "_k_last"])
        .join(n_sessions, how="cross")
        # Not emitted: starts after the loaded sessions, or holds no session at all.
        .filter(
            (pl.col("_from_pos") < pl.col("_n_sessions"))
            & (pl.col("_to_pos").is_null() | (pl.col("_to_pos") >= pl.col("_from_pos")))
        )
        .sort("universe", "symbol", "_from_pos")
    )
    # Merge intervals that touch (no session between the end of one and the start of the next).
    prev_to = pl.col("_to_pos").shift(1).over("universe", "symbol", order_by="_from_pos")
    merged = (
        intervals.with_columns(
            (prev_to.is_null() | (pl.col("_from_pos") > prev_to + 1))
            .cum_sum()
            .over("universe", "symbol", order_by="_from_pos")
            .alias("_group")
        )
        .group_by("universe", "symbol", "_group")
        .agg(
            pl.col("_from_pos").min(),
            # An open interval (null end) stays open after merging.
            pl.when(pl.col("_to_pos").is_null().any()).then(None).otherwise(pl.col("_to_pos").max()).alias("_to_pos"),
        )
    )
    positions = sess.with_row_index("_pos").select(pl.col("_pos").cast(pl.Int64), "session_date")
    return (
        merged.join(positions.rename({"_pos": "_from_pos", "session_date": "valid_from_date"}), on="_from_pos")
        .join(positions.rename({"_pos": "_to_pos", "session_date": "valid_to_date"}), on="_to_pos", how="left")
        .select([pl.col(c).cast(t) for c, t in MEMBERSHIP_SCHEMA.items()])
        .sort("universe", "symbol", "valid_from_date")
    )


def continue_membership(holdings: pl.LazyFrame, sessions: pl.LazyFrame, stored: pl.LazyFrame) -> pl.LazyFrame:
    """Membership from a point on: `holdings` holds one universe's snapshots from P (the latest
    snapshot before a change) on, `sessions` the sessions from P's first session on, `stored` the
    stored intervals reaching that session. Intervals are computed as `membership` does on that
    suffix; one that starts on P's first session continues the stored interval covering it (the
    symbol was a member before P), so it keeps that interval's valid_from_date. With P the first
    snapshot this is `membership` itself.
    """
    fresh = membership(holdings, sessions)
    first = sessions.select(pl.col("session_date").cast(pl.Date).min().alias("_first"))
    carried = (
        stored.select(
            pl.col("universe").cast(pl.String),
            pl.col("symbol").cast(pl.String),
            pl.col("valid_from_date").cast(pl.Date).alias("_carried_from"),
        )
        .join(first, how="cross")
        .filter(pl.col("_carried_from") <= pl.col("_first"))
        .drop("_first")
    )
    return (
        fresh.join(first, how="cross")
        .join(carried, on=["universe", "symbol"], how="left")
        .with_columns(
            pl.when((pl.col("valid_from_date") == pl.col("_first")) & pl.col("_carried_from").is_not_null())
            .then(pl.col("_carried_from"))
            .otherwise(pl.col("valid_from_date"))
            .alias("valid_from_date")
        )
        .select(list(MEMBERSHIP_SCHEMA))
        .sort("universe", "symbol", "valid_from_date")
    )
