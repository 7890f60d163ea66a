"""A nightly load of the sample market against a bare one-task Prefect flow, process against process.

Usage: .venv/bin/python bench/nightly_vs_bare.py [--home DIR] [--rounds 3] [--night DATE] [--sample-start DATE]

Prepares a home with a real backfill (flows.backfill, sample source) up to the session before the
night (default: the latest completed session), unless --home gives one prepared that way. Then, for
--rounds rounds, alternating which goes first: copies the home (untimed) and runs flows.nightly for
the night in a fresh process; runs a bare flow with one task in a fresh process. Both start
Prefect's temporary server (no PREFECT_API_URL), as `make demo` does. The figure is the wall time
of the whole process, interpreter start, imports and server included; printed per round, as
medians, and as the ratio nightly / bare (the goal of issue 13: at most 1.3).

The nightly's own steps come from what it records in meta.loads (started_at..finished_at and
timings); the rest of its process time is imports, the Prefect server and the flow machinery.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402

from ground import calendar  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a home backfilled up to the session before --night (default: make one)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one nightly and one bare flow (default 3)")
    parser.add_argument("--night", type=date.fromisoformat, help="the session the nightly loads (default: latest completed)")
    parser.add_argument("--sample-start", type=date.fromisoformat, help="SMALLCAPS_SAMPLE_START for a home made here")
    args = parser.parse_args()

    night = args.night or calendar.latest_completed_session()
    end = calendar.previous_session(night)
    print(harness.load_avg())
    print(harness.bytecode_state())

    if args.home:
        home = args.home
        history = harness.loads(home)
        if history[-1].end_date != end:
            sys.exit(f"{home}: its last load ends on {history[-1].end_date}, not on {end} (the session before {night})")
        # The sample market depends on its start: the nightly must use the one the home was made with,
        # its first bar (a long backfill's windows end as `merged`: its first succeeded load is the
        # last window, whose start would simulate another market).
        env = harness.flow_env({"SMALLCAPS_SAMPLE_START": harness.first_session(home).isoformat()})
    else:
        env = harness.flow_env({"SMALLCAPS_SAMPLE_START": args.sample_start.isoformat()} if args.sample_start else {})
        home = Path(tempfile.mkdtemp(prefix="smallcaps-bench-home-")) / "home"
        took = harness.backfill(home, end, env)
        print(f"backfill of the sample up to {end} into {home}: {took.wall_s:.1f} s (process)")
    rows = harness.raw_rows(home)
    print(f"home: sample from {harness.first_session(home)} to {end}, " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))

    t = time.perf_counter()
    harness.bare(env)  # creates Prefect's database in PREFECT_HOME: not timed
    print(f"warm-up bare flow (creates the Prefect database): {time.perf_counter() - t:.1f} s")

    nightly_s, bare_s, night_loads = [], [], []
    nightly_cpu, bare_cpu = [], []
    for r in range(args.rounds):
        order = ("nightly", "bare") if r % 2 == 0 else ("bare", "nightly")
        for kind in order:
            if kind == "nightly":
                copy = harness.copy_home(home)
                run = harness.nightly(copy, night, env)
                nightly_s.append(run.wall_s)
                nightly_cpu.append(run.cpu_s)
                night_loads.append(harness.loads(copy)[-1])
                shutil.rmtree(copy.parent)
            else:
                run = harness.bare(env)
                bare_s.append(run.wall_s)
                bare_cpu.append(run.cpu_s)
        print(f"round {r + 1} ({' then '.join(order)}): nightly {nightly_s[-1]:.1f} s, bare {bare_s[-1]:.1f} s, "
              f"ratio {nightly_s[-1] / bare_s[-1]:.2f}; {harness.load_avg()}")

    n, b = harness.median(nightly_s), harness.median(bare_s)
    load_s = harness.median([l.seconds for l in night_loads])
    print()
    print(f"night of {night}, {args.rounds} rounds, whole-process wall seconds")
    print(f"  nightly: median {n:.1f} s ({harness.spread(nightly_s)})")
    print(f"  bare one-task flow: median {b:.1f} s ({harness.spread(bare_s)})")
    print(f"  ratio nightly / bare: {n / b:.2f} (goal <= 1.3); per round: "
          + ", ".join(f"{x / y:.2f}" for x, y in zip(nightly_s, bare_s)))
    print(f"  the nightly's load (meta.loads started_at..finished_at): median {load_s:.1f} s; "
          f"rest of its process (imports, Prefect server, flow machinery): {n - load_s:.1f} s")
    print(f"  load steps, median s: {harness.step_medians(night_loads)}")
    nc, bc = harness.median(nightly_cpu), harness.median(bare_cpu)
    print(f"  CPU seconds (user + sys of the process and the children it waited for), median: nightly {nc:.1f}, bare {bc:.1f}; ratio {nc / bc:.2f}")
    print(f"  rows in per night: {', '.join(f'{l.rows_in:,}' for l in night_loads)}")
    print(harness.load_avg())


if __name__ == "__main__":
    main()
