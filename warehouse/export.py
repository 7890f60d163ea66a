"""Parquet exports of the marts for BI tools and engines that scan files.

Each night writes a complete new version folder, `exports/v-<load_id>/`, then swaps the symlink
`exports/current` to it with one atomic rename, so a scan sees one night's files, never a mix.
Time-series marts are partitioned by calendar year (`year=2025/`), which lets a dashboard that
looks at this year read one folder. `exports/smallcaps_views.duckdb` holds one view per mart over
`exports/current`, for tools that want a database file rather than a folder of Parquet.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from smallcaps.crashpoints import crashpoint
from warehouse.db import columns, table_names



@dataclass(frozen=True)
class Exported:
    folder: Path
    views: Path
    files: int
    bytes: int


def _views_sql(current: Path, mart: str, partitioned: bool) -> str:
    name = mart.split(".")[1]
    if partitioned:
        src = f"read_parquet('{current / name}/*/*.parquet', hive_partitioning = true)"
        return f"CREATE VIEW marts.{name} AS SELECT * EXCLUDE (year) FROM {src}"
    return f"CREATE VIEW marts.{name} AS SELECT * FROM read_parquet('{current / name}.parquet')"


def export(
    con: duckdb.DuckDBPyConnection, exports_dir: Path, *, load_id: str, partitions: dict[str, str | None], keep: int = 2
) -> Exported:
    """Write `partitions` (mart -> the date column whose year partitions it, None: one file; the
    registry's exported datasets) as a new version folder and swap `current` to it."""
    exports_dir = exports_dir.resolve()
    exports_dir.mkdir(parents=True, exist_ok=True)
    folder = exports_dir / f"v-{load_id}"
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted export of this same load
    folder.mkdir()
    present = set(table_names(con, ("marts",)))
    missing = [m for m in partitions if m not in present]
    if missing:
        raise ValueError(f"cannot export {', '.join(missing)}: no such table in the warehouse")
    marts = list(partitions)
    partitioned: dict[str, bool] = {}
    for mart in marts:
        name = mart.split(".")[1]
        col = partitions[mart]
        # An empty mart (a csv folder without holdings has no cohorts) is one empty file with its
        # columns, so its view still opens.
        partitioned[mart] = bool(col) and con.execute(f"SELECT count(*) FROM {mart}").fetchone()[0] > 0
        if partitioned[mart]:
            con.execute(
                f"COPY (SELECT *, year({col}) AS year FROM {mart}) TO '{folder / name}' "
                "(FORMAT parquet, PARTITION_BY (year), OVERWRITE_OR_IGNORE)"
            )
        else:
            con.execute(f"COPY {mart} TO '{folder / name}.parquet' (FORMAT parquet)")
    crashpoint("export.written")
    # Swap the `current` link in one rename.
    current = exports_dir / "current"
    link_tmp = exports_dir / f".current-{load_id}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(folder.name, link_tmp)
    if current.is_dir() and not current.is_symlink():
        shutil.rmtree(current)  # a copied data home turns the link into a folder; replace it
    os.replace(link_tmp, current)
    crashpoint("export.swapped")
    views = _write_views(exports_dir, current, partitioned, load_id)
    for old in sorted(exports_dir.glob("v-*"), key=lambda p: p.stat().st_mtime)[:-keep]:
        if old != folder:
            shutil.rmtree(old)
    files = list(folder.rglob("*.parquet"))
    return Exported(folder, views, len(files), sum(f.stat().st_size for f in files))


def _write_views(exports_dir: Path, current: Path, partitioned: dict[str, bool], load_id: str) -> Path:
    views = exports_dir / "smallcaps_views.duckdb"
    tmp = exports_dir / f".views-{load_id}.duckdb"
    if tmp.exists():
        tmp.unlink()
    v = duckdb.connect(str(tmp))
    try:
        v.execute("CREATE SCHEMA marts")
        for mart, by_year in partitioned.items():
            v.execute(_views_sql(current, mart, by_year))
        v.execute("CHECKPOINT")
    finally:
        v.close()
    os.replace(tmp, views)
    return views
