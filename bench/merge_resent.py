"""A night's merge of rows the warehouse already holds: warehouse.load.merge of this checkout
against the one of a git revision (default HEAD), side by side in one process.

Usage: .venv/bin/python bench/merge_resent.py WAREHOUSE [--rev REV] [--rounds 3] [--new 500]

A night re-sends rows the warehouse holds: the overlap sessions of every symbol's bars, every
quarter a source returns (the sample returns every quarter since its start). From WAREHOUSE (not
changed: each merge runs in a transaction that is rolled back) it takes the newest stored quarter
of every symbol of raw.fundamentals and the bars of the last 5 sessions of raw.equity_bars, each
table's rows as a source would send them again (bookkeeping columns restamped), changes --new of
them (a revised value), and merges them with both implementations, alternating which goes first.
Printed: seconds per round, medians, the ratio before / after, and whether both give the same counts,
changed rows and raw.revisions rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402
import polars as pl  # noqa: E402

from pipeline.loading import CHANGE_COLUMNS  # noqa: E402
from warehouse import load as after  # noqa: E402
from warehouse.db import connect  # noqa: E402
from warehouse.load import read, stage  # noqa: E402


def resent(con, table: str, sql: str, revised: int) -> pl.DataFrame:
    rows = read(con, sql)
    source_cols = [c for c in rows.columns if c not in ("source", "fetched_at", "load_id", "first_seen_at")]
    value = next(c for c, t in rows.schema.items() if t == pl.Float64)
    rows = rows.select(source_cols).with_columns(
        pl.when(pl.int_range(pl.len()) < revised).then(pl.col(value) * 1.01).otherwise(pl.col(value)).alias(value)
    )
    return stage(rows, source="bench", fetched_at=datetime(2026, 12, 2), load_id="bench-merge", table=table)


def timed(module, con, table: str, staged: pl.DataFrame) -> tuple[float, tuple]:
    """Seconds of one merge, and what it gave: counts, the changed rows (new and old versions) and
    the raw.revisions rows it wrote, each sorted."""
    con.execute("BEGIN TRANSACTION")
    try:
        t = time.perf_counter()
        got = module.merge(con, table, staged, "bench-merge", CHANGE_COLUMNS.get(table))
        seconds = time.perf_counter() - t
        revisions = read(con, "SELECT * EXCLUDE (revised_at) FROM raw.revisions WHERE load_id = 'bench-merge'")
    finally:
        con.execute("ROLLBACK")
    frames = tuple(f.sort(f.columns).rows() for f in (got.new, got.old, revisions))
    return seconds, ((got.rows_in, got.inserted, got.changed), frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--rev", default="HEAD", help="the revision whose merge is 'before' (default HEAD)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new", type=int, default=500, help="rows of each table revised (changed values)")
    args = parser.parse_args()
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    before = harness.module_at(args.rev, "warehouse/load.py")
    con = connect(args.warehouse)
    tables = {
        "raw.fundamentals": "SELECT * FROM raw.fundamentals",
        "raw.equity_bars": "SELECT * FROM raw.equity_bars WHERE session_date >= "
        "(SELECT min(d) FROM (SELECT DISTINCT session_date AS d FROM raw.equity_bars ORDER BY d DESC LIMIT 5))",
    }
    for table, sql in tables.items():
        staged = resent(con, table, sql, args.new)
        times = {"before": [], "after": []}
        counts = {}
        for r in range(args.rounds):
            order = [("before", before), ("after", after)][:: 1 if r % 2 == 0 else -1]
            for name, module in order:
                seconds, counts[name] = timed(module, con, table, staged)
                times[name].append(seconds)
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"{table}: {staged.height:,} rows re-sent, {args.new} revised; before ({args.rev}) {b:.2f} s "
              f"{[round(x, 2) for x in times['before']]}, after {a:.2f} s {[round(x, 2) for x in times['after']]}; "
              f"ratio before / after {b / a:.1f}; counts (in, inserted, changed) {counts['before'][0]}; changed rows "
              f"and raw.revisions {'the same' if counts['before'] == counts['after'] else 'DIFFER'}")
    con.close()
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
