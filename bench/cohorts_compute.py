"""core.cohorts' compute for a night and for a replayed year: this checkout's transforms.cohorts
against a git revision's, side by side in one process.

Usage: .venv/bin/python bench/cohorts_compute.py HOME [--rev REV] [--rounds 3]

On HOME's warehouse (opened read-only), pipeline.steps._cohort_rows computes the rows of every
member for the last stored session (what a night's new session asks) and for the last full
calendar year (one period of a backfill window or a rebuild), once with each implementation of
transforms.cohorts.cohorts, alternating which goes first. Printed per case: seconds per round,
medians, the ratio before / after, the median over rounds of the highest RssAnon above each
call's start (sampled every 20 ms; a process's first call pays more, so not the largest), and
whether both give the same rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402
import transforms.cohorts as current  # noqa: E402
from ground.settings import Settings  # noqa: E402
from pipeline import loading, steps  # noqa: E402
from warehouse.db import connect  # noqa: E402


def measured(fn):
    """(seconds, highest RssAnon above the start in GiB, result) of fn()."""
    start = harness.rss_anon_kib()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], harness.rss_anon_kib())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t = time.perf_counter()
    try:
        got = fn()
    finally:
        seconds = time.perf_counter() - t
        done.set()
        thread.join()
    return seconds, (max(peak[0], harness.rss_anon_kib()) - start) / 2**20, got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--rev", default="HEAD", help="the revision whose transforms.cohorts is 'before' (default HEAD)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    before = harness.module_at(args.rev, "transforms/cohorts.py")
    settings = Settings(home=args.home)
    con = connect(settings.warehouse_path, read_only=True)
    last = con.execute("SELECT max(session_date) FROM core.sessions").fetchone()[0]
    ctx = loading.derive_context(con, settings, last)
    cases = {"night": last, "year": date(last.year - 1, 1, 1)}
    mine = current.cohorts
    for case, first in cases.items():
        year_ctx = ctx if case == "night" else type(ctx)(**{**ctx.__dict__, "until": date(last.year - 1, 12, 31)})
        times: dict[str, list[float]] = {"before": [], "after": []}
        memory: dict[str, list[float]] = {"before": [], "after": []}
        rows = {}
        for r in range(args.rounds):
            order = [("before", before.cohorts), ("after", mine)][:: 1 if r % 2 == 0 else -1]
            for name, fn in order:
                current.cohorts = fn  # _cohort_rows imports it from the module at each call
                try:
                    seconds, gib, got = measured(lambda: steps._cohort_rows(year_ctx, first, None))
                finally:
                    current.cohorts = mine
                times[name].append(seconds)
                memory[name].append(gib)
                rows[name] = got.sort("universe", "symbol", "session_date")
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        same = rows["before"].equals(rows["after"])
        print(
            f"{case} ({first}..{year_ctx.until}, {rows['after'].height:,} rows): before ({args.rev}) {b:.2f} s "
            f"{[round(x, 2) for x in times['before']]}, after {a:.2f} s {[round(x, 2) for x in times['after']]}; "
            f"ratio before / after {b / a:.1f}; RssAnon above start (GiB) before {statistics.median(memory['before']):.2f}, "
            f"after {statistics.median(memory['after']):.2f}; same rows: {same}"
        )
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
