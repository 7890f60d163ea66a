"""Derived tables from their declarations: create what is missing, re-create what changed shape.

The registry (ground/registry.py) is the one source of the core and mart tables' DDL. A table
whose declared shape differs from the one it was created with (meta.datasets.fingerprint) is
dropped and created again; it and everything derived from it are then marked not built, and the
next load fills them from raw. Raw, meta and dq tables stay with the SQL migrations: they hold what
cannot be derived again.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Mapping, Protocol

import duckdb


class Declared(Protocol):
    name: str

    def ddl(self) -> str: ...

    def fingerprint(self, config: Mapping[str, object] | None = None) -> str: ...


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def sync(con: duckdb.DuckDBPyConnection, datasets: Iterable[Declared], config: Mapping[str, object] | None = None) -> list[str]:
    """Create or re-create derived tables to match their declarations (and the settings that shape
    them, `config`). Returns the names of the tables created now (empty: they must be built from
    raw). Runs in its own transaction."""
    known = dict(con.execute("SELECT name, fingerprint FROM meta.datasets").fetchall())
    existing = {
        r[0] for r in con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_schema IN ('core', 'marts')"
        ).fetchall()
    }
    created = []
    con.execute("BEGIN TRANSACTION")
    try:
        for d in datasets:
            fingerprint = d.fingerprint(config)
            if known.get(d.name) == fingerprint and d.name in existing:
                continue
            con.execute(f"DROP TABLE IF EXISTS {d.name}")
            con.execute(d.ddl())
            con.execute(
                "INSERT OR REPLACE INTO meta.datasets (name, fingerprint, created_at, is_built) VALUES (?, ?, ?, false)",
                [d.name, fingerprint, _now()],
            )
            created.append(d.name)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return created


def unbuilt(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM meta.datasets WHERE NOT is_built ORDER BY name").fetchall()]


def mark_built(con: duckdb.DuckDBPyConnection, names: Iterable[str], load_id: str) -> None:
    for name in names:
        con.execute("UPDATE meta.datasets SET is_built = true, updated_at = ?, load_id = ? WHERE name = ?", [_now(), load_id, name])


def truncate(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> None:
    for name in names:
        con.execute(f"DELETE FROM {name}")
