"""The gate's share of a load's time, on the sample market: a full backfill, then a nightly run.

Usage: .venv/bin/python bench/gate_share.py [HOME]

Runs the real flows, each in a fresh process as the scheduler would (so each pays the Great
Expectations import on its first gate call): `flows.backfill.backfill` over the whole sample market
up to the session before the latest completed one, then `flows.nightly.nightly` for the latest.
Plain flow calls start a temporary Prefect server (about 10 s, before the load starts: not in its
timings); PREFECT_HOME points to a temporary folder so the bench never touches another Prefect
database. HOME (default: a new temporary folder) is the data home; it must not hold a warehouse.

Figures come from what the pipeline records per load in `meta.loads.timings` (seconds per step):
the gate is `validate` (the raw tables' suites, before the merge) plus `load.gate_marts` (the marts'
suites, after the rebuild); the load's total is its started_at..finished_at in `meta.loads`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import BACKFILL, NIGHTLY  # noqa: E402
from ground import calendar  # noqa: E402

GATE_STEPS = ("validate", "load.gate_marts")
# Top-level steps of flows.run (the load.* entries are parts of `load`).
STEPS = ("fetch", "validate", "load", "publish", "export")


def run_flow(code: str, day, home: Path, env: dict) -> float:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, day.isoformat(), str(home)], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"flow failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return time.perf_counter() - t


def gx_import_seconds(env: dict) -> float:
    code = "import time; t = time.perf_counter(); import great_expectations; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    home = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="smallcaps-gate-share-"))
    if (home / "warehouse.duckdb").exists():
        sys.exit(f"{home} already holds a warehouse: give an empty folder")
    env = {
        **os.environ,
        "PREFECT_HOME": tempfile.mkdtemp(prefix="smallcaps-bench-prefect-"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    night = calendar.latest_completed_session()
    end = calendar.previous_session(night)
    walls = {
        "backfill": run_flow(BACKFILL, end, home, env),
        "nightly": run_flow(NIGHTLY, night, home, env),
    }
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT flow_name, start_date, end_date, sessions, rows_in, epoch(finished_at - started_at), timings "
        "FROM meta.loads WHERE status = 'succeeded' ORDER BY started_at"
    ).fetchall()
    con.close()

    print(f"sample market, data home {home}")
    print(f"Great Expectations import alone (paid by the first gate call of each process): {gx_import_seconds(env):.1f} s")
    print()
    header = f"{'load':9} {'sessions':>8} {'rows in':>11} {'total s':>8} {'gate s':>7} {'share':>6}   {'validate s':>10} {'gate_marts s':>12} {'process s':>9}"
    print(header)
    print("-" * len(header))
    breakdown = []
    for flow_name, start, stop, sessions, rows_in, total, timings in rows:
        t = json.loads(timings)
        gate = sum(t.get(k, 0.0) for k in GATE_STEPS)
        print(
            f"{flow_name:9} {sessions:>8,} {rows_in:>11,} {total:8.1f} {gate:7.1f} {gate / total:6.1%}   "
            f"{t.get('validate', 0):10.1f} {t.get('load.gate_marts', 0):12.1f} {walls[flow_name]:9.1f}"
        )
        breakdown.append((flow_name, start, stop, t))
    print()
    print("steps (s): " + ", ".join(STEPS) + "; load = merge + rebuild (+ gate_marts) + write")
    for flow_name, start, stop, t in breakdown:
        parts = ", ".join(f"{k} {t.get(k, 0):.1f}" for k in (*STEPS, "load.merge", "load.gate_marts", "load.write_derived"))
        print(f"  {flow_name} {start}..{stop}: {parts}")
    print("process s: the whole flow process, Prefect server start and interpreter imports included")


if __name__ == "__main__":
    main()
