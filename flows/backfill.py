"""The backfill flow: load a range of sessions (default: the source's whole history)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from prefect import flow, get_run_logger

from flows.nightly import settings_for
from flows.run import record_failed_load, run_load
from flows.runner import PipelineTaskRunner
from ground import calendar
from pipeline import planning
from sources import make_source

# Where a backfill without a start begins when its source cannot say (Capabilities.first_date).
EARLIEST_DATE = date(1990, 1, 2)


@flow(name="backfill", task_runner=PipelineTaskRunner(), log_prints=True)
def backfill(
    start: date | None = None,
    end: date | None = None,
    source: str | None = None,
    csv_path: str | None = None,
    home: str | None = None,
) -> dict:
    """Load every session in [start, end] and publish the night of `end`.

    Defaults, from what the source can do (sources.base.Capabilities): a source that holds a date
    range (a csv folder) gives `start` = the earliest session it holds and `end` = the latest on or
    before the latest completed NYSE session (a folder whose files run past today ends there, and
    the run says so); otherwise `start` = the source's first session (the sample market's) or
    EARLIEST_DATE, and `end` = the latest completed NYSE session. An `end` after the latest
    completed session is refused with a ValueError: nobody has those closes yet.
    """
    settings = settings_for(source, csv_path, home)
    latest = calendar.latest_completed_session()
    if end is not None:
        planning.check_as_of(end, latest, "backfill end")
    notes = []
    try:
        # Asked for what it can do only; each load below builds its own (a window's memory is its own).
        built = make_source(settings)
        capabilities = built.capabilities
        held = None
        if capabilities.has_date_range and (start is None or end is None):
            held = built.date_range()
            if held is None:
                where = f" in {settings.csv_path}" if settings.csv_path else ""
                raise ValueError(f"{built.name} source: no daily bars{where}: nothing to backfill; add some or pass --start and --end")
    except Exception as exc:
        # Building the source or reading its dates comes before run_load begins a load: record the failure here.
        record_failed_load(settings, "backfill", start=start, end=end, exc=exc)
        raise
    if held is not None:
        # The folder's dates stop at the latest completed session: later rows (a stray 2031 row, a
        # session still trading) are reported by the source and quarantined with their reason.
        start, end = start or held[0], end or held[1]
    end = calendar.session_on_or_before(end or latest)
    start = start or capabilities.first_date or EARLIEST_DATE
    if start > end:
        raise ValueError(f"backfill start {start} is after end {end}")
    windows = backfill_windows(start, end, 0 if capabilities.is_metered else settings.backfill_window_years)
    if len(windows) == 1:
        return run_load(settings, "backfill", as_of=end, start=start, notes=notes)
    # A long range from a free source: one load per window, each fetched, gated, merged and derived
    # on its own (the derivation continues the state the windows before it left), and only the
    # last one published. Memory is that of one window, whatever the range.
    log = get_run_logger()
    log.info("backfill %s..%s in %s windows of up to %s years", start, end, len(windows), settings.backfill_window_years)
    done = []
    # Every window is fetched now, on the price basis the source has now: a dividend a window brings
    # does not make the bars the windows before it stored stale (no re-fetch of their history).
    began = datetime.now(timezone.utc).replace(tzinfo=None)
    for i, (lo, hi) in enumerate(windows, 1):
        log.info("window %s of %s: %s..%s", i, len(windows), lo, hi)
        done.append(run_load(
            settings, "backfill", as_of=hi, start=lo, notes=notes if i == len(windows) else None, publish=i == len(windows),
            basis_since=began,
        ))
    return combine_summaries(done)


def backfill_windows(start: date, end: date, years: int) -> list[tuple[date, date]]:
    """[start, end] (end a session) cut at calendar years into consecutive ranges of up to `years`
    years, each ending on a session; `years` 0: the whole range. Years are the derivation's replay
    periods, so a window recomputes whole periods."""
    if years <= 0:
        return [(start, end)]
    windows: list[tuple[date, date]] = []
    lo, year = start, start.year + years - 1
    while lo <= end:
        hi = calendar.session_on_or_before(min(end, date(year, 12, 31)))
        if hi >= lo:  # a range without a session (a start on the last day of a year) joins the next
            windows.append((lo, hi))
            lo = date(year + 1, 1, 1)
        year += years
    return windows


def combine_summaries(done: list[dict]) -> dict:
    """One summary for a backfill run as several loads: the last load's, with the counts of all."""
    out = dict(done[-1])
    out["load_ids"] = [d["load_id"] for d in done]
    out["first_session"] = done[0].get("first_session")
    for key in ("sessions", "rows_in", "rows_quarantined"):
        out[key] = sum(d.get(key) or 0 for d in done)
    tables: dict[str, dict] = {}
    for d in done:
        for table, counts in d["tables"].items():
            into = tables.setdefault(table, {k: 0 for k in counts})
            for k, v in counts.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    into[k] = into.get(k, 0) + v
    out["tables"] = tables
    out["warnings"] = list(dict.fromkeys(w for d in done for w in d.get("warnings") or []))
    out["quarantined"] = [q for d in done for q in d.get("quarantined") or []]
    return out
