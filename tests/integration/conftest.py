from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_backend():
    """One temporary Prefect API for the whole integration session (it takes seconds to start)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def small_baseline(tmp_path_factory):
    """A data home holding the small market backfilled to 2025-06-20 and published (copy it; don't
    change it). Built once by a load process of its own, as the crash and reader tests need."""
    from datetime import date

    from forkserver import run_worker

    home = tmp_path_factory.mktemp("small-baseline") / "home"
    done = run_worker(home, "backfill", date(2025, 6, 20), date(2025, 3, 3))
    assert done.returncode == 0, done.stderr[-3000:]
    return home
