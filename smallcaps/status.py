"""What `smallcaps status` shows: the published snapshot, last loads, freshness and row counts,
and whether the views file reads this data home's exports (`--fix-views` writes it again)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ground.settings import Settings
from ground.registry import DATASETS
from warehouse.db import table_names
from warehouse.export import rewrite_views, views_read

# The column that says how fresh each table is: raw tables here, derived ones from the registry.
RAW_FRESHNESS = {
    "raw.index_bars": "session_date",
    "raw.equity_bars": "session_date",
    "raw.holdings": "as_of_date",
    "raw.fundamentals": "period_end_date",
    "raw.corporate_actions": "ex_date",
}
FRESHNESS = {**RAW_FRESHNESS, **{d.name: d.date_column for d in DATASETS if d.date_column}}


@dataclass
class Status:
    published: Path | None
    warehouse: Path
    read_from: str
    loads: list[tuple]
    tables: list[tuple[str, int, object]]
    # Published nights whose rows a later load rewrote (meta.restatements), newest first.
    restatements: list[tuple] = field(default_factory=list)
    views: Views | None = None


@dataclass(frozen=True)
class Views:
    """The views file and the folder its views read (None: no views file, nothing exported yet)."""

    path: Path | None
    reads: str | None
    is_current: bool
    problem: str | None = None

    def advice(self) -> str:
        if self.path is None:
            return "none yet (the first nightly load exports the marts and writes them)"
        if self.problem is not None:
            return f"{self.path} cannot be read ({self.problem}); `smallcaps status --fix-views` writes it again"
        if self.is_current:
            return f"{self.path}"
        if self.reads == "current":
            return (f"{self.path} reads paths relative to the exports folder (readers must set file_search_path); "
                    "`smallcaps status --fix-views` writes absolute ones")
        return (f"{self.path} reads {self.reads}, not this data home (moved or copied?); "
                "`smallcaps status --fix-views` writes it for this home")


def views_status(settings: Settings) -> Views:
    exports_dir = settings.exports_dir.resolve()
    path = exports_dir / "smallcaps_views.duckdb"
    if not path.exists():
        return Views(None, None, False)
    try:
        folders = views_read(path)
    except (duckdb.Error, ValueError) as exc:
        # A views file another tool damaged or a half-copied home: status still answers, and says so.
        return Views(path, None, False, str(exc).splitlines()[0])
    if not folders:
        return Views(path, None, False, "it holds no view of the marts")
    reads = ", ".join(sorted(folders))
    return Views(path, reads, folders == {str(exports_dir / "current")})


def fix_views(settings: Settings) -> Path:
    """Write the views file again for where the data home is now (absolute paths, warehouse/export.py
    says why), under the load lock so it never races a nightly export."""
    from pipeline.lock import load_lock

    with load_lock(settings.home):
        return rewrite_views(
            settings.exports_dir, [d.name for d in DATASETS if d.export], settings.publish_storage_version
        )


def collect(settings: Settings, last: int = 8) -> Status:
    published = settings.published_path if settings.published_path.exists() else None
    if not settings.warehouse_path.exists():
        raise FileNotFoundError(f"no warehouse at {settings.warehouse_path}: run `make demo` or `smallcaps backfill`")
    try:
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        read_from = "private warehouse"
    except duckdb.IOException:
        # A load holds the private file; the published snapshot still answers.
        if published is None:
            raise FileNotFoundError(f"a load is running on {settings.warehouse_path} and nothing is published yet")
        con = duckdb.connect(str(published), read_only=True)
        read_from = "published snapshot: a load is running"
    try:
        loads = con.execute(
            "SELECT load_id, flow_name, source, sessions, status, rows_loaded, rows_quarantined, "
            "strftime(finished_at, '%Y-%m-%d %H:%M:%S'), left(message, 120) FROM meta.loads "
            "ORDER BY started_at DESC LIMIT ?",
            [last],
        ).fetchall()
        restatements = []
        if "meta.restatements" in table_names(con, ("meta",)):
            restatements = con.execute(
                "SELECT load_id, table_name, first_date, last_date, rows, left(reason, 160) FROM meta.restatements "
                "ORDER BY restated_at DESC, table_name LIMIT ?",
                [last * 2],
            ).fetchall()
        tables = []
        for t in table_names(con, ("raw", "core", "marts")):
            col = FRESHNESS.get(t)
            sel = f"max({col})" if col else "NULL"
            rows, latest = con.execute(f"SELECT count(*), {sel} FROM {t}").fetchone()
            tables.append((t, rows, latest))
    finally:
        con.close()
    return Status(published, settings.warehouse_path, read_from, loads, tables, restatements, views_status(settings))
