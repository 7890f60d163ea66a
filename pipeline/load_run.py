"""One load run: what every step of it shares. Its errors, its id, its Outcome and how meta.loads
and meta.publishes record it, and the private warehouse it runs on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

import duckdb

from ground.settings import Settings
from warehouse import load_log
from warehouse.load import MergeCounts


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
    from ground.registry import DATASETS
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


def finish_ok(con, outcome: Outcome, sessions: int, rows_in: int) -> None:
    load_log.finish(
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


def record_publish(con: duckdb.DuckDBPyConnection, published, load_id: str) -> None:
    con.execute(
        "INSERT OR REPLACE INTO meta.publishes VALUES (?, ?, ?, ?, ?)",
        [load_id, published.as_of, str(published.path), published.bytes, load_log.now_utc()],
    )
