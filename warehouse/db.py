"""Connections and schema migrations of the private warehouse file.

Migrations are `warehouse/migrations/NNNN_name.sql`, applied in order, each in its own
transaction, and recorded in `meta.schema_migrations` with a checksum: an applied file that was
edited afterwards is an error (a change to the contract is a new migration, never an edit).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ground.schemas import BOOKKEEPING_COLUMNS

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"migration file {path.name} must be named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a version number in {folder}")
    return found


def migrate(con: duckdb.DuckDBPyConnection, folder: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute(
        """CREATE TABLE IF NOT EXISTS meta.schema_migrations (
               version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,
               checksum VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"""
    )
    applied = {v: c for v, c in con.execute("SELECT version, checksum FROM meta.schema_migrations").fetchall()}
    done = []
    for m in migrations(folder):
        if m.version in applied:
            if applied[m.version] != m.checksum:
                raise RuntimeError(
                    f"migration {m.version:04d}_{m.name}.sql was changed after it was applied; "
                    "write a new migration instead of editing an applied one"
                )
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(m.sql)
            con.execute(
                "INSERT INTO meta.schema_migrations VALUES (?, ?, ?, now()::TIMESTAMP)",
                [m.version, m.name, m.checksum],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        done.append(m.version)
    return done


def connect(path: Path, *, read_only: bool = False, memory_limit_gb: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the private warehouse (migrated) or, read-only, any warehouse or snapshot file.

    With `memory_limit_gb`, DuckDB keeps its buffers under that and spills what does not fit to
    `tmp/` beside the file (a backfill of decades of bars must not need the whole history in RAM)."""
    if read_only:
        if not path.exists():
            raise FileNotFoundError(f"no warehouse at {path}: run `smallcaps backfill` or `make demo` first")
        return duckdb.connect(str(path), read_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect_writer(path)
    if memory_limit_gb is not None:
        spill = path.parent / "tmp"
        spill.mkdir(exist_ok=True)
        con.execute(f"SET memory_limit = '{memory_limit_gb:.2f}GB'")
        con.execute("SET temp_directory = ?", [str(spill)])
    migrate(con)
    return con


WRITER_WAIT_S = 60.0  # how long the load waits for brief readers of the private file to let go


def _connect_writer(path: Path, wait_s: float = WRITER_WAIT_S) -> duckdb.DuckDBPyConnection:
    """Open the private warehouse for writing. `smallcaps status` and `smallcaps dq` read it for a
    moment (read-only) and DuckDB then refuses a writer from another process ("Could not set lock
    on file"): the load waits for them, up to `wait_s`, instead of failing the night."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise duckdb.IOException(
                    f"{path} is held by another process for more than {wait_s:g} s (a long query on the "
                    f"private warehouse?); BI tools and `smallcaps sql` should read the published snapshot. {exc}"
                ) from exc
            time.sleep(0.25)


def table_names(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = ("raw", "core", "marts", "meta", "dq")) -> list[str]:
    rows = con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_schema IN (SELECT unnest(?)) AND table_type = 'BASE TABLE' ORDER BY 1",
        [list(schemas)],
    ).fetchall()
    return [r[0] for r in rows]


def key_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Primary key columns of `schema.table`, in declared order."""
    schema, name = table.split(".")
    row = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [schema, name],
    ).fetchone()
    if row is None:
        raise ValueError(f"{table} has no primary key")
    return list(row[0])


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    schema, name = table.split(".")
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return [r[0] for r in rows]


def checksums(con: duckdb.DuckDBPyConnection, tables: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """(row count, order-independent content hash) per table: compare warehouse states."""
    out = {}
    for t in tables or table_names(con):
        out[t] = con.execute(f"SELECT count(*), coalesce(sum(hash(x)), 0) FROM (SELECT * FROM {t}) x").fetchone()
    return out


# Which load wrote a row and when differs between two runs that load the same data, so content
# comparisons leave it out; `source` stays: rows from another source are other data.
_LOAD_STAMP_COLUMNS = tuple(c for c in BOOKKEEPING_COLUMNS if c != "source")


def content_checksums(con: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, tuple[int, int]]:
    """Like `checksums`, without the bookkeeping columns: equal when two warehouses hold the same data."""
    out = {}
    for t in tables:
        cols = [c for c in columns(con, t) if c not in _LOAD_STAMP_COLUMNS]
        select = ", ".join(f'"{c}"' for c in cols)
        out[t] = con.execute(f"SELECT count(*), coalesce(sum(hash(x)), 0) FROM (SELECT {select} FROM {t}) x").fetchone()
    return out
