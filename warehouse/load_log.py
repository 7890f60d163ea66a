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


def mark_interrupted(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Loads left unfinished by a process that died (kill -9, power cut), found when the next load
    starts under the lock. 'running': its transaction never committed, DuckDB rolled it back.
    'loaded', or 'succeeded' with no row in meta.publishes: its data committed, but it died before
    its snapshot was recorded. All become 'interrupted'; the
    new load redoes the work (merges are idempotent) and publishes. Returns (load_id, what)."""
    rows = con.execute(
        "SELECT load_id, status FROM meta.loads l WHERE status IN ('running', 'loaded') "
        "OR (status = 'succeeded' AND NOT EXISTS (SELECT 1 FROM meta.publishes p WHERE p.load_id = l.load_id)) "
        "ORDER BY started_at"
    ).fetchall()
    what = {
        "running": "the process ended before its data was committed; DuckDB rolled its changes back",
        "loaded": "the process ended after its data was committed, before it was published",
        "succeeded": "the process ended while publishing; the snapshot it was writing was never renamed into place",
    }
    for load_id, status in rows:
        con.execute(
            "UPDATE meta.loads SET status = 'interrupted', finished_at = ?, message = ? WHERE load_id = ?",
            [now_utc(), "interrupted: " + what[status] + "; the next load redid it", load_id],
        )
    return [(load_id, what[status]) for load_id, status in rows]
