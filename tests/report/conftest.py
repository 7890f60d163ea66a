"""A real published snapshot for the report tests, built once per session by the backfill flow.

A short window of the sample market keeps it quick (the market is prefix-stable, so these sessions
hold exactly what a full backfill holds). The window covers both dated anchors (2025-04-02 and
2025-04-08) but not the end of 2024 or a year back, so the `ytd` and `1y` panels show the report's
"no data" path as well.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from report import Report, write_report
from ground.settings import Settings

START = date(2025, 3, 24)
END = date(2025, 5, 16)

# The charts of a report with the default settings, in page order.
EXPECTED_CHARTS = (
    "relative-strength",
    "index-rut",
    "index-gspc",
    "index-sp600",
    "index-ixic",
    "cohort-performance-russell2000",
    "cohort-performance-sp600",
    "cohort-composition",
    "sector-returns-russell2000",
    "sector-returns-sp600",
    "vix",
)


@contextmanager
def prefect_api():
    """The Prefect API already running (the integration tests' harness, when the whole suite runs),
    else a temporary one for the backfill only, stopped here rather than at interpreter exit."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def snapshot_home(tmp_path_factory) -> Path:
    from flows.backfill import backfill

    home = tmp_path_factory.mktemp("report-home")
    with prefect_api():
        result = backfill(start=START, end=END, source="sample", home=str(home))
    assert result["status"] == "succeeded"
    assert (home / "published" / "smallcaps.duckdb").exists()
    return home


@pytest.fixture(scope="session")
def report(snapshot_home) -> Report:
    """The default report: the published snapshot's night."""
    return write_report(Settings(home=snapshot_home))


@pytest.fixture(scope="session")
def window() -> tuple[date, date]:
    """First and last session of the snapshot."""
    return START, END


@pytest.fixture(scope="session")
def expected_charts() -> tuple[str, ...]:
    return EXPECTED_CHARTS
