"""Readers and the nightly load never get in each other's way: a connection held open on the
published snapshot (as a BI tool holds one for hours) neither blocks loads in another process nor
sees the data change under it; a new connection sees the new night."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from forkserver import ForkServer
from ground import calendar

# Runs a flow: nightly loads on a backfilled home (tests/integration/conftest.py small_baseline).
pytestmark = pytest.mark.slow

FIRST = date(2025, 6, 20)
QUERY = (
    "SELECT (SELECT as_of_date FROM meta.snapshot), count(*), sum(hash(symbol, session_date, close)) "
    "FROM marts.index_daily"
)


def test_an_open_reader_neither_blocks_loads_nor_sees_them(small_baseline, tmp_path):
    home: Path = tmp_path / "home"
    shutil.copytree(small_baseline, home, symlinks=True)
    published = home / "published" / "smallcaps.duckdb"

    reader = duckdb.connect(str(published), read_only=True)
    seen = reader.execute(QUERY).fetchone()
    assert seen[0] == FIRST

    # The reader keeps querying while the loads run, as a dashboard refreshing would.
    changed: list[tuple] = []
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.is_set():
            now = reader.cursor().execute(QUERY).fetchone()
            if now != seen:
                changed.append(now)
            time.sleep(0.05)

    thread = threading.Thread(target=keep_reading)
    thread.start()
    nights = calendar.sessions(date(2025, 6, 23), date(2025, 6, 25))
    try:
        with ForkServer() as server:
            codes = [server.load(home, night) for night in nights]
    finally:
        stop.set()
        thread.join()
    assert codes == [0] * len(nights) and len(nights) == 3, f"a load failed with the reader open (see {home}-load.log)"
    assert changed == [], "the open reader saw the data change under it"
    assert reader.execute(QUERY).fetchone() == seen
    reader.close()

    fresh = duckdb.connect(str(published), read_only=True)
    latest = fresh.execute(QUERY).fetchone()
    assert latest[0] == nights[-1] and latest[1] > seen[1]
    # Every night loaded is kept for --as-of, each with its own night.
    for night in [FIRST, *nights]:
        con = duckdb.connect(str(home / "published" / "nights" / f"{night.isoformat()}.duckdb"), read_only=True)
        assert con.execute("SELECT as_of_date FROM meta.snapshot").fetchone()[0] == night
        con.close()
