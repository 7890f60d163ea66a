"""Staging and merging fetched frames into `raw`, and rewriting derived tables.

Merge semantics (DESIGN.md "Reruns are idempotent"): a staged row whose key is new is inserted;
a row whose key exists with identical values is left alone (its load_id and fetched_at stay, so a
rerun changes nothing); a row whose values differ is updated and each changed column is recorded
in `raw.revisions`. Callers run merges inside one transaction (see `transaction`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

import duckdb
import polars as pl

from ground.schemas import BOOKKEEPING_COLUMNS
from warehouse.db import columns, key_columns

# Values a source knows on one fetch and not on the next: a re-fetch without one (null) keeps the
# stored value; another value replaces it (and is recorded). Yahoo dates only the newest quarter of
# an answer (sources/yahoo.py), so its next answer, a quarter later, brings that quarter again with
# no report date: that must not erase a report date already learned (cohort rule v1 would then
# count the quarter by its 45-day deadline, possibly before it was published).
KEEP_WHEN_NULL: dict[str, tuple[str, ...]] = {"raw.fundamentals": ("report_date",)}


@dataclass(frozen=True)
class MergeCounts:
    rows_in: int
    inserted: int
    changed: int
    # What the merge changed, in the columns the caller asked for: the new versions of inserted and
    # changed rows, the old versions of changed rows (raw rows are never deleted).
    new: pl.DataFrame | None = None
    old: pl.DataFrame | None = None

    @property
    def loaded(self) -> int:
        return self.inserted + self.changed


def stage(df: pl.DataFrame, *, source: str, fetched_at: datetime, load_id: str, table: str) -> pl.DataFrame:
    """Stamp a source frame with where and when it came from."""
    extra = [
        pl.lit(source).alias("source"),
        pl.lit(fetched_at).cast(pl.Datetime("us")).alias("fetched_at"),
        pl.lit(load_id).alias("load_id"),
    ]
    if table == "raw.fundamentals":
        extra.append(pl.lit(fetched_at).cast(pl.Datetime("us")).alias("first_seen_at"))
    return df.with_columns(extra)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def merge(
    con: duckdb.DuckDBPyConnection, table: str, staged: pl.DataFrame, load_id: str, change_columns: list[str] | None = None
) -> MergeCounts:
    """Upsert `staged` into `table` by its primary key, recording changed values. With
    `change_columns`, the counts carry those columns of the rows it inserted or changed."""
    if staged.height == 0:
        return MergeCounts(0, 0, 0)
    keys = key_columns(con, table)
    cols = columns(con, table)
    missing = [c for c in cols if c not in staged.columns]
    if missing:
        raise ValueError(f"{table}: staged rows lack column(s) {', '.join(missing)}")
    dupes = staged.select(keys).is_duplicated().sum()
    if dupes:
        raise ValueError(f"{table}: {dupes} staged rows share a key ({', '.join(keys)}); refusing to merge")
    values = [c for c in cols if c not in keys and c not in BOOKKEEPING_COLUMNS]
    kept = KEEP_WHEN_NULL.get(table, ())
    incoming = {c: f"coalesce(s.{c}, t.{c})" if c in kept else f"s.{c}" for c in cols}
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    differs = " OR ".join(f"t.{c} IS DISTINCT FROM {incoming[c]}" for c in values) or "false"
    # The staged rows that are new or differ, in one join: a night re-sends mostly stored rows
    # (the overlap sessions, every quarter a source returns), and each statement below joins its
    # rows with the table again; on the others they all find nothing.
    with registered(con, _staged=staged.select(cols)):
        delta = read(con, f"SELECT s.* FROM _staged s LEFT JOIN {table} t ON {on} WHERE t.{keys[0]} IS NULL OR ({differs})")
    with registered(con, _staged=delta):
        key_text = " || '|' || ".join(f"CAST(s.{k} AS VARCHAR)" for k in keys)
        # Record every changed column before the update overwrites it.
        if values:
            unions = " UNION ALL ".join(
                f"SELECT ?, ?, {key_text}, '{c}', CAST(t.{c} AS VARCHAR), CAST({incoming[c]} AS VARCHAR), now()::TIMESTAMP "
                f"FROM {table} t JOIN _staged s ON {on} WHERE t.{c} IS DISTINCT FROM {incoming[c]}"
                for c in values
            )
            params = [p for _ in values for p in (load_id, table)]
            con.execute(f"INSERT OR REPLACE INTO raw.revisions {unions}", params)
        changed = con.execute(f"SELECT count(*) FROM {table} t JOIN _staged s ON {on} WHERE {differs}").fetchone()[0]
        new = old = None
        if change_columns is not None:
            pick_t = ", ".join(f"t.{c}" for c in change_columns)
            pick_s = ", ".join(f"{incoming[c]} AS {c}" for c in change_columns)
            old = read(con, f"SELECT {pick_t} FROM {table} t JOIN _staged s ON {on} WHERE {differs}")
            new = read(
                con,
                f"SELECT {pick_s} FROM _staged s LEFT JOIN {table} t ON {on} WHERE t.{keys[0]} IS NULL OR ({differs})",
            )
        if changed:
            keep_first_seen = "first_seen_at" in cols
            sets = ", ".join(
                f"{c} = {incoming[c]}" for c in cols if c not in keys and not (keep_first_seen and c == "first_seen_at")
            )
            con.execute(f"UPDATE {table} t SET {sets} FROM _staged s WHERE {on} AND ({differs})")
        inserted = con.execute(
            f"INSERT INTO {table} SELECT s.* FROM _staged s WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {on})"
        ).fetchone()[0]
    return MergeCounts(staged.height, int(inserted), int(changed), new, old)


def replace(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame) -> int:
    """Rewrite a derived table (core, marts) from a frame with exactly its columns."""
    cols = columns(con, table)
    if list(df.columns) != cols:
        raise ValueError(f"{table}: frame columns {df.columns} differ from the table's {cols}")
    con.execute(f"DELETE FROM {table}")
    insert(con, table, df)
    return df.height


def insert(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame) -> None:
    """Append a frame's rows to `table`, its columns matched by name (none: nothing to do)."""
    if df.height:
        with registered(con, _rows=df):
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")


def read(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """A query's rows as a polars frame (DuckDB 2.0 offers `.pl()` on relations, not on execute results)."""
    con.complete()
    return con.sql(sql, params=params or None).pl()


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **frames: pl.DataFrame) -> Iterator[None]:
    """Expose each frame to SQL under its keyword's name for the `with` block; they are removed
    after it, whatever happens inside (a name left registered would shadow the next query's)."""
    done: list[str] = []
    try:
        for name, df in frames.items():
            register(con, name, df)
            done.append(name)
        yield
    finally:
        for name in reversed(done):
            con.unregister(name)


def register(con: duckdb.DuckDBPyConnection, name: str, df: pl.DataFrame) -> None:
    """Expose a frame to SQL as `name`.

    DuckDB 2.0 refuses relation work while an execute() result is unread (a `fetchone()` leaves
    one open), so the pending result is run to its end first.
    """
    con.complete()
    con.register(name, df)
