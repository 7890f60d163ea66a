"""marts.cohort_performance: how each cohort did since an anchor session (buy and hold).

Grain: one row per universe, anchor, cohort (profitable, unprofitable, no_data, all) and session
from the anchor session up to `as_of`. For every (universe, anchor, session) with at least one
member on the anchor session, all four cohorts are present (an empty one: members 0, returns null).

Anchors (`smallcaps.settings.parse_anchor`), resolved per session on `sessions`:
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

Speed: a rolling anchor gives each session its own member set, so the work is a set of joins:
(anchor_date, session) pairs x priced members of anchor_date x the forward-filled price panel,
then one group-by. Keys are integers (symbol and session positions) so the big joins are cheap.
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


def _positions(sessions: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    return (
        sessions.select(pl.col("session_date").cast(pl.Date))
        .filter(pl.col("session_date") <= as_of)
        .unique()
        .sort("session_date")
        .with_row_index("_pos")
        .with_columns(pl.col("_pos").cast(pl.Int32))
    )


def _key(sym: str, position: str) -> pl.Expr:
    """One Int64 for (symbol id, session position): both are far below 2**31."""
    return (pl.col(sym).cast(pl.Int64) * (1 << 32) + pl.col(position).cast(pl.Int64)).alias("_key")


def cohort_performance(
    cohorts: pl.LazyFrame,
    equity_returns: pl.LazyFrame,
    sessions: pl.LazyFrame,
    *,
    anchors: Sequence[str],
    as_of: date,
) -> pl.LazyFrame:
    """core.cohorts, core.equity_returns (or any symbol, session_date, adj_close frame),
    core.sessions (session_date) -> marts.cohort_performance."""
    pos = _positions(sessions, as_of)
    anchor_map = (
        resolve_anchors(sessions, anchors, as_of=as_of)
        .join(pos, on="session_date", how="inner")
        .join(pos.rename({"session_date": "anchor_date", "_pos": "_anchor_pos"}), on="anchor_date", how="inner")
    )

    members = cohorts.select(
        pl.col("universe").cast(pl.String),
        pl.col("symbol").cast(pl.String),
        pl.col("session_date").cast(pl.Date),
        pl.col("cohort").cast(pl.String),
        pl.col("weight").cast(pl.Float64),
    ).filter(pl.col("session_date") <= as_of)
    bars = (
        equity_returns.select(
            pl.col("symbol").cast(pl.String), pl.col("session_date").cast(pl.Date), pl.col("adj_close").cast(pl.Float64)
        )
        .filter(pl.col("adj_close").is_not_null())
        .join(pos, on="session_date", how="inner")
    )
    # Symbols as integers, and (symbol, session position) as one Int64 key: the large joins below
    # run on a single integer column.
    # Sorted before numbering: `symbols` feeds two branches of the plan, and unique() alone may
    # number the symbols differently in each.
    symbols = bars.select("symbol").unique().sort("symbol").with_row_index("_sym")

    # Forward-filled price panel: each bar's adj_close holds from its session up to the session
    # before the symbol's next bar (or through as_of), so the panel is built by expanding those
    # ranges, with no join and no fill. It starts at the symbol's first bar.
    n_sessions = pos.select(pl.len().cast(pl.Int32).alias("_n"))
    # The next bar is read right after the sort: a join does not keep row order (the streaming
    # engine really does reorder), so nothing order-dependent may follow one.
    same_symbol_next = pl.col("_sym").shift(-1) == pl.col("_sym")
    panel = (
        bars.join(symbols, on="symbol", how="inner")
        .sort("_sym", "_pos")
        .with_columns(pl.when(same_symbol_next).then(pl.col("_pos").shift(-1)).alias("_next_pos"))
        .join(n_sessions, how="cross")
        .select(
            "_sym",
            pl.int_ranges(pl.col("_pos"), pl.col("_next_pos").fill_null(pl.col("_n")), dtype=pl.Int32).alias("_pos"),
            pl.col("adj_close").alias("_price"),
        )
        .explode("_pos")
        .select(_key("_sym", "_pos"), "_price")
    )

    # Members of each anchor session with their cohort, weight and price there.
    anchor_sessions = anchor_map.select("anchor_date", "_anchor_pos").unique()
    at_anchor = (
        members.join(anchor_sessions, left_on="session_date", right_on="anchor_date", how="inner")
        .join(symbols, on="symbol", how="left")
        .with_columns(_key("_sym", "_anchor_pos"))
        .join(panel.rename({"_price": "_price0"}), on="_key", how="left")
        .with_columns(((pl.col("_price0") > 0) & pl.col("_price0").is_not_null()).alias("_is_priced"))
        .select("universe", "_anchor_pos", "cohort", "_sym", "weight", "_price0", "_is_priced")
    )
    everyone = at_anchor.with_columns(pl.lit(ALL).alias("cohort"))
    counts = (
        pl.concat([at_anchor, everyone], how="vertical")
        .group_by("universe", "_anchor_pos", "cohort")
        .agg(pl.len().cast(pl.Int32).alias("members"), pl.col("_is_priced").sum().cast(pl.Int32).alias("priced"))
    )

    # Each priced member of an anchor session, on every session that uses that anchor.
    pairs = anchor_map.select("_anchor_pos", "_pos").unique()
    held = (
        at_anchor.filter(pl.col("_is_priced"))
        .join(pairs, on="_anchor_pos", how="inner")
        .with_columns(_key("_sym", "_pos"))
        .join(panel, on="_key", how="inner")
        .select(
            "universe",
            "_anchor_pos",
            "_pos",
            "cohort",
            "weight",
            (pl.col("_price") / pl.col("_price0") - 1.0).alias("_ret"),
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
    by_cohort = held.group_by("universe", "_anchor_pos", "_pos", "cohort").agg(aggs)
    by_all = held.group_by("universe", "_anchor_pos", "_pos").agg(aggs).with_columns(pl.lit(ALL).alias("cohort"))
    returns = pl.concat([by_cohort, by_all], how="diagonal").select(
        "universe",
        "_anchor_pos",
        "_pos",
        "cohort",
        "return_equal_weight",
        "return_median",
        pl.when((pl.col("_weighted") > 0) & (pl.col("_weight_sum") != 0))
        .then(pl.col("_weighted_sum") / pl.col("_weight_sum"))
        .alias("return_cap_weight"),
    )

    universes_at_anchor = at_anchor.select("universe", "_anchor_pos").unique()
    cohort_names = pl.LazyFrame({"cohort": list(PERFORMANCE_COHORTS)}, schema={"cohort": pl.String})
    grid = anchor_map.join(universes_at_anchor, on="_anchor_pos", how="inner").join(cohort_names, how="cross")
    return (
        grid.join(counts, on=["universe", "_anchor_pos", "cohort"], how="left")
        .join(returns, on=["universe", "_anchor_pos", "_pos", "cohort"], how="left")
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
