"""Keep core and marts up to date: recompute only what changed inputs reach, write only what differs.

The unit of work is a *scope*: which rows of a dataset a night must recompute. A step (one per
dataset, `pipeline.steps`) turns the changes of its inputs into a scope, then computes the rows of
that scope with its pure transform from bounded windows of its inputs plus carried state (the last
row before the window, a running record, the ladder of earlier streaks). The engine then compares
those rows with the stored rows of the same scope and writes only the difference (delete + insert
of the keys that changed), and hands the difference on as the changes its readers start from.

    raw merge -> Changes(raw.*) -> for each dataset in dependency order:
        scope = step.scope(changes)         which keys, from which date
        rows  = step.compute(scope)         pure transform on windows + state
        gate(rows)                          marts only: error-level failures block the load
        diff(rows, stored rows in scope)    inserted / changed / deleted
        write(diff)                         nothing at all when nothing differs
        changes[dataset] = diff

A full rebuild is the same update replayed one calendar year at a time, each year's raw rows given
as new: its memory follows a year of data, not the whole history, and it runs exactly the code a
night runs (tests compare both with a whole-history computation).

Floats are compared with a relative tolerance (FLOAT_TOLERANCE): a re-fetch that rescales a
symbol's whole adjusted history (Yahoo back-adjusts for every new dividend) changes stored prices by
a common factor, which leaves every return mathematically unchanged. Such last-bit differences are
not written and do not spread; anything larger is a change.

Every change to a row of a night that was already published is recorded in meta.restatements (table,
first and last date, rows, and the input changes behind it), and shown by `smallcaps status`.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable, Iterable

import duckdb
import polars as pl

from ground.crashpoints import crashpoint
from ground.registry import DATASETS, Dataset, order
from warehouse.load import insert, read, register, registered
from warehouse.publish import sql_text

FLOAT_TOLERANCE = 1e-12
FAR_PAST = date(1, 1, 1)
FAR_FUTURE = date(9999, 12, 31)
SCOPE_COLUMNS = ("from_date", "to_date")
# Scope columns named info_* carry what a step's compute needs (not keys to match rows on).
INFO_PREFIX = "info_"


# changes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What changed in one table during this load: the new versions of inserted and changed rows,
    and the old versions of changed and deleted rows (full rows, the table's columns)."""

    new: pl.DataFrame
    old: pl.DataFrame

    @property
    def empty(self) -> bool:
        return self.new.height == 0 and self.old.height == 0

    def rows(self) -> pl.DataFrame:
        """Old and new versions together (for ranges that must cover both)."""
        if self.old.height == 0:
            return self.new
        if self.new.height == 0:
            return self.old
        return pl.concat([self.new, self.old], how="vertical_relaxed")


def no_change(schema: dict[str, pl.DataType]) -> Change:
    return Change(pl.DataFrame(schema=schema), pl.DataFrame(schema=schema))


class Changes(dict):
    """Table name -> Change. A table that did not change is absent (and reads as empty)."""

    def of(self, table: str) -> Change | None:
        got = self.get(table)
        return None if got is None or got.empty else got


# scopes -----------------------------------------------------------------------------------------


def scope_frame(rows: pl.DataFrame | None, keys: tuple[str, ...] = ()) -> pl.DataFrame:
    """Normalise a scope: key columns (null = every value) + from_date, to_date; merged per key."""
    schema = {**{k: pl.String for k in keys}, "from_date": pl.Date, "to_date": pl.Date}
    if rows is None or rows.height == 0:
        return pl.DataFrame(schema=schema)
    for k in keys:
        if k not in rows.columns:
            rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias(k))
    rows = rows.select(*keys, "from_date", "to_date")
    return rows.cast({k: pl.String for k in keys}).unique().sort(*keys, "from_date", nulls_last=True)


def union_scopes(*scopes: pl.DataFrame) -> pl.DataFrame:
    parts = [s for s in scopes if s is not None and s.height]
    if not parts:
        return scopes[0] if scopes else pl.DataFrame()
    return pl.concat(parts, how="diagonal_relaxed").unique()


def _key_patterns(scope: pl.DataFrame) -> list[tuple[tuple[str, ...], pl.DataFrame]]:
    """Scope rows grouped by which key columns they name (the rest: every value)."""
    keys = [c for c in scope.columns if c not in SCOPE_COLUMNS and not c.startswith(INFO_PREFIX)]
    scope = scope.select(*keys, *SCOPE_COLUMNS)
    if not keys:
        return [((), scope)]
    with_pattern = scope.with_columns(
        pl.concat_str([pl.col(k).is_not_null().cast(pl.Int8).cast(pl.String) for k in keys]).alias("_p")
    )
    out = []
    for (pattern,), part in with_pattern.group_by("_p", maintain_order=True):
        named = tuple(k for k, bit in zip(keys, pattern) if bit == "1")
        out.append((named, part.select(*named, *SCOPE_COLUMNS)))
    return out


# Scope rows reaching further back than this before their pattern's last date are read apart,
# with their keys as literals (see _by_reach).
FAR_REACH_DAYS = 400
LITERAL_KEYS_MAX = 200


def split_by_reach(frame: pl.DataFrame, start: str, last: date) -> list[pl.DataFrame]:
    """`frame`'s rows whose `start` lies within FAR_REACH_DAYS before `last`, and those starting
    earlier; one piece when either is empty. A night's reads hold its new sessions for every
    symbol plus, for a few (a dividend rebase re-sends a symbol's whole history), decades: read as
    one, the literal date bound reaches back decades for every symbol; apart, the recent rows read
    recent row groups and the far ones filter on their few keys as literals (0.01 s and 0.02 s on
    a 30-year home, against 2-2.7 s for the two together)."""
    far = pl.col(start) < last - timedelta(days=FAR_REACH_DAYS)
    pieces = [frame.filter(~far), frame.filter(far)]
    return pieces if all(p.height for p in pieces) else [frame]


def literal_in(column: str, values: Iterable[str]) -> str:
    """`AND column IN ('a', 'b')` for at most LITERAL_KEYS_MAX distinct values, else ''."""
    distinct = sorted(set(values))
    if not distinct or len(distinct) > LITERAL_KEYS_MAX:
        return ""
    return f" AND {column} IN ({', '.join(sql_text(v) for v in distinct)})"


def _by_reach(named: tuple[str, ...], part: pl.DataFrame) -> list[pl.DataFrame]:
    """A pattern's scope rows split by how far back they start (split_by_reach)."""
    if not named or part.height < 2:
        return [part]
    return split_by_reach(part, "from_date", part.get_column("to_date").max())


def _literal_keys(named: tuple[str, ...], piece: pl.DataFrame) -> str:
    """literal_in of a piece's values of its first key, where that key is text."""
    if not named or piece.schema[named[0]] != pl.String:
        return ""
    return literal_in(f"r.{named[0]}", piece.get_column(named[0]).drop_nulls())


def in_scope_sql(con: duckdb.DuckDBPyConnection, relation: str, scope: pl.DataFrame, date_expr: str, tag: str) -> str:
    """SQL selecting the rows of `relation` inside `scope` (registers one frame per key pattern
    and reach, see _by_reach)."""
    parts = []
    for i, (named, part) in enumerate(_key_patterns(scope)):
        for j, piece in enumerate(_by_reach(named, part)):
            # The piece's whole date range as literals: DuckDB skips the row groups outside it
            # (tables grow in date order), so a night reads its days, not the history.
            lo, hi = piece.get_column("from_date").min(), piece.get_column("to_date").max()
            bound = f"({date_expr}) BETWEEN DATE '{lo}' AND DATE '{hi}'"
            if not named and piece.height == 1:
                parts.append(f"SELECT r.* FROM {relation} r WHERE {bound}")
                continue
            name = f"_scope_{tag}_{i}_{j}"
            register(con, name, piece)
            on = " AND ".join([f"r.{k} = s.{k}" for k in named] + [f"({date_expr}) BETWEEN s.from_date AND s.to_date"])
            parts.append(
                f"SELECT r.* FROM {relation} r WHERE {bound}{_literal_keys(named, piece)} AND EXISTS (SELECT 1 FROM {name} s WHERE {on})"
            )
    return " UNION ".join(parts)


def filter_scope(frame: pl.DataFrame, scope: pl.DataFrame, date_col: str) -> pl.DataFrame:
    """The rows of `frame` inside `scope` (polars twin of in_scope_sql, for a date column), in
    their order.

    The matching works on row numbers, the scope's key columns and the date only: a scope of
    ranges without keys is matched by a cross join, and carrying every column of a wide frame
    through it (a night's headlines with their text, times a few hundred single-day scope rows)
    cost a gigabyte for a result of kilobytes."""
    if frame.height == 0 or scope.height == 0:
        return frame.clear()
    kept = []
    for named, part in _key_patterns(scope):
        slim = frame.select(*named, date_col).with_row_index("_row")
        if not named and part.height == 1:
            lo, hi = part.row(0)
            kept.append(slim.filter(pl.col(date_col).is_between(lo, hi)).select("_row"))
        elif (part.get_column("from_date") == part.get_column("to_date")).all():
            # Single days (the sessions a change touched): an equality join, no range test.
            days = part.select(*named, pl.col("from_date").alias(date_col)).unique()
            kept.append(slim.join(days, on=[*named, date_col], how="semi").select("_row"))
        else:
            joined = slim.join(part, on=list(named), how="inner") if named else slim.join(part, how="cross")
            kept.append(joined.filter(pl.col(date_col).is_between(pl.col("from_date"), pl.col("to_date"))).select("_row"))
    rows = pl.concat(kept).get_column("_row")
    return frame.filter(pl.int_range(0, frame.height, dtype=rows.dtype, eager=True).is_in(rows.implode()))


# the engine -------------------------------------------------------------------------------------


@dataclass
class Context:
    """What every step may read: the connection (inside the load's transaction) and the night."""

    con: duckdb.DuckDBPyConnection
    as_of: date
    until: date  # the latest session derived tables hold after this update
    pairs: list[tuple[str, str]]
    anchors: list[str]
    index_names: dict[str, str]
    published_through: date | None  # the latest night already published (restatements before it)
    first_date: date | None = None  # the first date raw holds (sessions start there)


@dataclass
class Updated:
    changes: Changes = field(default_factory=Changes)
    rows_written: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    results: dict[str, pl.DataFrame] = field(default_factory=dict)  # gate results of marts
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    restatements: list[dict] = field(default_factory=list)
    gate_results: dict = field(default_factory=dict)
    replayed: bool = False  # derived period by period: `changes` names the changed tables, without rows
    until: date | None = None  # the latest session the derived tables hold

    @property
    def blocked(self) -> bool:
        return bool(self.errors)


@dataclass(frozen=True)
class Step:
    """How one dataset is kept up to date (see pipeline.steps)."""

    scope: Callable[[Context, Changes], pl.DataFrame]  # changes of inputs -> scope frame
    compute: Callable[[Context, pl.DataFrame], pl.DataFrame]  # scope -> the scope's rows (or more)
    scope_date: str  # SQL over the table's columns ({t}.col): the date a scope's from/to bound
    # Everything from a date to ctx.until (a rebuild); default: every key, that date range.
    scope_all: Callable[[Context, date], pl.DataFrame] | None = None
    # Stored rows a check of the computed rows needs as context (the row before them), or None.
    gate_history: Callable[[Context, pl.DataFrame], pl.DataFrame] | None = None

    def everything_from(self, ctx: "Context", first: date) -> pl.DataFrame:
        if self.scope_all is not None:
            return self.scope_all(ctx, first)
        return scope_frame(pl.DataFrame({"from_date": [first], "to_date": [ctx.until]}))


def step_of(dataset: Dataset) -> Step:
    module = importlib.import_module("pipeline.steps")
    return module.STEPS[dataset.name]


def _read_scope(con, dataset: Dataset, scope: pl.DataFrame, step: Step) -> pl.DataFrame:
    sql = in_scope_sql(con, dataset.name, scope, step.scope_date.replace("{t}", "r"), "old")
    return read(con, sql).select(dataset.column_names) if sql else pl.DataFrame(schema=dataset.schema)


def _new_in_scope(con, dataset: Dataset, rows: pl.DataFrame, scope: pl.DataFrame, step: Step) -> pl.DataFrame:
    plain = step.scope_date.startswith("{t}.") and step.scope_date[4:].isidentifier()
    if plain:
        return filter_scope(rows.select(dataset.column_names).cast(dataset.schema), scope, step.scope_date[4:])
    with registered(con, _computed=rows):
        sql = in_scope_sql(con, "_computed", scope, step.scope_date.replace("{t}", "r"), "new")
        return read(con, sql).select(dataset.column_names).cast(dataset.schema)


def _differs(dataset: Dataset) -> list[tuple[str, str]]:
    """(column, SQL true when n.column and o.column differ) for every non-key column."""
    out = []
    for c in dataset.columns:
        if c.name in dataset.key:
            continue
        n, o = f'n."{c.name}"', f'o."{c.name}"'
        if c.sql_type == "DOUBLE":
            # NaN and infinities compare as values; finite numbers within the tolerance are equal.
            same = (
                f"({n} IS NOT DISTINCT FROM {o} OR (isfinite({n}) AND isfinite({o}) AND "
                f"abs({n} - {o}) <= {FLOAT_TOLERANCE} * greatest(abs({n}), abs({o}))))"
            )
        else:
            same = f"({n} IS NOT DISTINCT FROM {o})"
        out.append((c.name, f"NOT {same}"))
    return out


def diff_and_write(con, dataset: Dataset, new: pl.DataFrame, old: pl.DataFrame) -> Change:
    """Write the difference between `new` and `old` (rows of one scope) and return it."""
    dupes = new.select(dataset.key).is_duplicated().sum()
    if dupes:
        raise ValueError(f"{dataset.name}: the step computed {dupes} rows sharing a key ({', '.join(dataset.key)})")
    cols = dataset.column_names
    if old.height == 0:  # nothing stored in the scope (a new night, a rebuilt period): all inserts
        insert(con, dataset.name, new.select(cols))
        return Change(new.select(cols), old.select(cols))
    on = " AND ".join(f'n."{k}" = o."{k}"' for k in dataset.key)
    differs = _differs(dataset)
    any_diff = " OR ".join(d for _, d in differs) or "FALSE"
    with registered(con, _n=new.select(cols), _o=old.select(cols)):
        upserts = read(
            con,
            f"SELECT n.* FROM _n n LEFT JOIN _o o ON {on} WHERE o.\"{dataset.key[0]}\" IS NULL OR {any_diff}",
        ).cast(dataset.schema)
        replaced = read(
            con,
            f"SELECT o.* FROM _o o LEFT JOIN _n n ON {on} WHERE n.\"{dataset.key[0]}\" IS NULL OR {any_diff}",
        ).cast(dataset.schema)
    if replaced.height:
        with registered(con, _gone=replaced.select(dataset.key)):
            match = " AND ".join(f't."{k}" = g."{k}"' for k in dataset.key)
            con.execute(f"DELETE FROM {dataset.name} t USING _gone g WHERE {match}")
    insert(con, dataset.name, upserts)
    return Change(upserts, replaced)


def _gate(dataset: Dataset, step: Step, rows: pl.DataFrame, ctx: Context, load_id: str, severity: dict, out: Updated) -> None:
    from expectations.gate import gate

    history = step.gate_history(ctx, rows) if step.gate_history is not None and rows.height else None
    g = gate(dataset.name, rows, load_id=load_id, as_of=ctx.until, severity_overrides=severity, history=history)
    out.gate_results[dataset.name] = g
    out.results[dataset.name] = g.results
    out.errors.extend(g.errors)
    out.warnings.extend(g.warnings)


def _restated(dataset: Dataset, change: Change, ctx: Context) -> dict | None:
    """A summary of the rows of already-published nights that this change rewrote, or None."""
    if ctx.published_through is None or dataset.date_column is None or change.empty:
        return None
    col = dataset.date_column
    rows = change.rows()
    if rows.schema[col] != pl.Date:
        return None
    past = rows.filter(pl.col(col) <= ctx.published_through)
    if past.height == 0:
        return None
    keys = past.select(dataset.key).unique()
    return {
        "table_name": dataset.name,
        "first_date": past.get_column(col).min(),
        "last_date": past.get_column(col).max(),
        "rows": keys.height,
    }


def update(
    ctx: Context,
    changes: Changes,
    *,
    load_id: str,
    severity: dict | None = None,
    datasets: tuple[Dataset, ...] = DATASETS,
    timings: dict[str, float] | None = None,
    rebuild_from: date | None = None,
    gated: bool = True,
) -> Updated:
    """Bring every dataset up to date with `changes` (raw tables' changes of this load); with
    `rebuild_from`, recompute every dataset from that date to ctx.until instead."""
    out = Updated(changes=Changes(changes))
    timings = out.timings if timings is None else timings
    for dataset in order(datasets):
        step = step_of(dataset)
        t = time.perf_counter()
        scope = step.everything_from(ctx, rebuild_from) if rebuild_from else step.scope(ctx, out.changes)
        if scope is None or scope.height == 0:
            continue
        computed = step.compute(ctx, scope)
        if computed.width == 0:  # nothing to compute from: the scope's rows are all gone
            computed = pl.DataFrame(schema=dataset.schema)
        new = _new_in_scope(ctx.con, dataset, computed, scope, step)
        if dataset.suite and gated:
            _gate(dataset, step, new, ctx, load_id, severity or {}, out)
            if out.blocked:
                timings[dataset.name] = timings.get(dataset.name, 0.0) + time.perf_counter() - t
                return out
        old = _read_scope(ctx.con, dataset, scope, step)
        change = diff_and_write(ctx.con, dataset, new, old)
        crashpoint("transform.replace")
        if not change.empty:
            out.changes[dataset.name] = change
            out.rows_written[dataset.name] = out.rows_written.get(dataset.name, 0) + change.new.height + change.old.height
            restated = _restated(dataset, change, ctx)
            if restated:
                out.restatements.append(restated)
        timings[dataset.name] = timings.get(dataset.name, 0.0) + time.perf_counter() - t
    return out


# running a load's update -------------------------------------------------------------------------

# Raw rows a load may change before its derivation is replayed year by year (a backfill, a csv
# import of history): above it, one update at once would hold every changed year in memory.
REPLAY_ROWS = 1_000_000


# The date column of each raw table's rows (the first a frame has).
DATE_COLUMNS = ("session_date", "as_of_date", "period_end_date", "ex_date")


def _date_column(frame: pl.DataFrame) -> str | None:
    return next((c for c in DATE_COLUMNS if c in frame.columns), None)


def _first_changed(changes: Changes) -> date | None:
    firsts = []
    for change in changes.values():
        for frame in (change.new, change.old):
            col = _date_column(frame)
            if col is not None and frame.height:
                firsts.append(frame.get_column(col).min())
    firsts = [d for d in firsts if d is not None]
    return min(firsts) if firsts else None


def split_changes(changes: Changes, through: date) -> tuple[Changes, Changes]:
    """(the rows of `changes` dated on or before `through`, the rest), table by table; a frame
    without a date column goes with the rest."""
    earlier, later = Changes(), Changes()
    for name, change in changes.items():
        col = _date_column(change.new) or _date_column(change.old)
        if col is None:
            later[name] = change
            continue
        old_side = (pl.col(col) <= through).fill_null(False)
        before = Change(change.new.filter(old_side), change.old.filter(old_side))
        after = Change(change.new.filter(~old_side), change.old.filter(~old_side))
        if not before.empty:
            earlier[name] = before
        if not after.empty:
            later[name] = after
    return earlier, later


def _rows(changes: Changes) -> int:
    return sum(c.new.height + c.old.height for c in changes.values())


def periods(first: date, until: date, months: int) -> list[tuple[date, date]]:
    """[first, until] cut into periods of `months` calendar months (aligned on January for 12, 6,
    4, 3, 2, 1), each given as (first day, last day)."""
    months = max(1, min(12, months))
    out = []
    start = first
    while start <= until:
        # The period holding `start`, aligned on its year: months 1.., 1+m.., ...
        end_month = min(12, ((start.month - 1) // months + 1) * months)
        nxt = date(start.year + 1, 1, 1) if end_month == 12 else date(start.year, end_month + 1, 1)
        out.append((start, min(until, nxt - timedelta(days=1))))
        start = nxt
    return out


def run(
    ctx: Context,
    changes: Changes,
    *,
    load_id: str,
    severity: dict | None = None,
    rebuild: bool = False,
    replay_rows: int = REPLAY_ROWS,
    period_months: int = 12,
    progress: Callable[[str], None] | None = None,
    gated: bool = True,
) -> Updated:
    """Update every derived dataset for this load's raw `changes`.

    A small load (a night) is one `update`. A large one, or `rebuild`, is replayed one period
    (`period_months`, a year by default) at a time from the first changed period (the first loaded
    one for a rebuild): each period is recomputed whole, from raw, continuing the state of the
    periods before it. Later periods must be recomputed anyway once an earlier one changed, and a
    period at a time bounds memory.

    A large load of new sessions usually brings a few rows dated inside the history already
    derived as well: quarters of companies that join a universe in the new sessions (period ends
    years back), a revised bar. When those are few (at most `replay_rows`), they are applied first
    as a night would apply them (one `update` up to the last derived session), and the replay
    starts at the first new period. Replaying from the oldest such row instead made every window of
    a long backfill re-derive the whole history before it, so its time and memory grew with the
    history (issue 13).
    """
    if not rebuild and _rows(changes) <= replay_rows:
        return update(ctx, changes, load_id=load_id, severity=severity, gated=gated)
    first = ctx.first_date if rebuild else _first_changed(changes)
    total = Updated(replayed=True)
    if first is None:
        return total
    if ctx.first_date is not None:
        first = max(first, ctx.first_date)  # a quarter's period end may precede every bar
    from ground import calendar

    # A warning repeated by every period (a mart left empty by an index-only folder) is said once,
    # with the number of periods that raised it.
    repeats: dict[str, int] = {}

    def said_once() -> None:
        total.warnings.extend(w if n == 1 else f"{w} (in {n} periods of the replay)" for w, n in repeats.items())

    def take(got: Updated) -> bool:
        """Add one update's outcome to the total; True when it blocked the load."""
        for name, change in got.changes.items():
            total.rows_written[name] = total.rows_written.get(name, 0) + change.new.height + change.old.height
            # Which tables changed, not the rows (a replayed load's publish writes the snapshot
            # whole): a period's changed rows would otherwise stay alive through the next period.
            total.changes[name] = Change(change.new.clear(), change.old.clear())
        got.changes.clear()
        for name, res in got.results.items():
            total.results[name] = _combine_results(total.results.get(name), res)
        total.gate_results.update(got.gate_results)
        for w in got.warnings:
            repeats[w] = repeats.get(w, 0) + 1
        total.restatements = _combine_restatements(total.restatements + got.restatements)
        if got.blocked:
            total.errors.extend(got.errors)
            said_once()
        return got.blocked

    if not rebuild:
        derived_through = ctx.con.execute("SELECT max(session_date) FROM core.sessions").fetchone()[0]
        if derived_through is not None and first <= derived_through < ctx.until:
            earlier, later = split_changes(changes, derived_through)
            new_first = _first_changed(later)
            if new_first is not None and _rows(earlier) <= replay_rows:
                if progress:
                    progress(f"deriving {_rows(earlier):,} changed rows dated up to {derived_through}")
                through_ctx = Context(**{**ctx.__dict__, "until": derived_through})
                # Only this load's changes: the raw rows after derived_through are the replay's.
                got = update(through_ctx, earlier, load_id=load_id, severity=severity, timings=total.timings, gated=gated)
                if take(got):
                    return total
                first = max(new_first, first)

    aligned = date(first.year, 1, 1) if period_months >= 12 else date(first.year, first.month, 1)
    for lo, hi in periods(aligned, ctx.until, period_months):
        start, last = max(first, lo), calendar.session_on_or_before(hi)
        if start > last:
            continue
        year_ctx = Context(**{**ctx.__dict__, "until": min(last, ctx.until)})
        if progress:
            progress(f"deriving {lo:%Y-%m}..{hi:%Y-%m}")
        got = update(year_ctx, Changes(), load_id=load_id, severity=severity, timings=total.timings, rebuild_from=start, gated=gated)
        if take(got):
            return total
    said_once()
    return total


def _combine_results(before: pl.DataFrame | None, more: pl.DataFrame) -> pl.DataFrame:
    """One dq.results row per expectation over the years of a replay: it succeeded if it did every
    year; counts add up; the details of a failing year are kept."""
    if before is None or before.height == 0:
        return more
    both = pl.concat([before, more], how="vertical_relaxed")
    return (
        both.sort("success")  # failing years first: their details are the ones kept
        .group_by("load_id", "table_name", "expectation", maintain_order=True)
        .agg(
            pl.col("severity").first(),
            pl.col("success").all(),
            pl.col("element_count").sum(),
            pl.col("unexpected_count").sum(),
            pl.col("details").first(),
            pl.col("checked_at").max(),
        )
        .select(before.columns)
    )


def _combine_restatements(rows: list[dict]) -> list[dict]:
    out: dict[str, dict] = {}
    for r in rows:
        got = out.get(r["table_name"])
        if got is None:
            out[r["table_name"]] = dict(r)
        else:
            got["first_date"] = min(got["first_date"], r["first_date"])
            got["last_date"] = max(got["last_date"], r["last_date"])
            got["rows"] += r["rows"]
    return list(out.values())
