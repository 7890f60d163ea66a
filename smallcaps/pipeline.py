"""The steps of one load, as plain functions: plan, fetch, validate, load, publish.

`flows/` wraps these in Prefect tasks and sequences them; nothing here imports Prefect, so the
steps can be tested and reused (benchmarks, the CLI) without an orchestrator.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Callable, Sequence

import duckdb
import polars as pl

from smallcaps import calendar
from smallcaps.crashpoints import crashpoint
from smallcaps.settings import Settings
from sources.base import (
    ACTIONS_SCHEMA,
    BARS_SCHEMA,
    FAILURES_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HOLDINGS_SCHEMA,
    Fetched,
    Source,
    empty,
)
from warehouse import loads
from warehouse.load import MergeCounts, merge, read, register, stage, transaction

# Raw table of each part of a fetch, with the source schema it follows.
RAW_TABLES: dict[str, dict[str, pl.DataType]] = {
    "raw.holdings": HOLDINGS_SCHEMA,
    "raw.index_bars": BARS_SCHEMA,
    "raw.equity_bars": BARS_SCHEMA,
    "raw.fundamentals": FUNDAMENTALS_SCHEMA,
    "raw.corporate_actions": ACTIONS_SCHEMA,
}


class LoadFailed(RuntimeError):
    """The load changed nothing in raw, core or marts; the message says why and what to do."""


class LoadBlocked(LoadFailed):
    """An error-level expectation failed: offending rows are in dq.quarantine."""


class NightHeld(RuntimeError):
    """The load is in the private warehouse but was not published (completeness gate)."""


def open_warehouse(settings: Settings) -> duckdb.DuckDBPyConnection:
    """The private warehouse for a load: migrated, its derived tables as the registry declares them
    (a re-shaped one is re-created empty and rebuilt by the load), DuckDB kept to half the memory
    budget."""
    from smallcaps.registry import DATASETS
    from warehouse.datasets import sync
    from warehouse.db import connect

    con = connect(settings.warehouse_path, memory_limit_gb=settings.memory_limit_gb / 2)
    sync(con, DATASETS, dataset_config(settings))
    return con


def dataset_config(settings: Settings) -> dict[str, object]:
    """The settings that shape derived rows (Dataset.settings): a change rebuilds those tables."""
    return {"pairs": [str(p) for p in settings.pairs], "anchors": list(settings.anchors)}


def new_load_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


@dataclass
class Plan:
    """What one load fetches."""

    kind: str  # nightly | backfill
    as_of: date  # the session the load brings up to date (published night)
    bars_start: date
    holdings_start: date
    index_symbols: list[str]
    universes: list[str]


@dataclass
class Batch:
    """Everything one load fetched, split by destination raw table."""

    frames: dict[str, pl.DataFrame]
    failures: pl.DataFrame
    excluded: pl.DataFrame
    requests: int = 0
    asked: dict[str, list[str]] = field(default_factory=dict)  # dataset -> symbols requested

    @property
    def rows_in(self) -> int:
        return sum(f.height for f in self.frames.values()) + self.excluded.height


@dataclass
class Outcome:
    load_id: str
    status: str
    as_of: date
    message: str = ""
    tables: dict[str, MergeCounts] = field(default_factory=dict)
    rows_quarantined: int = 0
    warnings: list[str] = field(default_factory=list)
    # What did not load and why, one line per table and reason (quarantine_summary).
    quarantined: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    published_path: str | None = None


# plan -----------------------------------------------------------------------------------------


def check_as_of(as_of: date, latest: date, what: str = "as-of") -> None:
    """No load is for a night after the latest completed NYSE session: nobody has its close yet, and
    a night published for it would claim figures that do not exist."""
    if as_of > latest:
        raise ValueError(
            f"{what} {as_of} is after the latest completed NYSE session ({latest}): nobody has that close yet, "
            f"so nothing was loaded; ask for {latest} or an earlier session"
        )


def plan_nightly(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date, *, first_date: date | None) -> Plan:
    """Bring the warehouse up to `as_of`, re-fetching a few stored sessions to catch revisions, but
    none before `first_date` (the source's first session, Capabilities.first_date; None: unknown)."""
    last = con.execute("SELECT max(session_date) FROM raw.index_bars").fetchone()[0]
    from_ = min(last, as_of) if last else as_of
    start = from_
    for _ in range(settings.overlap_sessions):
        start = calendar.previous_session(start)
    start = max(start, first_date) if first_date is not None else start
    # iShares dates a file by the previous session's close: one session of slack on the left.
    holdings_start = calendar.previous_session(min(from_, as_of))
    return Plan("nightly", as_of, start, holdings_start, list(settings.index_symbols), [u.name for u in settings.universes])


def plan_backfill(settings: Settings, start: date, end: date) -> Plan:
    return Plan("backfill", end, start, start, list(settings.index_symbols), [u.name for u in settings.universes])


def chunks(symbols: Sequence[str], size: int) -> list[list[str]]:
    return [list(symbols[i : i + size]) for i in range(0, len(symbols), size)]


def grouped_chunks(groups: dict, size: int) -> list[tuple[list[str], object]]:
    """(chunk, key) for each chunk of each group of symbols, groups in key order: one fetch task per
    chunk, the symbols of a group sharing the key (a first session, or a date range)."""
    return [(chunk, key) for key, group in sorted(groups.items()) for chunk in chunks(group, size)]


def equity_symbols(
    con: duckdb.DuckDBPyConnection,
    holdings: pl.DataFrame,
    retire_after: int,
    *,
    anchors: Sequence[str] | None = None,
    window: tuple[date, date] | None = None,
) -> tuple[list[str], list[str]]:
    """Constituents to price this load, and former members retired for failing.

    Current members (in this fetch's holdings or in a universe's latest stored snapshot) are always
    priced. A former member (stored before, in neither) is priced only while its price is needed:
    with `anchors` (settings.anchors) and `window` (the load's first and last session), while
    marts.cohort_performance holds it on some session of the window, or on a session after its
    last stored bar (see `last_needed_sessions`); once its last needed price is stored it is no
    longer asked for. Without them, every former member is priced while it trades (the rule
    before anchors were taken into account).

    A former member whose bars failed on `retire_after` loads in a row has stopped trading: it is
    retired (returned second, logged, kept in meta.fetch_state and meta.symbols) even if needed;
    its last return then holds, as cohort_performance defines. Symbols that failed last time come
    first, so they are fetched first.
    """
    # meta.symbols holds every ticker ever held (its status `active` while in a universe's newest
    # snapshot): no scan of the stored snapshots.
    stored = {r[0] for r in con.execute("SELECT DISTINCT symbol FROM meta.symbols").fetchall()}
    current = set(holdings.get_column("symbol").to_list()) | {
        r[0] for r in con.execute("SELECT DISTINCT symbol FROM meta.symbols WHERE status = 'active'").fetchall()
    }
    failing = dict(
        con.execute(
            "SELECT symbol, consecutive_failures FROM meta.fetch_state WHERE dataset = 'bars' AND consecutive_failures > 0"
        ).fetchall()
    )
    former = stored - current
    retired = sorted(s for s in former if failing.get(s, 0) >= retire_after)
    if anchors is not None and window is not None and former:
        first, as_of = window
        membership = read(con, "SELECT universe, symbol, valid_from_date, valid_to_date FROM core.membership").filter(
            pl.col("symbol").is_in(sorted(former))
        )
        last_bar = dict(con.execute("SELECT symbol, last_bar_date FROM meta.series").fetchall())
        needed = dict(last_needed_sessions(membership, anchors, as_of).iter_rows())
        former = {
            s for s in former
            if s in needed and (needed[s] >= first or last_bar.get(s) is None or last_bar[s] < needed[s])
        }
    wanted = (current | former) - set(retired)
    return sorted(wanted, key=lambda s: (s not in failing, s)), retired


def last_needed_sessions(membership: pl.DataFrame, anchors: Sequence[str], as_of: date) -> pl.DataFrame:
    """symbol, last_needed_date: the last session up to `as_of` on which marts.cohort_performance
    needs the symbol's price, for symbols it needs on any.

    cohort_performance holds a member bought at an anchor session: on session t, with anchor a,
    every symbol that was a member of some universe on a's anchor session for t (resolved exactly
    as the mart resolves it, `resolve_anchors`, on the NYSE calendar). So a symbol's price is
    needed on t when one of its membership intervals (core.membership rows, any universe) contains
    that anchor session. An anchor session never moves back as t advances (a fixed date stays,
    `ytd` and `1y` move forward), so once a former member's last needed session has passed it is
    never needed again: with a fixed anchor such as 2025-04-08, a member of that day is needed on
    every later session (it is held for good); with `1y`, until a year after it left; with `ytd`,
    until the end of the year after the one it left in. Pure: no I/O.
    """
    result_schema = {"symbol": pl.String, "last_needed_date": pl.Date}
    if membership.is_empty() or not anchors:
        return pl.DataFrame(schema=result_schema)
    intervals = membership.select(
        pl.col("symbol").cast(pl.String),
        pl.col("valid_from_date").cast(pl.Date),
        pl.col("valid_to_date").cast(pl.Date).fill_null(as_of),
    ).filter(pl.col("valid_from_date") <= as_of)
    if intervals.is_empty():
        return pl.DataFrame(schema=result_schema)
    from transforms.cohort_performance import resolve_anchors

    first = intervals.get_column("valid_from_date").min()
    fixed = [date.fromisoformat(a) for a in anchors if a not in ("ytd", "1y")]
    # Sessions from a year (and a few days) before the first interval, so a `1y` or `ytd` anchor of
    # its first sessions resolves, and back to any fixed anchor.
    start = min([first - timedelta(days=380), *[d - timedelta(days=10) for d in fixed]])
    sessions = pl.LazyFrame({"session_date": calendar.sessions(start, as_of)}, schema={"session_date": pl.Date})
    # Per anchor and anchor session: the last session that uses it. Anchor sessions only move
    # forward, so the last use grows with the anchor session, and the latest anchor session inside
    # a membership interval gives that interval's last needed session.
    uses = (
        resolve_anchors(sessions, anchors, as_of=as_of)
        .filter(pl.col("session_date") >= first)
        .group_by("anchor", "anchor_date")
        .agg(pl.col("session_date").max().alias("last_needed_date"))
        .sort("anchor_date")
        .collect()
    )
    per_anchor = [
        intervals.sort("valid_to_date")
        .join_asof(
            uses.filter(pl.col("anchor") == anchor).drop("anchor"),
            left_on="valid_to_date",
            right_on="anchor_date",
            strategy="backward",
        )
        .filter(pl.col("anchor_date") >= pl.col("valid_from_date"))
        .select("symbol", "last_needed_date")
        for anchor in dict.fromkeys(anchors)
    ]
    return (
        pl.concat(per_anchor, how="vertical")
        .group_by("symbol")
        .agg(pl.col("last_needed_date").max())
        .sort("symbol")
        .select(list(result_schema))
    )


def bar_chunks(starts: dict[date, list[str]], size: int) -> list[tuple[list[str], date]]:
    """(chunk, first session) per bar fetch task. The symbols of the latest first session (the
    night's window) are cut into chunks of `size`; the symbols behind it (each catching up from its
    own last bar, so nearly every one with another date) share chunks too, in date order, each chunk
    fetched from its earliest member's date: a symbol asked a few sessions more than it needs gets
    rows that merge as unchanged, where one task per date made a night of ~100 one-symbol tasks."""
    if not starts:
        return []
    latest = max(starts)
    behind = [(s, first) for first in sorted(starts) if first != latest for s in starts[first]]
    out = [(chunk, latest) for chunk in chunks(starts[latest], size)]
    for i in range(0, len(behind), size):
        part = behind[i : i + size]
        out.insert(i // size, ([s for s, _ in part], min(first for _, first in part)))
    return out


def bar_starts(con: duckdb.DuckDBPyConnection, symbols: Sequence[str], start: date, overlap: int) -> dict[date, list[str]]:
    """First session to fetch per symbol, grouped: `start` for most; a symbol whose last stored bar
    is older (it failed on earlier nights) is fetched from there, overlap included, so a gap closes."""
    last = dict(con.execute("SELECT symbol, last_bar_date FROM meta.series WHERE last_bar_date < ?", [start]).fetchall())
    groups: dict[date, list[str]] = {}
    for s in symbols:
        first = start
        if s in last:
            first = last[s]
            for _ in range(overlap):
                first = calendar.previous_session(first)
        groups.setdefault(first, []).append(s)
    return dict(sorted(groups.items()))


def rebase_symbols(con: duckdb.DuckDBPyConnection, fetched: Fetched, as_of: date) -> dict[str, tuple[date, date]]:
    """Symbols whose stored bars are on an old price basis, each with the sessions to fetch again.

    Yahoo's Close is split-adjusted and its Adj Close split- and dividend-adjusted, back to the first
    bar: a new split or dividend changes every earlier row, not only the re-fetched overlap, and the
    rows left from earlier nights would make a false jump where they meet the new ones (-75% on a
    4:1 split). A symbol is rebased when the fetch brought an action that is not stored yet, or
    stored with another value, and the warehouse holds bars of it from before the fetched ones; or
    when an earlier rebase of it failed (meta.fetch_state, dataset 'rebase'), so a failure is
    retried until it succeeds. The range is (first stored session, the session before tonight's
    first bar of it, or `as_of` when tonight brought none): tonight's rows are already current.
    """
    actions, bars = fetched.actions, fetched.bars
    if dict(actions.schema) != ACTIONS_SCHEMA or dict(bars.schema) != BARS_SCHEMA:
        return {}  # mis-shaped frames are the gate's to name and block, not ours to mend
    firsts = bars.filter(pl.col("symbol").is_not_null()).group_by("symbol").agg(pl.col("session_date").min().alias("first_fetched"))
    register(con, "_new_actions", actions)
    register(con, "_first_fetched", firsts)
    try:
        rows = con.execute(
            """WITH new AS (
                   SELECT a.symbol FROM _new_actions a
                   WHERE a.symbol IS NOT NULL AND NOT EXISTS (
                       SELECT 1 FROM raw.corporate_actions c
                       WHERE c.symbol = a.symbol AND c.ex_date = a.ex_date AND c.action = a.action AND c.value = a.value)
                   UNION SELECT symbol FROM meta.fetch_state WHERE dataset = 'rebase' AND consecutive_failures > 0),
               stored AS (
                   SELECT symbol, first_bar_date AS first_stored FROM meta.series
                   WHERE symbol IN (SELECT symbol FROM new))
               SELECT s.symbol, s.first_stored, f.first_fetched FROM stored s LEFT JOIN _first_fetched f ON f.symbol = s.symbol
               WHERE f.first_fetched IS NULL OR s.first_stored < f.first_fetched
               ORDER BY s.symbol"""
        ).fetchall()
    finally:
        con.unregister("_new_actions")
        con.unregister("_first_fetched")
    return {s: (first, as_of if tonight is None else calendar.previous_session(tonight)) for s, first, tonight in rows}


def apply_rebase(fetched: Fetched, refetched: Fetched, rebase: dict[str, tuple[date, date]]) -> Fetched:
    """`fetched` plus the re-fetched earlier bars and actions of the rebased symbols (other sessions
    than tonight's, so nothing is replaced or dropped). A symbol whose re-fetch gave no bars gets a
    failures row of dataset 'rebase' instead, and is tried again next night."""
    done = set(refetched.bars.get_column("symbol").unique().to_list()) & set(rebase)
    errors = dict(refetched.failures.select("symbol", "error").unique(subset="symbol", keep="first").iter_rows())
    failed = [
        (s, "rebase", f"whole-history re-fetch after a new split or dividend failed: {errors.get(s, 'no bars came back')}")
        for s in rebase if s not in done
    ]
    mine = pl.col("symbol").is_in(list(done))
    return replace(
        fetched,
        bars=pl.concat([fetched.bars, refetched.bars.filter(mine)], how="vertical"),
        actions=pl.concat([fetched.actions, refetched.actions.filter(mine)], how="vertical"),
        failures=pl.concat([fetched.failures, pl.DataFrame(failed, schema=FAILURES_SCHEMA, orient="row")], how="vertical"),
        requests=fetched.requests + refetched.requests,
    )


def fundamentals_symbols(
    con: duckdb.DuckDBPyConnection, settings: Settings, symbols: Sequence[str], as_of: date, *, is_metered: bool
) -> list[str]:
    """Symbols whose fundamentals are due. A source whose requests cost nothing is asked for every
    symbol. A metered one (Capabilities.is_metered: yahoo) is asked only when a symbol's next
    quarter can be out (see sources.yahoo.fundamentals_due):
    shortly after the date its report is expected, from the symbol's own report lag (the same
    fiscal quarter a year before, else its newest quarter; known where a report date is stored).

    "Yahoo has no income statement for it" is an answer, not a failure to retry nightly: such a
    symbol (no stored quarter) counts as answered at that attempt and is looked at again weekly.

    A former member (in stored holdings, in no universe's latest snapshot) is priced while an
    anchor holds it (equity_symbols), but its fundamentals are not asked for: core.cohorts uses a
    quarter only on the member's own sessions, and a quarter reported after it left cannot count
    on any of them. If it joins again, it is a member again (and due: its last fetch is old)."""
    if not is_metered:
        return list(symbols)
    from sources.yahoo import NO_DATA, fundamentals_due

    former = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT symbol FROM raw.holdings EXCEPT SELECT DISTINCT symbol FROM raw.holdings h WHERE as_of_date = "
            "(SELECT max(as_of_date) FROM raw.holdings l WHERE l.universe = h.universe)"
        ).fetchall()
    }
    symbols = [s for s in symbols if s not in former]

    stored = read(
        con,
        """WITH ranked AS (
               SELECT symbol, period_end_date,
                      CASE WHEN report_date > period_end_date THEN datediff('day', period_end_date, report_date) END AS lag_days,
                      row_number() OVER (PARTITION BY symbol ORDER BY period_end_date DESC) AS k
               FROM raw.fundamentals),
                q AS (SELECT symbol, max(period_end_date) FILTER (WHERE k = 1) AS period_end_date,
                             -- the quarter a year before the next one is the 4th newest
                             coalesce(max(lag_days) FILTER (WHERE k = 4), max(lag_days) FILTER (WHERE k = 1)) AS report_lag_days
                      FROM ranked GROUP BY symbol),
                s AS (SELECT symbol,
                             CASE WHEN starts_with(last_error, ?) THEN last_attempt_at ELSE last_success_at END AS answered_at
                      FROM meta.fetch_state WHERE dataset = 'fundamentals')
           SELECT coalesce(q.symbol, s.symbol) AS symbol, q.period_end_date, s.answered_at AS last_success_at, q.report_lag_days
           FROM q FULL OUTER JOIN s ON q.symbol = s.symbol""",
        [NO_DATA],
    )
    return fundamentals_due(stored, symbols, as_of, settings.fundamentals_max_age_days)


# fetch ----------------------------------------------------------------------------------------


# Sources name the dataset of an excluded row; dq.quarantine files it under the raw table it would
# have gone to, so every table's rows can be counted: given = loaded + quarantined.
EXCLUDED_TABLES = {"holdings": "raw.holdings", "fundamentals": "raw.fundamentals", "actions": "raw.corporate_actions",
                   "corporate_actions": "raw.corporate_actions"}


def _excluded_tables(excluded: pl.DataFrame, is_index) -> pl.DataFrame:
    """`excluded` with `dataset` set to the raw table: a bar goes with the indexes or the constituents
    like a loaded one (its symbol from row_json, or else the file its key names, `^RUT.csv line 12`)."""
    if not excluded.height:
        return excluded
    symbol = pl.coalesce(
        pl.col("row_json").str.json_path_match("$.symbol"),
        pl.col("key").str.extract(r"([^/\s]+?)(?:\.csv)?(?:\s|$)", 1),
    )
    bars = pl.when(is_index(symbol)).then(pl.lit("raw.index_bars")).otherwise(pl.lit("raw.equity_bars"))
    return excluded.with_columns(
        pl.when(pl.col("dataset") == "bars")
        .then(bars)
        .otherwise(pl.col("dataset").replace(EXCLUDED_TABLES))
        .alias("dataset")
    )


def split(fetched: Fetched, index_symbols: Sequence[str], asked: dict[str, list[str]] | None = None) -> Batch:
    # A row without a symbol goes with the constituents, where symbol_not_null quarantines it: a
    # null predicate would drop it from both tables, and the row would be lost without a trace.
    def is_index_symbol(symbol: pl.Expr) -> pl.Expr:
        return (symbol.is_in(list(index_symbols)) | symbol.str.starts_with("^")).fill_null(False)

    is_index = is_index_symbol(pl.col("symbol"))
    return Batch(
        frames={
            "raw.holdings": fetched.holdings,
            "raw.index_bars": fetched.bars.filter(is_index),
            "raw.equity_bars": fetched.bars.filter(~is_index),
            "raw.fundamentals": fetched.fundamentals,
            "raw.corporate_actions": fetched.actions,
        },
        failures=fetched.failures,
        excluded=_excluded_tables(fetched.excluded, is_index_symbol),
        requests=fetched.requests,
        asked=asked or {},
    )


def check_fetched(batch: Batch, source: str, plan: Plan, *, is_complete: bool) -> list[str]:
    """Fail when the source gave nothing to load; return warnings for partial failures."""
    bars = batch.frames["raw.index_bars"].height + batch.frames["raw.equity_bars"].height
    failed = batch.failures.filter(pl.col("dataset") == "bars")
    if bars == 0:
        if failed.height:
            errors = failed.get_column("error").value_counts(sort=True).head(3)
            why = "; ".join(f"{e} ({n})" for e, n in errors.iter_rows())
            asked = max(len(batch.asked.get("bars", [])), failed.height)
            symbols = failed.get_column("symbol").unique(maintain_order=True)
            named = ", ".join(symbols.head(10).to_list()) + (f" and {symbols.len() - 10:,} more" if symbols.len() > 10 else "")
            raise LoadFailed(
                f"{source} returned no data for {failed.height:,} of {asked:,} symbols ({why}): {named}; "
                "nothing was loaded; check the network or run with --source sample"
            )
        raise LoadFailed(
            f"{source} returned no bars for {plan.bars_start}..{plan.as_of}: nothing was loaded"
        )
    warnings = []
    if failed.height:
        sample = ", ".join(failed.get_column("symbol").head(10).to_list())
        warnings.append(f"{source}: no bars for {failed.height:,} symbol(s), e.g. {sample}; they are fetched first next time")
    # A universe without a snapshot this time keeps its stored membership: say so, or the night
    # would publish on an old membership without a word. (A source that is not expected to be
    # complete, Capabilities.is_complete, holds what its user has: a csv folder without a holdings
    # file is a choice there, as in check_completeness.)
    holdings_failed = batch.failures.filter(pl.col("dataset") == "holdings") if is_complete else batch.failures.clear()
    for universe, error in holdings_failed.select("symbol", "error").unique(maintain_order=True).iter_rows():
        warnings.append(f"{source}: no holdings snapshot for {universe} ({error}); its membership is not updated this time")
    return warnings


# validate ---------------------------------------------------------------------------------------


# The stored row before a batch is looked for this many days back (a weekend, a holiday, a halt of a
# few weeks); a symbol dormant for longer is read at its last stored session (meta.series).
GATE_HISTORY_DAYS = 40


def history_for_gate(
    con: duckdb.DuckDBPyConnection, table: str, before: date, through: date | None = None, symbols: Sequence[str] | None = None
) -> pl.DataFrame:
    """The stored row just before a batch, per symbol: the gate's day-over-day checks need it. With
    `through`, also the stored rows of the batch's sessions [before, through]: big_revision compares
    a re-fetch with them (without them it never sees a revision). Reads only recent row groups (the
    bounds are literals) and, for `symbols` dormant for longer, their last stored row."""
    cols = f"SELECT * EXCLUDE (source, fetched_at, load_id) FROM {table}"
    recent = before - timedelta(days=GATE_HISTORY_DAYS)
    parts = [
        f"({cols} WHERE session_date >= DATE '{recent}' AND session_date < DATE '{before}' "
        "QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY session_date DESC) = 1)"
    ]
    if symbols:
        register(con, "_gate_symbols", pl.DataFrame({"symbol": list(symbols)}, schema={"symbol": pl.String}))
        try:
            dormant = con.execute(
                "SELECT symbol, last_bar_date FROM meta.series SEMI JOIN _gate_symbols USING (symbol) WHERE last_bar_date < ?",
                [recent],
            ).fetchall()
        finally:
            con.unregister("_gate_symbols")
        if dormant:
            days = sorted({d for _, d in dormant})
            names = ", ".join("'" + s.replace("'", "''") + "'" for s, _ in dormant)
            dates = ", ".join(f"DATE '{d}'" for d in days)
            last = pl.DataFrame(dormant, schema={"symbol": pl.String, "session_date": pl.Date}, orient="row")
            older = read(con, f"{cols} WHERE session_date IN ({dates}) AND symbol IN ({names})")
            parts_frame = older.join(last, on=["symbol", "session_date"], how="semi")
        else:
            parts_frame = None
    else:
        parts_frame = None
    if through is not None:
        parts.append(f"({cols} WHERE session_date BETWEEN DATE '{before}' AND DATE '{through}')")
    got = read(con, " UNION ALL ".join(parts))
    return pl.concat([got, parts_frame], how="vertical_relaxed") if parts_frame is not None and parts_frame.height else got


def validate(con: duckdb.DuckDBPyConnection, batch: Batch, *, load_id: str, as_of: date, settings: Settings):
    from expectations.docs import save_validations
    from expectations.gate import gate  # GX costs seconds to import: only here

    results = {}
    for table, frame in batch.frames.items():
        history = None
        if table in ("raw.index_bars", "raw.equity_bars") and frame.height and frame.schema.get("session_date") == pl.Date:
            days = frame.get_column("session_date")
            symbols = frame.get_column("symbol").drop_nulls().unique().to_list() if frame.schema.get("symbol") == pl.String else None
            history = history_for_gate(con, table, days.min(), days.max(), symbols)
        results[table] = gate(
            table,
            frame,
            load_id=load_id,
            as_of=as_of,
            severity_overrides=settings.dq_severity,
            history=history,
            universes={u.name: u for u in settings.universes},
        )
    save_validations(settings, load_id, results)
    return results


# load -----------------------------------------------------------------------------------------


def _excluded_rows(batch: Batch, load_id: str, at: datetime) -> pl.DataFrame:
    return batch.excluded.select(
        pl.lit(load_id).alias("load_id"),
        pl.col("dataset").alias("table_name"),
        pl.col("key").alias("row_key"),
        pl.lit("excluded_by_source").alias("expectation"),
        pl.col("reason"),
        pl.col("row_json"),
        pl.lit(at).cast(pl.Datetime("us")).alias("quarantined_at"),
    )


def _insert(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame) -> None:
    if df.height:
        register(con, "_rows", df)
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
        finally:
            con.unregister("_rows")


def record_blocked(con, batch: Batch, gated: dict, *, load_id: str, at: datetime) -> tuple[int, str]:
    """A blocked load keeps every fetched row: offending ones with their reason, the good ones held.
    meta.load_tables and meta.loads count them (nothing loaded, every row quarantined)."""
    from expectations.gate import held_rows

    errors = [e for g in gated.values() for e in g.errors]
    reason = "load blocked: " + "; ".join(errors)[:500]
    quarantined = 0
    with transaction(con):
        for table, g in gated.items():
            _insert(con, "dq.results", g.results)
            _insert(con, "dq.quarantine", g.quarantine)
            # The gate's row_key (the table's primary key in key order), like the offending rows'.
            _insert(con, "dq.quarantine", held_rows(table, g.clean, load_id=load_id, reason=reason, at=at))
            quarantined += g.quarantine.height + g.clean.height
            _insert(
                con,
                "meta.load_tables",
                pl.DataFrame(
                    {
                        "load_id": [load_id], "table_name": [table], "rows_in": [batch.frames[table].height], "rows_loaded": [0],
                        "rows_inserted": [0], "rows_changed": [0], "rows_quarantined": [g.quarantine.height + g.clean.height],
                    }
                ),
            )
        _insert(con, "dq.quarantine", _excluded_rows(batch, load_id, at))
        quarantined += batch.excluded.height
        con.execute(
            "UPDATE meta.loads SET rows_in = ?, rows_loaded = 0, rows_changed = 0, rows_quarantined = ? WHERE load_id = ?",
            [batch.rows_in, quarantined, load_id],
        )
    return quarantined, reason


def update_fetch_state(con, batch: Batch, at: datetime) -> None:
    """Per symbol and dataset: when it was last asked for, last delivered, and how many loads in a
    row failed. Failed symbols are asked for first next time; see equity_symbols."""
    failed = batch.failures.select("symbol", "dataset", "error").unique(subset=["symbol", "dataset"], keep="first")
    asked = batch.asked or {
        "bars": pl.concat([batch.frames["raw.index_bars"], batch.frames["raw.equity_bars"]]).get_column("symbol").unique().to_list()
    }
    ok = pl.DataFrame(
        [(s, d) for d, symbols in asked.items() for s in symbols], schema={"symbol": pl.String, "dataset": pl.String}, orient="row"
    ).unique().join(failed, on=["symbol", "dataset"], how="anti")
    if ok.height:
        register(con, "_ok", ok)
        con.execute("INSERT OR REPLACE INTO meta.fetch_state SELECT symbol, dataset, ?, ?, NULL, 0 FROM _ok", [at, at])
        con.unregister("_ok")
    if failed.height:
        register(con, "_failed", failed)
        con.execute(
            """INSERT OR REPLACE INTO meta.fetch_state
               SELECT f.symbol, f.dataset, ?, s.last_success_at, f.error, coalesce(s.consecutive_failures, 0) + 1
               FROM _failed f LEFT JOIN meta.fetch_state s ON s.symbol = f.symbol AND s.dataset = f.dataset""",
            [at],
        )
        con.unregister("_failed")


RENAMES_SQL = """
WITH snaps AS (SELECT DISTINCT universe, as_of_date FROM {holdings}),
     nxt AS (SELECT universe, as_of_date, lead(as_of_date) OVER (PARTITION BY universe ORDER BY as_of_date) AS next_date FROM snaps),
     span AS (SELECT universe, ticker, min(as_of_date) AS first_d, max(as_of_date) AS last_d FROM {holdings} GROUP BY ALL),
     leaving AS (SELECT h.*, n.next_date FROM {holdings} h
                 JOIN span s ON s.universe = h.universe AND s.ticker = h.ticker AND s.last_d = h.as_of_date
                 JOIN nxt n ON n.universe = h.universe AND n.as_of_date = h.as_of_date
                 WHERE n.next_date IS NOT NULL),
     arriving AS (SELECT h.* FROM {holdings} h
                  JOIN span s ON s.universe = h.universe AND s.ticker = h.ticker AND s.first_d = h.as_of_date
                  WHERE h.ticker NOT IN (SELECT ticker FROM {known_before}))
SELECT l.ticker, min(a.ticker) AS renamed_to
FROM leaving l JOIN arriving a ON a.universe = l.universe AND a.as_of_date = l.next_date AND a.ticker <> l.ticker
WHERE lower(trim(a.name)) = lower(trim(l.name))
   OR (l.shares > 0 AND a.shares = l.shares AND abs(a.market_value_usd / nullif(l.market_value_usd, 0) - 1) < 0.2)
GROUP BY l.ticker
"""

# A night appending at most this many snapshots updates meta.symbols from those snapshots and the
# one before; more (a backfill, old snapshots arriving late) recomputes it from every snapshot.
SYMBOLS_APPEND_SNAPSHOTS = 10


def update_symbols(con, changed: pl.DataFrame | None = None) -> None:
    """meta.symbols: ticker, symbol, mapping rule, seen dates, status (active | delisted | renamed,
    with the new ticker in renamed_to; see RENAMES_SQL).

    `changed` (universe, as_of_date of the holdings rows a load merged): when they only appended
    snapshots after each universe's newest stored one, only those and the snapshot before them are
    read (the tickers that stayed, left or arrived); first-seen dates of the tickers already known
    come from meta.symbols. Without it, or for anything else, every snapshot is read."""
    from sources.symbols import map_tickers

    window = None if changed is None else _appended_window(con, changed)
    if window is None:
        holdings, known_before, since = "raw.holdings", "(SELECT NULL AS ticker WHERE false)", None
    else:
        since = window
        con.execute(f"CREATE OR REPLACE TEMP VIEW _window_holdings AS SELECT * FROM raw.holdings WHERE as_of_date >= DATE '{since}'")
        holdings = "_window_holdings"
        known_before = f"(SELECT ticker FROM meta.symbols WHERE first_seen_date < DATE '{since}')"
    renames = RENAMES_SQL.format(holdings=holdings, known_before=known_before)
    seen = read(
        con,
        f"""WITH newest AS (SELECT universe, max(as_of_date) AS d FROM {holdings} GROUP BY universe),
                renames AS ({renames})
           SELECT h.ticker, arg_max(h.symbol, h.as_of_date) AS symbol, min(h.as_of_date) AS first_seen_date,
                  max(h.as_of_date) AS last_seen_date, bool_or(h.as_of_date = n.d) AS active,
                  any_value(r.renamed_to) AS renamed_to
           FROM {holdings} h JOIN newest n USING (universe) LEFT JOIN renames r ON r.ticker = h.ticker
           GROUP BY h.ticker""",
    )
    if since is not None:
        con.execute("DROP VIEW IF EXISTS _window_holdings")
        stored = read(con, "SELECT ticker, first_seen_date AS _stored_first FROM meta.symbols")
        seen = seen.join(stored, on="ticker", how="left").with_columns(
            pl.min_horizontal("first_seen_date", "_stored_first").alias("first_seen_date")
        ).drop("_stored_first")
    if not seen.height:
        return
    rules = map_tickers(seen.get_column("ticker").to_list()).select("ticker", pl.col("symbol").alias("_mapped"), "rule")
    rows = seen.join(rules, on="ticker", how="left").select(
        "ticker",
        "symbol",
        # A symbol that differs from what the rules give was set by the override file.
        pl.when(pl.col("symbol") == pl.col("_mapped")).then(pl.col("rule")).otherwise(pl.lit("override")).alias("rule"),
        "first_seen_date",
        "last_seen_date",
        pl.when(pl.col("active"))
        .then(pl.lit("active"))
        .when(pl.col("renamed_to").is_not_null())
        .then(pl.lit("renamed"))
        .otherwise(pl.lit("delisted"))
        .alias("status"),
        pl.when(pl.col("active")).then(None).otherwise(pl.col("renamed_to")).alias("renamed_to"),
    )
    register(con, "_symbols", rows)
    con.execute("INSERT OR REPLACE INTO meta.symbols BY NAME SELECT * FROM _symbols")
    con.unregister("_symbols")


def _appended_window(con, changed: pl.DataFrame) -> date | None:
    """The first snapshot date to read when `changed` (universe, as_of_date rows just merged) only
    appended snapshots after each universe's newest stored one: the latest snapshot before them (or
    their first, for a new universe). None when something else changed: recompute from all."""
    snaps = changed.select("universe", "as_of_date").unique()
    if snaps.height == 0 or snaps.height > SYMBOLS_APPEND_SNAPSHOTS:
        return None
    starts = []
    for universe, first in snaps.group_by("universe").agg(pl.col("as_of_date").min()).iter_rows():
        mine = set(snaps.filter(pl.col("universe") == universe).get_column("as_of_date").to_list())
        later = {r[0] for r in con.execute(
            "SELECT DISTINCT as_of_date FROM raw.holdings WHERE universe = ? AND as_of_date >= ?", [universe, first]
        ).fetchall()}
        if later != mine:  # a stored snapshot after the first changed one: not an append
            return None
        before = con.execute(
            "SELECT max(as_of_date) FROM raw.holdings WHERE universe = ? AND as_of_date < ? AND as_of_date >= ?",
            [universe, first, first - timedelta(days=40)],
        ).fetchone()[0]
        if before is None and con.execute(
            "SELECT count(*) FROM meta.symbols WHERE first_seen_date < ?", [first]
        ).fetchone()[0]:
            return None  # the snapshot before is older than 40 days: rare, recompute
        starts.append(before or first)
    return min(starts)


def update_series(con: duckdb.DuckDBPyConnection, merged: list[MergeCounts]) -> None:
    """meta.series: each symbol's first and last stored session, widened by the bars just merged."""
    frames = [m.new for m in merged if m.new is not None and m.new.height]
    if not frames:
        return
    bounds = (
        pl.concat([f.select("symbol", "session_date") for f in frames])
        .group_by("symbol")
        .agg(pl.col("session_date").min().alias("first_bar_date"), pl.col("session_date").max().alias("last_bar_date"))
    )
    register(con, "_bounds", bounds)
    try:
        con.execute(
            """INSERT OR REPLACE INTO meta.series
               SELECT b.symbol, least(b.first_bar_date, coalesce(s.first_bar_date, b.first_bar_date)),
                      greatest(b.last_bar_date, coalesce(s.last_bar_date, b.last_bar_date))
               FROM _bounds b LEFT JOIN meta.series s USING (symbol)"""
        )
    finally:
        con.unregister("_bounds")


# The columns of a raw table's changed rows that derivation reads (smallcaps.steps).
CHANGE_COLUMNS: dict[str, list[str]] = {
    "raw.index_bars": ["symbol", "session_date"],
    "raw.equity_bars": ["symbol", "session_date"],
    "raw.holdings": ["universe", "as_of_date", "symbol"],
    "raw.fundamentals": ["symbol", "period_end_date", "report_date", "net_income_common_usd"],
    "raw.corporate_actions": ["symbol", "ex_date", "action"],
}


def derive_context(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date):
    """What the derivation of a load needs to know about the night and the warehouse."""
    from smallcaps.derive import Context
    from transforms.headlines import INDEX_NAMES

    stored_last = con.execute("SELECT max(session_date) FROM core.sessions").fetchone()[0]
    first = con.execute(
        "SELECT least((SELECT min(session_date) FROM raw.index_bars), (SELECT min(session_date) FROM raw.equity_bars), "
        "(SELECT min(as_of_date) FROM raw.holdings))"
    ).fetchone()[0]
    published = con.execute("SELECT max(as_of_date) FROM meta.publishes").fetchone()[0]
    return Context(
        con=con,
        as_of=as_of,
        until=max(as_of, stored_last) if stored_last else as_of,
        pairs=[(p.lead, p.lag) for p in settings.pairs],
        anchors=list(settings.anchors),
        index_names=INDEX_NAMES,
        published_through=published,
        first_date=first,
    )


def _restatement_reason(counts: dict[str, MergeCounts], published_through: date | None) -> str:
    """The raw changes of a load that can reach published nights, in one line."""
    parts = []
    for table, c in counts.items():
        if c.new is None or c.new.height == 0:
            continue
        date_col = next((col for col in ("session_date", "as_of_date", "period_end_date", "ex_date") if col in c.new.columns), None)
        rows = c.new
        if published_through is not None and date_col is not None:
            rows = rows.filter(pl.col(date_col) <= published_through)
        if rows.height == 0:
            continue
        who = rows.get_column(rows.columns[0]).unique().sort()
        example = ", ".join(who.head(3).to_list()) + (" ..." if who.len() > 3 else "")
        kinds = []
        if c.changed:
            kinds.append(f"{c.changed:,} revised")
        if c.inserted:
            kinds.append(f"{c.inserted:,} new")
        parts.append(f"{table}: {rows.height:,} rows dated on or before {published_through} ({' / '.join(kinds)}; {example})")
    return "; ".join(parts) or "derived from changes in this load"


@dataclass
class Loaded:
    """What one load's transaction did."""

    counts: dict[str, MergeCounts]
    quarantined: int
    warnings: list[str]
    timings: dict[str, float]
    # Per derived table, what changed (complete only when derivation ran as one update: a replay
    # keeps counts, not every row); the publish patches the snapshot with it.
    changes: dict = field(default_factory=dict)
    changes_complete: bool = False
    # The latest session the derived tables hold: the load's night, or a later one already loaded
    # when an earlier night was run again.
    until: date | None = None


def load(
    con: duckdb.DuckDBPyConnection,
    batch: Batch,
    gated: dict,
    *,
    load_id: str,
    source: str,
    fetched_at: datetime,
    settings: Settings,
    as_of: date,
    rebuild: bool = False,
    log: Callable[[str], None] | None = None,
) -> Loaded:
    """Merge the clean rows and bring core and marts up to date, all in one transaction.

    Derivation recomputes only what the merged changes reach (smallcaps.derive); a derived table
    created or re-shaped since the last load (or `rebuild`) is rebuilt from raw. Raises LoadBlocked
    (after rolling back) when a mart fails an error-level expectation. `log` receives a line per
    stage (the load is a night's longest step; its log says where it is).
    """
    say = log or (lambda line: None)
    from smallcaps import derive
    from smallcaps.registry import DATASETS
    from warehouse.datasets import sync

    sync(con, DATASETS, dataset_config(settings))
    counts: dict[str, MergeCounts] = {}
    warnings: list[str] = []
    quarantined = 0
    timings: dict[str, float] = {}
    with transaction(con):
        t = time.perf_counter()
        changes = derive.Changes()
        for table, g in gated.items():
            staged = stage(g.clean, source=source, fetched_at=fetched_at, load_id=load_id, table=table)
            counts[table] = merge(con, table, staged, load_id, CHANGE_COLUMNS.get(table))
            c = counts[table]
            say(f"merged {table}: {c.rows_in:,} rows in, {c.inserted:,} inserted, {c.changed:,} changed")
            if c.new is not None and (c.new.height or c.old.height):
                changes[table] = derive.Change(c.new, c.old)
            crashpoint("merge.table")
            _insert(con, "dq.results", g.results)
            _insert(con, "dq.quarantine", g.quarantine)
            quarantined += g.quarantine.height
            warnings.extend(g.warnings)
            _insert(
                con,
                "meta.load_tables",
                pl.DataFrame(
                    {
                        "load_id": [load_id],
                        "table_name": [table],
                        "rows_in": [batch.frames[table].height],
                        "rows_loaded": [counts[table].loaded],
                        "rows_inserted": [counts[table].inserted],
                        "rows_changed": [counts[table].changed],
                        "rows_quarantined": [g.quarantine.height],
                    }
                ),
            )
        _insert(con, "dq.quarantine", _excluded_rows(batch, load_id, fetched_at))
        quarantined += batch.excluded.height
        update_fetch_state(con, batch, fetched_at)
        if changes.of("raw.holdings") is not None:
            update_symbols(con, changes.of("raw.holdings").new)
        update_series(con, [counts[t] for t in ("raw.index_bars", "raw.equity_bars") if t in counts])
        crashpoint("merge.done")
        timings["merge"] = time.perf_counter() - t
        say(f"merge done in {timings['merge']:.1f} s; deriving core and marts")
        derived = _derive(con, settings, changes, counts, load_id=load_id, as_of=as_of, at=fetched_at, rebuild=rebuild, timings=timings)
        warnings.extend(derived.warnings)
        # Committed with the data: a crash after this point must not be mistaken for a rollback.
        con.execute("UPDATE meta.loads SET status = 'loaded' WHERE load_id = ?", [load_id])
        crashpoint("load.before_commit")
        say(f"derived in {timings.get('derive', 0.0):.1f} s; committing")
    derived_changes = {k: v for k, v in derived.changes.items() if not k.startswith("raw.")}
    return Loaded(counts, quarantined, warnings, timings, derived_changes, not derived.replayed, derived.until)


# Memory derivation needs per constituent-session row it holds at once (bars, cohorts, returns,
# the frames joined from them), measured on the sample market with bench/backfill_rss.py.
DERIVE_BYTES_PER_ROW = 1_500


def derive_budget(con: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[int, int]:
    """(raw rows a load may change before it is derived period by period, months per period):
    half of settings.memory_limit_gb is for derivation (DuckDB has the other half)."""
    budget_rows = max(100_000, int(settings.memory_limit_gb / 2 * 1e9 / DERIVE_BYTES_PER_ROW))
    symbols = con.execute(
        "SELECT count(DISTINCT symbol) FROM raw.equity_bars WHERE session_date >= (SELECT max(session_date) - 31 FROM raw.equity_bars)"
    ).fetchone()[0] or 1
    rows_per_month = symbols * 21
    return budget_rows, max(1, min(12, budget_rows // rows_per_month))


def _derive(con, settings: Settings, changes, counts: dict[str, MergeCounts], *, load_id: str, as_of: date, at: datetime, rebuild: bool, timings: dict):
    """Bring core and marts up to date inside the caller's transaction; record gate results and
    restatements. Raises LoadBlocked when a mart fails an error-level expectation."""
    from smallcaps import derive
    from smallcaps.registry import DATASETS
    from warehouse.datasets import mark_built, unbuilt

    t = time.perf_counter()
    ctx = derive_context(con, settings, as_of)
    rebuild = rebuild or bool(unbuilt(con))
    budget_rows, months = derive_budget(con, settings)
    derived = derive.run(
        ctx, changes, load_id=load_id, severity=settings.dq_severity, rebuild=rebuild, replay_rows=budget_rows, period_months=months
    )
    crashpoint("transform.derived")
    timings.update(derived.timings)
    timings["derive"] = time.perf_counter() - t
    if derived.gate_results:
        from expectations.docs import save_validations

        save_validations(settings, load_id, derived.gate_results)
    crashpoint("transform.gated")
    if derived.blocked:
        raise LoadBlocked("marts failed their checks, nothing was loaded: " + "; ".join(derived.errors))
    for res in derived.results.values():
        _insert(con, "dq.results", res)
    if derived.restatements:
        reason = _restatement_reason(counts, ctx.published_through) if counts else "rebuilt from raw (smallcaps rebuild)"
        _insert(
            con,
            "meta.restatements",
            pl.DataFrame(derived.restatements).with_columns(
                pl.lit(load_id).alias("load_id"), pl.lit(reason).alias("reason"), pl.lit(at).cast(pl.Datetime("us")).alias("restated_at")
            ),
        )
    mark_built(con, [d.name for d in DATASETS if rebuild or d.name in derived.changes], load_id)
    derived.until = ctx.until
    return derived


def rebuild(con: duckdb.DuckDBPyConnection, settings: Settings, *, load_id: str, at: datetime) -> Loaded:
    """Recompute every core table and mart from raw, one year at a time, and write what differs
    (nothing, when the tables were right). One transaction, gated like a load."""
    from smallcaps.registry import DATASETS
    from warehouse.datasets import sync

    sync(con, DATASETS, dataset_config(settings))
    as_of = con.execute("SELECT max(session_date) FROM raw.index_bars").fetchone()[0]
    if as_of is None:
        raise LoadFailed(f"nothing to rebuild: {settings.warehouse_path} holds no index bars; run `smallcaps backfill` first")
    timings: dict[str, float] = {}
    with transaction(con):
        derived = _derive(con, settings, {}, {}, load_id=load_id, as_of=as_of, at=at, rebuild=True, timings=timings)
        con.execute("UPDATE meta.loads SET status = 'loaded', end_date = ? WHERE load_id = ?", [as_of, load_id])
    return Loaded({}, 0, derived.warnings, timings, {}, False)


def publish_patches(con: duckdb.DuckDBPyConnection, settings: Settings, load_id: str, loaded: Loaded) -> dict | None:
    """How to patch the current snapshot into tonight's, or None when it must be written whole:
    after a replayed (large) load, or when the snapshot is not the one of the load before this
    one (a held night, an interrupted publish, a first night)."""
    from smallcaps.registry import get
    from warehouse.publish import Patch, snapshot_load

    if not loaded.changes_complete:
        return None
    previous = con.execute(
        "SELECT load_id FROM meta.loads WHERE load_id <> ? AND status NOT IN ('failed', 'blocked', 'skipped', 'running') "
        "AND started_at <= (SELECT started_at FROM meta.loads WHERE load_id = ?) ORDER BY started_at DESC LIMIT 1",
        [load_id, load_id],
    ).fetchone()
    if previous is None or snapshot_load(settings.published_dir) != previous[0]:
        return None
    patches = {}
    for table, change in loaded.changes.items():
        keys = get(table).key
        patches[table] = Patch(keys, change.old.select(keys), change.new)
    return patches


def quarantine_summary(gated: dict, batch: Batch) -> list[str]:
    """One line per table and reason for the fetched rows that did not load: the gate's
    quarantine-level findings (the rest of the table loaded), and the rows the source excluded."""
    lines = [m for g in gated.values() for m in g.quarantined]
    excluded = batch.excluded
    if excluded.height:
        by_table = excluded.group_by("dataset", maintain_order=True).agg(
            pl.len().alias("rows"), pl.col("key").first(), pl.col("reason").first()
        )
        for table, rows, key, reason in by_table.iter_rows():
            lines.append(f"{table}: {rows:,} row(s) excluded by the source, e.g. {key}: {reason}")
    return lines


def quarantine_note(gated: dict, batch: Batch) -> str | None:
    """The short form of quarantine_summary for meta.loads.message: counts per table and expectation."""
    parts = []
    for table, g in gated.items():
        if g.quarantine.height:
            for exp, rows in g.quarantine.group_by("expectation", maintain_order=True).len().iter_rows():
                parts.append(f"{table} {exp} {rows:,}")
    if batch.excluded.height:
        for table, rows in batch.excluded.group_by("dataset", maintain_order=True).len().iter_rows():
            parts.append(f"{table} excluded_by_source {rows:,}")
    if not parts:
        return None
    total = sum(g.quarantine.height for g in gated.values()) + batch.excluded.height
    return f"loaded; {total:,} row(s) in dq.quarantine: " + "; ".join(parts)


def finish_ok(con, outcome: Outcome, sessions: int, rows_in: int) -> None:
    loads.finish(
        con,
        load_id=outcome.load_id,
        status=outcome.status,
        message=outcome.message or None,
        sessions=sessions,
        rows_in=rows_in,
        rows_loaded=sum(c.loaded for c in outcome.tables.values()),
        rows_changed=sum(c.changed for c in outcome.tables.values()),
        rows_quarantined=outcome.rows_quarantined,
        timings=outcome.timings,
    )


# completeness and publish bookkeeping ------------------------------------------------------------


def check_completeness(
    con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date, batch: Batch, *, is_complete: bool
) -> str | None:
    """Why the night must be held, or None when enough members and every index have a bar.

    A source that is not expected to be complete (Capabilities.is_complete; a csv folder holds what
    the user has, one index, say): the marts cover that and nothing more is expected, so it is
    never held.
    """
    if not is_complete:
        return None
    from expectations.completeness import completeness

    members = read(
        con,
        "SELECT universe, symbol FROM core.membership WHERE valid_from_date <= ? "
        "AND (valid_to_date IS NULL OR valid_to_date >= ?)",
        [as_of, as_of],
    )
    bars = read(con, "SELECT symbol, session_date FROM raw.equity_bars WHERE session_date = ?", [as_of])
    index_bars = read(con, "SELECT symbol, session_date FROM raw.index_bars WHERE session_date = ?", [as_of])
    result = completeness(members, bars, as_of, list(settings.index_symbols), index_bars, settings.completeness_min_share)
    return None if result.ok else result.message


def record_publish(con: duckdb.DuckDBPyConnection, published, load_id: str) -> None:
    con.execute(
        "INSERT OR REPLACE INTO meta.publishes VALUES (?, ?, ?, ?, ?)",
        [load_id, published.as_of, str(published.path), published.bytes, loads.now_utc()],
    )
