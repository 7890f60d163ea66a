"""The rebuild flow: recompute every core table and mart from raw, then publish and export."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime, timezone

from prefect import flow, get_run_logger, runtime

from flows import tasks
from flows.nightly import settings_for
from pipeline import load_run, loading, progress
from pipeline.lock import load_lock
from warehouse import load_log


@flow(name="rebuild", log_prints=True)
def rebuild(home: str | None = None) -> dict:
    """Derive core and marts again from the raw tables, year by year (memory follows a year of
    data), write only what differs, then publish the latest night whole and export the marts.
    Needed after a change of definitions; a normal night never needs it."""
    log = get_run_logger()
    settings = settings_for(None, None, home)
    timings: dict[str, float] = {}
    with load_lock(settings.home):
        con = load_run.open_warehouse(settings)
        try:
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            load_id = load_run.new_load_id(now)
            load_log.begin(con, load_id=load_id, flow_name="rebuild", flow_run_id=str(runtime.flow_run.id or "") or None,
                        source=settings.source, start=None, end=None)
            progress.start("rebuild from raw", 3)
            try:
                t = time.perf_counter()
                loaded = loading.rebuild(con, settings, load_id=load_id, at=now)
                timings["derive"] = time.perf_counter() - t
                timings.update({f"load.{k}": v for k, v in loaded.timings.items()})
                progress.advance("derived")
                as_of = con.execute("SELECT end_date FROM meta.loads WHERE load_id = ?", [load_id]).fetchone()[0]
                outcome = load_run.Outcome(load_id, "succeeded", as_of, warnings=loaded.warnings, timings=timings)
                load_run.finish_ok(con, outcome, 0, 0)
                t = time.perf_counter()
                published = tasks.publish_snapshot(con, settings, as_of, load_id, settings.source, None)
                load_run.record_publish(con, published, load_id)
                timings["publish"] = time.perf_counter() - t
                progress.advance("published")
                exported = tasks.export_parquet(con, settings, load_id)
                progress.advance("exported")
                outcome.published_path = str(published.path)
                load_run.finish_ok(con, outcome, 0, 0)
            except BaseException as exc:
                load_log.finish(con, load_id=load_id, status="failed", message=f"{type(exc).__name__}: {exc}", timings=timings)
                raise
        finally:
            con.close()
    log.info("rebuilt from raw through %s in %.1f s; published %s; %s Parquet files", as_of, sum(timings.values()), published.path, exported.files)
    summary = asdict(outcome)
    summary["as_of"] = as_of.isoformat()
    summary["tables"] = {}
    summary["warehouse"] = str(settings.warehouse_path)
    return summary
