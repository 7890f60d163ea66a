"""Ad-hoc SQL on a published snapshot: read-only, no file access unless asked for.

The snapshot is opened with DuckDB's read_only mode (no CREATE/INSERT/UPDATE/DELETE on it) and,
unless `allow_files`, with external access disabled and the configuration locked, so a query can
neither ATTACH another database, COPY ... TO a file, nor read a file, nor switch those back on.
"""

from __future__ import annotations

from datetime import date

import duckdb

from smallcaps.settings import Settings
from warehouse.publish import snapshot_for


class QueryRefused(RuntimeError):
    pass


def open_snapshot(settings: Settings, *, as_of: date | None = None, allow_files: bool = False) -> duckdb.DuckDBPyConnection:
    path = snapshot_for(settings.published_dir, as_of)
    config = {} if allow_files else {"enable_external_access": False, "lock_configuration": True}
    return duckdb.connect(str(path), read_only=True, config=config)


def run_query(settings: Settings, query: str, *, as_of: date | None = None, allow_files: bool = False):
    con = open_snapshot(settings, as_of=as_of, allow_files=allow_files)
    try:
        cur = con.execute(query)
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()
    except duckdb.PermissionException as exc:
        raise QueryRefused(
            f"refused: the query needs file access, which `smallcaps sql` keeps off ({exc}); "
            "pass --allow-files if you mean to read or write files"
        ) from None
    except duckdb.InvalidInputException as exc:
        if "read-only" in str(exc) or "configuration has been locked" in str(exc):
            raise QueryRefused(
                f"refused: the published warehouse is read-only; `smallcaps sql` cannot change it ({exc})"
            ) from None
        raise QueryRefused(f"query failed: {exc}") from None
    except duckdb.Error as exc:
        raise QueryRefused(f"query failed: {exc}") from None
    finally:
        con.close()
