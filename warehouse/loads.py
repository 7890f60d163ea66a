"""`meta.loads`: one row per load, written when it starts and when it ends."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import duckdb


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def begin(
    con: duckdb.DuckDBPyConnection,
    *,
    load_id: str,
    flow_run_id: str | None,
    flow_name: str,
    source: str,
    start: date | None,
    end: date | None,
) -> None:
    con.execute(
        "INSERT INTO meta.loads (load_id, flow_run_id, flow_name, source, start_date, end_date, status, started_at) "
        "VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
        [load_id, flow_run_id, flow_name, source, start, end, now_utc()],
    )


def finish(
    con: duckdb.DuckDBPyConnection,
    *,
    load_id: str,
    status: str,
    message: str | None = None,
    sessions: int | None = None,
    rows_in: int | None = None,
    rows_loaded: int | None = None,
    rows_changed: int | None = None,
    rows_quarantined: int | None = None,
    timings: dict[str, float] | None = None,
) -> None:
    con.execute(
        "UPDATE meta.loads SET status = ?, message = ?, sessions = coalesce(?, sessions), "
        "rows_in = coalesce(?, rows_in), rows_loaded = coalesce(?, rows_loaded), "
        "rows_changed = coalesce(?, rows_changed), rows_quarantined = coalesce(?, rows_quarantined), "
        "finished_at = ?, timings = ? WHERE load_id = ?",
        [
            status,
            message,
            sessions,
            rows_in,
            rows_loaded,
            rows_changed,
            rows_quarantined,
            now_utc(),
            json.dumps({k: round(v, 3) for k, v in (timings or {}).items()}),
            load_id,
        ],
    )


def mark_interrupted(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Loads still 'running' when a new one starts under the lock died mid-way (kill -9, power)."""
    rows = con.execute("SELECT load_id FROM meta.loads WHERE status = 'running'").fetchall()
    if rows:
        con.execute(
            "UPDATE meta.loads SET status = 'failed', finished_at = ?, "
            "message = 'interrupted: the process ended before the load finished; its data changes were rolled back' "
            "WHERE status = 'running'",
            [now_utc()],
        )
    return [r[0] for r in rows]
