"""marts.cohort_performance: how each cohort did since an anchor session (buy and hold).

Grain: one row per universe, anchor, cohort (profitable, unprofitable, no_data, all) and session
from the anchor session up to `as_of`. For every (universe, anchor, session) with at least one
member on the anchor session, all four cohorts are present (an empty one: members 0, returns null).

Anchors (`ground.settings.parse_anchor`), resolved per session on `sessions`:
- `ytd`: anchor_date = the last session of the previous calendar year of session_date.
- `1y`: anchor_date = the last session on or before the same calendar day one year before
  session_date (29 February -> 28 February).
- an ISO date: anchor_date = the last session on or before that date; rows for sessions on or after
  the date itself (a weekend date: from the next session on, measured from the session before it;
  a date after `as_of`: no rows yet).
An anchor that resolves to no loaded session (history too short) gives no rows.

Returns, with members and cohorts fixed at the anchor session (core.cohorts on anchor_date):
- price(t) = the member's latest adj_close on or before t (forward-filled): a member that stops
  trading keeps its last return; a session without its bar does not drop it.
- A member is *priced* when price(anchor_date) exists and is positive; return(t) = price(t) /
  price(anchor_date) - 1. Unpriced members count in `members`, not in `priced` or the returns.
- return_equal_weight = mean, return_median = median over priced members; return_cap_weight =
  sum(w * return) / sum(w) with w = core.cohorts.weight on anchor_date, over priced members with
  a weight (null when none has one). On anchor_date every return is 0.

Shape of the work: a rolling anchor gives each session its own member set, so the rows to
aggregate are (anchor session, session) pairs x the priced members of the anchor session; prices
are looked up only for the (symbol, session) pairs those rows read (`needed_prices`, an as-of join,
no session x symbol panel). `performance` is the computation for any set of (anchor, session)
rows: the whole history (`cohort_performance`), one night, or one year of a rebuild.
Pure: LazyFrame in, LazyFrame out; `as_of` is passed in.
"""

from __future__ import annotations

from datetime import date
from typing import Sequence

import polars as pl

from transforms.agg import stable_mean, stable_sum

from transforms.cohorts import COHORTS

COHORT_PERFORMANCE_SCHEMA: dict[str, pl.DataType] = {
    "universe": pl.String,
    "anchor": pl.String,
    "cohort": pl.String,
    "session_date": pl.Date,
    "anchor_date": pl.Date,
    "members": pl.Int32,
    "priced": pl.Int32,
    "return_equal_weight": pl.Float64,
    "return_cap_weight": pl.Float64,
    "return_median": pl.Float64,
}

ALL = "all"
PERFORMANCE_COHORTS: tuple[str, ...] = (*COHORTS, ALL)


def _anchor_target(anchor: str) -> pl.Expr:
    """The calendar day whose last session (on or before it) is the anchor of each session_date."""
    session = pl.col("session_date")
    if anchor == "ytd":
        return pl.date(session.dt.year() - 1, 12, 31)
    if anchor == "1y":
        return session.dt.offset_by("-1y")
    try:
        fixed = date.fromisoformat(anchor)
    except ValueError as exc:
        raise ValueError(f"anchor {anchor!r} must be 'ytd', '1y' or a date like 2025-04-08") from exc
    return pl.lit(fixed, dtype=pl.Date)


def resolve_anchors(sessions: pl.LazyFrame, anchors: Sequence[str], *, as_of: date) -> pl.LazyFrame:
    """sessions (session_date) -> anchor, session_date, anchor_date: one row per anchor and session
    up to `as_of` that the anchor applies to (see the module docstring)."""
    sess = sessions.select(pl.col("session_date").cast(pl.Date)).filter(pl.col("session_date") <= as_of).unique()
    lookup = sess.select(pl.col("session_date").alias("anchor_date")).sort("anchor_date")
    parts = []
    for anchor in dict.fromkeys(anchors):  # a repeated anchor would repeat primary keys
        target = _anchor_target(anchor)
        resolved = (
            sess.with_columns(pl.lit(anchor).alias("anchor"), target.alias("_target"))
            .sort("_target")
            .join_asof(lookup, left_on="_target", right_on="anchor_date", strategy="backward")
            # A session measures from its anchor only once the anchor's day has come: a dated anchor
            # later than the session (or than as_of) would otherwise resolve to the last loaded
            # session before it, which is not "the last session on or before that date" but merely
            # the last one loaded. For ytd and 1y the target is always before the session.
            .filter(pl.col("anchor_date").is_not_null(), pl.col("session_date") >= pl.col("_target"))
        )
        if anchor == "ytd":
            # With a hole in the loaded sessions the last session before 1 January could be from an
            # earlier year: that is not "the last session of the previous year".
            resolved = resolved.filter(pl.col("anchor_date").dt.year() == pl.col("session_date").dt.year() - 1)
        parts.append(resolved.select("anchor", "session_date", "anchor_date"))
    if not parts:
        return pl.LazyFrame(schema={"anchor": pl.String, "session_date": pl.Date, "anchor_date": pl.Date})
    return pl.concat(parts, how="vertical")


def prices_at(bars: pl.LazyFrame, needed: pl.LazyFrame) -> pl.LazyFrame:
    """The price of each needed (symbol, session_date): the symbol's latest adj_close on or before
    that session (forward fill: a member that stopped trading keeps its last price). `bars` holds
    (symbol, session_date, adj_close) rows, at least the last one on or before each needed date.
    Needed dates before a symbol's first bar get no row."""
    right = (
        bars.select(
            pl.col("symbol").cast(pl.String),
            pl.col("session_date").cast(pl.Date).alias("_bar_date"),
            pl.col("adj_close").cast(pl.Float64).alias("price"),
        )
        .filter(pl.col("price").is_not_null())
        .sort("_bar_date")
    )
    return (
        needed.select(pl.col("symbol").cast(pl.String), pl.col("session_date").cast(pl.Date))
        .unique()
        .sort("session_date")
        .join_asof(right, left_on="session_date", right_on="_bar_date", by="symbol", strategy="backward",
                   check_sortedness=False)
        .filter(pl.col("price").is_not_null())
        .select("symbol", "session_date", "price")
    )


def members_at_anchors(cohorts: pl.LazyFrame, anchor_map: pl.LazyFrame) -> pl.LazyFrame:
    """core.cohorts rows of the anchor sessions that `anchor_map` uses: universe, anchor_date,
    symbol, cohort, weight."""
    dates = anchor_map.select("anchor_date").unique()
    return cohorts.select(
        pl.col("universe").cast(pl.String),
        pl.col("session_date").cast(pl.Date).alias("anchor_date"),
        pl.col("symbol").cast(pl.String),
        pl.col("cohort").cast(pl.String),
        pl.col("weight").cast(pl.Float64),
    ).join(dates, on="anchor_date", how="semi")


def needed_prices(members: pl.LazyFrame, anchor_map: pl.LazyFrame) -> pl.LazyFrame:
    """(symbol, session_date) pairs whose price `performance` reads: every member of an anchor
    session on that anchor session and on every session that uses it."""
    sessions_of = anchor_map.select("anchor_date", "session_date").unique()
    on_anchor = members.select("symbol", pl.col("anchor_date").alias("session_date"))
    later = members.select("symbol", "anchor_date").unique().join(sessions_of, on="anchor_date").select("symbol", "session_date")
    return pl.concat([on_anchor, later], how="vertical").unique()


def performance(anchor_map: pl.LazyFrame, members: pl.LazyFrame, prices: pl.LazyFrame) -> pl.LazyFrame:
    """marts.cohort_performance rows for the (anchor, session_date, anchor_date) rows of `anchor_map`.

    `members`: universe, anchor_date, symbol, cohort, weight (core.cohorts on each anchor session);
    `prices`: symbol, session_date, price for at least the pairs of `needed_prices`. This is the
    whole computation; the caller decides which sessions it covers (a night, a year, everything).
    """
    at_anchor = (
        members.join(
            prices.rename({"session_date": "anchor_date", "price": "_price0"}), on=["symbol", "anchor_date"], how="left"
        )
        .with_columns(((pl.col("_price0") > 0) & pl.col("_price0").is_not_null()).alias("_is_priced"))
    )
    everyone = at_anchor.with_columns(pl.lit(ALL).alias("cohort"))
    counts = (
        pl.concat([at_anchor, everyone], how="vertical")
        .group_by("universe", "anchor_date", "cohort")
        .agg(pl.len().cast(pl.Int32).alias("members"), pl.col("_is_priced").sum().cast(pl.Int32).alias("priced"))
    )
    # Each priced member of an anchor session, on every session that uses that anchor.
    pairs = anchor_map.select("anchor_date", "session_date").unique()
    held = (
        at_anchor.filter(pl.col("_is_priced"))
        .join(pairs, on="anchor_date", how="inner")
        # A left join then a filter, not an inner join: polars (2.1) may reorder a chain of inner
        # joins, and its estimates chose members x prices on `symbol` alone first (hundreds of
        # millions of rows, ~19 GB at 2,600 members over a year of rolling 1y anchors, for a
        # result of 2.3M rows). A left join is kept where it is written.
        .join(prices, on=["symbol", "session_date"], how="left")
        .filter(pl.col("price").is_not_null())
        .select(
            "universe",
            "anchor_date",
            "session_date",
            "cohort",
            "weight",
            (pl.col("price") / pl.col("_price0") - 1.0).alias("_ret"),
        )
    )
    has_weight = pl.col("weight").is_not_null()
    aggs = [
        stable_mean(pl.col("_ret")).alias("return_equal_weight"),
        pl.col("_ret").median().alias("return_median"),
        stable_sum((pl.col("weight") * pl.col("_ret")).filter(has_weight)).alias("_weighted_sum"),
        stable_sum(pl.col("weight").filter(has_weight)).alias("_weight_sum"),
        has_weight.sum().alias("_weighted"),
    ]
    keys = ["universe", "anchor_date", "session_date"]
    by_cohort = held.group_by(*keys, "cohort").agg(aggs)
    by_all = held.group_by(keys).agg(aggs).with_columns(pl.lit(ALL).alias("cohort"))
    returns = pl.concat([by_cohort, by_all], how="diagonal").select(
        *keys,
        "cohort",
        "return_equal_weight",
        "return_median",
        pl.when((pl.col("_weighted") > 0) & (pl.col("_weight_sum") != 0))
        .then(pl.col("_weighted_sum") / pl.col("_weight_sum"))
        .alias("return_cap_weight"),
    )

    universes_at_anchor = at_anchor.select("universe", "anchor_date").unique()
    cohort_names = pl.LazyFrame({"cohort": list(PERFORMANCE_COHORTS)}, schema={"cohort": pl.String})
    grid = anchor_map.join(universes_at_anchor, on="anchor_date", how="inner").join(cohort_names, how="cross")
    return (
        grid.join(counts, on=["universe", "anchor_date", "cohort"], how="left")
        .join(returns, on=[*keys, "cohort"], how="left")
        .select(
            "universe",
            "anchor",
            "cohort",
            "session_date",
            "anchor_date",
            pl.col("members").fill_null(0).cast(pl.Int32),
            pl.col("priced").fill_null(0).cast(pl.Int32),
            "return_equal_weight",
            "return_cap_weight",
            "return_median",
        )
        .sort("universe", "anchor", "cohort", "session_date")
    )


def cohort_performance(
    cohorts: pl.LazyFrame,
    equity_returns: pl.LazyFrame,
    sessions: pl.LazyFrame,
    *,
    anchors: Sequence[str],
    as_of: date,
) -> pl.LazyFrame:
    """core.cohorts, core.equity_returns (or any symbol, session_date, adj_close frame),
    core.sessions (session_date) -> marts.cohort_performance over the whole history up to `as_of`."""
    anchor_map = resolve_anchors(sessions, anchors, as_of=as_of)
    members = members_at_anchors(cohorts.filter(pl.col("session_date") <= as_of), anchor_map)
    bars = equity_returns.filter(pl.col("session_date") <= as_of)
    prices = prices_at(bars, needed_prices(members, anchor_map))
    return performance(anchor_map, members, prices)
