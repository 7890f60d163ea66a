"""Seconds per core table and mart of the real full rebuild (`pipeline.loading.rebuild`).

Usage: .venv/bin/python bench/rebuild_marts.py [WAREHOUSE] [--rounds 3]

Without WAREHOUSE it backfills a fresh sample warehouse in a temporary folder first (no Prefect:
the pipeline steps are called directly, in the order flows/run.py calls them). Each round rebuilds
a fresh copy of the warehouse's raw tables in a new file (core and marts empty, so every row is
computed, gated and written), year by year as `smallcaps rebuild` does, and the medians per dataset
are printed. WAREHOUSE itself is only read.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ground import calendar
from pipeline import checks, load_run, loading
from pipeline import planning  # noqa: E402
from ground.settings import Settings  # noqa: E402
from sources import make_source  # noqa: E402
from sources.base import Fetched  # noqa: E402


def backfill_without_prefect(settings: Settings) -> None:
    """A sample backfill into settings.home: fetch, gate, merge and derive, no publish."""
    from warehouse import load_log

    con = load_run.open_warehouse(settings)
    try:
        end = calendar.latest_completed_session()
        plan = planning.plan_backfill(settings, settings.sample_start, end)
        source = make_source(settings)
        held = source.holdings(plan.universes, plan.holdings_start, end)
        symbols, _ = planning.equity_symbols(
            con, held.holdings, settings.retire_after_failures, anchors=settings.anchors, window=(plan.bars_start, end)
        )
        fetched = Fetched.combine(
            [held, source.bars(plan.index_symbols + symbols, plan.bars_start, end), source.fundamentals(symbols, end)]
        )
        batch = checks.split(fetched, plan.index_symbols)
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        load_id = load_run.new_load_id(now)
        load_log.begin(con, load_id=load_id, flow_run_id=None, flow_name="bench", source="sample", start=plan.bars_start, end=end)
        gated = checks.validate(con, batch, load_id=load_id, as_of=end, settings=settings)
        if any(g.blocked for g in gated.values()):
            sys.exit(f"the sample backfill was blocked by its gate: {[t for t, g in gated.items() if g.blocked]}")
        loading.load(con, batch, gated, load_id=load_id, source="sample", fetched_at=now, settings=settings, as_of=end)
    finally:
        con.close()


def main() -> None:
    from rebuild_vs_pandas import fresh_home, load_avg, raw_only_warehouse, real_rebuild

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", nargs="?", type=Path, help="a warehouse.duckdb (default: backfill a new sample)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(load_avg())
    if args.warehouse:
        warehouse = args.warehouse
        if not warehouse.exists():
            sys.exit(f"{warehouse} does not exist: give a warehouse file, or no argument to backfill a sample")
    else:
        home = Path(tempfile.mkdtemp(prefix="smallcaps-bench-"))
        settings = Settings(home=home)
        t = time.perf_counter()
        backfill_without_prefect(settings)
        print(f"sample backfill (fetch, gate, merge, derive) without Prefect: {time.perf_counter() - t:.1f} s")
        warehouse = settings.warehouse_path
    scratch = Path(tempfile.mkdtemp(prefix="smallcaps-bench-rebuild-raw-"))
    raw_only = raw_only_warehouse(warehouse, scratch)
    from expectations.gate import warm_up

    warm_up()
    runs = []
    for _ in range(args.rounds):
        home = fresh_home(raw_only)
        t = time.perf_counter()
        timings = real_rebuild(home)
        timings["total"] = time.perf_counter() - t
        runs.append(timings)
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"full rebuild into empty core and marts (open, derive year by year with gates and writes, close), "
          f"median of {args.rounds}; {load_avg()}")
    print(f"{'step':32} {'seconds':>9}")
    for name in runs[0]:
        print(f"{name:32} {statistics.median(r.get(name, 0.0) for r in runs):9.3f}")


if __name__ == "__main__":
    main()
