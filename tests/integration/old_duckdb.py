"""A DuckDB 1.x client in a virtual environment of its own, built once from PyPI and cached under
~/.cache/smallcaps-tests: the client BI tools bundle today, to open what the pipeline publishes."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The oldest line the default storage version (v1.4.0) promises to open.
OLD_DUCKDB = "1.4.4"
CACHE = Path.home() / ".cache" / "smallcaps-tests"
_OFFLINE = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution",
            "Max retries exceeded", "Could not fetch URL")


# What docs/bi.md's SQLAlchemy recipe pins: SQLAlchemy 2.0.45 and later reflect PostgreSQL-like
# dialects through pg_catalog.pg_collation, which DuckDB does not have (with DuckDB 1.4 or 2.0).
SQLALCHEMY_STACK = ("duckdb-engine==0.17.0", "sqlalchemy==2.0.44")


def old_duckdb_python(version: str = OLD_DUCKDB, extra: tuple[str, ...] = ()) -> Path:
    """The interpreter of a venv with duckdb==`version` (and `extra` packages); skips the test only
    when PyPI cannot be reached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / "-".join([f"duckdb-{version}", *extra])
    python = venv / "bin" / "python"
    with open(venv.with_name(venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers build it once
        if (venv / ".built").exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"duckdb=={version}", *extra],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0:
            if any(s in done.stderr for s in _OFFLINE):
                pytest.skip(f"PyPI unreachable, cannot install duckdb=={version} {' '.join(extra)}: {done.stderr.strip()[-300:]}")
            raise RuntimeError(f"pip install duckdb=={version} {' '.join(extra)} failed:\n{done.stderr[-2000:]}")
        (venv / ".built").touch()
    return python


_READER = """
import json, sys, duckdb
args = json.loads(sys.argv[1])
con = duckdb.connect(args["path"], read_only=True)
# DuckDB 1.4 takes file_search_path only as a session setting, not in connect's config.
for name, value in args.get("config", {}).items():
    con.execute(f"SET {name} = '" + value.replace("'", "''") + "'")
rows = con.execute(args["query"]).fetchall()
print(json.dumps({"version": duckdb.__version__, "rows": rows}, default=str))
"""


def query_with(python: Path, path: Path, query: str, config: dict | None = None) -> dict:
    """Rows of `query` on the file `path` as the old client returns them (JSON: dates as text)."""
    done = subprocess.run(
        [str(python), "-c", _READER, json.dumps({"path": str(path), "query": query, "config": config or {}})],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, f"duckdb {OLD_DUCKDB} could not read {path}:\n{done.stderr[-2000:]}"
    return json.loads(done.stdout)


_REFLECT = """
import json, sys, warnings
import sqlalchemy as sa
warnings.simplefilter("ignore")  # duckdb-engine: "doesn't yet support reflection on indices"
path = sys.argv[1]
engine = sa.create_engine("duckdb:///" + path, connect_args={"read_only": True})
inspector = sa.inspect(engine)
out = {"schemas": inspector.get_schema_names(), "tables": inspector.get_table_names(schema="marts")}
out["columns"] = {t: [[c["name"], str(c["type"]), c.get("comment")] for c in inspector.get_columns(t, schema="marts")]
                  for t in out["tables"]}
out["table_comment"] = inspector.get_table_comment("index_records", schema="marts")["text"]
records = sa.Table("index_records", sa.MetaData(), schema="marts", autoload_with=engine)
with engine.connect() as con:
    out["rows"] = [list(r) for r in con.execute(sa.select(records).order_by(records.c.symbol, records.c.year))]
print(json.dumps(out, default=str))
"""


def reflect_with(python: Path, path: Path) -> dict:
    """What a SQLAlchemy tool (Superset) sees of the file: tables, typed columns, a query's rows."""
    done = subprocess.run([str(python), "-c", _REFLECT, str(path)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"SQLAlchemy reflection of {path} failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)
