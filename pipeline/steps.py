"""One step per derived dataset: which rows a night's changes reach, and how to compute them.

Each step has two halves (see `pipeline.derive`):
- `scope(ctx, changes)`: from the changes of its inputs, the rows to recompute, as a scope frame
  (key columns, null = every value, plus from_date and to_date on the step's `scope_date`);
- `compute(ctx, scope)`: those rows, from bounded windows of the inputs plus carried state, by the
  dataset's pure transform (transforms/). It may compute more; the engine keeps the scope's rows.

Reading windows is the only I/O here; every figure is computed in transforms/.

Why one module of ~850 lines: it is a table of thirteen small scope/compute pairs, one per
dataset in registry order, that share the window readers at the top; split by dataset, each file
would hold 50 lines and import the same helpers.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from ground import calendar
from pipeline.derive import (
    FAR_FUTURE, FAR_PAST, FLOAT_TOLERANCE, Change, Changes, Context, Step, filter_scope, in_scope_sql, literal_in, scope_frame,
)
from warehouse.load import read, registered

# How far back the state row of a series is looked for before a window: a symbol whose previous
# bar is older (a long halt) is looked up again without the bound.
STATE_WINDOW_DAYS = 400
# A price "on or before" a date is looked for this many days back first (then without bound).
PRICE_WINDOW_DAYS = 14


def _sessions(first: date, last: date) -> list[date]:
    return calendar.sessions(first, last) if first <= last else []


def _sessions_frame(first: date, last: date) -> pl.DataFrame:
    days = _sessions(first, last)
    return pl.DataFrame({"session_date": days}, schema={"session_date": pl.Date})


def _min_date(frames: list[pl.DataFrame], col: str) -> date | None:
    values = [f.get_column(col).min() for f in frames if f is not None and f.height]
    values = [v for v in values if v is not None]
    return min(values) if values else None


def _last_before(ctx: Context, table: str, entity: str, date_col: str, starts: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The last row of each entity strictly before its start (`starts`: entity, from_date): the
    state a window continues from. Looked for within STATE_WINDOW_DAYS first, then without bound
    for the entities that have none there."""
    if starts.height == 0:
        return pl.DataFrame()
    cols = ", ".join(f"t.{c}" for c in columns)
    lo = starts.get_column("from_date").min() - timedelta(days=STATE_WINDOW_DAYS)
    hi = starts.get_column("from_date").max()
    with registered(ctx.con, _starts=starts.select(entity, "from_date")):
        # The literal bounds let DuckDB skip the row groups of older history.
        found = read(
            ctx.con,
            f"""SELECT t.{entity}, {cols} FROM {table} t JOIN _starts s ON t.{entity} = s.{entity}
                WHERE t.{date_col} BETWEEN DATE '{lo}' AND DATE '{hi}'
                  AND t.{date_col} < s.from_date AND t.{date_col} >= s.from_date - INTERVAL {STATE_WINDOW_DAYS} DAY
                QUALIFY row_number() OVER (PARTITION BY t.{entity} ORDER BY t.{date_col} DESC) = 1""",
        )
        missing = starts.join(found.select(entity), on=entity, how="anti") if found.height else starts
        if missing.height:
            with registered(ctx.con, _missing=missing.select(entity, "from_date")):
                older = read(
                    ctx.con,
                    f"""SELECT t.{entity}, {cols} FROM {table} t JOIN _missing s ON t.{entity} = s.{entity}
                        WHERE t.{date_col} < s.from_date
                        QUALIFY row_number() OVER (PARTITION BY t.{entity} ORDER BY t.{date_col} DESC) = 1""",
                )
            found = pl.concat([found, older], how="vertical_relaxed") if found.height else older
    return found


def _all_from(first: date | None, until: date) -> pl.DataFrame:
    if first is None:
        return scope_frame(None)
    return scope_frame(pl.DataFrame({"from_date": [first], "to_date": [until]}))


# core.sessions ------------------------------------------------------------------------------------


def _sessions_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    """Every session from the first loaded date (stored or arriving) to `until`."""
    firsts = []
    for table, col in (("raw.index_bars", "session_date"), ("raw.equity_bars", "session_date"), ("raw.holdings", "as_of_date")):
        got = changes.of(table)
        if got is not None:
            firsts.append(got.new.get_column(col).min())
    stored_first, stored_last = ctx.con.execute("SELECT min(session_date), max(session_date) FROM core.sessions").fetchone()
    if stored_first is not None:
        firsts.append(stored_first)
    firsts = [d for d in firsts if d is not None]
    if not firsts or (stored_last is not None and stored_last >= ctx.until and min(firsts) >= stored_first):
        return scope_frame(None)
    return _all_from(min(firsts), FAR_FUTURE)


def _sessions_scope_all(ctx: Context, first: date) -> pl.DataFrame:
    stored_first = ctx.con.execute("SELECT min(session_date) FROM core.sessions").fetchone()[0]
    starts = [d for d in (ctx.first_date, stored_first) if d is not None] or [first]
    return _all_from(min(starts), FAR_FUTURE)


def _sessions_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    days = _sessions(scope.get_column("from_date").min(), ctx.until)
    return pl.DataFrame(
        {"session_date": days, "year": [d.year for d in days], "is_early_close": [calendar.is_early_close(d) for d in days]},
        schema={"session_date": pl.Date, "year": pl.Int32, "is_early_close": pl.Boolean},
    )


# core.equity_returns ------------------------------------------------------------------------------


def _equity_returns_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    got = changes.of("raw.equity_bars")
    if got is None:
        return scope_frame(None, ("symbol",))
    starts = got.new.group_by("symbol").agg(pl.col("session_date").min().alias("from_date"))
    return scope_frame(starts.with_columns(pl.lit(ctx.until).alias("to_date")), ("symbol",))


def _starts(scope: pl.DataFrame, rows: pl.DataFrame, entity: str) -> pl.DataFrame:
    """entity, from_date: where each entity's window starts (a scope without the entity column
    starts every entity in `rows` at the scope's first date)."""
    if entity in scope.columns and scope.get_column(entity).null_count() == 0:
        return scope.group_by(entity).agg(pl.col("from_date").min())
    first = scope.get_column("from_date").min()
    return rows.select(entity).unique().with_columns(pl.lit(first).alias("from_date"))


def _equity_returns_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    from transforms.returns import equity_returns

    sql = in_scope_sql(ctx.con, "raw.equity_bars", scope, "r.session_date", "bars")
    bars = read(ctx.con, f"SELECT symbol, session_date, adj_close FROM ({sql})")
    previous = _last_before(ctx, "raw.equity_bars", "symbol", "session_date", _starts(scope, bars, "symbol"), ["adj_close"])
    return equity_returns(bars.lazy(), previous.lazy() if previous.height else None).collect()


# core.membership ----------------------------------------------------------------------------------


def _membership_scope_all(ctx: Context, first: date) -> pl.DataFrame:
    universes = [r[0] for r in ctx.con.execute("SELECT DISTINCT universe FROM raw.holdings").fetchall()]
    return _membership_scope_from(ctx, {u: first for u in universes})


def _membership_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    """Per universe: the intervals reaching the latest stored snapshot before the earliest changed
    one (P); those are recomputed from the snapshots from P on. New sessions can open an interval
    whose snapshot was after the last session: they reach back to the latest snapshot."""
    starts: dict[str, date] = {}
    got = changes.of("raw.holdings")
    if got is not None:
        for universe, first in got.new.group_by("universe").agg(pl.col("as_of_date").min()).iter_rows():
            starts[universe] = first
    new_sessions = changes.of("core.sessions")
    if new_sessions is not None:
        first_new = new_sessions.new.get_column("session_date").min()
        for (universe,) in ctx.con.execute("SELECT DISTINCT universe FROM raw.holdings").fetchall():
            starts[universe] = min(starts.get(universe, first_new), first_new)
    return _membership_scope_from(ctx, starts)


def _membership_scope_from(ctx: Context, starts: dict[str, date]) -> pl.DataFrame:
    rows = []
    for universe, first in starts.items():
        previous = ctx.con.execute(
            "SELECT max(as_of_date) FROM raw.holdings WHERE universe = ? AND as_of_date < ?", [universe, first]
        ).fetchone()[0]
        # Intervals reaching the first session on or after P: ends are session dates.
        from_date = FAR_PAST if previous is None else _first_session_on_or_after(previous)
        rows.append((universe, previous or FAR_PAST, from_date, FAR_FUTURE))
    if not rows:
        return scope_frame(None, ("universe",))
    frame = pl.DataFrame(rows, schema={"universe": pl.String, "info_snapshot_from": pl.Date, "from_date": pl.Date, "to_date": pl.Date}, orient="row")
    return frame.select("universe", "from_date", "to_date", "info_snapshot_from")


def _first_session_on_or_after(day: date) -> date:
    found = _sessions(day, day + timedelta(days=10))
    return found[0] if found else day


def _membership_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    from transforms.membership import continue_membership

    parts = []
    sessions_all = read(ctx.con, "SELECT session_date FROM core.sessions WHERE session_date <= ? ORDER BY session_date", [ctx.until])
    for universe, snapshot_from, from_date in scope.select("universe", "info_snapshot_from", "from_date").iter_rows():
        holdings = read(
            ctx.con,
            "SELECT universe, as_of_date, symbol FROM raw.holdings WHERE universe = ? AND as_of_date BETWEEN ? AND ?",
            [universe, snapshot_from, ctx.until],
        )
        stored = read(
            ctx.con,
            "SELECT * FROM core.membership WHERE universe = ? AND coalesce(valid_to_date, ?) >= ?",
            [universe, FAR_FUTURE, from_date],
        )
        sessions = sessions_all.filter(pl.col("session_date").is_between(from_date, ctx.until))
        parts.append(continue_membership(holdings.lazy(), sessions.lazy(), stored.lazy()).collect())
    return pl.concat(parts) if parts else pl.DataFrame()


# core.cohorts -------------------------------------------------------------------------------------


def _interval_scope(change: Change, until: date) -> pl.DataFrame:
    """Sessions whose membership a changed interval affects: all of an inserted or deleted
    interval; for one whose end moved, from the earlier end on."""
    keys = ["universe", "symbol", "valid_from_date"]
    new = change.new.select(*keys, pl.col("valid_to_date").fill_null(FAR_FUTURE).alias("_to_new"))
    old = change.old.select(*keys, pl.col("valid_to_date").fill_null(FAR_FUTURE).alias("_to_old"))
    both = new.join(old, on=keys, how="full", coalesce=True)
    return both.select(
        "universe",
        "symbol",
        pl.when(pl.col("_to_new").is_not_null() & pl.col("_to_old").is_not_null())
        .then(pl.min_horizontal("_to_new", "_to_old"))
        .otherwise(pl.col("valid_from_date"))
        .alias("from_date"),
        pl.lit(until).alias("to_date"),
    )


def _cohorts_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    from transforms.cohorts import quarter_availability

    parts = []
    got = changes.of("core.membership")
    if got is not None:
        parts.append(_interval_scope(got, ctx.until))
    got = changes.of("raw.holdings")
    if got is not None:
        parts.append(
            got.new.group_by("universe").agg(pl.col("as_of_date").min().alias("from_date")).with_columns(pl.lit(ctx.until).alias("to_date"))
        )
    got = changes.of("raw.fundamentals")
    if got is not None:
        quarters = quarter_availability(got.rows().lazy()).collect()
        parts.append(
            quarters.group_by("symbol").agg(pl.col("available_date").min().alias("from_date")).with_columns(pl.lit(ctx.until).alias("to_date"))
        )
    got = changes.of("core.sessions")
    if got is not None:
        parts.append(pl.DataFrame({"from_date": [got.new.get_column("session_date").min()], "to_date": [ctx.until]}))
    parts = [p for p in parts if p.height]
    if not parts:
        return scope_frame(None, ("universe", "symbol"))
    merged = pl.concat(parts, how="diagonal_relaxed").filter(pl.col("from_date") <= pl.col("to_date"))
    return scope_frame(merged, ("universe", "symbol"))


def _cohorts_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    """Rows of every member from the earliest universe-wide start, and rows of the symbols a
    symbol-level change names (a new or revised quarter) from their own start: one company's
    quarter does not recompute the whole universe."""
    by_symbol = pl.col("symbol").is_not_null() if "symbol" in scope.columns else pl.lit(False)
    wide, narrow = scope.filter(~by_symbol), scope.filter(by_symbol)
    parts = []
    if wide.height:
        parts.append(_cohort_rows(ctx, wide.get_column("from_date").min(), None))
    if narrow.height:
        starts = narrow.group_by("symbol").agg(pl.col("from_date").min())
        parts.append(_cohort_rows(ctx, narrow.get_column("from_date").min(), starts))
    rows = pl.concat([p for p in parts if p.height], how="vertical") if any(p.height for p in parts) else pl.DataFrame()
    return filter_scope(rows, scope, "session_date").unique(["universe", "symbol", "session_date"]) if rows.height else rows


# Holdings snapshots come at least monthly (iShares daily, the saved files monthly): the latest one
# before a date is looked for this far back first, then without bound.
SNAPSHOT_GAP_DAYS = 40


def _latest_snapshot_on_or_before(ctx: Context, day: date) -> date:
    """The earliest of the universes' latest snapshots on or before `day` (`day` when none)."""
    for lo in (day - timedelta(days=SNAPSHOT_GAP_DAYS), FAR_PAST):
        got = ctx.con.execute(
            f"SELECT min(d) FROM (SELECT universe, max(as_of_date) AS d FROM raw.holdings "
            f"WHERE as_of_date BETWEEN DATE '{lo}' AND DATE '{day}' GROUP BY universe)"
        ).fetchone()[0]
        universes = ctx.con.execute(
            f"SELECT count(DISTINCT universe) FROM raw.holdings WHERE as_of_date BETWEEN DATE '{lo}' AND DATE '{day}'"
        ).fetchone()[0]
        if got is not None and (lo == FAR_PAST or universes == _universe_count(ctx)):
            return got
    return day


def _universe_count(ctx: Context) -> int:
    return ctx.con.execute("SELECT count(DISTINCT universe) FROM core.membership").fetchone()[0]


def _cohort_rows(ctx: Context, first: date, starts: pl.DataFrame | None) -> pl.DataFrame:
    """core.cohorts rows from `first` to ctx.until: of every member, or with `starts` (symbol,
    from_date) of those symbols from their own start."""
    from transforms.cohorts import cohorts

    stored_first = ctx.con.execute("SELECT min(session_date) FROM core.sessions").fetchone()[0]
    first = max(first, stored_first or first)
    membership = read(
        ctx.con,
        "SELECT * FROM core.membership WHERE coalesce(valid_to_date, ?) >= ? AND valid_from_date <= ?",
        [FAR_FUTURE, first, ctx.until],
    )
    if starts is not None:
        # Only the intervals reaching each symbol's start, and rows from the earliest session one of
        # them covers: quarters from years back of a company that joins later (or left long ago)
        # need no sessions, nor every holdings snapshot, of the years it was not a member.
        membership = membership.join(starts.rename({"from_date": "_start"}), on="symbol", how="inner").filter(
            pl.col("valid_to_date").fill_null(FAR_FUTURE) >= pl.col("_start")
        )
        if membership.height:
            first = max(first, membership.select(pl.max_horizontal("valid_from_date", "_start").min()).item())
        membership = membership.drop("_start")
    if membership.height == 0:
        return pl.DataFrame()
    sessions = read(ctx.con, "SELECT session_date FROM core.sessions WHERE session_date BETWEEN ? AND ?", [first, ctx.until])
    if sessions.height == 0:
        return pl.DataFrame()
    # Sector and weight come from the latest snapshot on or before each session: the one before
    # the window, and those inside it (every line: weights are shares of the whole snapshot).
    since = _latest_snapshot_on_or_before(ctx, first)
    holdings = read(
        ctx.con,
        f"""SELECT h.universe, h.as_of_date, h.symbol, h.sector, h.weight_pct, h.market_value_usd
            FROM raw.holdings h WHERE h.as_of_date BETWEEN DATE '{since}' AND DATE '{ctx.until}'""",
    )
    with registered(ctx.con, _symbols=membership.select("symbol").unique()):
        fundamentals = read(ctx.con, "SELECT f.* EXCLUDE (source, fetched_at, load_id, first_seen_at) FROM raw.fundamentals f SEMI JOIN _symbols USING (symbol)")
    return cohorts(membership.lazy(), holdings.lazy(), fundamentals.lazy(), sessions.lazy()).collect()


# marts.cohort_composition -------------------------------------------------------------------------


def _sessions_of(change: Change | None, by: str = "universe") -> pl.DataFrame:
    if change is None:
        return pl.DataFrame(schema={by: pl.String, "session_date": pl.Date})
    return change.rows().select(by, "session_date").unique()


def _cohort_composition_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    days = _sessions_of(changes.of("core.cohorts"))
    return scope_frame(days.select("universe", pl.col("session_date").alias("from_date"), pl.col("session_date").alias("to_date")), ("universe",))


def _read_cohorts(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    sql = in_scope_sql(ctx.con, "core.cohorts", scope, "r.session_date", "coh")
    return read(ctx.con, sql) if sql else pl.DataFrame()


def _cohort_composition_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    from transforms.cohorts import cohort_composition

    return cohort_composition(_read_cohorts(ctx, scope).lazy()).collect()


# marts.sector_daily -------------------------------------------------------------------------------


def _return_changes(change: Change | None) -> pl.DataFrame:
    """(symbol, session_date) of core.equity_returns rows whose daily return changed: inserted,
    deleted, or ret_1d moved beyond the tolerance. A rescaled adjusted history (Yahoo back-adjusts
    for a new dividend) changes adj_close on every row but ret_1d only where it made a difference,
    and only those sessions reach the marts."""
    keys = ["symbol", "session_date"]
    if change is None:
        return pl.DataFrame(schema={"symbol": pl.String, "session_date": pl.Date})
    new = change.new.select(*keys, pl.col("ret_1d").alias("_new"), pl.lit(True).alias("_in_new"))
    old = change.old.select(*keys, pl.col("ret_1d").alias("_old"), pl.lit(True).alias("_in_old"))
    both = new.join(old, on=keys, how="full", coalesce=True)
    tol = FLOAT_TOLERANCE * pl.max_horizontal(pl.col("_new").abs(), pl.col("_old").abs())
    changed = (
        pl.col("_in_new").is_null()
        | pl.col("_in_old").is_null()
        | (pl.col("_new").is_null() != pl.col("_old").is_null())
        | ((pl.col("_new") - pl.col("_old")).abs() > tol).fill_null(False)
    )
    return both.filter(changed).select(keys)


def _sector_daily_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    parts = []
    days = _sessions_of(changes.of("core.cohorts"))
    if days.height:
        # A member's weight at the close is the next session's start-of-day weight.
        nexts = days.with_columns(
            pl.col("session_date").map_elements(_next_session, return_dtype=pl.Date).alias("_next")
        )
        parts.append(nexts.select("universe", pl.col("session_date").alias("from_date"), pl.col("_next").fill_null(pl.col("session_date")).alias("to_date")))
    rets = _return_changes(changes.of("core.equity_returns"))
    if rets.height:
        held = _member_sessions(ctx, rets)
        parts.append(held.select("universe", pl.col("session_date").alias("from_date"), pl.col("session_date").alias("to_date")))
    if not parts:
        return scope_frame(None, ("universe",))
    return scope_frame(pl.concat(parts, how="diagonal_relaxed"), ("universe",))


def _member_sessions(ctx: Context, rets: pl.DataFrame) -> pl.DataFrame:
    """(universe, session_date) where a changed return belongs to a member of the universe that
    session: a sector's day averages its members' returns of that day, so a return of a symbol
    that was no member then changes no row. (A rebase that fills a gap in a former member's old
    history changes hundreds of old sessions' returns, none of them a member's.)"""
    lo, hi = rets.get_column("session_date").min(), rets.get_column("session_date").max()
    with registered(ctx.con, _rets=rets.select("symbol", "session_date")):
        return read(
            ctx.con,
            f"""SELECT DISTINCT c.universe, c.session_date FROM core.cohorts c JOIN _rets r USING (symbol, session_date)
                WHERE c.session_date BETWEEN DATE '{lo}' AND DATE '{hi}'""",
        )


def _next_session(day: date) -> date | None:
    found = _sessions(day + timedelta(days=1), day + timedelta(days=10))
    return found[0] if found else None


def _previous_session(day: date) -> date:
    return calendar.previous_session(day)


def _sector_daily_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    from transforms.sectors import sector_daily

    # Each scope session with the session before it (start-of-day weights).
    widened = scope.with_columns(
        pl.col("from_date").map_elements(_previous_session, return_dtype=pl.Date).alias("from_date")
    )
    cohorts = _read_cohorts(ctx, widened)
    if cohorts.height == 0:
        return pl.DataFrame()
    days = cohorts.select("session_date").unique()
    with registered(ctx.con, _days=days):
        rets = read(ctx.con, "SELECT r.symbol, r.session_date, r.ret_1d FROM core.equity_returns r SEMI JOIN _days USING (session_date)")
    return sector_daily(cohorts.lazy(), rets.lazy()).collect()


# marts.sector_performance -------------------------------------------------------------------------


def _sector_performance_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    """A changed sector return on day d reaches every row measured across it (anchor session before
    d, session on or after d): per universe, the sessions from d on. New sessions resolve anchors."""
    parts = []
    got = changes.of("marts.sector_daily")
    if got is not None:
        firsts = got.rows().group_by("universe").agg(pl.col("session_date").min().alias("from_date"))
        parts.append(firsts.with_columns(pl.lit(ctx.until).alias("to_date")))
    got = changes.of("core.sessions")
    if got is not None:
        parts.append(pl.DataFrame({"from_date": [got.new.get_column("session_date").min()], "to_date": [ctx.until]}))
    if not parts:
        return scope_frame(None, ("universe",))
    return scope_frame(pl.concat(parts, how="diagonal_relaxed"), ("universe",))


def _sector_performance_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    """The scope's (anchor, session) rows, from marts.sector_daily since the earliest anchor
    session they need (a dated anchor: since that date; the mart has a few dozen rows a session)
    and each universe's first sector session."""
    from transforms.sectors import sector_performance

    wanted = filter_scope(_anchor_map(ctx, scope.get_column("from_date").min()), scope.drop("universe", strict=False), "session_date")
    if wanted.height == 0:
        return pl.DataFrame()
    daily = read(
        ctx.con,
        "SELECT universe, sector, session_date, return_equal_weight, return_cap_weight FROM marts.sector_daily "
        "WHERE session_date BETWEEN ? AND ?",
        [wanted.get_column("anchor_date").min(), ctx.until],
    )
    starts = read(ctx.con, "SELECT universe, min(session_date) AS history_start FROM marts.sector_daily GROUP BY universe")
    return sector_performance(daily.lazy(), wanted.lazy(), starts.lazy()).collect()


# marts.cohort_performance -------------------------------------------------------------------------


def _anchor_map(ctx: Context, first: date | None = None) -> pl.DataFrame:
    from transforms.cohort_performance import resolve_anchors

    sessions = read(ctx.con, "SELECT session_date FROM core.sessions WHERE session_date <= ?", [ctx.until])
    mapped = resolve_anchors(sessions.lazy(), ctx.anchors, as_of=ctx.until).collect()
    return mapped if first is None else mapped.filter(pl.col("session_date") >= first)


def _cohort_performance_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    parts = []
    rets = _return_changes(changes.of("core.equity_returns"))
    if rets.height:
        parts.append(_rows_reached_by_returns(ctx, rets))
    got = changes.of("core.sessions")
    if got is not None:
        parts.append(pl.DataFrame({"from_date": [got.new.get_column("session_date").min()], "to_date": [ctx.until]}))
    days = _sessions_of(changes.of("core.cohorts"))
    if days.height:
        anchored = _anchor_map(ctx).join(days.rename({"session_date": "anchor_date"}), on="anchor_date", how="inner")
        parts.append(anchored.select("universe", "anchor", pl.col("session_date").alias("from_date"), pl.col("session_date").alias("to_date")))
    if not parts:
        return scope_frame(None, ("universe", "anchor"))
    return scope_frame(pl.concat(parts, how="diagonal_relaxed"), ("universe", "anchor"))


def _rows_reached_by_returns(ctx: Context, rets: pl.DataFrame) -> pl.DataFrame:
    """The (universe, anchor, session range) rows of marts.cohort_performance that changed returns
    can move.

    A row (u, anchor, t) with anchor session A reads, for each member S of u on A, price(A) and
    price(t): S's latest adj_close on or before each. Their ratio moves only if S's daily returns
    changed somewhere in (A, t] (a rescaled block of history changes the return where it starts
    and where it ends; a whole history rescaled changes none and no ratio). So a changed return
    of S on d reaches the rows whose anchor session is before d, from d on, of the universes S
    was a member of on that anchor session. One exception: where d is S's first bar (inserted,
    or a deleted first bar), S may become priced or unpriced on anchor sessions from d on, so
    that change reaches every row from d on whose anchor session S was a member of.

    Before this, a changed return reached every row from its date on: a rebase that fills a gap
    in a former member's history years back recomputed every anchor since (22 s of a nightly on a
    10-year sample home)."""
    mapped = _anchor_map(ctx)
    scope_schema = {"universe": pl.String, "anchor": pl.String, "from_date": pl.Date, "to_date": pl.Date}
    if mapped.height == 0:
        return pl.DataFrame(schema=scope_schema)
    reach = mapped.group_by("anchor", "anchor_date").agg(
        pl.col("session_date").min().alias("_first"), pl.col("session_date").max().alias("_last")
    )
    starts = _first_returns(ctx, rets)
    # A change on or before the symbol's first stored bar touches its first price.
    rets = rets.join(starts, on="symbol", how="left").with_columns(
        (pl.col("_start").is_null() | (pl.col("session_date") <= pl.col("_start"))).alias("_first_bar")
    )
    per_symbol = rets.group_by("symbol").agg(
        pl.col("session_date").min().alias("_d_min"),
        # Anchor sessions before this can be reached (a first-bar change: any).
        pl.when(pl.col("_first_bar").any()).then(pl.lit(FAR_FUTURE)).otherwise(pl.col("session_date").max()).alias("_bound"),
    )
    anchor_dates = reach.group_by("anchor_date").agg(pl.col("_last").max())
    pairs = per_symbol.join_where(
        anchor_dates, pl.col("_last") >= pl.col("_d_min"), pl.col("anchor_date") < pl.col("_bound")
    ).select("symbol", "anchor_date")
    if pairs.height == 0:
        return pl.DataFrame(schema=scope_schema)
    lo, hi = pairs.get_column("anchor_date").min(), pairs.get_column("anchor_date").max()
    with registered(ctx.con, _pairs=pairs):
        held = read(
            ctx.con,
            f"""SELECT c.universe, c.symbol, c.session_date AS anchor_date FROM core.cohorts c
                JOIN _pairs p ON c.symbol = p.symbol AND c.session_date = p.anchor_date
                WHERE c.session_date BETWEEN DATE '{lo}' AND DATE '{hi}'""",
        ).unique()
    if held.height == 0:
        return pl.DataFrame(schema=scope_schema)
    # For each member on an anchor session: the first changed return after that session, or its
    # first first-bar change whatever the date.
    later = rets.filter(~pl.col("_first_bar")).select("symbol", pl.col("session_date").alias("_d")).sort("_d")
    firsts = rets.filter(pl.col("_first_bar")).group_by("symbol").agg(pl.col("session_date").min().alias("_f"))
    held = (
        held.sort("anchor_date")
        .join_asof(later, left_on="anchor_date", right_on="_d", by="symbol", strategy="forward",
                   allow_exact_matches=False, check_sortedness=False)
        .join(firsts, on="symbol", how="left")
        .with_columns(pl.min_horizontal("_d", "_f").alias("_from"))
        .filter(pl.col("_from").is_not_null())
        .group_by("universe", "anchor_date")
        .agg(pl.col("_from").min())
    )
    return (
        reach.join(held, on="anchor_date")
        .select(
            "universe",
            "anchor",
            pl.max_horizontal("_from", "_first").alias("from_date"),
            pl.col("_last").alias("to_date"),
        )
        .filter(pl.col("from_date") <= pl.col("to_date"))
    )


# How far before a symbol's first changed return _first_returns looks for a stored one.
STORED_BEFORE_DAYS = 40


def _first_returns(ctx: Context, rets: pl.DataFrame) -> pl.DataFrame:
    """(symbol, _start) for the symbols of `rets`: their first stored return where a changed return
    can be on or before it; for the others (a stored return exists in the STORED_BEFORE_DAYS before
    their first changed one), that earlier date, which gives the same answer to "is this change on
    or before the first bar": no. Only the first kind needs the true minimum, and meta.series (its
    first_bar_date is never after a symbol's first stored bar) bounds where to look: a night's
    ~2,300 symbols read a few row groups, not 18M rows of a 30-year table (0.3-0.8 s)."""
    per = rets.group_by("symbol").agg(pl.col("session_date").min().alias("_d_min"))
    lo = per.get_column("_d_min").min() - timedelta(days=STORED_BEFORE_DAYS)
    hi = per.get_column("_d_min").max()
    with registered(ctx.con, _syms=per):
        near = read(
            ctx.con,
            f"""SELECT t.symbol, min(t.session_date) AS _start FROM core.equity_returns t JOIN _syms s USING (symbol)
                WHERE t.session_date BETWEEN DATE '{lo}' AND DATE '{hi}' AND t.session_date < s._d_min
                  AND t.session_date >= s._d_min - INTERVAL {STORED_BEFORE_DAYS} DAY
                GROUP BY t.symbol""",
        )
        rest = per.join(near, on="symbol", how="anti").select("symbol")
        if rest.height == 0:
            return near
        with registered(ctx.con, _rest=rest):
            floor = ctx.con.execute(
                "SELECT count(s.symbol) = count(*), min(s.first_bar_date) FROM _rest r LEFT JOIN meta.series s USING (symbol)"
            ).fetchone()
            bound = f" AND t.session_date >= DATE '{floor[1]}'" if floor[0] and floor[1] is not None else ""
            exact = read(
                ctx.con,
                f"""SELECT t.symbol, min(t.session_date) AS _start FROM core.equity_returns t SEMI JOIN _rest USING (symbol)
                    WHERE true{bound}{literal_in("t.symbol", rest.get_column("symbol"))} GROUP BY t.symbol""",
            )
    return pl.concat([near, exact], how="vertical_relaxed")


def _price_windows(dates: list[date]) -> list[tuple[date, date]]:
    """Merged [d - PRICE_WINDOW_DAYS, d] ranges covering `dates`."""
    out: list[list[date]] = []
    for d in sorted(set(dates)):
        lo = d - timedelta(days=PRICE_WINDOW_DAYS)
        if out and lo <= out[-1][1] + timedelta(days=1):
            out[-1][1] = d
        else:
            out.append([lo, d])
    return [(a, b) for a, b in out]


def _cohort_performance_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    """The (anchor, session) rows the scope asks for, one anchor at a time: anchors share no
    rows, and each holds its own priced members x sessions (a year of a rolling 1y anchor is ~1M
    of them at 2,600 companies), so computing them apart bounds the step by one anchor's, not by
    the sum of all of them (the peak of a replay year)."""
    first = scope.get_column("from_date").min()
    mapped = _anchor_map(ctx, first)
    if mapped.height == 0:
        return pl.DataFrame()
    # The (anchor, session) rows some scope row asks for; universes are kept by the engine's filter.
    wanted = filter_scope(mapped, scope.drop("universe", strict=False), "session_date")
    if wanted.height == 0:
        return pl.DataFrame()
    parts = [_anchor_performance(ctx, rows) for rows in wanted.partition_by("anchor", maintain_order=True)]
    parts = [p for p in parts if p.height]
    return pl.concat(parts, how="vertical") if parts else pl.DataFrame()


def _anchor_performance(ctx: Context, wanted: pl.DataFrame) -> pl.DataFrame:
    """marts.cohort_performance rows of `wanted` (anchor, session_date, anchor_date rows)."""
    from transforms.cohort_performance import members_at_anchors, needed_prices, performance, prices_at

    anchor_dates = wanted.select("anchor_date").unique()
    with registered(ctx.con, _anchor_dates=anchor_dates):
        cohorts = read(
            ctx.con,
            "SELECT c.universe, c.symbol, c.session_date, c.cohort, c.weight FROM core.cohorts c "
            "JOIN _anchor_dates a ON c.session_date = a.anchor_date",
        )
    members = members_at_anchors(cohorts.lazy(), wanted.lazy()).collect()
    needed = needed_prices(members.lazy(), wanted.lazy()).collect()
    bars = _price_rows(ctx, needed)
    prices = prices_at(bars.lazy(), needed.lazy()).collect()
    return performance(wanted.lazy(), members.lazy(), prices.lazy()).collect()


def _price_rows(ctx: Context, needed: pl.DataFrame) -> pl.DataFrame:
    """core.equity_returns rows enough to price every needed (symbol, session_date): the rows of
    short windows before the needed dates, and for symbols without a bar there, their last bar."""
    if needed.height == 0:
        return pl.DataFrame(schema={"symbol": pl.String, "session_date": pl.Date, "adj_close": pl.Float64})
    windows = _price_windows(needed.get_column("session_date").unique().to_list())
    # Literal ranges: DuckDB reads only the row groups of those days.
    ranges = " OR ".join(f"r.session_date BETWEEN DATE '{lo}' AND DATE '{hi}'" for lo, hi in windows)
    with registered(ctx.con, _syms=needed.select("symbol").unique()):
        rows = read(
            ctx.con,
            f"SELECT r.symbol, r.session_date, r.adj_close FROM core.equity_returns r SEMI JOIN _syms s ON r.symbol = s.symbol WHERE {ranges}",
        )
        # Needed pairs with no bar in their window: the symbol's last bar before the date.
        have = rows.select("symbol", pl.col("session_date").alias("_bar")).sort("_bar")
        probe = (
            needed.sort("session_date")
            .join_asof(have, left_on="session_date", right_on="_bar", by="symbol", strategy="backward", check_sortedness=False)
            .filter(pl.col("_bar").is_null() | (pl.col("_bar") < pl.col("session_date") - timedelta(days=PRICE_WINDOW_DAYS)))
        )
        if probe.height:
            # The probed symbols' rows only: an ASOF JOIN sorts its whole right side (all of
            # core.equity_returns: 0.8-1.1 s on a 30-year home, 0.03 s for a few symbols' rows).
            with registered(ctx.con, _probe=probe.select("symbol", "session_date")):
                older = read(
                    ctx.con,
                    """SELECT r.symbol, r.session_date, r.adj_close FROM _probe p
                       ASOF JOIN (SELECT symbol, session_date, adj_close FROM core.equity_returns
                                  WHERE symbol IN (SELECT symbol FROM _probe)) r
                       ON r.symbol = p.symbol AND r.session_date <= p.session_date""",
                )
            rows = pl.concat([rows, older], how="vertical_relaxed").unique(["symbol", "session_date"])
    return rows


# index marts --------------------------------------------------------------------------------------


def _index_daily_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    got = changes.of("raw.index_bars")
    if got is None:
        return scope_frame(None, ("symbol",))
    starts = got.new.group_by("symbol").agg(pl.col("session_date").min().alias("from_date"))
    return scope_frame(starts.with_columns(pl.lit(ctx.until).alias("to_date")), ("symbol",))


def _index_daily_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    """Each symbol from its first changed session: the stored row before it carries the running
    figures, and the INDEX_LOOKBACK_SESSIONS bars up to it feed the window columns. A symbol whose
    stored history before the change is shorter than that is computed from its first bar."""
    from transforms.index_daily import INDEX_LOOKBACK_SESSIONS, INDEX_STATE_COLUMNS, index_daily

    starts = _starts(scope, read(ctx.con, "SELECT DISTINCT symbol FROM raw.index_bars"), "symbol")
    state = _last_before(ctx, "marts.index_daily", "symbol", "session_date", starts, list(INDEX_STATE_COLUMNS[1:]) + ["session_date"])
    with registered(ctx.con, _starts=starts):
        before = read(
            ctx.con,
            "SELECT s.symbol, count(d.session_date) AS n FROM _starts s LEFT JOIN marts.index_daily d "
            "ON d.symbol = s.symbol AND d.session_date < s.from_date GROUP BY s.symbol",
        )
    long_enough = before.filter(pl.col("n") >= INDEX_LOOKBACK_SESSIONS).get_column("symbol")
    state = state.filter(pl.col("symbol").is_in(long_enough.implode())) if state.height else state
    # Bars: from the start of each symbol's look-back window (its first bar without state).
    windows = starts.join(state.select("symbol", pl.col("session_date").alias("_state_date")), on="symbol", how="left")
    with registered(ctx.con, _windows=windows):
        bars = read(
            ctx.con,
            f"""WITH context AS (
                    SELECT b.symbol, b.session_date, b.close FROM raw.index_bars b JOIN _windows w USING (symbol)
                    WHERE w._state_date IS NOT NULL AND b.session_date <= w._state_date
                      AND b.session_date > w._state_date - INTERVAL {3 * INDEX_LOOKBACK_SESSIONS} DAY
                    QUALIFY row_number() OVER (PARTITION BY b.symbol ORDER BY b.session_date DESC) <= {INDEX_LOOKBACK_SESSIONS})
                SELECT * FROM context
                UNION ALL
                SELECT b.symbol, b.session_date, b.close FROM raw.index_bars b JOIN _windows w USING (symbol)
                WHERE b.session_date <= ? AND (w._state_date IS NULL OR b.session_date > w._state_date)""",
            [ctx.until],
        )
    return index_daily(bars.lazy(), state.select(*INDEX_STATE_COLUMNS, "symbol").lazy() if state.height else None).collect()


def _index_records_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    got = changes.of("marts.index_daily")
    if got is None:
        return scope_frame(None, ("symbol",))
    starts = got.rows().group_by("symbol").agg(pl.date(pl.col("session_date").min().dt.year(), 1, 1).alias("from_date"))
    return scope_frame(starts.with_columns(pl.lit(FAR_FUTURE).alias("to_date")), ("symbol",))


def _read_index_daily(ctx: Context, symbols: list[str], since: date | None = None) -> pl.DataFrame:
    """index_daily rows of `symbols` from `since` (every row without it) up to ctx.until."""
    with registered(ctx.con, _symbols=pl.DataFrame({"symbol": symbols}, schema={"symbol": pl.String})):
        return read(
            ctx.con,
            "SELECT * FROM marts.index_daily SEMI JOIN _symbols USING (symbol) WHERE session_date BETWEEN ? AND ?",
            [since or FAR_PAST, ctx.until],
        )


def _index_records_scope_all(ctx: Context, first: date) -> pl.DataFrame:
    return scope_frame(pl.DataFrame({"from_date": [date(first.year, 1, 1)], "to_date": [FAR_FUTURE]}))


def _index_records_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    """The years from each symbol's first changed one, from index_daily rows of those years; the
    history start from the stored rows (one per symbol)."""
    from transforms.index_daily import index_records

    first = scope.get_column("from_date").min()
    symbols = scope.get_column("symbol").drop_nulls().unique().to_list() if "symbol" in scope.columns else []
    if not symbols or scope.get_column("symbol").null_count():
        symbols = [r[0] for r in ctx.con.execute("SELECT DISTINCT symbol FROM raw.index_bars").fetchall()]
    daily = _read_index_daily(ctx, symbols, first)
    # A history that grew backwards changed index_daily from its new first row: the window has it.
    stored = read(ctx.con, "SELECT symbol, min(history_start) AS history_start FROM marts.index_records GROUP BY symbol")
    starts = (
        pl.concat([stored, daily.group_by("symbol").agg(pl.col("session_date").min().alias("history_start"))])
        .group_by("symbol")
        .agg(pl.col("history_start").min())
    )
    return index_records(daily.lazy(), history_start=starts.lazy()).collect()


def _relative_performance_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    got = changes.of("marts.index_daily")
    if got is None or not ctx.pairs:
        return scope_frame(None, ("lead_symbol", "lag_symbol"))
    firsts = dict(got.rows().group_by("symbol").agg(pl.col("session_date").min()).iter_rows())
    rows = []
    for lead, lag in ctx.pairs:
        starts = [firsts[s] for s in (lead, lag) if s in firsts]
        if starts:
            rows.append((lead, lag, min(starts), ctx.until))
    frame = pl.DataFrame(rows, schema={"lead_symbol": pl.String, "lag_symbol": pl.String, "from_date": pl.Date, "to_date": pl.Date}, orient="row")
    return scope_frame(frame, ("lead_symbol", "lag_symbol"))


def _relative_performance_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    """Each pair from its first changed session, continuing its stored streak, its relative level and
    the ladder of its earlier runs (one small aggregate over the stored rows), from index_daily rows
    of the window."""
    import numpy as np

    from transforms.relative_performance import ladder, relative_performance

    if "lead_symbol" in scope.columns and scope.get_column("lead_symbol").null_count() == 0:
        firsts = dict(((r[0], r[1]), r[2]) for r in scope.group_by("lead_symbol", "lag_symbol").agg(pl.col("from_date").min()).iter_rows())
    else:
        first = scope.get_column("from_date").min()
        firsts = {p: first for p in ctx.pairs}
    states, ladders = [], {}
    for (lead, lag), first in firsts.items():
        row = ctx.con.execute(
            "SELECT session_date, streak, relative_level FROM marts.relative_performance WHERE lead_symbol = ? "
            "AND lag_symbol = ? AND session_date < ? ORDER BY session_date DESC LIMIT 1",
            [lead, lag, first],
        ).fetchone()
        if row is None:
            continue
        state_date, streak, level = row
        states.append((lead, lag, state_date, streak, level))
        run_start = state_date
        if streak > 1:
            run_start = ctx.con.execute(
                "SELECT session_date FROM marts.relative_performance WHERE lead_symbol = ? AND lag_symbol = ? "
                "AND session_date <= ? ORDER BY session_date DESC LIMIT 1 OFFSET ?",
                [lead, lag, state_date, streak - 1],
            ).fetchone()[0]
        earlier = read(
            ctx.con,
            "SELECT streak, max(session_date) AS session_date FROM marts.relative_performance "
            "WHERE lead_symbol = ? AND lag_symbol = ? AND session_date < ? AND streak > 0 GROUP BY streak",
            [lead, lag, run_start if streak > 0 else first],
        )
        days = earlier.get_column("session_date").cast(pl.Int32).to_numpy().astype(np.int64)
        trailing = (int(streak), int(pl.Series([state_date]).cast(pl.Int32)[0])) if streak > 0 else (0, -1)
        ladders[(lead, lag)] = (ladder(earlier.get_column("streak").to_numpy(), days), trailing)
    state = pl.DataFrame(
        states,
        schema={"lead_symbol": pl.String, "lag_symbol": pl.String, "session_date": pl.Date, "streak": pl.Int32, "relative_level": pl.Float64},
        orient="row",
    )
    # Rows after each pair's state row (a pair without one: its whole history).
    after = min((s[2] for s in states), default=None) if len(states) == len(firsts) else None
    symbols = sorted({x for p in firsts for x in p})
    daily = _read_index_daily(ctx, symbols, after + timedelta(days=1) if after else None)
    return relative_performance(daily.lazy(), list(firsts), state=state.lazy(), ladders=ladders).collect()


def _relative_performance_history(ctx: Context, rows: pl.DataFrame) -> pl.DataFrame:
    """The stored row of each pair just before the computed ones (streak checks continue from it)."""
    starts = rows.group_by("lead_symbol", "lag_symbol").agg(pl.col("session_date").min().alias("_first"))
    with registered(ctx.con, _firsts=starts):
        return read(
            ctx.con,
            """SELECT r.* FROM marts.relative_performance r JOIN _firsts f USING (lead_symbol, lag_symbol)
               WHERE r.session_date < f._first
               QUALIFY row_number() OVER (PARTITION BY r.lead_symbol, r.lag_symbol ORDER BY r.session_date DESC) = 1""",
        )


def _index_performance_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    """A changed close reaches the sessions from its date on: its own rows, and every row whose
    anchor session it is (anchor sessions are never after the session)."""
    got = changes.of("marts.index_daily")
    parts = []
    if got is not None:
        starts = got.rows().group_by("symbol").agg(pl.col("session_date").min().alias("from_date"))
        parts.append(starts.with_columns(pl.lit(ctx.until).alias("to_date")))
    new_sessions = changes.of("core.sessions")
    if new_sessions is not None:
        parts.append(pl.DataFrame({"from_date": [new_sessions.new.get_column("session_date").min()], "to_date": [ctx.until]}))
    if not parts:
        return scope_frame(None, ("symbol",))
    return scope_frame(pl.concat(parts, how="diagonal_relaxed"), ("symbol",))


def _index_performance_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    """Rows from each symbol's first changed session: closes of the window, reaching back as far as
    a rolling anchor can (ROLLING_ANCHOR_LOOKBACK_DAYS), and the closes of the dated anchors."""
    from transforms.index_performance import ROLLING_ANCHOR_LOOKBACK_DAYS, index_performance

    first = scope.get_column("from_date").min()
    symbols = scope.get_column("symbol").drop_nulls().unique().to_list() if "symbol" in scope.columns else []
    if not symbols or scope.get_column("symbol").null_count():
        symbols = [r[0] for r in ctx.con.execute("SELECT DISTINCT symbol FROM raw.index_bars").fetchall()]
    closes = _read_index_daily(ctx, symbols, first - timedelta(days=ROLLING_ANCHOR_LOOKBACK_DAYS))
    dated = [calendar.session_on_or_before(date.fromisoformat(a)) for a in ctx.anchors if a not in ("ytd", "1y")]
    if dated:
        with registered(ctx.con, _dated=pl.DataFrame({"session_date": dated}, schema={"session_date": pl.Date}), _symbols=pl.DataFrame({"symbol": symbols}, schema={"symbol": pl.String})):
            at_anchors = read(ctx.con, "SELECT * FROM marts.index_daily SEMI JOIN _symbols USING (symbol) SEMI JOIN _dated USING (session_date)")
        closes = pl.concat([closes, at_anchors]).unique(["symbol", "session_date"])
    sessions = read(ctx.con, "SELECT session_date FROM core.sessions WHERE session_date <= ?", [ctx.until])
    rows = index_performance(closes.lazy(), sessions.lazy(), anchors=ctx.anchors, as_of=ctx.until).collect()
    return rows.filter(pl.col("session_date") >= first)


# marts.headlines ----------------------------------------------------------------------------------

# How far back a night's facts read: the close five sessions back and the previous streak (the YTD
# base is index_daily's prev_year_close). A year, so that a series with a long gap still finds them.
HEADLINE_LOOKBACK_DAYS = 380


def _headlines_scope(ctx: Context, changes: Changes) -> pl.DataFrame:
    nights: list[date] = []
    firsts: list[date] = []
    for table in ("marts.index_daily", "marts.relative_performance", "marts.index_performance"):
        got = changes.of(table)
        if got is not None:
            firsts.append(got.rows().get_column("session_date").min())
    for table in ("marts.cohort_composition", "marts.cohort_performance", "marts.sector_daily"):
        got = changes.of(table)
        if got is not None:
            nights.extend(got.rows().get_column("session_date").unique().to_list())
    got = changes.of("marts.index_records")
    if got is not None:
        old = got.old.group_by("symbol").agg(pl.col("history_start").min())
        new = got.new.group_by("symbol").agg(pl.col("history_start").min())
        moved = old.join(new, on="symbol", how="inner").filter(pl.col("history_start") != pl.col("history_start_right"))
        if moved.height:
            firsts.append(FAR_PAST)
    parts = []
    if firsts:
        parts.append(pl.DataFrame({"from_date": [min(firsts)], "to_date": [ctx.until]}))
    if nights:
        days = sorted(set(nights))
        parts.append(pl.DataFrame({"from_date": days, "to_date": days}))
    if not parts:
        return scope_frame(None)
    return scope_frame(pl.concat(parts))


def _headlines_compute(ctx: Context, scope: pl.DataFrame) -> pl.DataFrame:
    """The facts of the scope's nights, from the marts' rows of those nights plus the look-back
    the index and pair facts read (HEADLINE_LOOKBACK_DAYS)."""
    from transforms.headlines import headlines

    days = read(ctx.con, "SELECT DISTINCT session_date AS as_of_date FROM marts.index_daily WHERE session_date BETWEEN ? AND ?",
                [scope.get_column("from_date").min(), ctx.until])
    nights = filter_scope(days, scope, "as_of_date").get_column("as_of_date").sort().to_list()
    if not nights:
        return pl.DataFrame()
    since = nights[0] - timedelta(days=HEADLINE_LOOKBACK_DAYS)
    with registered(ctx.con, _nights=pl.DataFrame({"session_date": nights}, schema={"session_date": pl.Date})):
        at = lambda table: read(ctx.con, f"SELECT * FROM {table} SEMI JOIN _nights USING (session_date)").lazy()  # noqa: E731
        window = lambda table: read(  # noqa: E731
            ctx.con, f"SELECT * FROM {table} WHERE session_date BETWEEN ? AND ?", [since, nights[-1]]
        ).lazy()
        return headlines(
            nights,
            window("marts.index_daily"),
            read(ctx.con, "SELECT * FROM marts.index_records").lazy(),
            window("marts.relative_performance"),
            at("marts.cohort_composition"),
            at("marts.cohort_performance"),
            at("marts.sector_daily"),
            index_performance=at("marts.index_performance"),
            pairs=ctx.pairs,
            anchors=ctx.anchors,
            names=ctx.index_names,
        ).collect()


# the step table -----------------------------------------------------------------------------------

STEPS: dict[str, Step] = {
    "core.sessions": Step(_sessions_scope, _sessions_compute, "{t}.session_date", _sessions_scope_all),
    "core.equity_returns": Step(_equity_returns_scope, _equity_returns_compute, "{t}.session_date"),
    "core.membership": Step(
        _membership_scope, _membership_compute, f"coalesce({{t}}.valid_to_date, DATE '{FAR_FUTURE}')", _membership_scope_all
    ),
    "core.cohorts": Step(_cohorts_scope, _cohorts_compute, "{t}.session_date"),
    "marts.cohort_composition": Step(_cohort_composition_scope, _cohort_composition_compute, "{t}.session_date"),
    "marts.sector_daily": Step(_sector_daily_scope, _sector_daily_compute, "{t}.session_date"),
    "marts.sector_performance": Step(_sector_performance_scope, _sector_performance_compute, "{t}.session_date"),
    "marts.cohort_performance": Step(_cohort_performance_scope, _cohort_performance_compute, "{t}.session_date"),
    "marts.index_daily": Step(_index_daily_scope, _index_daily_compute, "{t}.session_date"),
    "marts.index_records": Step(
        _index_records_scope, _index_records_compute, "make_date({t}.year, 1, 1)", _index_records_scope_all
    ),
    "marts.index_performance": Step(_index_performance_scope, _index_performance_compute, "{t}.session_date"),
    "marts.relative_performance": Step(
        _relative_performance_scope, _relative_performance_compute, "{t}.session_date", gate_history=_relative_performance_history
    ),
    "marts.headlines": Step(_headlines_scope, _headlines_compute, "{t}.as_of_date"),
}
