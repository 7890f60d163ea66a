"""Loading a gated batch: merge the clean rows, keep meta.fetch_state, meta.symbols and meta.series,
derive core and marts (pipeline.derive), all in one transaction; a blocked load's record; the
full rebuild; how to patch the published snapshot."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

import duckdb
import polars as pl

from pipeline.checks import Batch
from ground.crashpoints import crashpoint
from pipeline.load_run import LoadBlocked, LoadFailed, dataset_config
from ground.settings import Settings
from warehouse.load import MergeCounts, insert, merge, read, registered, stage, transaction


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


def record_blocked(con, batch: Batch, gated: dict, *, load_id: str, at: datetime) -> tuple[int, str]:
    """A blocked load keeps every fetched row: offending ones with their reason, the good ones held.
    meta.load_tables and meta.loads count them (nothing loaded, every row quarantined)."""
    from expectations.gate import held_rows

    errors = [e for g in gated.values() for e in g.errors]
    reason = "load blocked: " + "; ".join(errors)[:500]
    quarantined = 0
    with transaction(con):
        for table, g in gated.items():
            insert(con, "dq.results", g.results)
            insert(con, "dq.quarantine", g.quarantine)
            # The gate's row_key (the table's primary key in key order), like the offending rows'.
            insert(con, "dq.quarantine", held_rows(table, g.clean, load_id=load_id, reason=reason, at=at))
            quarantined += g.quarantine.height + g.clean.height
            insert(
                con,
                "meta.load_tables",
                pl.DataFrame(
                    {
                        "load_id": [load_id], "table_name": [table], "rows_in": [batch.frames[table].height], "rows_loaded": [0],
                        "rows_inserted": [0], "rows_changed": [0], "rows_quarantined": [g.quarantine.height + g.clean.height],
                    }
                ),
            )
        insert(con, "dq.quarantine", _excluded_rows(batch, load_id, at))
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
        with registered(con, _ok=ok):
            con.execute("INSERT OR REPLACE INTO meta.fetch_state SELECT symbol, dataset, ?, ?, NULL, 0 FROM _ok", [at, at])
    if failed.height:
        with registered(con, _failed=failed):
            con.execute(
                """INSERT OR REPLACE INTO meta.fetch_state
                   SELECT f.symbol, f.dataset, ?, s.last_success_at, f.error, coalesce(s.consecutive_failures, 0) + 1
                   FROM _failed f LEFT JOIN meta.fetch_state s ON s.symbol = f.symbol AND s.dataset = f.dataset""",
                [at],
            )


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
    with registered(con, _symbols=rows):
        con.execute("INSERT OR REPLACE INTO meta.symbols BY NAME SELECT * FROM _symbols")


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
    with registered(con, _bounds=bounds):
        con.execute(
            """INSERT OR REPLACE INTO meta.series
               SELECT b.symbol, least(b.first_bar_date, coalesce(s.first_bar_date, b.first_bar_date)),
                      greatest(b.last_bar_date, coalesce(s.last_bar_date, b.last_bar_date))
               FROM _bounds b LEFT JOIN meta.series s USING (symbol)"""
        )


# The columns of a raw table's changed rows that derivation reads (pipeline.steps).
CHANGE_COLUMNS: dict[str, list[str]] = {
    "raw.index_bars": ["symbol", "session_date"],
    "raw.equity_bars": ["symbol", "session_date"],
    "raw.holdings": ["universe", "as_of_date", "symbol"],
    "raw.fundamentals": ["symbol", "period_end_date", "report_date", "net_income_common_usd"],
    "raw.corporate_actions": ["symbol", "ex_date", "action"],
}


def derive_context(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: date):
    """What the derivation of a load needs to know about the night and the warehouse."""
    from pipeline.derive import Context
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

    Derivation recomputes only what the merged changes reach (pipeline.derive); a derived table
    created or re-shaped since the last load (or `rebuild`) is rebuilt from raw. Raises LoadBlocked
    (after rolling back) when a mart fails an error-level expectation. `log` receives a line per
    stage (the load is a night's longest step; its log says where it is).
    """
    say = log or (lambda line: None)
    from pipeline import derive
    from ground.registry import DATASETS
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
            insert(con, "dq.results", g.results)
            insert(con, "dq.quarantine", g.quarantine)
            quarantined += g.quarantine.height
            warnings.extend(g.warnings)
            insert(
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
        insert(con, "dq.quarantine", _excluded_rows(batch, load_id, fetched_at))
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
    from pipeline import derive
    from ground.registry import DATASETS
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
        insert(con, "dq.results", res)
    if derived.restatements:
        reason = _restatement_reason(counts, ctx.published_through) if counts else "rebuilt from raw (smallcaps rebuild)"
        insert(
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
    from ground.registry import DATASETS
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


def previous_load(con: duckdb.DuckDBPyConnection, load_id: str) -> str | None:
    """The load before `load_id` that changed the warehouse (not failed, blocked or skipped)."""
    row = con.execute(
        "SELECT load_id FROM meta.loads WHERE load_id <> ? AND status NOT IN ('failed', 'blocked', 'skipped', 'running') "
        "AND started_at <= (SELECT started_at FROM meta.loads WHERE load_id = ?) ORDER BY started_at DESC LIMIT 1",
        [load_id, load_id],
    ).fetchone()
    return row[0] if row else None


def export_changes(patches: dict | None, partitions: dict[str, str | None]) -> dict[str, set[int] | None] | None:
    """For warehouse.export.export: the exported marts tonight's patches change, each with the years
    of the rows they remove or write (None: unknown, when the year column is not in the key).
    None when there are no patches (the snapshot was written whole: so is the export)."""
    if patches is None:
        return None
    changed: dict[str, set[int] | None] = {}
    for mart, col in partitions.items():
        patch = patches.get(mart)
        if patch is None or not (patch.remove.height or patch.write.height):
            continue
        if col is None or col not in patch.remove.columns or col not in patch.write.columns:
            changed[mart] = None
            continue
        years = pl.concat([patch.remove.get_column(col), patch.write.get_column(col)]).dt.year().unique()
        changed[mart] = set(years.drop_nulls().to_list()) if years.null_count() == 0 else None
    return changed


def publish_patches(con: duckdb.DuckDBPyConnection, settings: Settings, load_id: str, loaded: Loaded) -> dict | None:
    """How to patch the current snapshot into tonight's, or None when it must be written whole:
    after a replayed (large) load, or when the snapshot is not the one of the load before this
    one (a held night, an interrupted publish, a first night)."""
    from ground.registry import get
    from warehouse.publish import Patch, snapshot_load

    if not loaded.changes_complete:
        return None
    previous = previous_load(con, load_id)
    if previous is None or snapshot_load(settings.published_dir) != previous:
        return None
    patches = {}
    for table, change in loaded.changes.items():
        keys = get(table).key
        patches[table] = Patch(keys, change.old.select(keys), change.new)
    return patches
