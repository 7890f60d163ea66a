"""Parquet exports of the marts for BI tools and engines that scan files.

Each night makes a complete new version folder, `exports/v-<load_id>/` (writing what its changes
touch and hard-linking the rest of the previous night's files, see export()), then swaps the symlink
`exports/current` to it with one atomic rename, so a scan sees one night's files, never a mix.
Time-series marts are partitioned by calendar year (`year=2025/`), which lets a dashboard that
looks at this year read one folder. `exports/smallcaps_views.duckdb` holds one view per mart over
`exports/current`, for tools that want a database file rather than a folder of Parquet.

Every file carries the registry's descriptions in its key-value metadata: `table` (the mart),
`grain`, and `column:<name>` for each column (meaning and unit), as in the snapshot's comments.

The views read `<exports>/current/...` by its absolute path. DuckDB resolves a relative path in a
view against the reader's working directory (or its `file_search_path`), never against the file
that holds the view, so relative paths made every reader (the DuckDB CLI started elsewhere,
Metabase, Superset, a notebook) configure `file_search_path`, which DuckDB 1.4 does not even take
in its connect options. Absolute paths work from anywhere; the cost is that a moved or copied data
home reads the old location until its views are written again: by its next export, or at once by
`smallcaps status --fix-views` (`rewrite_views`), and `smallcaps status` says when they point
elsewhere (`views_read`). See docs/bi.md.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import duckdb

from ground.crashpoints import crashpoint
from ground.registry import described
from warehouse.db import table_names
from warehouse.publish import DEFAULT_STORAGE_VERSION, attach_options, sql_text


@dataclass(frozen=True)
class Exported:
    folder: Path
    views: Path
    files: int
    bytes: int


def _glob_literal(path: Path) -> str:
    # read_parquet globs its whole path: a home named `data[1]` or `a*b` must match itself only.
    # DuckDB's glob takes a one-character class as the literal character.
    return str(path).replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


def _glob_unliteral(text: str) -> str:
    return re.sub(r"\[([\[*?])\]", r"\1", text)


def _views_sql(mart: str, partitioned: bool, exports_dir: Path) -> str:
    # A view's body takes no bound parameter: the path is a quoted literal, absolute (module doc).
    name = mart.split(".")[1]
    current = _glob_literal(exports_dir / "current")
    if partitioned:
        src = f"read_parquet({sql_text(f'{current}/{name}/*/*.parquet')}, hive_partitioning = true)"
        return f"CREATE VIEW v.marts.{name} AS SELECT * EXCLUDE (year) FROM {src}"
    return f"CREATE VIEW v.marts.{name} AS SELECT * FROM read_parquet({sql_text(f'{current}/{name}.parquet')})"


# The first argument of read_parquet in a view's SQL: a quoted literal, '' for a quote.
_VIEW_PATH = re.compile(r"read_parquet\('((?:[^']|'')*)'")


def views_read(views: Path) -> set[str]:
    """The folders the views of `views` read their Parquet through (the `current` link they name):
    one absolute folder for a file this module wrote, `current` for an older file with paths
    relative to the exports folder."""
    con = duckdb.connect(str(views), read_only=True)
    try:
        bodies = con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'marts'"
        ).fetchall()
    finally:
        con.close()
    folders = set()
    for view, body in bodies:
        found = _VIEW_PATH.search(body)
        if found is None:
            raise ValueError(f"{views}: view marts.{view} reads no Parquet file (its SQL: {body[:200]}); "
                             "`smallcaps status --fix-views` writes the views file again")
        path = found.group(1).replace("''", "'")
        # The path is <folder>/<mart>/*/*.parquet or <folder>/<mart>.parquet; the folder is `current`.
        parts = Path(path).parts
        cut = len(parts) - (3 if path.endswith("/*/*.parquet") else 1)
        folders.add(_glob_unliteral(str(Path(*parts[:cut]))))
    return folders


def rewrite_views(exports_dir: Path, marts: list[str], storage_version: str = DEFAULT_STORAGE_VERSION) -> Path:
    """Write the views file again for where `exports_dir` is now, over the export `current` holds
    (a moved or copied data home; a views file of relative paths). `marts`: the registry's
    exported datasets."""
    exports_dir = exports_dir.resolve()
    current = exports_dir / "current"
    if not current.is_dir():
        raise FileNotFoundError(f"nothing exported at {current}: the first nightly load writes the exports and their views")
    partitioned: dict[str, bool] = {}
    for mart in marts:
        name = mart.split(".")[1]
        # What export() wrote: a folder of year partitions, or one file (an unpartitioned or empty mart).
        if (current / name).is_dir():
            partitioned[mart] = True
        elif (current / f"{name}.parquet").is_file():
            partitioned[mart] = False
        else:
            raise FileNotFoundError(
                f"no export of {mart} in {current} (neither {name}/ nor {name}.parquet): "
                "the export predates this mart; the next nightly load (`smallcaps run`) exports it and writes the views"
            )
    return _write_views(exports_dir, partitioned, f"fix-{os.getpid()}", storage_version)


def kv_metadata(mart: str, names: list[str]) -> str:
    """The COPY option that writes the registry's descriptions of `mart` into each Parquet file."""
    d = described(mart)
    pairs = [("table", mart), ("grain", d.grain)] + [(f"column:{c}", d.comment(c)) for c in names]
    return "KV_METADATA {" + ", ".join(f"{sql_text(k)}: {sql_text(v)}" for k, v in pairs) + "}"


def export(
    con: duckdb.DuckDBPyConnection, exports_dir: Path, *, load_id: str, partitions: dict[str, str | None], keep: int = 2,
    storage_version: str = DEFAULT_STORAGE_VERSION, previous: str | None = None,
    changed: Mapping[str, set[int] | None] | None = None,
) -> Exported:
    """Write `partitions` (mart -> the date column whose year partitions it, None: one file; the
    registry's exported datasets) as a new version folder and swap `current` to it.

    With `previous` (the load before this one) and `changed` (mart -> the years in which its rows
    changed since then, None: any; a mart not named did not change), where `current` is that
    load's export, the files of what did not change are hard links to its files: the cost follows
    the night's changes, not the history. A mart whose previous files have other columns (a
    migration) is written whole."""
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
    before = _previous_export(exports_dir, previous) if changed is not None else None
    partitioned: dict[str, bool] = {}
    for mart in marts:
        name = mart.split(".")[1]
        col = partitions[mart]
        columns = _columns(con, mart)
        kept = _reusable(con, before, name, columns) if before is not None else None
        if kept is not None and mart not in changed:
            partitioned[mart] = kept
            _link(before, folder, name, kept, skip=set())
            continue
        # An empty mart (a csv folder without holdings has no cohorts) is one empty file with its
        # columns, so its view still opens.
        partitioned[mart] = bool(col) and con.execute(f"SELECT count(*) FROM {mart}").fetchone()[0] > 0
        meta = kv_metadata(mart, [c for c, _ in columns])
        years = changed.get(mart) if kept and partitioned[mart] else None
        if partitioned[mart]:
            where = f" WHERE year({col}) IN ({', '.join(str(y) for y in sorted(years))})" if years is not None else ""
            if years != set():
                con.execute(
                    f"COPY (SELECT *, year({col}) AS year FROM {mart}{where}) TO ? "
                    f"(FORMAT parquet, PARTITION_BY (year), OVERWRITE_OR_IGNORE, {meta})",
                    [str(folder / name)],
                )
            if years is not None:
                (folder / name).mkdir(exist_ok=True)
                _link(before, folder, name, True, skip=years)
        else:
            con.execute(f"COPY {mart} TO ? (FORMAT parquet, {meta})", [str(folder / f"{name}.parquet")])
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
    views = _write_views(exports_dir, partitioned, load_id, storage_version)
    for old in sorted(exports_dir.glob("v-*"), key=lambda p: p.stat().st_mtime)[:-keep]:
        if old != folder:
            shutil.rmtree(old)
    files = list(folder.rglob("*.parquet"))
    return Exported(folder, views, len(files), sum(f.stat().st_size for f in files))


def _previous_export(exports_dir: Path, previous: str | None) -> Path | None:
    """The folder `current` links to, if it is the export of load `previous`."""
    current = exports_dir / "current"
    if previous is None or not current.is_symlink():
        return None
    folder = exports_dir / os.readlink(current)
    return folder if folder.name == f"v-{previous}" and folder.is_dir() else None


def _reusable(con: duckdb.DuckDBPyConnection, before: Path, name: str, columns: list[tuple[str, str]]) -> bool | None:
    """How `before` holds mart `name` (True: year partitions, False: one file), or None when its
    files cannot be kept: missing, or written with other columns (names and types, as DuckDB reads
    them back) than the mart has now."""
    if (before / name).is_dir():
        files, by_year = sorted((before / name).glob("year=*/*.parquet")), True  # the year is in the folder name
    elif (before / f"{name}.parquet").is_file():
        files, by_year = [before / f"{name}.parquet"], False
    else:
        return None
    if not files:
        return None
    got = [(r[0], r[1]) for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)", [str(files[0])]).fetchall()]
    return by_year if got == columns else None


def _link(before: Path, folder: Path, name: str, by_year: bool, *, skip: set[int]) -> None:
    """Hard links in `folder` to mart `name`'s files in `before`, but for the years in `skip`."""
    if not by_year:
        os.link(before / f"{name}.parquet", folder / f"{name}.parquet")
        return
    for part in sorted((before / name).glob("year=*")):
        if int(part.name.split("=", 1)[1]) in skip:
            continue
        (folder / name / part.name).mkdir(parents=True)
        for f in part.glob("*.parquet"):
            os.link(f, folder / name / part.name / f.name)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    schema, name = table.split(".")
    return con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema, name],
    ).fetchall()


def _write_views(exports_dir: Path, partitioned: dict[str, bool], load_id: str, storage_version: str) -> Path:
    views = exports_dir / "smallcaps_views.duckdb"
    tmp = exports_dir / f".views-{load_id}.duckdb"
    if tmp.exists():
        tmp.unlink()
    v = duckdb.connect()
    try:
        v.execute(f"ATTACH ? AS v {attach_options(storage_version)}", [str(tmp)])
        v.execute("CREATE SCHEMA v.marts")
        for mart, by_year in partitioned.items():
            v.execute(_views_sql(mart, by_year, exports_dir))
            d = described(mart)
            v.execute(f"COMMENT ON VIEW v.{mart} IS {sql_text(d.grain)}")
            for column, _, _ in d.columns:
                v.execute(f"COMMENT ON COLUMN v.{mart}.{column} IS {sql_text(d.comment(column))}")
        v.execute("DETACH v")
    finally:
        v.close()
    os.replace(tmp, views)
    return views
