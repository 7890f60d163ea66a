"""kill -9 at many points of a nightly load, then rerun: the published snapshot always opens and
holds either the night before or the completed night, the private warehouse holds one or the other,
and the end state equals that of a load that was never interrupted."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import duckdb
import pytest

from forkserver import ForkServer, run_worker
from warehouse.db import content_checksums, table_names

# Runs a flow: every test kills and reruns nightly loads on a backfilled home.
pytestmark = pytest.mark.slow

BEFORE = date(2025, 6, 20)
NIGHT = date(2025, 6, 23)

# Spread over fetch, gate, merge, transform, publish and export; NAME#N is the N-th time NAME is reached.
POINTS = [
    "fetch.holdings", "fetch.bars#1", "fetch.done", "validate.done",
    "merge.table#1", "merge.done", "transform.derived", "transform.gated",
    "transform.replace#5", "load.before_commit", "load.committed",
    "publish.start", "publish.copy#1", "publish.detached", "publish.night_renamed",
    "publish.linked", "publish.swapped", "publish.recorded",
    "export.written", "export.done",
]


def state(home: Path) -> tuple[dict, dict, date]:
    """Content of the private warehouse, and of the published snapshot with its night."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        private = content_checksums(con, table_names(con, ("raw", "core", "marts")))
    finally:
        con.close()
    pub = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    try:
        published = content_checksums(pub, table_names(pub, ("marts", "core")))
        night = pub.execute("SELECT as_of_date FROM meta.snapshot").fetchone()[0]
    finally:
        pub.close()
    return private, published, night


@pytest.fixture(scope="module")
def baseline(small_baseline) -> Path:
    assert state(small_baseline)[2] == BEFORE
    return small_baseline


@pytest.fixture(scope="module")
def reference(baseline, tmp_path_factory) -> tuple[dict, dict, date]:
    home = tmp_path_factory.mktemp("crash-reference") / "home"
    shutil.copytree(baseline, home, symlinks=True)
    done = run_worker(home, "nightly", NIGHT)
    assert done.returncode == 0, done.stderr[-3000:]
    return state(home)


def kill_chain(home: Path, points: list[str], before, after) -> list[str]:
    """Kill a load at each point in turn, each run redoing the one killed before it."""
    problems = []
    with ForkServer() as server:
        for point in points:
            code = server.load(home, NIGHT, crash=point)
            if code != -9:
                problems.append(f"{point}: expected SIGKILL, got exit {code} (see {home}-load.log)")
                continue
            private, published, night = state(home)
            if (published, night) not in ((before[1], before[2]), (after[1], after[2])):
                problems.append(f"{point}: published snapshot of {night} matches neither night")
            if private not in (before[0], after[0]):
                problems.append(f"{point}: private warehouse is neither the night before nor the completed night")
        code = server.load(home, NIGHT)
    if code != 0:
        problems.append(f"final rerun failed with exit {code} (see {home}-load.log)")
    elif state(home) != after:
        problems.append("after the final rerun the warehouse differs from an uninterrupted run")
    return problems


def test_kill_9_anywhere_leaves_a_consistent_warehouse_and_snapshot(baseline, reference, tmp_path):
    before = state(baseline)
    assert before[2] == BEFORE and reference[2] == NIGHT
    homes = []
    for i in range(2):
        shutil.copytree(baseline, tmp_path / f"chain{i}", symlinks=True)
        homes.append(tmp_path / f"chain{i}")
    chains = [POINTS[0::2], POINTS[1::2]]  # two chains in parallel: one per core
    with ThreadPoolExecutor(2) as pool:
        problems = sum(pool.map(lambda hc: kill_chain(hc[0], hc[1], before, reference), zip(homes, chains)), [])
    assert not problems, "\n".join(problems)
    con = duckdb.connect(str(homes[0] / "warehouse.duckdb"), read_only=True)
    statuses = dict(con.execute("SELECT status, count(*) FROM meta.loads GROUP BY 1").fetchall())
    # Every load killed before its snapshot was recorded is accounted for: the next run marked it
    # interrupted. Killed later (exports), it had published; the rerun redid the exports.
    unpublished = [p for p in chains[0] if POINTS.index(p) < POINTS.index("publish.recorded")]
    assert statuses.get("interrupted", 0) == len(unpublished)
    assert statuses["succeeded"] == 2 + len(chains[0]) - len(unpublished)
