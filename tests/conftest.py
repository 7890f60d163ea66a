import os

import pytest

# Prefect must stay offline and quiet in tests, wherever they run.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

# Fixtures that run a flow to build what their tests read. `make test-fast` (-m "not slow") must not
# start one, so a test that uses them, even indirectly, must be marked slow.
FLOW_FIXTURES = frozenset({"snapshot_home", "small_baseline"})


def pytest_collection_modifyitems(config, items):
    unmarked = [
        item.nodeid
        for item in items
        if FLOW_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests run a flow through a fixture but are not marked slow (add @pytest.mark.slow, or "
            "pytestmark = pytest.mark.slow for a whole module): " + ", ".join(unmarked)
        )
