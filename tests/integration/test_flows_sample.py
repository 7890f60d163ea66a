"""The whole pipeline on the sample market: backfill + nightly under a real (temporary) Prefect API,
into a temporary DuckDB file, checked through SQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.backfill import backfill
from flows.nightly import nightly
from ground import calendar
from warehouse.db import checksums, table_names

# Runs a flow: backfill and nightly flows on the sample market.
pytestmark = pytest.mark.slow

# A fixed window keeps the test independent of today's date and quick: the sample market is
# prefix-stable, so this is exactly what a full backfill holds for these sessions. It spans the
# April 2025 anchors and the late-June reconstitution.
START = date(2025, 3, 3)
END = date(2025, 6, 20)
NIGHT = date(2025, 6, 23)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("sample-home")
    result = backfill(start=START, end=END, source="sample", home=str(home))
    assert result["status"] == "succeeded"
    return home


def wh(home: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)


def test_backfill_loads_every_session_and_member(home):
    con = wh(home)
    sessions = calendar.sessions(START, END)
    assert con.execute("SELECT count(*) FROM core.sessions").fetchone()[0] == len(sessions)
    per_index = con.execute("SELECT symbol, count(*) FROM raw.index_bars GROUP BY 1 ORDER BY 1").fetchall()
    assert per_index == [(s, len(sessions)) for s in sorted(["^GSPC", "^IXIC", "^RUT", "^SP600", "^VIX"])]
    members = con.execute(
        "SELECT universe, count(*) FROM raw.holdings WHERE as_of_date = ? GROUP BY 1 ORDER BY 1", [END]
    ).fetchall()
    assert [u for u, _ in members] == ["russell2000", "sp600"]
    assert 1_800 <= members[0][1] <= 2_100 and 550 <= members[1][1] <= 650
    assert con.execute("SELECT DISTINCT source FROM raw.equity_bars").fetchall() == [("sample",)]
    # Keys are unique in every mart (the primary keys say so; this checks the data agrees).
    for table, key in [
        ("marts.index_daily", "symbol, session_date"),
        ("marts.relative_performance", "lead_symbol, lag_symbol, session_date"),
        ("marts.cohort_performance", "universe, anchor, cohort, session_date"),
        ("marts.sector_performance", "universe, anchor, sector, session_date"),
    ]:
        dupes = con.execute(f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
        assert dupes == 0, table
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = 'index_daily'"
        ).fetchall()
    )
    assert types["session_date"] == "DATE" and types["is_record_close"] == "BOOLEAN" and types["rsi_14"] == "DOUBLE"
    load = con.execute("SELECT status, source, rows_loaded > 100000, flow_run_id IS NOT NULL FROM meta.loads").fetchall()
    assert load == [("succeeded", "sample", True, True)]


def test_cohort_shares_sum_to_one_and_streaks_are_bounded(home):
    con = wh(home)
    bad = con.execute(
        "SELECT count(*) FROM (SELECT universe, session_date, sum(share_of_members) s FROM marts.cohort_composition "
        "GROUP BY ALL HAVING abs(s - 1) > 1e-9)"
    ).fetchone()[0]
    assert bad == 0
    over = con.execute(
        "SELECT count(*) FROM marts.relative_performance r WHERE streak > "
        "(SELECT count(*) FROM core.sessions s WHERE s.session_date <= r.session_date)"
    ).fetchone()[0]
    assert over == 0


def test_published_snapshot_matches_the_warehouse_marts(home):
    pub = duckdb.connect(str(home / "published" / "smallcaps.duckdb"), read_only=True)
    con = wh(home)
    marts = table_names(con, ("marts",))
    assert checksums(pub, marts) == checksums(con, marts)
    assert pub.execute("SELECT as_of_date FROM meta.snapshot").fetchone()[0] == END
    assert pub.execute("SELECT count(*) FROM marts.headlines WHERE as_of_date = ?", [END]).fetchone()[0] >= 5


def test_nightly_twice_for_the_same_session_leaves_every_table_identical(home):
    first = nightly(as_of=NIGHT, source="sample", home=str(home))
    assert first["status"] == "succeeded" and first["as_of"] == NIGHT.isoformat()
    con = wh(home)
    data_tables = table_names(con, ("raw", "core", "marts"))
    before = checksums(con, data_tables)
    assert con.execute("SELECT max(session_date) FROM marts.index_daily").fetchone()[0] == NIGHT
    con.close()
    second = nightly(as_of=NIGHT, source="sample", home=str(home))
    assert all(c["inserted"] == 0 and c["changed"] == 0 for c in second["tables"].values())
    con = wh(home)
    assert checksums(con, data_tables) == before
    # The second night's snapshot is the first's patched, in the copy made while it loaded: it
    # holds what the warehouse holds, and no copy is left behind.
    published = home / "published"
    assert not list(published.glob(".tmp-*"))
    derived = table_names(con, ("core", "marts"))
    snap = duckdb.connect(str(published / "smallcaps.duckdb"), read_only=True)
    assert checksums(snap, derived) == checksums(con, derived)
    snap.close()


def test_nightly_skips_a_non_session(home):
    result = nightly(as_of=date(2025, 7, 4), source="sample", home=str(home))  # Independence Day
    assert result["status"] == "skipped" and "not an NYSE session" in result["message"]


def test_a_load_leaves_a_table_artifact_of_its_counts_and_gate_outcome(home):
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["smallcaps-load"])))
    assert artifacts and all(a.type == "table" for a in artifacts)
    con = wh(home)
    loads = {r[0] for r in con.execute("SELECT load_id FROM meta.loads WHERE status = 'succeeded'").fetchall()}
    con.close()
    # The backfill's artifact: one row per raw table, its merge counts and its gate.
    ours = [a for a in artifacts if any(load_id in (a.description or "") for load_id in loads)]
    assert ours
    rows = {r["table"]: r for a in ours for r in (json.loads(a.data) if isinstance(a.data, str) else a.data)}
    bars = rows["raw.equity_bars"]
    assert bars["rows_in"] > 0 and bars["expectations"] > 0 and bars["failed"] == 0
    assert set(rows) >= {"raw.index_bars", "raw.equity_bars", "raw.holdings", "raw.fundamentals"}
