"""core.cohorts and marts.cohort_composition: who is profitable, as of each session, with no look-ahead.

Grain:
- `cohorts` (core.cohorts): one row per universe, member and session on which the member's
  membership interval covers the session.
- `cohort_composition` (marts.cohort_composition): one row per universe, session and cohort; all
  three cohorts every session, an empty one with 0 members (BI charts prefer no gaps).

Cohort rule v1 (docs/cohorts.md has each rule with a worked example):
- A fiscal quarter is *available* from its `report_date` where the source knows it, and from
  `period_end_date + 45 days` where it does not. It counts on session D once `available_date <= D`:
  a quarter is never used before it was reported, however late (a late filer's quarter waits for
  its report, not for the 45-day deadline). A report_date on or before the period end is a data
  error (a quarter cannot be reported before it ends): it is ignored, and the 45-day rule applies.
- TTM net income = the sum of `net_income_common_usd` over the 4 counted quarters with the latest
  period_end_date. Profitable: TTM > 0; unprofitable: TTM <= 0 (a real 0 is a value).
- no_data: fewer than 4 counted quarters, or one of the 4 latest counted has a missing (null or
  NaN) net income. ttm_net_income_usd is null for no_data rows.
- quarters_counted = min(number of counted quarters, 4): how many of the TTM window are there.

Sector and weight come from the universe's latest holdings snapshot with as_of_date <= session;
weight = the member's market value / the snapshot's total market value (`snapshot_weights`: the
equity sleeve, cash and futures lines are not members), so the weights of a session's members
sum to 1. A member absent from that snapshot has a null sector and weight.

Speed: a symbol's TTM changes only on the available_date of one of its quarters, so the rule is
evaluated once per (symbol, available_date) and sessions are matched to the latest such event by
`join_asof`; membership intervals are expanded to sessions by session position (`int_ranges`).
Nothing runs per row in Python. Pure: LazyFrame in, LazyFrame out; no clock.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from transforms.agg import stable_sum

COHORTS_SCHEMA: dict[str, pl.DataType] = {
    "universe": pl.String,
    "symbol": pl.String,
    "session_date": pl.Date,
    "sector": pl.String,
    "weight": pl.Float64,
    "cohort": pl.String,
    "ttm_net_income_usd": pl.Float64,
    "quarters_counted": pl.Int32,
    "rule_version": pl.String,
}

COHORT_COMPOSITION_SCHEMA: dict[str, pl.DataType] = {
    "universe": pl.String,
    "session_date": pl.Date,
    "cohort": pl.String,
    "members": pl.Int32,
    "share_of_members": pl.Float64,
    "share_of_weight": pl.Float64,
    "rule_version": pl.String,
}

PROFITABLE, UNPROFITABLE, NO_DATA = "profitable", "unprofitable", "no_data"
COHORTS: tuple[str, ...] = (PROFITABLE, UNPROFITABLE, NO_DATA)
RULE_VERSIONS: tuple[str, ...] = ("v1",)
TTM_QUARTERS = 4

# Later than any session: stands for "still a member" (valid_to_date null) in interval lookups.
_OPEN_END = date(9999, 12, 31)


def quarter_availability(fundamentals: pl.LazyFrame, *, availability_days: int = 45) -> pl.LazyFrame:
    """fundamentals (FUNDAMENTALS_SCHEMA) -> symbol, period_end_date, net_income_common_usd,
    available_date: the first day on which rule v1 counts the quarter.

    available_date = report_date where it is known, period_end_date + `availability_days` where it
    is not. A report date on or before the period end is impossible (a quarter's results cannot be
    out before the quarter is over): it is bad data, so the quarter is treated as one whose report
    date is unknown (the gate warns about such rows: raw.fundamentals `report_after_period_end`).
    """
    period_end = pl.col("period_end_date").cast(pl.Date)
    report = pl.col("report_date").cast(pl.Date)
    by_deadline = period_end.dt.offset_by(f"{availability_days}d")
    is_report_known = report.is_not_null() & (report > period_end)
    return fundamentals.select(
        pl.col("symbol").cast(pl.String),
        period_end,
        # Yahoo and pandas round trips can turn a missing figure into NaN: missing either way.
        pl.col("net_income_common_usd").cast(pl.Float64).fill_nan(None),
        pl.when(is_report_known).then(report).otherwise(by_deadline).alias("available_date"),
    )


def ttm_events(fundamentals: pl.LazyFrame, *, availability_days: int = 45, since: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """One row per symbol and date on which a quarter becomes available: the rule v1 state from
    that date on (until the symbol's next event).

    Columns: symbol, available_date, ttm_net_income_usd, quarters_counted (Int32), cohort.
    An event is compared with every quarter of its symbol (a self-join per symbol), which is
    correct even when quarters become available out of period order (a restated old quarter, an
    early report). `since` (one row, column `_since`, a date): only the events a session from that
    date on can fall under, i.e. each symbol's last event on or before it and the later ones. Thirty
    years of a company are 120 quarters: every event against every quarter is 14,400 rows per
    company, for a night that needs its last event or two.
    """
    quarters = quarter_availability(fundamentals, availability_days=availability_days)
    events = quarters.select("symbol", pl.col("available_date").alias("_event_date")).unique()
    if since is not None:
        last_before = (
            pl.when(pl.col("_event_date") <= pl.col("_since")).then(pl.col("_event_date")).max().over("symbol")
        )
        events = (
            events.join(since.select(pl.col("_since").cast(pl.Date)), how="cross")
            .filter(last_before.is_null() | (pl.col("_event_date") >= last_before))
            .drop("_since")
        )
    ni_latest_first = pl.col("net_income_common_usd").sort_by("period_end_date", descending=True).head(TTM_QUARTERS)
    state = (
        events.join(quarters, on="symbol", how="inner")
        .filter(pl.col("available_date") <= pl.col("_event_date"))
        .group_by("symbol", "_event_date")
        .agg(
            pl.len().alias("_counted"),
            ni_latest_first.null_count().alias("_missing"),
            ni_latest_first.sum().alias("_ttm"),
        )
    )
    is_complete = (pl.col("_counted") >= TTM_QUARTERS) & (pl.col("_missing") == 0)
    return state.select(
        "symbol",
        pl.col("_event_date").alias("available_date"),
        pl.when(is_complete).then(pl.col("_ttm")).alias("ttm_net_income_usd"),
        pl.min_horizontal(pl.col("_counted"), pl.lit(TTM_QUARTERS)).cast(pl.Int32).alias("quarters_counted"),
        pl.when(~is_complete)
        .then(pl.lit(NO_DATA))
        .when(pl.col("_ttm") > 0)
        .then(pl.lit(PROFITABLE))
        .otherwise(pl.lit(UNPROFITABLE))
        .alias("cohort"),
    ).sort("available_date")


def member_sessions(membership: pl.LazyFrame, sessions: pl.LazyFrame) -> pl.LazyFrame:
    """core.membership intervals -> universe, symbol, session_date: one row per session each
    interval covers (valid_from_date <= session <= valid_to_date, open end = still a member).
    A (universe, symbol, session) covered by two overlapping intervals appears once."""
    sess = (
        sessions.select(pl.col("session_date").cast(pl.Date))
        .unique()
        .sort("session_date")
        .with_row_index("_pos")
        .with_columns(pl.col("_pos").cast(pl.Int64))
    )
    intervals = membership.select(
        pl.col("universe").cast(pl.String),
        pl.col("symbol").cast(pl.String),
        pl.col("valid_from_date").cast(pl.Date),
        pl.col("valid_to_date").cast(pl.Date).fill_null(_OPEN_END),
    )
    # First covered position: number of sessions strictly before valid_from_date.
    intervals = (
        intervals.sort("valid_from_date")
        .join_asof(
            sess.rename({"session_date": "_s", "_pos": "_before"}),
            left_on="valid_from_date",
            right_on="_s",
            strategy="backward",
            allow_exact_matches=False,
        )
        .with_columns((pl.col("_before") + 1).fill_null(0).alias("_from"))
        .drop("_s", "_before")
    )
    # Last covered position: the last session on or before valid_to_date (-1: none).
    intervals = (
        intervals.sort("valid_to_date")
        .join_asof(
            sess.rename({"session_date": "_s", "_pos": "_to"}),
            left_on="valid_to_date",
            right_on="_s",
            strategy="backward",
        )
        .with_columns(pl.col("_to").fill_null(-1))
        .drop("_s")
    )
    return (
        intervals.filter(pl.col("_from") <= pl.col("_to"))
        .select("universe", "symbol", pl.int_ranges(pl.col("_from"), pl.col("_to") + 1).alias("_pos"))
        .explode("_pos")
        .join(sess, on="_pos", how="inner")
        .select("universe", "symbol", "session_date")
        .unique()
    )


def snapshot_weights(holdings: pl.LazyFrame) -> pl.LazyFrame:
    """Each holdings line's weight in its snapshot's equity sleeve: universe, _snapshot_date,
    symbol, sector, weight.

    weight = the line's market value / the sum of market value over the snapshot's lines, so weights
    sum to 1 per snapshot (the equity sleeve: cash, futures and swap lines are not kept lines;
    membership is made from the same snapshots, so they are the session's members). Market value,
    not the published `weight_pct`: iShares prints that rounded to two decimals, so in the IWM file
    of 2025-11-05 236 of the 1,954 members print 0.00 (some of them hold over 3 million dollars) and
    would weigh nothing. A weight depends only on its snapshot, not on which other rows a night
    recomputes.

    A line without a market value (null or NaN, or a holdings frame without the column) is valued
    from its published weight instead: weight_pct x (dollars per percent point of its snapshot),
    where dollars per point = sum of market value / sum of weight_pct over the snapshot's lines that
    have both. A snapshot where no line has a market value uses weight_pct as it is (every line on
    the same scale). A line with neither, or in a snapshot where no line has both, gets a null
    weight, like a member absent from the snapshot.
    """
    has_mv = "market_value_usd" in holdings.collect_schema().names()
    mv = pl.col("market_value_usd").cast(pl.Float64).fill_nan(None) if has_mv else pl.lit(None, dtype=pl.Float64)
    snapshot = ["universe", "_snapshot_date"]
    lines = holdings.select(
        pl.col("universe").cast(pl.String),
        pl.col("as_of_date").cast(pl.Date).alias("_snapshot_date"),
        pl.col("symbol").cast(pl.String),
        pl.col("sector").cast(pl.String),
        pl.col("weight_pct").cast(pl.Float64).fill_nan(None),
        mv.alias("_mv"),
    )
    # Dollars per published percent point, only for the snapshots that need it (a line without a
    # market value): real files and the sample market have none, and this costs a sort per snapshot.
    both = pl.col("_mv").is_not_null() & pl.col("weight_pct").is_not_null()
    pct_sum = stable_sum(pl.when(both).then(pl.col("weight_pct")))
    usd_per_pct = (
        lines.join(lines.filter(pl.col("_mv").is_null()).select(snapshot).unique(), on=snapshot, how="semi")
        .group_by(snapshot)
        .agg(
            pl.when(pl.col("_mv").is_null().all())
            .then(pl.lit(1.0))
            .when(pct_sum != 0)
            .then(stable_sum(pl.when(both).then(pl.col("_mv"))) / pct_sum)
            .alias("_usd_per_pct")
        )
    )
    sleeve = stable_sum(pl.col("_value")).over(snapshot)
    return (
        lines.join(usd_per_pct, on=snapshot, how="left")
        .with_columns(pl.coalesce("_mv", pl.col("weight_pct") * pl.col("_usd_per_pct")).alias("_value"))
        .with_columns(pl.when(sleeve > 0).then(pl.col("_value") / sleeve).alias("weight"))
        .drop("weight_pct", "_mv", "_usd_per_pct", "_value")
    )


def _sector_and_weight(rows: pl.LazyFrame, holdings: pl.LazyFrame) -> pl.LazyFrame:
    """Add sector and weight (`snapshot_weights`) from the universe's latest snapshot on or before
    each session; a member absent from it has a null sector and weight."""
    snapshots = (
        holdings.select(pl.col("universe").cast(pl.String), pl.col("as_of_date").cast(pl.Date).alias("_snapshot_date"))
        .unique()
        .sort("_snapshot_date")
    )
    session_snapshot = (
        rows.select("universe", "session_date")
        .unique()
        .sort("session_date")
        .join_asof(snapshots, left_on="session_date", right_on="_snapshot_date", by="universe", strategy="backward",
                       check_sortedness=False)
    )
    return (
        rows.join(session_snapshot, on=["universe", "session_date"], how="left")
        .join(snapshot_weights(holdings), on=["universe", "_snapshot_date", "symbol"], how="left")
        .drop("_snapshot_date")
    )


def cohorts(
    membership: pl.LazyFrame,
    holdings: pl.LazyFrame,
    fundamentals: pl.LazyFrame,
    sessions: pl.LazyFrame,
    *,
    rule_version: str = "v1",
    availability_days: int = 45,
) -> pl.LazyFrame:
    """core.membership, raw.holdings, raw.fundamentals, core.sessions (session_date) -> core.cohorts.

    Only rule "v1" exists; `availability_days` is its 45-day deadline (a parameter so that a test
    or a later rule version can vary it, not a user setting).
    """
    if rule_version not in RULE_VERSIONS:
        raise ValueError(f"cohort rule {rule_version!r} is unknown; known: {', '.join(RULE_VERSIONS)}")
    if availability_days < 0:
        raise ValueError(f"availability_days must be >= 0, got {availability_days}")

    rows = _sector_and_weight(member_sessions(membership, sessions), holdings)
    first = sessions.select(pl.col("session_date").cast(pl.Date).min().alias("_since"))
    events = ttm_events(fundamentals, availability_days=availability_days, since=first)
    return (
        rows.sort("session_date")
        .join_asof(events, left_on="session_date", right_on="available_date", by="symbol", strategy="backward",
                   check_sortedness=False)
        .select(
            "universe",
            "symbol",
            "session_date",
            "sector",
            "weight",
            # Before a symbol's first available quarter there is no event: nothing counted yet.
            pl.col("cohort").fill_null(pl.lit(NO_DATA)),
            "ttm_net_income_usd",
            pl.col("quarters_counted").fill_null(0).cast(pl.Int32),
            pl.lit(rule_version).alias("rule_version"),
        )
        .sort("universe", "session_date", "symbol")
    )


def cohort_composition(cohorts: pl.LazyFrame) -> pl.LazyFrame:
    """core.cohorts -> marts.cohort_composition.

    share_of_members = cohort members / session members (sums to 1 per universe and session).
    share_of_weight = sum of the cohort's weights / sum of all members' weights; null when no
    member of that universe and session has a weight. Members without a weight count in
    share_of_members only.
    """
    keys = ["universe", "session_date", "rule_version"]
    counts = cohorts.group_by(*keys, "cohort").agg(
        pl.len().cast(pl.Int32).alias("members"),
        stable_sum(pl.col("weight")).alias("_weight"),
    )
    totals = cohorts.group_by(keys).agg(
        pl.len().alias("_total_members"),
        stable_sum(pl.col("weight")).alias("_total_weight"),
        pl.col("weight").count().alias("_weighted"),
    )
    grid = totals.join(pl.LazyFrame({"cohort": list(COHORTS)}, schema={"cohort": pl.String}), how="cross")
    return (
        grid.join(counts, on=[*keys, "cohort"], how="left")
        .select(
            "universe",
            "session_date",
            "cohort",
            pl.col("members").fill_null(0).cast(pl.Int32),
            (pl.col("members").fill_null(0) / pl.col("_total_members")).alias("share_of_members"),
            pl.when((pl.col("_weighted") > 0) & (pl.col("_total_weight") != 0))
            .then(pl.col("_weight").fill_null(0.0) / pl.col("_total_weight"))
            .alias("share_of_weight"),
            "rule_version",
        )
        .sort("universe", "session_date", "cohort")
    )
