"""Publishing immutable snapshots for readers, and the Parquet exports for BI.

DuckDB lets one process write a file and then nobody else open it, and a reader holding a file
blocks a writer. So readers never open the private warehouse: after a load passes its gates, the
tables readers need are copied into a new DuckDB file, which is then renamed into place. Renames
are atomic, and an open reader keeps the inode it opened, so a reader sees the old night or the
new night, never a mix, and never blocks the load.

Layout under the data home:
    published/smallcaps.duckdb          the current night (what BI tools open)
    published/nights/YYYY-MM-DD.duckdb  the last N nightly snapshots (hard links, immutable)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from smallcaps.crashpoints import crashpoint
from warehouse.db import table_names

# What a reader needs: every mart, the core tables behind them, and what happened (meta, dq).
PUBLISHED_SCHEMAS = ("marts", "core")
PUBLISHED_EXTRA = ("meta.loads", "meta.load_tables", "meta.publishes", "dq.results")


@dataclass(frozen=True)
class Published:
    path: Path
    night_path: Path
    as_of: date
    bytes: int
    seconds: float


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(src: Path, dst: Path) -> None:
    os.replace(src, dst)
    _fsync(dst.parent)


def night_path(published_dir: Path, as_of: date) -> Path:
    return published_dir / "nights" / f"{as_of.isoformat()}.duckdb"


def publish(
    con: duckdb.DuckDBPyConnection,
    published_dir: Path,
    *,
    as_of: date,
    load_id: str,
    source: str,
    keep: int,
) -> Published:
    """Copy the reader tables into a new file and rename it into place."""
    import time

    started = time.perf_counter()
    nights = published_dir / "nights"
    nights.mkdir(parents=True, exist_ok=True)
    tmp = published_dir / f".tmp-{load_id}.duckdb"
    for leftover in published_dir.glob(".tmp-*"):
        leftover.unlink()  # an interrupted publish: never renamed, never read
    tables = [t for t in table_names(con, PUBLISHED_SCHEMAS)] + [
        t for t in PUBLISHED_EXTRA if t in table_names(con, ("meta", "dq"))
    ]
    con.execute(f"ATTACH '{tmp}' AS snap")
    try:
        for schema in sorted({t.split(".")[0] for t in tables}):
            con.execute(f"CREATE SCHEMA snap.{schema}")
        for t in tables:
            con.execute(f"CREATE TABLE snap.{t} AS SELECT * FROM {t}")
            crashpoint("publish.copy")
        con.execute(
            "CREATE TABLE snap.meta.snapshot AS SELECT ?::DATE AS as_of_date, ? AS load_id, ? AS source, "
            "?::TIMESTAMP AS published_at",
            [as_of, load_id, source, datetime.now(timezone.utc).replace(tzinfo=None)],
        )
        con.execute("CHECKPOINT snap")
    finally:
        con.execute("DETACH snap")
    crashpoint("publish.detached")
    _fsync(tmp)
    night = night_path(published_dir, as_of)
    _replace(tmp, night)
    crashpoint("publish.night_renamed")
    # The current file is a second name of the night's file, swapped in by one rename.
    link_tmp = published_dir / f".tmp-{load_id}-current.duckdb"
    os.link(night, link_tmp)
    crashpoint("publish.linked")
    current = published_dir / "smallcaps.duckdb"
    _replace(link_tmp, current)
    crashpoint("publish.swapped")
    prune(nights, keep)
    size = night.stat().st_size
    return Published(current, night, as_of, size, time.perf_counter() - started)


def prune(nights: Path, keep: int) -> list[Path]:
    files = sorted(nights.glob("*.duckdb"))
    gone = files[: max(0, len(files) - keep)]
    for f in gone:
        f.unlink()
    return gone


def snapshot_for(published_dir: Path, as_of: date | None) -> Path:
    """The file `smallcaps sql` reads: the current night, or the night of `as_of`."""
    if as_of is None:
        path = published_dir / "smallcaps.duckdb"
        if not path.exists():
            raise FileNotFoundError(
                f"nothing published yet at {path}: run `smallcaps backfill` (or `make demo`) first"
            )
        return path
    path = night_path(published_dir, as_of)
    if not path.exists():
        kept = sorted(p.stem for p in (published_dir / "nights").glob("*.duckdb"))
        raise FileNotFoundError(
            f"no snapshot published for {as_of}; kept nights: {', '.join(kept) or 'none'}"
        )
    return path
