"""The backfill flow with its fetch fan-out on a Dask cluster (SMALLCAPS_DASK_ADDRESS) derives
exactly the core tables and marts that the default thread pool does.

A real LocalCluster of two worker processes: every fetch chunk is pickled to a worker, the sample
source rebuilt there from its recipe, and the frames pickled back to the flow, which gates, loads
and derives in its own process."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.backfill import backfill
from ground.registry import DATASETS

pytestmark = [pytest.mark.slow, pytest.mark.dask]

START = date(2025, 3, 3)
END = date(2025, 4, 17)  # spans the 2025-04-02 and 2025-04-08 anchors


def _sample_env(monkeypatch) -> None:
    # The smallest sample market, starting two months before the window: a short, complete load.
    monkeypatch.setenv("SMALLCAPS_SAMPLE_START", "2025-01-02")
    monkeypatch.setenv("SMALLCAPS_SAMPLE_COMPANIES", "2500")
    monkeypatch.setenv("SMALLCAPS_CHUNK_SIZE", "500")
    monkeypatch.setenv("SMALLCAPS_WRITE_REPORT", "false")


def _derived(home: Path) -> dict[str, pl.DataFrame]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        tables = {}
        for d in DATASETS:
            if d.name.split(".")[0] in ("core", "marts"):
                frame = con.sql(f"SELECT * FROM {d.name}").pl()
                tables[d.name] = frame.sort(frame.columns, nulls_last=True)
        return tables
    finally:
        con.close()


def _built_a_sample_market() -> bool:
    """Whether this process simulated a market for a source it received pickled."""
    import sources.sample

    return any(source._market is not None for source in sources.sample._built.values())


def test_a_backfill_on_a_dask_cluster_derives_what_the_thread_pool_does(tmp_path, monkeypatch):
    import distributed  # imported here: collecting the fast loop does not pay for it

    _sample_env(monkeypatch)
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, memory_limit="1GiB"
    ) as cluster, distributed.Client(cluster) as client:
        monkeypatch.setenv("SMALLCAPS_DASK_ADDRESS", cluster.scheduler_address)
        on_dask = backfill(start=START, end=END, source="sample", home=str(tmp_path / "dask"))
        # The chunks ran on the workers: a worker that fetched one built the sample market there.
        built = client.run(_built_a_sample_market)
    assert on_dask["status"] == "succeeded"
    assert any(built.values()), built
    # The flow's process (here also the cluster's scheduler, which unpickles the calls it is sent)
    # fetched the holdings with its own source and no chunk.
    assert not _built_a_sample_market()

    monkeypatch.delenv("SMALLCAPS_DASK_ADDRESS")
    threaded = backfill(start=START, end=END, source="sample", home=str(tmp_path / "threads"))
    assert threaded["status"] == "succeeded"
    assert on_dask["rows_in"] == threaded["rows_in"] and on_dask["sessions"] == threaded["sessions"] > 25

    got, want = _derived(tmp_path / "dask"), _derived(tmp_path / "threads")
    assert got.keys() == want.keys() and len(got) >= 10
    for name, frame in want.items():
        assert frame.height > 0, f"{name} is empty: the comparison would prove nothing"
        assert got[name].equals(frame), f"{name} differs between the Dask and the thread-pool backfill"


def test_an_unreachable_scheduler_fails_before_anything_is_loaded(tmp_path, monkeypatch):
    import socket

    _sample_env(monkeypatch)
    # A port nobody listens on: bound, then closed.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SMALLCAPS_DASK_ADDRESS", f"tcp://127.0.0.1:{port}")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), pytest.raises(
        RuntimeError, match=rf"could not reach the Dask scheduler at tcp://127.0.0.1:{port}"
    ):
        backfill(start=START, end=END, source="sample", home=str(tmp_path / "home"))
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()
