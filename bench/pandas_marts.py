"""The yardstick: core and marts derived from raw with idiomatic pandas.

The same definitions as transforms/ (docs/definitions.md, docs/cohorts.md, docs/marts.md), written
the way a competent pandas user would: sort once, then groupby/shift/cumsum/transform, rolling,
ewm, merge, merge_asof, pivot and NumPy indexing into the pivoted price panel. One Python loop
remains, over the rows of each pair's streak runs for `longest_since` (pandas has no vectorised
"latest earlier run at least this long"). Support and resistance expand each swing to the sessions
that see it (`Index.repeat`) and merge, as a pandas user would without a rolling custom function.
Not tuned beyond that, and not made slow on purpose.

It computes every table from the whole history at once: no carried state, no windows.

`marts.headlines` is left out: it is sentences built from the other marts, not a computation a
pandas comparison says anything about.

Inputs are pandas frames of the raw tables (bookkeeping columns dropped), already filtered to
`as_of` by the caller, plus the sorted NYSE sessions. Dates are datetime64 columns; missing values
are NaN/NaT. `derive` returns every table with the columns of its dataset (ground/registry.py),
and seconds per table.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Sequence

import numpy as np
import pandas as pd

COHORTS = ("profitable", "unprofitable", "no_data")
PERFORMANCE_COHORTS = (*COHORTS, "all")
UNKNOWN_SECTOR = "Unknown"
TTM_QUARTERS = 4
AVAILABILITY_DAYS = 45
RSI_PERIOD = 14
SESSIONS_52W = 252
CHANGE_SESSIONS = 5
SWING_SESSIONS = 5
LEVELS_WINDOW_SESSIONS = 126


# --- core.equity_returns ---------------------------------------------------------------------------


def equity_returns(equity_bars: pd.DataFrame) -> pd.DataFrame:
    df = (
        equity_bars.loc[equity_bars["adj_close"].notna(), ["symbol", "session_date", "adj_close"]]
        .sort_values(["symbol", "session_date"], ignore_index=True)
    )
    df["ret_1d"] = df["adj_close"] / df.groupby("symbol")["adj_close"].shift() - 1.0
    return df


# --- marts.index_daily, marts.index_records -----------------------------------------------------------


def _wilder_averages(close: pd.Series, period: int = RSI_PERIOD) -> tuple[pd.Series, pd.Series]:
    """Wilder's average gain and loss of one symbol's closes."""
    change = close.diff()

    def smoothed(x: pd.Series) -> pd.Series:
        # Seed: the mean of the first `period` changes, placed on the (period+1)-th session; then
        # Wilder's recursion, which is an exponential mean with alpha 1/period, adjust=False.
        seeded = pd.Series(np.nan, index=x.index)
        if len(x) > period:
            seeded.iloc[period] = x.iloc[1 : period + 1].mean()
            seeded.iloc[period + 1 :] = x.iloc[period + 1 :]
        return seeded.ewm(alpha=1.0 / period, adjust=False).mean()

    return smoothed(change.clip(lower=0.0)), smoothed((-change).clip(lower=0.0))


def _levels(df: pd.DataFrame) -> pd.DataFrame:
    """Weekly change and support / resistance of `df` (symbol, session_date, close; sorted by symbol
    and session): the columns of transforms/index_levels.py, one row per row of `df`."""
    close = df.groupby("symbol")["close"]
    before = close.shift(CHANGE_SESSIONS)
    out = df[["symbol", "session_date", "close"]].copy()
    out["change_5d"] = df["close"] - before
    out["ret_5d"] = df["close"] / before - 1.0
    out["pos"] = df.groupby("symbol").cumcount()

    k = SWING_SESSIONS
    # A swing is strictly beyond each of the k closes on both sides (NaN near either end: none).
    high_before = close.transform(lambda s: s.shift(1).rolling(k).max())
    low_before = close.transform(lambda s: s.shift(1).rolling(k).min())
    high_after = close.transform(lambda s: s.rolling(k).max().shift(-k))
    low_after = close.transform(lambda s: s.rolling(k).min().shift(-k))
    is_high = (df["close"] > high_before) & (df["close"] > high_after)
    is_low = (df["close"] < low_before) & (df["close"] < low_after)

    # A swing at position i is seen from i + k (confirmed) to i + window - 1 (still in the window).
    offsets = np.arange(k, LEVELS_WINDOW_SESSIONS)
    for flag, name, below in ((is_low, "support", True), (is_high, "resistance", False)):
        swings = out.loc[flag, ["symbol", "pos", "session_date", "close"]].rename(
            columns={"close": "level", "session_date": "level_date"}
        )
        seen = swings.loc[swings.index.repeat(len(offsets))].reset_index(drop=True)
        seen["pos"] += np.tile(offsets, len(swings))
        seen = seen.merge(out[["symbol", "pos", "close"]], on=["symbol", "pos"])
        seen = seen[seen["level"] < seen["close"]] if below else seen[seen["level"] > seen["close"]]
        # The nearest level on its side (highest below, lowest above); of two at one level, the later.
        nearest = (
            seen.sort_values(["level", "level_date"], ascending=[below, True])
            .groupby(["symbol", "pos"], as_index=False)
            .last()
        )
        out = out.merge(
            nearest[["symbol", "pos", "level", "level_date"]].rename(
                columns={"level": f"{name}_level", "level_date": f"{name}_date"}
            ),
            on=["symbol", "pos"],
            how="left",
        )
    return out.drop(columns=["pos", "close"])


def index_daily(index_bars: pd.DataFrame) -> pd.DataFrame:
    df = index_bars[["symbol", "session_date", "close"]].sort_values(["symbol", "session_date"], ignore_index=True)
    df["year"] = df["session_date"].dt.year
    year_end = (
        df.groupby(["symbol", "year"], as_index=False)["close"].last().rename(columns={"close": "prev_year_close"})
    )
    year_end["year"] += 1
    df = df.merge(year_end, on=["symbol", "year"], how="left")

    close = df.groupby("symbol")["close"]
    running_max = close.cummax()
    df["ret_1d"] = df["close"] / close.shift() - 1.0
    df["ytd_return"] = df["close"] / df["prev_year_close"] - 1.0
    df["is_record_close"] = df["close"] > running_max.groupby(df["symbol"]).shift()
    df["records_ytd"] = df.groupby(["symbol", "year"])["is_record_close"].cumsum()
    df["record_close"] = running_max
    df["drawdown_from_record"] = df["close"] / running_max - 1.0
    # The session the record level was first reached: the last record close, or the first session.
    is_first = df.groupby("symbol").cumcount() == 0
    df["record_date"] = df["session_date"].where(df["is_record_close"] | is_first).groupby(df["symbol"]).ffill()
    averages = [_wilder_averages(s) for _, s in close]
    df["rsi_avg_gain"] = pd.concat([gain for gain, _ in averages])
    df["rsi_avg_loss"] = pd.concat([loss for _, loss in averages])
    rsi = 100.0 - 100.0 / (1.0 + df["rsi_avg_gain"] / df["rsi_avg_loss"])
    df["rsi_14"] = rsi.mask(df["rsi_avg_loss"] == 0.0, 100.0)
    df["sma_50"] = close.transform(lambda s: s.rolling(50).mean())
    df["sma_200"] = close.transform(lambda s: s.rolling(200).mean())
    df["high_52w"] = close.transform(lambda s: s.rolling(SESSIONS_52W).max())
    df["low_52w"] = close.transform(lambda s: s.rolling(SESSIONS_52W).min())
    df = df.merge(_levels(df), on=["symbol", "session_date"], how="left")
    return df.drop(columns=["year"])


def index_records(daily: pd.DataFrame) -> pd.DataFrame:
    d = daily[["symbol", "session_date", "is_record_close"]].assign(year=daily["session_date"].dt.year)
    d["record_date"] = d["session_date"].where(d["is_record_close"])
    out = d.groupby(["symbol", "year"], as_index=False).agg(
        record_closes=("is_record_close", "sum"),
        first_record_date=("record_date", "min"),
        last_record_date=("record_date", "max"),
    )
    out["history_start"] = out["symbol"].map(d.groupby("symbol")["session_date"].min())
    return out


def index_performance(daily: pd.DataFrame, sessions: pd.DatetimeIndex, anchors: Sequence[str]) -> pd.DataFrame:
    closes = daily[["symbol", "session_date", "close"]]
    at_anchor = closes.rename(columns={"session_date": "anchor_date", "close": "anchor_close"})
    out = closes.merge(resolve_anchors(sessions, anchors), on="session_date").merge(at_anchor, on=["symbol", "anchor_date"])
    out["return_since_anchor"] = out["close"] / out["anchor_close"] - 1.0
    return out


# --- marts.relative_performance ----------------------------------------------------------------------


def _longest_since(streak: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """One pass: `ladder` holds the ended runs that can still be an answer (length, last date),
    lengths strictly decreasing from the oldest; an ended run removes the older runs no longer
    than itself (it is later and at least as long)."""
    out = np.full(len(streak), np.datetime64("NaT"), dtype=dates.dtype)
    ladder: list[tuple[int, np.datetime64]] = []
    for i, n in enumerate(streak):
        if n > 0:
            for length, end in reversed(ladder):
                if length >= n:
                    out[i] = end
                    break
        elif i > 0 and streak[i - 1] > 0:
            ended = streak[i - 1]
            while ladder and ladder[-1][0] <= ended:
                ladder.pop()
            ladder.append((ended, dates[i - 1]))
    return out


def relative_performance(daily: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    rets = daily.loc[daily["ret_1d"].notna(), ["symbol", "session_date", "ret_1d", "ytd_return"]]
    frames = []
    for lead, lag in dict.fromkeys(pairs):
        a = rets[rets["symbol"] == lead].drop(columns="symbol").rename(columns={"ret_1d": "lead_ret", "ytd_return": "lead_ytd_return"})
        b = rets[rets["symbol"] == lag].drop(columns="symbol").rename(columns={"ret_1d": "lag_ret", "ytd_return": "lag_ytd_return"})
        f = a.merge(b, on="session_date").sort_values("session_date", ignore_index=True)
        f.insert(0, "lead_symbol", lead)
        f.insert(1, "lag_symbol", lag)
        f["spread"] = f["lead_ret"] - f["lag_ret"]
        f["outperformed"] = f["lead_ret"] > f["lag_ret"]
        f["streak"] = f["outperformed"].astype(int).groupby((~f["outperformed"]).cumsum()).cumsum()
        f["longest_since"] = _longest_since(f["streak"].to_numpy(), f["session_date"].to_numpy())
        f["ytd_spread"] = f["lead_ytd_return"] - f["lag_ytd_return"]
        f["relative_level"] = ((1.0 + f["lead_ret"]) / (1.0 + f["lag_ret"])).cumprod()
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


# --- core.membership ---------------------------------------------------------------------------------


def membership(holdings: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    n_sessions = len(sessions)
    members = holdings[["universe", "as_of_date", "symbol"]].drop_duplicates()
    snaps = members[["universe", "as_of_date"]].drop_duplicates().sort_values(["universe", "as_of_date"], ignore_index=True)
    snaps["k"] = snaps.groupby("universe").cumcount()
    next_as_of = snaps.groupby("universe")["as_of_date"].shift(-1)
    # Session positions: the first session on or after a snapshot opens, the last session before
    # the next snapshot closes; the newest snapshot leaves the interval open (NaN).
    snaps["from_pos"] = sessions.searchsorted(snaps["as_of_date"])
    snaps["to_pos"] = pd.Series(sessions.searchsorted(next_as_of.fillna(sessions[-1])) - 1.0).where(next_as_of.notna())

    m = members.merge(snaps[["universe", "as_of_date", "k"]]).sort_values(["universe", "symbol", "k"])
    m["run"] = (m.groupby(["universe", "symbol"])["k"].diff() != 1).cumsum()
    runs = m.groupby(["universe", "symbol", "run"], as_index=False)["k"].agg(k_first="min", k_last="max")
    runs = runs.merge(snaps[["universe", "k", "from_pos"]].rename(columns={"k": "k_first"})).merge(
        snaps[["universe", "k", "to_pos"]].rename(columns={"k": "k_last"})
    )
    runs = runs[(runs["from_pos"] < n_sessions) & (runs["to_pos"].isna() | (runs["to_pos"] >= runs["from_pos"]))]
    runs = runs.sort_values(["universe", "symbol", "from_pos"], ignore_index=True)

    # Intervals with no session between them are one interval.
    prev_to = runs.groupby(["universe", "symbol"])["to_pos"].shift()
    runs["group"] = (prev_to.isna() | (runs["from_pos"] > prev_to + 1)).cumsum()
    runs["is_open"] = runs["to_pos"].isna()
    merged = runs.groupby(["universe", "symbol", "group"], as_index=False).agg(
        from_pos=("from_pos", "min"), to_pos=("to_pos", "max"), is_open=("is_open", "any")
    )
    merged["valid_from_date"] = sessions[merged["from_pos"].to_numpy()]
    to_pos = merged["to_pos"].where(~merged["is_open"])
    merged["valid_to_date"] = pd.Series(sessions[to_pos.fillna(0).astype(int).to_numpy()]).where(to_pos.notna())
    return merged[["universe", "symbol", "valid_from_date", "valid_to_date"]]


# --- core.cohorts, marts.cohort_composition ----------------------------------------------------------


def _member_sessions(membership: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    first = sessions.searchsorted(membership["valid_from_date"])
    last = sessions.searchsorted(membership["valid_to_date"].fillna(sessions[-1]), side="right") - 1
    count = np.maximum(last - first + 1, 0)
    rows = membership.loc[membership.index.repeat(count), ["universe", "symbol"]]
    offset = rows.groupby(level=0).cumcount().to_numpy()
    rows["session_date"] = sessions[np.repeat(first, count) + offset]
    return rows.drop_duplicates(ignore_index=True)


def _ttm_events(fundamentals: pd.DataFrame) -> pd.DataFrame:
    q = fundamentals[["symbol", "period_end_date", "report_date", "net_income_common_usd"]].copy()
    # The report date where the source knows one (one on or before the period end is bad data and
    # ignored), else the period end + 45 days.
    is_report_known = q["report_date"] > q["period_end_date"]
    deadline = q["period_end_date"] + pd.Timedelta(days=AVAILABILITY_DAYS)
    q["available_date"] = q["report_date"].where(is_report_known, deadline)

    events = q[["symbol", "available_date"]].drop_duplicates().rename(columns={"available_date": "event_date"})
    counted = events.merge(q, on="symbol")
    counted = counted[counted["available_date"] <= counted["event_date"]]
    counted = counted.sort_values(["symbol", "event_date", "period_end_date"], ascending=[True, True, False])
    keys = ["symbol", "event_date"]
    window = counted.groupby(keys).head(TTM_QUARTERS).groupby(keys)["net_income_common_usd"]
    state = pd.DataFrame(
        {
            "counted": counted.groupby(keys).size(),
            "missing": window.size() - window.count(),
            "ttm": window.sum(),
        }
    ).reset_index()
    complete = (state["counted"] >= TTM_QUARTERS) & (state["missing"] == 0)
    state["ttm_net_income_usd"] = state["ttm"].where(complete)
    state["quarters_counted"] = state["counted"].clip(upper=TTM_QUARTERS)
    state["cohort"] = np.where(~complete, "no_data", np.where(state["ttm"] > 0, "profitable", "unprofitable"))
    return state[["symbol", "event_date", "ttm_net_income_usd", "quarters_counted", "cohort"]].sort_values("event_date")


def snapshot_weights(holdings: pd.DataFrame) -> pd.DataFrame:
    """universe, as_of_date, symbol, sector, weight: each line's market value over its snapshot's
    total; a line without one is valued at weight_pct x the snapshot's dollars per percent point
    (over the lines that print both), or at weight_pct itself in a snapshot with no market value."""
    snapshot = ["universe", "as_of_date"]
    lines = holdings[[*snapshot, "symbol", "sector", "weight_pct"]].copy()
    mv = holdings["market_value_usd"] if "market_value_usd" in holdings else pd.Series(np.nan, index=holdings.index)
    both = mv.notna() & lines["weight_pct"].notna()
    per_snapshot = (
        lines.assign(mv_both=mv.where(both), pct_both=lines["weight_pct"].where(both), has_mv=mv.notna())
        .groupby(snapshot)
        .agg(mv_sum=("mv_both", "sum"), pct_sum=("pct_both", "sum"), any_mv=("has_mv", "any"))
    )
    usd_per_pct = (per_snapshot["mv_sum"] / per_snapshot["pct_sum"]).where(per_snapshot["pct_sum"] != 0)
    usd_per_pct = usd_per_pct.where(per_snapshot["any_mv"], 1.0).rename("usd_per_pct")
    lines = lines.join(usd_per_pct, on=snapshot)
    value = mv.fillna(lines["weight_pct"] * lines["usd_per_pct"])
    sleeve = value.groupby([lines["universe"], lines["as_of_date"]]).transform("sum")
    lines["weight"] = (value / sleeve).where(sleeve > 0)
    return lines.drop(columns=["weight_pct", "usd_per_pct"])


def cohorts(membership: pd.DataFrame, holdings: pd.DataFrame, fundamentals: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    rows = _member_sessions(membership, sessions)

    # Sector and weight from the universe's latest snapshot on or before the session.
    snapshot_dates = holdings[["universe", "as_of_date"]].drop_duplicates().sort_values("as_of_date")
    session_snapshot = pd.merge_asof(
        rows[["universe", "session_date"]].drop_duplicates().sort_values("session_date"),
        snapshot_dates,
        left_on="session_date",
        right_on="as_of_date",
        by="universe",
    )
    rows = rows.merge(session_snapshot, on=["universe", "session_date"], how="left").merge(
        snapshot_weights(holdings), on=["universe", "as_of_date", "symbol"], how="left"
    )

    rows = pd.merge_asof(
        rows.sort_values("session_date"), _ttm_events(fundamentals), left_on="session_date", right_on="event_date", by="symbol"
    )
    rows["cohort"] = rows["cohort"].fillna("no_data")
    rows["quarters_counted"] = rows["quarters_counted"].fillna(0).astype("int32")
    rows["rule_version"] = "v1"
    return rows[
        ["universe", "symbol", "session_date", "sector", "weight", "cohort", "ttm_net_income_usd", "quarters_counted", "rule_version"]
    ].sort_values(["universe", "session_date", "symbol"], ignore_index=True)


def cohort_composition(cohorts: pd.DataFrame) -> pd.DataFrame:
    keys = ["universe", "session_date"]
    by_cohort = cohorts.groupby([*keys, "cohort"])["weight"].agg(["size", "sum"]).unstack("cohort")
    members = by_cohort["size"].reindex(columns=list(COHORTS), fill_value=0).fillna(0)
    weights = by_cohort["sum"].reindex(columns=list(COHORTS), fill_value=0.0).fillna(0.0)
    totals = cohorts.groupby(keys)["weight"].agg(["size", "sum", "count"])
    share_of_weight = weights.div(totals["sum"], axis=0).where((totals["count"] > 0) & (totals["sum"] != 0), axis=0)
    out = pd.DataFrame(
        {
            "members": members.stack(),
            "share_of_members": members.div(totals["size"], axis=0).stack(),
            "share_of_weight": share_of_weight.stack(),
        }
    ).reset_index()
    out["rule_version"] = "v1"
    return out.sort_values([*keys, "cohort"], ignore_index=True)


# --- marts.cohort_performance ------------------------------------------------------------------------


def resolve_anchors(sessions: pd.DatetimeIndex, anchors: Sequence[str]) -> pd.DataFrame:
    """anchor, session_date, anchor_date for every session an anchor applies to."""
    session = pd.Series(sessions)
    parts = []
    for anchor in dict.fromkeys(anchors):
        if anchor == "ytd":
            target = pd.to_datetime({"year": session.dt.year - 1, "month": 12, "day": 31}).astype(session.dtype)
        elif anchor == "1y":
            target = session - pd.DateOffset(years=1)
        else:
            target = pd.Series(pd.Timestamp(anchor), index=session.index).astype(session.dtype)
        pos = sessions.searchsorted(target, side="right") - 1
        part = pd.DataFrame({"anchor": anchor, "session_date": session, "anchor_date": sessions[np.maximum(pos, 0)]})
        # From the anchor's day on: a dated anchor has no rows before its date, even when its anchor
        # session is the Friday before a Saturday date (for ytd and 1y the day is always before the session).
        keep = (pos >= 0) & (part["session_date"] >= target.to_numpy())
        if anchor == "ytd":
            keep &= part["anchor_date"].dt.year == part["session_date"].dt.year - 1
        parts.append(part[keep])
    return pd.concat(parts, ignore_index=True)


def cohort_performance(
    cohorts: pd.DataFrame, equity_bars: pd.DataFrame, sessions: pd.DatetimeIndex, anchors: Sequence[str]
) -> pd.DataFrame:
    anchor_map = resolve_anchors(sessions, anchors)
    # Forward-filled price panel: sessions x symbols, a member's last adj_close carried forward.
    panel = (
        equity_bars[equity_bars["adj_close"].notna()]
        .pivot(index="session_date", columns="symbol", values="adj_close")
        .reindex(sessions)
        .ffill()
    )
    prices = panel.to_numpy()

    at_anchor = cohorts.loc[
        cohorts["session_date"].isin(anchor_map["anchor_date"].unique()), ["universe", "symbol", "session_date", "cohort", "weight"]
    ].rename(columns={"session_date": "anchor_date"})
    at_anchor["col"] = panel.columns.get_indexer(at_anchor["symbol"])
    price0 = prices[sessions.get_indexer(at_anchor["anchor_date"]), at_anchor["col"]]
    at_anchor["price0"] = np.where(at_anchor["col"] >= 0, price0, np.nan)
    at_anchor["is_priced"] = at_anchor["price0"] > 0

    everyone = at_anchor.assign(cohort="all")
    counts = (
        pd.concat([at_anchor, everyone])
        .groupby(["universe", "anchor_date", "cohort"], as_index=False)
        .agg(members=("symbol", "size"), priced=("is_priced", "sum"))
    )

    pairs = anchor_map[["anchor_date", "session_date"]].drop_duplicates()
    held = at_anchor[at_anchor["is_priced"]].merge(pairs, on="anchor_date")
    held["ret"] = prices[sessions.get_indexer(held["session_date"]), held["col"]] / held["price0"] - 1.0
    held["w_ret"] = held["weight"] * held["ret"]

    def aggregate(keys: list[str]) -> pd.DataFrame:
        g = held.groupby(keys)
        out = pd.DataFrame(
            {
                "return_equal_weight": g["ret"].mean(),
                "return_median": g["ret"].median(),
                "w_ret": g["w_ret"].sum(),
                "w": g["weight"].sum(),
                "weighted": g["weight"].count(),
            }
        ).reset_index()
        ok = (out["weighted"] > 0) & (out["w"] != 0)
        out["return_cap_weight"] = (out["w_ret"] / out["w"]).where(ok)
        return out.drop(columns=["w_ret", "w", "weighted"])

    keys = ["universe", "anchor_date", "session_date"]
    returns = pd.concat([aggregate([*keys, "cohort"]), aggregate(keys).assign(cohort="all")], ignore_index=True)

    universes = at_anchor[["universe", "anchor_date"]].drop_duplicates()
    grid = anchor_map.merge(universes, on="anchor_date").merge(pd.DataFrame({"cohort": PERFORMANCE_COHORTS}), how="cross")
    out = grid.merge(counts, on=["universe", "anchor_date", "cohort"], how="left").merge(
        returns, on=[*keys, "cohort"], how="left"
    )
    out[["members", "priced"]] = out[["members", "priced"]].fillna(0).astype("int32")
    return out[
        ["universe", "anchor", "cohort", "session_date", "anchor_date", "members", "priced",
         "return_equal_weight", "return_cap_weight", "return_median"]
    ].sort_values(["universe", "anchor", "cohort", "session_date"], ignore_index=True)


# --- marts.sector_daily ------------------------------------------------------------------------------


def sector_daily(cohorts: pd.DataFrame, equity_returns: pd.DataFrame) -> pd.DataFrame:
    rows = cohorts[["universe", "symbol", "session_date", "sector", "weight"]].sort_values(
        ["universe", "symbol", "session_date"], ignore_index=True
    )
    rows["sector"] = rows["sector"].fillna(UNKNOWN_SECTOR)
    days = rows[["universe", "session_date"]].drop_duplicates().sort_values(["universe", "session_date"])
    days["previous_date"] = days.groupby("universe")["session_date"].shift()
    rows = rows.merge(days, on=["universe", "session_date"], how="left")
    # Start-of-day weight: the member's weight on the universe's previous session where it has one
    # there; otherwise (a joiner, back after a gap, or without a weight then) its weight of the session.
    member = rows.groupby(["universe", "symbol"])
    was_member = member["session_date"].shift() == rows["previous_date"]
    rows["w"] = member["weight"].shift().where(was_member).fillna(rows["weight"])
    rows = rows.merge(equity_returns[["symbol", "session_date", "ret_1d"]], on=["symbol", "session_date"], how="left")
    counts = rows["ret_1d"].notna() & rows["w"].notna()
    rows["w_ret"] = (rows["w"] * rows["ret_1d"]).where(counts)
    rows["w_counted"] = rows["w"].where(counts)

    out = rows.groupby(["universe", "sector", "session_date"], as_index=False).agg(
        members=("symbol", "size"),
        return_equal_weight=("ret_1d", "mean"),
        w_ret=("w_ret", "sum"),
        w=("w_counted", "sum"),
        weighted=("w_counted", "count"),
    )
    out["return_cap_weight"] = (out["w_ret"] / out["w"]).where((out["weighted"] > 0) & (out["w"] != 0))
    return out.drop(columns=["w_ret", "w", "weighted"])


def sector_performance(sector_daily: pd.DataFrame, sessions: pd.DatetimeIndex, anchors: Sequence[str]) -> pd.DataFrame:
    """Each sector's daily returns after the anchor session compounded, from the sector's growth
    (cumulative product of 1 + return, a missing return as 0) on the session over that at the anchor."""
    keys = ["universe", "sector"]
    df = sector_daily[[*keys, "session_date", "return_equal_weight", "return_cap_weight"]].sort_values(
        [*keys, "session_date"], ignore_index=True
    )
    for c in ("return_equal_weight", "return_cap_weight"):
        df[f"g_{c}"] = (1.0 + df[c].fillna(0.0)).groupby([df[k] for k in keys]).cumprod()
    rows = df.merge(resolve_anchors(sessions, anchors), on="session_date")
    starts = df.groupby("universe", as_index=False)["session_date"].min().rename(columns={"session_date": "history_start"})
    rows = rows.merge(starts, on="universe")
    rows = rows[rows["history_start"] <= rows["anchor_date"]].sort_values("anchor_date")
    growth = df[[*keys, "session_date", "g_return_equal_weight", "g_return_cap_weight"]].rename(
        columns={"session_date": "base_date", "g_return_equal_weight": "base_ew", "g_return_cap_weight": "base_cw"}
    ).sort_values("base_date")
    rows = pd.merge_asof(rows, growth, left_on="anchor_date", right_on="base_date", by=keys)
    rows["return_equal_weight"] = rows["g_return_equal_weight"] / rows["base_ew"].fillna(1.0) - 1.0
    rows["return_cap_weight"] = rows["g_return_cap_weight"] / rows["base_cw"].fillna(1.0) - 1.0
    return rows[["universe", "anchor", "sector", "session_date", "anchor_date", "return_equal_weight", "return_cap_weight"]]


# --- all of it ---------------------------------------------------------------------------------------


def derive(
    raw: dict[str, pd.DataFrame], sessions: pd.DatetimeIndex, *, pairs: Sequence[tuple[str, str]], anchors: Sequence[str]
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """raw.index_bars, raw.equity_bars, raw.holdings, raw.fundamentals (up to as_of) and the sessions
    up to as_of -> {table: frame} for the eleven tables, and seconds per table."""
    out: dict[str, pd.DataFrame] = {}
    timings: dict[str, float] = {}

    def timed(name: str, fn, *args):
        t = time.perf_counter()
        out[name] = fn(*args)
        timings[name] = time.perf_counter() - t
        return out[name]

    daily = timed("marts.index_daily", index_daily, raw["raw.index_bars"])
    timed("marts.index_records", index_records, daily)
    timed("marts.index_performance", index_performance, daily, sessions, anchors)
    timed("marts.relative_performance", relative_performance, daily, pairs)
    members = timed("core.membership", membership, raw["raw.holdings"], sessions)
    coh = timed("core.cohorts", cohorts, members, raw["raw.holdings"], raw["raw.fundamentals"], sessions)
    rets = timed("core.equity_returns", equity_returns, raw["raw.equity_bars"])
    timed("marts.cohort_composition", cohort_composition, coh)
    timed("marts.cohort_performance", cohort_performance, coh, raw["raw.equity_bars"], sessions, anchors)
    sectors = timed("marts.sector_daily", sector_daily, coh, rets)
    timed("marts.sector_performance", sector_performance, sectors, sessions, anchors)
    return out, timings


def sessions_index(days: Sequence[date]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(list(days)), name="session_date")
