"""The demo flow behind `make demo`: backfill the sample market, then run the nightly load."""

from __future__ import annotations

from prefect import flow

from flows.backfill import backfill
from flows.nightly import nightly
from ground import calendar


@flow(name="demo")
def demo(home: str | None = None) -> dict:
    """Backfill the sample history up to the session before the latest, then load the latest night."""
    latest = calendar.latest_completed_session()
    before = calendar.previous_session(latest)
    filled = backfill(end=before, source="sample", home=home)
    night = nightly(as_of=latest, source="sample", home=home)
    return {"backfill": filled, "nightly": night}
