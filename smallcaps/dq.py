"""What `smallcaps dq` shows: the latest gate results, failures first, with example rows."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ground.settings import Settings


@dataclass
class DqReport:
    load: tuple | None
    results: list[tuple]
    quarantine: list[tuple]
    read_from: str


def collect(settings: Settings, load_id: str | None = None, examples: int = 5) -> DqReport:
    path = settings.warehouse_path
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run `make demo` or `smallcaps backfill` first")
    try:
        con = duckdb.connect(str(path), read_only=True)
        read_from = "private warehouse"
        has_quarantine = True
    except duckdb.IOException:
        con = duckdb.connect(str(settings.published_path), read_only=True)
        read_from = "published snapshot (a load is running; quarantine not shown)"
        has_quarantine = False
    try:
        if load_id is None:
            row = con.execute(
                "SELECT load_id FROM meta.loads WHERE load_id IN (SELECT load_id FROM dq.results) "
                "ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
            load_id = row[0] if row else None
        if load_id is None:
            return DqReport(None, [], [], read_from)
        load = con.execute(
            "SELECT load_id, flow_name, source, status, started_at, left(message, 300) FROM meta.loads WHERE load_id = ?",
            [load_id],
        ).fetchone()
        results = con.execute(
            "SELECT table_name, expectation, severity, success, unexpected_count, element_count, left(details, 160) "
            "FROM dq.results WHERE load_id = ? "
            "ORDER BY success, CASE severity WHEN 'error' THEN 0 WHEN 'quarantine' THEN 1 ELSE 2 END, table_name, expectation",
            [load_id],
        ).fetchall()
        quarantine = []
        if has_quarantine:
            quarantine = con.execute(
                "SELECT table_name, expectation, count(*) AS rows, arg_min(reason, row_key), "
                "list(row_key ORDER BY row_key)[1:?] FROM dq.quarantine WHERE load_id = ? "
                "GROUP BY ALL ORDER BY rows DESC",
                [examples, load_id],
            ).fetchall()
        return DqReport(load, results, quarantine, read_from)
    finally:
        con.close()
