"""One nightly, two checkouts of the project, side by side: fresh processes, alternating order.

Usage: .venv/bin/python bench/nightly_ab.py HOME NIGHT BEFORE_DIR AFTER_DIR [--rounds 3]

HOME is a data home backfilled up to the session before NIGHT (bench/nightly_vs_bare.py --home, or
`smallcaps backfill --source sample --end ...`); it is only copied. The sample market's cache in a
home is keyed by the code of the sample's modules: where BEFORE and AFTER differ there, one side
would simulate the whole market again (a cold cache: 18 s on a 30-year home). Give that side a copy
of HOME whose cache its own code brought up to the session before NIGHT, with --before-home. BEFORE_DIR and AFTER_DIR are
checkouts with their own .venv (e.g. a `git worktree` of the older commit and this one). Each round
copies the home twice and runs flows.nightly for NIGHT in a fresh process of each checkout, the
order alternating between rounds (the machine is shared). Each run gets its own PREFECT_HOME, so
each pays the temporary server's database creation alike. Printed: per run the process's wall
seconds and the load's `fetch`, `validate`, `load`, `load.merge`, `load.derive`, `publish` and `export` steps (meta.loads.timings);
medians; the ratios before / after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

NIGHTLY = """
import sys
from datetime import date
from flows.nightly import nightly
r = nightly(as_of=date.fromisoformat(sys.argv[2]), source="sample", home=sys.argv[1])
assert r["status"] == "succeeded", r
"""


def run_once(checkout: Path, home: Path, night: str, keep: Path | None = None) -> tuple[float, dict]:
    """The nightly of `checkout` on a copy of `home` (in `keep`, left there, if given)."""
    tmp = keep or Path(tempfile.mkdtemp(prefix="nightly-ab-"))
    try:
        copy = tmp / "home"
        shutil.copytree(home, copy)
        os.sync()  # the copy's writeback is not the nightly's (bench/harness.settle_writes)
        env = {
            **os.environ, "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "900",
        }
        env.pop("PREFECT_API_URL", None)
        started = time.perf_counter()
        done = subprocess.run(
            [str(checkout / ".venv/bin/python"), "-c", NIGHTLY, str(copy), night],
            cwd=checkout, env=env, capture_output=True, text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"nightly in {checkout} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        con = duckdb.connect(str(copy / "warehouse.duckdb"), read_only=True)
        try:
            timings = con.execute("SELECT timings FROM meta.loads ORDER BY started_at DESC LIMIT 1").fetchone()[0]
        finally:
            con.close()
        return wall, json.loads(timings) if isinstance(timings, str) else dict(timings)
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def two_checkouts(doc: str) -> argparse.ArgumentParser:
    """HOME NIGHT BEFORE_DIR AFTER_DIR [--before-home DIR]: the arguments of a comparison of two
    checkouts' same night (this script, nightly_identity.py)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("night")
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--before-home", type=Path, help="the home BEFORE runs on (default: HOME)")
    return parser


def main() -> None:
    parser = two_checkouts(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    homes = {"before": args.before_home or args.home, "after": args.home}
    steps = ("fetch", "validate", "load", "load.merge", "load.derive", "publish", "export")
    runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in sides}
    for r in range(args.rounds):
        for name in (list(sides) if r % 2 == 0 else list(reversed(sides))):
            wall, timings = run_once(sides[name], homes[name], args.night)
            runs[name].append((wall, *(timings.get(s, float("nan")) for s in steps)))
            shown = ", ".join(f"{s} {v:.2f} s" for s, v in zip(steps, runs[name][-1][1:]))
            print(f"round {r + 1} {name}: wall {wall:.1f} s, {shown}, load average {os.getloadavg()[0]:.1f}", flush=True)
    medians = {name: [statistics.median(run[i] for run in v) for i in range(1 + len(steps))] for name, v in runs.items()}
    for name, m in medians.items():
        shown = ", ".join(f"{s} {v:.2f} s" for s, v in zip(steps, m[1:]))
        print(f"{name} ({sides[name]}): median wall {m[0]:.1f} s, medians {shown}")
    ratios = ", ".join(f"{s} {b / a:.2f}" for s, b, a in zip(("wall",) + steps, medians["before"], medians["after"]))
    print(f"ratio before / after: {ratios}")


if __name__ == "__main__":
    main()
