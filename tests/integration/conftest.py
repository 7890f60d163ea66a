from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_backend():
    """One temporary Prefect API for the whole integration session (it takes seconds to start)."""
    # Imported here, not at the top: Prefect's test utilities take ~3 s to import, and collecting the
    # fast loop (whose tests here are all slow) would pay that in every worker.
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def small_baseline(tmp_path_factory):
    """A data home holding the small market backfilled to 2025-06-20 and published (copy it; don't
    change it). Built once by a load process of its own, as the crash and reader tests need; under
    xdist the workers share one build (the first to take the lock builds, the others wait)."""
    import fcntl
    import os
    import shutil
    from datetime import date

    from forkserver import run_worker

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, common to its workers
    folder = root / "small-baseline"
    home, done_marker = folder / "home", folder / "built"
    folder.mkdir(exist_ok=True)
    with open(root / "small-baseline.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done_marker.exists():
            shutil.rmtree(home, ignore_errors=True)  # what a failed attempt left
            done = run_worker(home, "backfill", date(2025, 6, 20), date(2025, 3, 3))
            assert done.returncode == 0, done.stderr[-3000:]
            done_marker.touch()
    return home
