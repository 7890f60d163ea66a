"""`marts.index_performance`: each index's own price return since each configured anchor.

Grain: one row per index symbol, anchor and session on which the anchor applies (from its anchor
session on) and the index has a close both on the session and on the anchor session. An index
without a close on the anchor session (its history starts later, say) has no rows for that anchor:
a return from a different starting point would be a different figure under the same name.

Anchors resolve exactly as for `marts.cohort_performance`
(`transforms.cohort_performance.resolve_anchors`): `ytd` -> the last session of the previous
calendar year, `1y` -> the last session on or before the same day a year earlier, an ISO date ->
the last session on or before it. So "since 2025-04-08" means the same session for the index and
for the cohorts.

return_since_anchor = close(session) / close(anchor session) - 1 (Close: a price return).

Look-back, for an incremental night: a row reads two closes of its symbol, the session's and the
anchor session's. For `ytd` and `1y` the anchor session is at most
`ROLLING_ANCHOR_LOOKBACK_DAYS` calendar days before the session; a dated anchor's session is fixed,
so its close is one carried value per symbol and anchor.

Pure: LazyFrame in, LazyFrame out; `as_of` is passed in.
"""

from __future__ import annotations

from datetime import date
from typing import Sequence

import polars as pl

from transforms.cohort_performance import resolve_anchors

# ytd on 31 December reaches back to the last session of the previous year (366 days in a leap
# year); 1y to the last session on or before the same day a year earlier. That session lies before
# the target day by at most a weekend plus a closure (the longest in modern times, after 9/11, was
# four sessions): a fortnight of margin.
ROLLING_ANCHOR_LOOKBACK_DAYS = 366 + 14

INDEX_PERFORMANCE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String,
    "anchor": pl.String,
    "session_date": pl.Date,
    "anchor_date": pl.Date,
    "anchor_close": pl.Float64,
    "close": pl.Float64,
    "return_since_anchor": pl.Float64,
}


def index_performance(
    index_closes: pl.LazyFrame,
    sessions: pl.LazyFrame,
    *,
    anchors: Sequence[str],
    as_of: date,
) -> pl.LazyFrame:
    """index closes (symbol, session_date, close: marts.index_daily or raw.index_bars),
    core.sessions (session_date) -> marts.index_performance."""
    closes = index_closes.select(
        pl.col("symbol").cast(pl.String), pl.col("session_date").cast(pl.Date), pl.col("close").cast(pl.Float64)
    ).filter(pl.col("session_date") <= as_of)
    at_anchor = closes.select(
        "symbol", pl.col("session_date").alias("anchor_date"), pl.col("close").alias("anchor_close")
    )
    return (
        closes.join(resolve_anchors(sessions, anchors, as_of=as_of), on="session_date", how="inner")
        .join(at_anchor, on=["symbol", "anchor_date"], how="inner")
        .with_columns(return_since_anchor=pl.col("close") / pl.col("anchor_close") - 1.0)
        .select([pl.col(c).cast(t) for c, t in INDEX_PERFORMANCE_SCHEMA.items()])
        .sort("symbol", "anchor", "session_date")
    )
