"""The sequence shared by the nightly and backfill flows: lock, plan, fetch, validate, load,
check completeness, publish, record. Only orchestration here; the work is in pipeline.planning,
checks, loading and load_run."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import date, datetime, timezone

import polars as pl
from prefect import get_run_logger, runtime, unmapped

from expectations import gate
from flows import tasks
from ground import calendar
from pipeline import checks, load_run, loading, planning, progress
from pipeline.lock import load_lock
from ground.crashpoints import crashpoint
from ground.settings import Settings
from sources import make_source
from sources.base import Fetched, Source
from warehouse import load_log
from warehouse.publish import BaseCopy, base_copy


def run_load(
    settings: Settings, kind: str, *, as_of: date, start: date | None = None, source: Source | None = None,
    notes: list[str] | None = None, publish: bool = True, basis_since: datetime | None = None,
) -> dict:
    """Lock, plan, fetch, gate, load, check completeness, publish, export. `source` defaults to the
    one settings name; tests pass their own (any object following sources.base.Source). `notes`
    (what the caller decided, e.g. where a backfill was cut) join the run's warnings. Without
    `publish` (a window of a backfill that is not its last) the load stops once committed.
    `basis_since` (a backfill's windows: when the backfill began): bars stored since then share the
    source's current price basis, so a new dividend does not re-fetch them (planning.rebase_symbols)."""
    log = get_run_logger()
    timings: dict[str, float] = {}
    planning.check_as_of(as_of, calendar.latest_completed_session())
    with load_lock(settings.home):
        # The gate's first use in a process imports Great Expectations and builds its context
        # (~3 s of CPU): begun here, it runs while the plan and the fetch wait on the warehouse and
        # the source (minutes of HTTP on a live night). A worker runs each flow in a new process.
        gate.warm_up_in_background()
        con = load_run.open_warehouse(settings)
        try:
            for dead, what in load_log.mark_interrupted(con):
                log.warning("load %s was interrupted: %s; redoing it", dead, what)
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            load_id = load_run.new_load_id(now)
            try:
                # Built before the plan: what the source can do (its first session) shapes it.
                source = source or make_source(settings)
                plan = (
                    planning.plan_backfill(settings, start, as_of) if kind == "backfill"
                    else planning.plan_nightly(con, settings, as_of, first_date=source.capabilities.first_date)
                )
            except Exception as exc:
                _record_failed(con, settings, kind, load_id, start, as_of, exc)
                raise
            load_log.begin(
                con, load_id=load_id, flow_run_id=_flow_run_id(), flow_name=kind,
                source=settings.source, start=plan.bars_start, end=plan.as_of,
            )
            log.info("load %s: %s from %s, sessions %s..%s", load_id, kind, settings.source, plan.bars_start, plan.as_of)
            # A night's snapshot is the current one patched: the copy it starts from is made while
            # the night merges and derives (a backfill publishes whole: no copy).
            base = (
                base_copy(settings.published_dir, load_id, settings.publish_storage_version)
                if publish and kind == "nightly" else None
            )
            try:
                outcome = _load(
                    con, settings, plan, load_id, now, timings, source, list(notes or []), publish=publish,
                    basis_since=basis_since, base=base,
                )
            except load_run.LoadFailed as exc:
                status = "blocked" if isinstance(exc, load_run.LoadBlocked) else "failed"
                load_log.finish(con, load_id=load_id, status=status, message=str(exc), timings=timings)
                raise
            except load_run.NightHeld as exc:
                load_log.finish(con, load_id=load_id, status="held", message=str(exc), timings=timings)
                raise
            except PublishFailed as exc:
                # Rows committed (finish_ok counted them); only the snapshot for readers is missing.
                load_log.finish(con, load_id=load_id, status="failed", message=str(exc), timings=timings)
                raise
            except BaseException as exc:
                load_log.finish(con, load_id=load_id, status="failed", message=f"{type(exc).__name__}: {exc}", timings=timings)
                raise
            finally:
                if base is not None:
                    base.discard()  # a publish took it, or the night did not get that far
            return outcome
        finally:
            con.close()


def _results(futures, what: str, names: list[str]) -> list[Fetched]:
    """The chunks' results in order, a progress unit as each arrives: here in the flow's process,
    because a chunk fetched on a Dask worker cannot reach the bar the CLI draws."""
    got = []
    for future, name in zip(futures, names, strict=True):
        got.append(future.result())
        progress.advance(f"{what} {name}")
    return got


class PublishFailed(RuntimeError):
    """The load committed its rows to the private warehouse, but publishing them for readers failed."""


def _flow_run_id() -> str | None:
    return str(runtime.flow_run.id or "") or None


def _record_failed(con, settings: Settings, kind: str, load_id: str, start: date | None, end: date | None, exc: BaseException) -> None:
    load_log.begin(con, load_id=load_id, flow_run_id=_flow_run_id(), flow_name=kind, source=settings.source, start=start, end=end)
    load_log.finish(con, load_id=load_id, status="failed", message=f"{type(exc).__name__}: {exc}")


def record_failed_load(settings: Settings, kind: str, *, start: date | None, end: date | None, exc: BaseException) -> str:
    """A load that failed before `run_load` began it (a backfill reading a malformed csv file for
    its date range, say) still gets its row in meta.loads, so `smallcaps status` shows the failure
    instead of the previous load as if nothing had happened. Returns the load id."""
    with load_lock(settings.home):
        con = load_run.open_warehouse(settings)
        try:
            load_id = load_run.new_load_id(datetime.now(timezone.utc).replace(tzinfo=None))
            _record_failed(con, settings, kind, load_id, start, end, exc)
        finally:
            con.close()
    return load_id


def load_table(counts: dict, gated: dict) -> list[dict]:
    """One row per raw table of a load: its rows in, inserted, changed, and its gate's outcome
    (expectations run and failed, warnings, rows quarantined)."""
    rows = []
    for table in sorted(set(counts) | set(gated)):
        c, g = counts.get(table), gated.get(table)
        results = g.results if g is not None else None
        rows.append({
            "table": table,
            "rows_in": c.rows_in if c else 0,
            "inserted": c.inserted if c else 0,
            "changed": c.changed if c else 0,
            "expectations": results.height if results is not None else 0,
            "failed": results.filter(~pl.col("success")).height if results is not None and results.height else 0,
            "warnings": len(g.warnings) if g is not None else 0,
            "quarantined": g.quarantine.height if g is not None else 0,
        })
    return rows


def _load_artifact(load_id: str, night: date, counts: dict, gated: dict) -> None:
    """The load's row counts and gate outcome as a Prefect table artifact, beside the report's
    markdown artifact, so the UI shows what a night brought without opening the warehouse."""
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        key="smallcaps-load", table=load_table(counts, gated), description=f"smallcaps load {load_id}, night of {night}"
    )


def _load(
    con, settings: Settings, plan: planning.Plan, load_id: str, now: datetime, timings: dict, source: Source, notes: list[str],
    *, publish: bool = True, basis_since: datetime | None = None, base: BaseCopy | None = None,
) -> dict:
    log = get_run_logger()

    t = time.perf_counter()
    held = tasks.fetch_holdings(source, plan.universes, plan.holdings_start, plan.as_of)
    crashpoint("fetch.holdings")
    symbols, retired = planning.equity_symbols(
        con, held.holdings, settings.retire_after_failures, anchors=settings.anchors, window=(plan.bars_start, plan.as_of)
    )
    if retired:
        log.info(
            "not asking for %s former member(s) whose bars failed %s loads in a row (stopped trading), e.g. %s",
            len(retired), settings.retire_after_failures, ", ".join(retired[:5]),
        )
    index_symbols = plan.index_symbols
    # Bars: chunks of symbols, each fetched from one first session (symbols behind catch up together).
    starts = {plan.bars_start: list(index_symbols)}
    if plan.kind == "nightly":
        for first, group in planning.bar_starts(con, symbols, plan.bars_start, settings.overlap_sessions).items():
            starts.setdefault(first, []).extend(group)
    else:
        starts[plan.bars_start] += symbols
    parts = planning.bar_chunks(starts, settings.chunk_size)
    names = [f"{i + 1}of{len(parts)}" for i in range(len(parts))]
    due = planning.fundamentals_symbols(con, settings, symbols, plan.as_of, is_metered=source.capabilities.is_metered)
    fparts = planning.chunks(due, settings.chunk_size)
    fnames = [f"{i + 1}of{len(fparts)}" for i in range(len(fparts))]
    # Units: holdings, each chunk, then gate, load, publish, export (and the report).
    progress.start(f"sessions {plan.bars_start}..{plan.as_of}", 1 + len(parts) + len(fparts) + 4 + int(settings.write_report))
    progress.advance("holdings fetched")
    bars = tasks.fetch_bars.map(
        unmapped(source), [c for c, _ in parts], [f for _, f in parts], unmapped(plan.as_of), names
    )
    since = planning.fundamentals_since(plan) if source.capabilities.takes_since else None
    funds = tasks.fetch_fundamentals.map(unmapped(source), fparts, unmapped(plan.as_of), fnames, unmapped(since))
    fetched = Fetched.combine([held] + _results(bars, "bars", names) + _results(funds, "fundamentals", fnames))
    # A shared chunk brings its symbols behind rows from before their own first session; and one
    # that brought nothing newer than its last stored bar has stopped trading (a failure).
    fetched = planning.own_ranges(con, fetched, {s: first for first, group in starts.items() for s in group}, plan.bars_start)
    rebase = planning.rebase_symbols(con, fetched, plan.as_of, basis_since=basis_since)
    if rebase:
        log.info(
            "a new split or dividend changes earlier prices: fetching the stored history of %s symbol(s) again, e.g. %s",
            len(rebase), ", ".join(list(rebase)[:5]),
        )
        rparts = planning.rebase_chunks(rebase, settings.chunk_size)
        progress.grow(len(rparts))
        rnames = [f"rebase-{i + 1}of{len(rparts)}" for i in range(len(rparts))]
        again = tasks.fetch_bars.map(
            unmapped(source), [c for c, _ in rparts], [a for _, (a, _) in rparts], [b for _, (_, b) in rparts], rnames
        )
        fetched = planning.apply_rebase(
            fetched, Fetched.combine(_results(again, "bars", rnames)), rebase
        )
    crashpoint("fetch.done")
    timings["fetch"] = time.perf_counter() - t
    batch = checks.split(
        fetched, index_symbols, asked={"bars": list(index_symbols) + symbols, "fundamentals": due, "rebase": list(rebase)}
    )
    warnings = notes + checks.check_fetched(batch, settings.source, plan, is_complete=source.capabilities.is_complete)
    log.info(
        "fetched %s rows (%s requests): bars of %s symbols, fundamentals of %s",
        f"{batch.rows_in:,}", batch.requests, f"{len(index_symbols) + len(symbols):,}", f"{len(due):,}",
    )

    t = time.perf_counter()
    gated = tasks.validate(con, batch, load_id, plan.as_of, settings)
    timings["validate"] = time.perf_counter() - t
    progress.advance("gated")
    crashpoint("validate.done")
    if any(g.blocked for g in gated.values()):
        quarantined, reason = loading.record_blocked(con, batch, gated, load_id=load_id, at=now)
        raise load_run.LoadBlocked(
            f"{reason}. {quarantined:,} rows are in dq.quarantine (load {load_id}); the warehouse and the "
            "published snapshot are unchanged. See `smallcaps dq`."
        )
    if base is not None:
        # Begun during the fetch, the copy's writes slowed it and the gate as much as they saved.
        base.start()

    t = time.perf_counter()
    loaded = tasks.load(con, batch, gated, load_id, settings.source, now, settings, plan.as_of)
    counts, quarantined, more_warnings, load_timings = loaded.counts, loaded.quarantined, loaded.warnings, loaded.timings
    timings["load"] = time.perf_counter() - t
    crashpoint("load.committed")
    progress.advance("loaded and rebuilt")
    timings.update({f"load.{k}": v for k, v in load_timings.items()})
    warnings += more_warnings
    for w in warnings:
        log.warning(w)
    set_aside = checks.quarantine_summary(gated, batch)
    for line in set_aside:
        log.warning("not loaded: %s", line)

    outcome = load_run.Outcome(
        load_id, "succeeded", plan.as_of, message=checks.quarantine_note(gated, batch) or "", tables=counts,
        rows_quarantined=quarantined, warnings=warnings, quarantined=set_aside, timings=timings,
    )
    sessions = con.execute(
        "SELECT count(DISTINCT session_date) FROM raw.index_bars WHERE session_date BETWEEN ? AND ?", [plan.bars_start, plan.as_of]
    ).fetchone()[0]
    held_msg = checks.check_completeness(con, settings, plan.as_of, batch, is_complete=source.capabilities.is_complete)
    if held_msg:
        outcome.status = "held"
        outcome.message = held_msg + (f" ({outcome.message})" if outcome.message else "")
        load_run.finish_ok(con, outcome, sessions, batch.rows_in)
        raise load_run.NightHeld(held_msg + f" The load is in the private warehouse; {plan.as_of} was not published.")

    t = time.perf_counter()
    if not publish:
        # Committed; the backfill's last window publishes it. Not 'succeeded', which a load is only
        # once published (a succeeded load without a snapshot is one that died while publishing).
        outcome.status = "merged"
        load_run.finish_ok(con, outcome, sessions, batch.rows_in)
        _load_artifact(load_id, plan.as_of, counts, gated)
        log.info("load %s committed (sessions %s..%s); published with the backfill's last window", load_id, plan.bars_start, plan.as_of)
        return _summary(outcome, plan, plan.as_of, sessions, batch, counts, settings)
    load_run.finish_ok(con, outcome, sessions, batch.rows_in)
    published = None
    try:
        crashpoint("publish.start")
        patches = loading.publish_patches(con, settings, load_id, loaded)
        # Derived tables hold every loaded session: a past night run again (a repair) publishes the
        # latest one, which the repair brought up to date too.
        night = max(plan.as_of, loaded.until or plan.as_of)
        if night != plan.as_of:
            log.info("%s was loaded again; the warehouse holds sessions up to %s: publishing %s", plan.as_of, night, night)
        published = tasks.publish_snapshot(con, settings, night, load_id, settings.source, patches, base)
        crashpoint("publish.done")
        load_run.record_publish(con, published, load_id)
        crashpoint("publish.recorded")
        timings["publish"] = time.perf_counter() - t
        progress.advance("published")
        t = time.perf_counter()
        exported = tasks.export_parquet(con, settings, load_id, patches)
        crashpoint("export.done")
        timings["export"] = time.perf_counter() - t
        progress.advance("exported")
        log.info("exported %s Parquet files to %s", exported.files, exported.folder)
    except Exception as exc:
        loaded_rows = sum(c.loaded for c in counts.values())
        what = (
            f"publishing them failed ({type(exc).__name__}: {exc}); readers still see the previous snapshot"
            if published is None
            else f"the snapshot {published.path} is published but the Parquet export failed ({type(exc).__name__}: {exc})"
        )
        raise PublishFailed(
            f"load {load_id} committed {loaded_rows:,} rows to the private warehouse {settings.warehouse_path}, but {what}. "
            "Fix the cause and run the load again: it publishes what is stored"
        ) from exc
    outcome.published_path = str(published.path)
    if settings.write_report:
        t = time.perf_counter()
        try:
            report = tasks.write_report(settings, night)
            log.info("report: %s", report.html_path)
        except Exception as exc:  # noqa: BLE001  (the night is published; a chart must not undo that)
            outcome.warnings.append(f"the night is published but its report was not written: {type(exc).__name__}: {exc}")
            log.error(outcome.warnings[-1])
        timings["report"] = time.perf_counter() - t
        progress.advance("report written")
    load_run.finish_ok(con, outcome, sessions, batch.rows_in)
    _load_artifact(load_id, night, counts, gated)
    log.info("published %s (%s MB) for %s", published.path, round(published.bytes / 1e6, 1), night)
    return _summary(outcome, plan, night, sessions, batch, counts, settings)


def _summary(outcome, plan: planning.Plan, night: date | None, sessions: int, batch, counts: dict, settings: Settings) -> dict:
    summary = asdict(outcome)
    summary["as_of"] = plan.as_of.isoformat()
    summary["published_night"] = night.isoformat() if outcome.published_path else None
    summary["first_session"] = plan.bars_start.isoformat()
    summary["sessions"] = sessions
    summary["rows_in"] = batch.rows_in
    # The counts only: the merged rows themselves (MergeCounts.new/.old) stay out of a flow's result.
    summary["tables"] = {k: {"rows_in": v.rows_in, "inserted": v.inserted, "changed": v.changed} for k, v in counts.items()}
    summary["warehouse"] = str(settings.warehouse_path)
    return summary
