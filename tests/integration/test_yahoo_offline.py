"""`smallcaps run --source yahoo` on a machine without network: it must fail fast, say what failed,
and leave the warehouse as it was (nothing loaded, nothing published).

Runs the real CLI in a subprocess against the tests' Prefect server (as a deployment's run would
report to a running server), so the time measured is the command's own: imports, the flow, the
failure. Skipped where Yahoo's hosts resolve: it must never reach Yahoo.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forkserver import worker_env
from warehouse.db import checksums, connect

# Runs a flow: the CLI starts a nightly flow in a subprocess.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "smallcaps"


def _yahoo_resolves() -> bool:
    try:
        socket.getaddrinfo("query2.finance.yahoo.com", 443)
    except OSError:
        return False
    return True


@pytest.mark.skipif(_yahoo_resolves(), reason="this machine reaches Yahoo's DNS; the test is for offline machines")
def test_offline_yahoo_run_fails_fast_and_changes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    from pipeline.load_run import open_warehouse
    from ground.settings import Settings

    con = open_warehouse(Settings(home=home))  # an existing warehouse, as a load opens it, and empty
    before = checksums(con)
    con.close()

    env = {k: v for k, v in worker_env().items() if not k.startswith("SMALLCAPS_")}
    started = time.monotonic()
    run = subprocess.run(
        [str(CLI), "run", "--source", "yahoo", "--home", str(home)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    elapsed = time.monotonic() - started

    output = " ".join((run.stdout + run.stderr).split())  # rich wraps long lines
    assert run.returncode != 0, output[-2000:]
    assert elapsed < 60, f"took {elapsed:.0f} s"
    flow_s = _seconds_between(output, "Beginning flow run", "Finished in state Failed")
    assert flow_s < 20, f"the flow took {flow_s:.0f} s from its start to its failure"
    assert "yahoo returned no data for 5 of 5 symbols" in output, output[-2000:]
    assert "Could not resolve host: query2.finance.yahoo.com" in output
    assert "^RUT" in output.split("yahoo returned no data for", 1)[1]  # the symbols are named
    assert "nothing was loaded" in output

    assert not (home / "published").exists() or not any((home / "published").iterdir())
    con = connect(home / "warehouse.duckdb", read_only=True)
    try:
        after = checksums(con)
        loads = con.execute("SELECT status, message FROM meta.loads").fetchall()
    finally:
        con.close()
    # Only the record of the failed load itself is new.
    assert {t: v for t, v in after.items() if t != "meta.loads"} == {t: v for t, v in before.items() if t != "meta.loads"}
    assert [status for status, _ in loads] == ["failed"]
    assert "Could not resolve host" in loads[0][1]


def _seconds_between(log: str, first: str, last: str) -> float:
    """Seconds between the log lines (HH:MM:SS.mmm | ...) holding `first` and `last`."""
    stamps = {}
    for m in re.finditer(r"(\d\d):(\d\d):(\d\d\.\d+) \| \w+ \| ([^|]*?) - (.{0,60})", log):
        text = m.group(5)
        for key in (first, last):
            if key in text and key not in stamps:
                stamps[key] = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    assert first in stamps and last in stamps, f"log lines with {first!r} and {last!r} not found"
    return (stamps[last] - stamps[first]) % 86_400
