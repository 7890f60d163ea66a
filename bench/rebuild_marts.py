"""Time the rebuild of every core and mart table from `raw`, per table, on the sample market.

Usage: .venv/bin/python bench/rebuild_marts.py [WAREHOUSE]
Without an argument it backfills a fresh sample warehouse in a temporary folder first (no Prefect:
the pipeline steps are called directly), then times `derive` three times and prints the median.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smallcaps import calendar, pipeline  # noqa: E402
from smallcaps.settings import Settings  # noqa: E402
from sources import make_source  # noqa: E402
from warehouse.db import connect  # noqa: E402
from warehouse.rebuild import derive  # noqa: E402


def backfill_without_prefect(settings: Settings) -> None:
    con = connect(settings.warehouse_path)
    end = calendar.latest_completed_session()
    plan = pipeline.plan_backfill(settings, settings.sample_start, end)
    source = make_source(settings)
    held = source.holdings(plan.universes, plan.holdings_start, end)
    symbols, _ = pipeline.equity_symbols(con, held.holdings, settings.retire_after_failures)
    fetched = pipeline.Fetched.combine(
        [held, source.bars(plan.index_symbols + symbols, plan.bars_start, end), source.fundamentals(symbols, end)]
    )
    batch = pipeline.split(fetched, plan.index_symbols)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    load_id = pipeline.new_load_id(now)
    from warehouse import loads

    loads.begin(con, load_id=load_id, flow_run_id=None, flow_name="bench", source="sample", start=plan.bars_start, end=end)
    gated = pipeline.validate(con, batch, load_id=load_id, as_of=end, settings=settings)
    pipeline.load(con, batch, gated, load_id=load_id, source="sample", fetched_at=now, settings=settings, as_of=end)
    con.close()


def main() -> None:
    if len(sys.argv) > 1:
        warehouse = Path(sys.argv[1])
        settings = Settings(home=warehouse.parent)
    else:
        home = Path(tempfile.mkdtemp(prefix="smallcaps-bench-"))
        settings = Settings(home=home)
        t = time.perf_counter()
        backfill_without_prefect(settings)
        print(f"sample backfill (fetch, gate, merge, rebuild) without Prefect: {time.perf_counter() - t:.1f} s")
    con = connect(settings.warehouse_path)
    as_of = con.execute("SELECT max(session_date) FROM raw.index_bars").fetchone()[0]
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        frames, timings = derive(con, settings, as_of)
        timings["total"] = time.perf_counter() - t
        runs.append(timings)
    print(f"rebuild of core and marts from raw, as of {as_of}, median of 3 runs")
    print(f"{'table':32} {'rows':>12} {'seconds':>9}")
    for name in runs[0]:
        rows = frames[name].height if name in frames else ""
        print(f"{name:32} {rows:>12,} {statistics.median(r[name] for r in runs):9.3f}" if rows != "" else
              f"{name:32} {'':>12} {statistics.median(r[name] for r in runs):9.3f}")


if __name__ == "__main__":
    main()
