"""The backfill flow: load a range of sessions (default: the source's whole history)."""

from __future__ import annotations

from datetime import date

from prefect import flow

from flows.nightly import settings_for
from flows.run import record_failed_load, run_load
from flows.runner import PipelineTaskRunner
from smallcaps import calendar, pipeline
from sources import make_source


@flow(name="backfill", task_runner=PipelineTaskRunner(), log_prints=True)
def backfill(
    start: date | None = None,
    end: date | None = None,
    source: str | None = None,
    csv_path: str | None = None,
    home: str | None = None,
) -> dict:
    """Load every session in [start, end] and publish the night of `end`.

    Defaults: `start` = the sample market's first session (sample), the earliest session a csv
    folder holds (csv) or 1990-01-02; `end` = the latest session a csv folder holds on or before the
    latest completed NYSE session (csv; a folder whose files run past today ends there, and the run
    says so) or the latest completed NYSE session. An `end` after the latest completed session is
    refused with a ValueError: nobody has those closes yet.
    """
    settings = settings_for(source, csv_path, home)
    latest = calendar.latest_completed_session()
    if end is not None:
        pipeline.check_as_of(end, latest, "backfill end")
    notes = []
    if settings.source == "csv" and (start is None or end is None):
        try:
            folder = make_source(settings)
            held = folder.date_range()
            if held is None:
                raise ValueError(f"csv source: {settings.csv_path} holds no daily bar files (SYMBOL.csv): nothing to backfill")
        except Exception as exc:
            # Reading the folder's dates comes before run_load begins a load: record the failure here.
            record_failed_load(settings, "backfill", start=start, end=end, exc=exc)
            raise
        # The folder's dates stop at the latest completed session: later rows (a stray 2031 row, a
        # session still trading) are reported by the source and quarantined with their reason.
        start, end = start or held[0], end or held[1]
    end = calendar.session_on_or_before(end or latest)
    start = start or (settings.sample_start if settings.source == "sample" else date(1990, 1, 2))
    if start > end:
        raise ValueError(f"backfill start {start} is after end {end}")
    return run_load(settings, "backfill", as_of=end, start=start, notes=notes)
