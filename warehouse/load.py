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


def _date_key(keys: list[str], rows: pl.DataFrame) -> str | None:
    """The first key column that holds dates (None: the key holds none)."""
    return next((k for k in keys if rows.schema.get(k) == pl.Date), None)


def _stored_in_range(table: str, keys: list[str], rows: pl.DataFrame) -> tuple[str, str]:
    """(the relation of `table`'s rows a merge of `rows` can match, the same bound as a condition on
    alias t): the stored rows whose date key lies within `rows`' dates. A key with a date decides
    which stored rows can match; given as literals, DuckDB skips the row groups outside them (tables
    grow in date order), so a night's re-sent sessions are joined with those sessions, not with 30
    years. A table whose key holds no date: the whole table."""
    day = _date_key(keys, rows)
    lo, hi = (rows.get_column(day).min(), rows.get_column(day).max()) if day and rows.height else (None, None)
    if lo is None:
        return table, "TRUE"
    bound = f"BETWEEN DATE '{lo.isoformat()}' AND DATE '{hi.isoformat()}'"
    return f"(SELECT * FROM {table} WHERE {day} {bound})", f"t.{day} {bound}"


def _split_after_stored(con: duckdb.DuckDBPyConnection, table: str, keys: list[str], staged: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(staged rows that may match stored ones, rows dated after every stored row). A row of the
    second kind has a key no stored row has (the key holds its date): it is an insert, with no join.
    A backfill window's rows are all of that kind (joining 2M of them, read back as a frame, was
    ~1.8 GiB of the window's peak memory), and so is a night's new session."""
    day = _date_key(keys, staged)
    if day is None:
        return staged, staged.clear()
    last = con.execute(f"SELECT max({day}) FROM {table}").fetchone()[0]
    if last is None:
        return staged.clear(), staged
    after = pl.col(day) > last
    return staged.filter(~after), staged.filter(after)


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
    staged = staged.select(cols)
    matched, later = _split_after_stored(con, table, keys, staged)
    inserted, changed, new, old = _merge_matched(con, table, matched, keys, cols, load_id, change_columns)
    insert(con, table, later)
    if change_columns is not None:
        picked = later.select(change_columns)
        new = picked if new is None else pl.concat([new, picked], how="vertical_relaxed")
        old = picked.clear() if old is None else old
    return MergeCounts(staged.height, inserted + later.height, changed, new, old)


def _merge_matched(
    con: duckdb.DuckDBPyConnection, table: str, staged: pl.DataFrame, keys: list[str], cols: list[str], load_id: str,
    change_columns: list[str] | None,
) -> tuple[int, int, pl.DataFrame | None, pl.DataFrame | None]:
    """merge's join of `staged` with the stored rows: (inserted, changed, new, old)."""
    if staged.height == 0:
        return 0, 0, None, None
    values = [c for c in cols if c not in keys and c not in BOOKKEEPING_COLUMNS]
    kept = KEEP_WHEN_NULL.get(table, ())
    incoming = {c: f"coalesce(s.{c}, t.{c})" if c in kept else f"s.{c}" for c in cols}
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    differs = " OR ".join(f"t.{c} IS DISTINCT FROM {incoming[c]}" for c in values) or "false"
    # The staged rows that are new or differ, in one join: a night re-sends mostly stored rows
    # (the overlap sessions, every quarter a source returns), and each statement below joins its
    # rows with the table again; on the others they all find nothing.
    stored, _ = _stored_in_range(table, keys, staged)
    with registered(con, _staged=staged):
        delta = read(con, f"SELECT s.* FROM _staged s LEFT JOIN {stored} t ON {on} WHERE t.{keys[0]} IS NULL OR ({differs})")
    if delta.height == 0:
        # Every staged row is stored as it is (a rerun, re-sent overlap sessions): nothing to
        # record, update or insert. The statements below would each join the whole table, as an
        # empty delta has no dates to bound the stored rows by.
        return 0, 0, None, None
    stored, in_range = _stored_in_range(table, keys, delta)
    with registered(con, _staged=delta):
        key_text = " || '|' || ".join(f"CAST(s.{k} AS VARCHAR)" for k in keys)
        # Record every changed column before the update overwrites it.
        if values:
            unions = " UNION ALL ".join(
                f"SELECT ?, ?, {key_text}, '{c}', CAST(t.{c} AS VARCHAR), CAST({incoming[c]} AS VARCHAR), now()::TIMESTAMP "
                f"FROM {stored} t JOIN _staged s ON {on} WHERE t.{c} IS DISTINCT FROM {incoming[c]}"
                for c in values
            )
            params = [p for _ in values for p in (load_id, table)]
            con.execute(f"INSERT OR REPLACE INTO raw.revisions {unions}", params)
        changed = con.execute(f"SELECT count(*) FROM {stored} t JOIN _staged s ON {on} WHERE {differs}").fetchone()[0]
        new = old = None
        if change_columns is not None:
            pick_t = ", ".join(f"t.{c}" for c in change_columns)
            pick_s = ", ".join(f"{incoming[c]} AS {c}" for c in change_columns)
            old = read(con, f"SELECT {pick_t} FROM {stored} t JOIN _staged s ON {on} WHERE {differs}")
            new = read(
                con,
                f"SELECT {pick_s} FROM _staged s LEFT JOIN {stored} t ON {on} WHERE t.{keys[0]} IS NULL OR ({differs})",
            )
        if changed:
            keep_first_seen = "first_seen_at" in cols
            sets = ", ".join(
                f"{c} = {incoming[c]}" for c in cols if c not in keys and not (keep_first_seen and c == "first_seen_at")
            )
            con.execute(f"UPDATE {table} t SET {sets} FROM _staged s WHERE {on} AND {in_range} AND ({differs})")
        inserted = con.execute(
            f"INSERT INTO {table} SELECT s.* FROM _staged s WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {on} AND {in_range})"
        ).fetchone()[0]
    return int(inserted), int(changed), new, old


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
