"""`marts.relative_performance`: does one index beat another, session by session?

Grain: one row per (lead_symbol, lag_symbol) pair and session on which both indexes have a daily
return. Pure: LazyFrame in, LazyFrame out.

The outperformance streak is vectorized (a run id per losing session, then a cumulative count).
`longest_since` is a look-back that depends on every earlier run, so it is computed by one numpy
pass per pair (`_longest_since_index`), run through `map_batches` on that pair's rows, which are
sorted by session: O(sessions) per pair, no quadratic self-join.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import polars as pl

RELATIVE_PERFORMANCE_SCHEMA: dict[str, pl.DataType] = {
    "lead_symbol": pl.String,
    "lag_symbol": pl.String,
    "session_date": pl.Date,
    "lead_ret": pl.Float64,
    "lag_ret": pl.Float64,
    "spread": pl.Float64,
    "outperformed": pl.Boolean,
    "streak": pl.Int32,
    "longest_since": pl.Date,
    "ytd_spread": pl.Float64,
}


def _longest_since_index(streak: np.ndarray) -> np.ndarray:
    """For each session, the index of the latest earlier session, before the current streak began,
    whose streak was at least the current one; -1 when none (or when the streak is 0).

    `best[k]` holds the last index whose streak was >= k, over runs that have already ended. A run
    of length L ending at e makes e the answer for every k <= L (nothing later exists yet), so it is
    recorded with one slice assignment when the run ends; the sessions inside a run read `best`
    before their own run is recorded. Each run costs O(L): the whole pass is O(n).
    """
    n = len(streak)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    best = np.full(n + 1, -1, dtype=np.int64)
    positive = streak > 0
    # Run boundaries: where `positive` switches on (start) and off (end, exclusive).
    edges = np.diff(np.concatenate(([False], positive, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    for start, stop in zip(starts, ends):
        length = stop - start
        out[start:stop] = best[1 : length + 1]
        best[1 : length + 1] = stop - 1
    return out


def _longest_since(streak_and_date: pl.Series) -> pl.Series:
    streak = streak_and_date.struct.field("streak").to_numpy()
    dates = streak_and_date.struct.field("session_date")
    idx = _longest_since_index(streak)
    return dates.gather(pl.Series(idx).replace(-1, None))


def _pair_key(pair) -> tuple[str, str]:
    # settings.Pair and plain (lead, lag) tuples are both accepted.
    if hasattr(pair, "lead"):
        return (pair.lead, pair.lag)
    lead, lag = pair
    return (lead, lag)


def relative_performance(index_daily: pl.LazyFrame, pairs: Sequence[tuple[str, str]]) -> pl.LazyFrame:
    """marts.relative_performance for each (lead, lag) pair, from marts.index_daily.

    A pair whose symbol is absent from `index_daily` yields no rows; so does a session on which
    either index has no ret_1d (its first session, or a session the other index did not trade).
    """
    keys = list(dict.fromkeys(_pair_key(p) for p in pairs))  # duplicates would break the key
    if not keys:
        return pl.LazyFrame(schema=RELATIVE_PERFORMANCE_SCHEMA)

    daily = index_daily.select("symbol", "session_date", "ret_1d", "ytd_return").filter(
        pl.col("ret_1d").is_not_null()
    )
    frames = []
    for lead, lag in keys:
        lead_rows = daily.filter(pl.col("symbol") == lead).select(
            "session_date", lead_ret="ret_1d", lead_ytd="ytd_return"
        )
        lag_rows = daily.filter(pl.col("symbol") == lag).select(
            "session_date", lag_ret="ret_1d", lag_ytd="ytd_return"
        )
        outperformed = pl.col("lead_ret") > pl.col("lag_ret")
        frame = (
            lead_rows.join(lag_rows, on="session_date", how="inner")
            .sort("session_date")
            .with_columns(
                lead_symbol=pl.lit(lead, dtype=pl.String),
                lag_symbol=pl.lit(lag, dtype=pl.String),
                spread=pl.col("lead_ret") - pl.col("lag_ret"),
                outperformed=outperformed,
                ytd_spread=pl.col("lead_ytd") - pl.col("lag_ytd"),
                # Every session that is not a win starts a new run; the streak counts wins in it.
                streak=outperformed.cast(pl.Int32).cum_sum().over((~outperformed).cum_sum()),
            )
            .with_columns(
                longest_since=pl.struct("streak", "session_date").map_batches(
                    _longest_since, return_dtype=pl.Date
                )
            )
        )
        frames.append(frame.select([pl.col(c).cast(t) for c, t in RELATIVE_PERFORMANCE_SCHEMA.items()]))
    return pl.concat(frames, how="vertical")
