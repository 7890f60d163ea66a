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


def old_duckdb_python(version: str = OLD_DUCKDB) -> Path:
    """The interpreter of a venv with duckdb==`version`; skips the test only when PyPI cannot be reached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / f"duckdb-{version}"
    python = venv / "bin" / "python"
    with open(CACHE / f"duckdb-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers build it once
        if (venv / ".built").exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"duckdb=={version}"],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0:
            if any(s in done.stderr for s in _OFFLINE):
                pytest.skip(f"PyPI unreachable, cannot install duckdb=={version}: {done.stderr.strip()[-300:]}")
            raise RuntimeError(f"pip install duckdb=={version} failed:\n{done.stderr[-2000:]}")
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
