"""The nightly flow: bring the warehouse up to the latest completed NYSE session and publish it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger

from expectations.suites import check_overrides
from flows.run import run_load
from flows.runner import PipelineTaskRunner
from ground import calendar
from pipeline import planning
from ground.settings import Settings
from sources import check_source_name


def settings_for(source: str | None, csv_path: str | None, home: str | None) -> Settings:
    overrides = {}
    if source:
        overrides["source"] = source
    if csv_path:
        overrides["csv_path"] = Path(csv_path)
    if home:
        overrides["home"] = Path(home)
    settings = Settings(**overrides)
    # A misspelt source name or severity override must fail before a night's fetch, not at the
    # first load or at the gate after it.
    check_source_name(settings.source)
    check_overrides(settings.dq_severity)
    return settings


@flow(name="nightly", task_runner=PipelineTaskRunner(), log_prints=True)
def nightly(
    as_of: date | None = None,
    source: str | None = None,
    csv_path: str | None = None,
    home: str | None = None,
) -> dict:
    """Load the session `as_of` (default: the latest completed NYSE session) and publish it.

    A date that is not an NYSE session is skipped (nothing fetched, nothing changed). A date after
    the latest completed session is refused with a ValueError: nobody has its close yet.
    """
    log = get_run_logger()
    settings = settings_for(source, csv_path, home)
    latest = calendar.latest_completed_session()
    day = as_of or latest
    planning.check_as_of(day, latest, "as-of")
    if not calendar.is_session(day):
        log.info("%s is not an NYSE session (weekend or holiday): nothing to load, skipping", day)
        return {"status": "skipped", "as_of": day.isoformat(), "message": f"{day} is not an NYSE session"}
    return run_load(settings, "nightly", as_of=day)
