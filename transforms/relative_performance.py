"""`marts.relative_performance`: does one index beat another, session by session?

Grain: one row per (lead_symbol, lag_symbol) pair and session on which both indexes have a daily
return. Pure: LazyFrame in, LazyFrame out. Each row carries both sides' YTD returns beside their
spread, so a reader (the headlines, a BI query) has the pair's whole YTD comparison in one row.

The outperformance streak is vectorized (a run id per losing session, then a cumulative count).
`longest_since` is a look-back that depends on every earlier run, so it is computed by one numpy
pass per pair (`_longest_since_days`), run through `map_batches` on that pair's rows, which are
sorted by session: O(sessions) per pair, no quadratic self-join. A night carries state instead of
re-reading history: the stored streak before its rows, and the ladder of earlier runs (for each
length, the latest session that reached it), so its cost does not grow with the history.

`relative_level` is the pair's relative-strength line, (1 + lead_ret) / (1 + lag_ret) multiplied
up from the pair's first row. A night continues it from the stored level of its state row, and the
product is formed as one left-to-right chain (the stored level times the first new factor, then each
next factor), the same multiplications in the same order as the whole history: a night's levels are
bit for bit those of a full rebuild.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

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
    "lead_ytd_return": pl.Float64,
    "lag_ytd_return": pl.Float64,
    "ytd_spread": pl.Float64,
    "relative_level": pl.Float64,
}


def _longest_since_days(
    streak: np.ndarray, days: np.ndarray, carried: np.ndarray | None = None, trailing: tuple[int, int] = (0, -1)
) -> np.ndarray:
    """For each session, the latest earlier session (as a day number), before the current streak
    began, whose streak was at least the current one; -1 when none (or when the streak is 0).

    `best[k]` holds the last day whose streak was >= k, over runs that have already ended. A run of
    length L ending on day e makes e the answer for every k <= L (nothing later exists yet), so it is
    recorded with one slice assignment when the run ends; the sessions inside a run read `best`
    before their own run is recorded. Each run costs O(L): the whole pass is O(n).

    `carried` (a night): `best` from the stored rows before the stored trailing run began, and
    `trailing` = (its length, its last day). A first row that continues it (streak = length + 1)
    belongs to that run, which is recorded when it ends in the window; otherwise the trailing run
    ended before the window and is recorded first.
    """
    n = len(streak)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    top = int(streak.max()) + 1
    best = np.full(top + 1, -1, dtype=np.int64)
    if carried is not None:
        k = min(len(carried), top + 1)
        best[:k] = carried[:k]
    length, last_day = trailing
    if length > 0 and not streak[0] == length + 1:
        best[1 : min(length, top) + 1] = last_day
    positive = streak > 0
    # Run boundaries: where `positive` switches on (start) and off (end, exclusive).
    edges = np.diff(np.concatenate(([False], positive, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    for start, stop in zip(starts, ends):
        first, last = int(streak[start]), int(streak[stop - 1])
        out[start:stop] = best[first : last + 1]
        best[1 : last + 1] = days[stop - 1]
    return out


def ladder(streaks: np.ndarray, days: np.ndarray) -> np.ndarray:
    """`best` for `_longest_since_days` from (streak, day) rows of ended runs: for each k, the
    latest day whose streak was >= k (-1: none)."""
    if len(streaks) == 0:
        return np.full(1, -1, dtype=np.int64)
    top = int(streaks.max())
    latest = np.full(top + 2, -1, dtype=np.int64)
    np.maximum.at(latest, streaks.astype(np.int64), days.astype(np.int64))
    # Suffix maximum: a day with streak s counts for every k <= s.
    return np.maximum.accumulate(latest[::-1])[::-1]


def _pair_key(pair) -> tuple[str, str]:
    # settings.Pair and plain (lead, lag) tuples are both accepted.
    if hasattr(pair, "lead"):
        return (pair.lead, pair.lag)
    lead, lag = pair
    return (lead, lag)


def relative_performance(
    index_daily: pl.LazyFrame,
    pairs: Sequence[tuple[str, str]],
    *,
    state: pl.LazyFrame | None = None,
    ladders: Mapping[tuple[str, str], tuple[np.ndarray, tuple[int, int]]] | None = None,
) -> pl.LazyFrame:
    """marts.relative_performance for each (lead, lag) pair, from marts.index_daily.

    A pair whose symbol is absent from `index_daily` yields no rows; so does a session on which
    either index has no ret_1d (its first session, or a session the other index did not trade).

    A night continues from the stored rows: `state` (lead_symbol, lag_symbol, session_date, streak,
    relative_level) is each pair's stored row before the rows of `index_daily` (only later rows are
    returned), and
    `ladders[pair]` (its ladder, trailing run) from the stored rows: `ladder` of the rows before the
    trailing run began, and that run's (length, last day). Without them, the pair's whole history
    is computed.
    """
    keys = list(dict.fromkeys(_pair_key(p) for p in pairs))  # duplicates would break the key
    if not keys:
        return pl.LazyFrame(schema=RELATIVE_PERFORMANCE_SCHEMA)
    stored = state.collect() if state is not None else None

    daily = index_daily.select("symbol", "session_date", "ret_1d", "ytd_return").filter(
        pl.col("ret_1d").is_not_null()
    )
    frames = []
    for lead, lag in keys:
        carried_streak, carried_level, after = 0, 1.0, None
        if stored is not None:
            row = stored.filter((pl.col("lead_symbol") == lead) & (pl.col("lag_symbol") == lag))
            if row.height:
                carried_streak, after = int(row.get_column("streak")[0]), row.get_column("session_date")[0]
                carried_level = row.get_column("relative_level")[0]
                if carried_level is None or not math.isfinite(carried_level) or carried_level <= 0:
                    raise ValueError(
                        f"relative_performance: the stored row of {lead}/{lag} on {after} has relative_level "
                        f"{carried_level!r}, not a positive number to continue from; rebuild the table "
                        "(`smallcaps rebuild`)"
                    )
        lead_rows = daily.filter(pl.col("symbol") == lead).select(
            "session_date", lead_ret="ret_1d", lead_ytd_return="ytd_return"
        )
        lag_rows = daily.filter(pl.col("symbol") == lag).select(
            "session_date", lag_ret="ret_1d", lag_ytd_return="ytd_return"
        )
        joined = lead_rows.join(lag_rows, on="session_date", how="inner")
        if after is not None:
            joined = joined.filter(pl.col("session_date") > after)
        outperformed = pl.col("lead_ret") > pl.col("lag_ret")
        run = (~outperformed).cum_sum()
        factor = (1.0 + pl.col("lead_ret")) / (1.0 + pl.col("lag_ret"))
        # The carried level enters as the first multiplication of the chain (see the module doc).
        first = pl.int_range(pl.len()) == 0
        chained = pl.when(first).then(pl.lit(carried_level, dtype=pl.Float64) * factor).otherwise(factor)
        carried, trailing = (ladders or {}).get((lead, lag), (None, (0, -1)))
        frame = (
            joined.sort("session_date")
            .with_columns(
                lead_symbol=pl.lit(lead, dtype=pl.String),
                lag_symbol=pl.lit(lag, dtype=pl.String),
                spread=pl.col("lead_ret") - pl.col("lag_ret"),
                outperformed=outperformed,
                ytd_spread=pl.col("lead_ytd_return") - pl.col("lag_ytd_return"),
                relative_level=chained.cum_prod(),
                # Every session that is not a win starts a new run; the streak counts wins in it. The
                # first run continues the stored streak.
                streak=outperformed.cast(pl.Int32).cum_sum().over(run)
                + pl.when(run == 0).then(pl.lit(carried_streak, dtype=pl.Int32)).otherwise(0),
            )
            .with_columns(
                longest_since=pl.struct("streak", "session_date").map_batches(
                    lambda s, carried=carried, trailing=trailing: _longest_since(s, carried, trailing), return_dtype=pl.Date
                )
            )
        )
        frames.append(frame.select([pl.col(c).cast(t) for c, t in RELATIVE_PERFORMANCE_SCHEMA.items()]))
    return pl.concat(frames, how="vertical")


def _longest_since(streak_and_date: pl.Series, carried: np.ndarray | None = None, trailing: tuple[int, int] = (0, -1)) -> pl.Series:
    streak = streak_and_date.struct.field("streak").to_numpy()
    dates = streak_and_date.struct.field("session_date")
    days = dates.cast(pl.Int32).to_numpy().astype(np.int64)
    found = pl.Series(_longest_since_days(streak, days, carried, trailing))
    return found.set(found < 0, None).cast(pl.Int32).cast(pl.Date)
