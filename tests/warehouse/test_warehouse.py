"""Migrations, merge semantics, publishing and the load lock, on real DuckDB files in tmp."""

from __future__ import annotations

import multiprocessing
import os
import time
from datetime import date, datetime, timedelta

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from pipeline.lock import LoadLocked, load_lock
from warehouse.db import checksums, connect, migrate, migrations
from warehouse.load import merge, stage, transaction
from warehouse.publish import publish, snapshot_for
from tests.helpers.matrix import examples


def bars(rows):
    return pl.DataFrame(
        rows,
        schema={
            "symbol": pl.String, "session_date": pl.Date, "open": pl.Float64, "high": pl.Float64,
            "low": pl.Float64, "close": pl.Float64, "adj_close": pl.Float64, "volume": pl.Int64,
        },
        orient="row",
    )


def load(con, df, load_id, at=datetime(2025, 1, 10)):
    staged = stage(df, source="test", fetched_at=at, load_id=load_id, table="raw.equity_bars")
    with transaction(con):
        return merge(con, "raw.equity_bars", staged, load_id)


def test_migrations_apply_once_and_are_recorded(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    applied = con.execute("SELECT version, name FROM meta.schema_migrations ORDER BY version").fetchall()
    assert [v for v, _ in applied] == [m.version for m in migrations()]
    assert migrate(con) == []  # nothing pending the second time
    pk = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
        "AND schema_name IN ('raw', 'core', 'marts')"
    ).fetchone()[0]
    tables = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema IN ('raw', 'core', 'marts')"
    ).fetchone()[0]
    assert pk == tables  # every raw, core and mart table has a primary key


def test_an_edited_applied_migration_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE meta.x (a INTEGER);")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    migrate(con, folder)
    (folder / "0001_a.sql").write_text("CREATE TABLE meta.x (a BIGINT);")
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        migrate(con, folder)


def test_merge_inserts_updates_and_records_revisions(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    d1, d2 = date(2025, 1, 2), date(2025, 1, 3)
    first = bars([("A", d1, 1, 1, 1, 1, 1, 10), ("A", d2, 2, 2, 2, 2, 2, None)])
    c = load(con, first, "L1")
    assert (c.inserted, c.changed) == (2, 0)
    c = load(con, first, "L2", at=datetime(2025, 1, 11))
    assert (c.inserted, c.changed) == (0, 0)
    assert con.execute("SELECT DISTINCT load_id FROM raw.equity_bars").fetchall() == [("L1",)]
    revised = bars([("A", d2, 2, 2, 2, 2.5, 2.5, None), ("A", date(2025, 1, 6), 3, 3, 3, 3, 3, 5)])
    c = load(con, revised, "L3")
    assert (c.inserted, c.changed) == (1, 1)
    rev = con.execute("SELECT row_key, column_name, old_value, new_value FROM raw.revisions ORDER BY 2").fetchall()
    assert rev == [("A|2025-01-03", "adj_close", "2.0", "2.5"), ("A|2025-01-03", "close", "2.0", "2.5")]


def test_merge_joins_only_the_stored_rows_of_the_staged_dates(tmp_path):
    """A merge matches stored rows by key, and a key with a date can only match stored rows of the
    staged dates: the join reads those (a backfill window's merge no longer hashes the history).
    Rows before and after the staged dates are untouched; the counts and revisions are those of the
    rows inside."""
    from warehouse.load import _stored_in_range

    con = connect(tmp_path / "w.duckdb")
    days = [date(2025, 1, 2) + timedelta(days=i) for i in range(10)]
    load(con, bars([(s, d, 1, 1, 1, 1, 1, 1) for s in "AB" for d in days]), "L1")
    before = con.execute("SELECT symbol, session_date, close, load_id FROM raw.equity_bars WHERE session_date NOT BETWEEN ? AND ? ORDER BY 1, 2", [days[4], days[6]]).fetchall()
    window = bars([("A", days[4], 1, 1, 1, 1, 1, 1), ("A", days[5], 1, 1, 1, 2, 2, 1), ("C", days[6], 3, 3, 3, 3, 3, 3)])
    c = load(con, window, "L2")
    assert (c.inserted, c.changed) == (1, 1)
    assert con.execute("SELECT row_key, column_name FROM raw.revisions ORDER BY 2").fetchall() == [
        (f"A|{days[5]}", "adj_close"), (f"A|{days[5]}", "close"),
    ]
    after = con.execute("SELECT symbol, session_date, close, load_id FROM raw.equity_bars WHERE session_date NOT BETWEEN ? AND ? ORDER BY 1, 2", [days[4], days[6]]).fetchall()
    assert after == before
    relation, bound = _stored_in_range("raw.equity_bars", ["symbol", "session_date"], window)
    assert bound == f"t.session_date BETWEEN DATE '{days[4]}' AND DATE '{days[6]}'"
    assert con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0] == 2 * 3 + 1
    assert _stored_in_range("meta.x", ["name"], pl.DataFrame({"name": ["a"]})) == ("meta.x", "TRUE")


def test_a_refetch_without_a_report_date_keeps_the_stored_one(tmp_path):
    """Yahoo dates only the newest quarter of an answer; a quarter later the same quarter comes
    back without a date. The stored date stays; a different date still replaces it (recorded)."""
    from sources.base import FUNDAMENTALS_SCHEMA

    con = connect(tmp_path / "w.duckdb")

    def put(rows, load_id):
        df = pl.DataFrame(rows, schema=FUNDAMENTALS_SCHEMA, orient="row")
        staged = stage(df, source="yahoo", fetched_at=datetime(2025, 1, 10), load_id=load_id, table="raw.fundamentals")
        with transaction(con):
            return merge(con, "raw.fundamentals", staged, load_id)

    q3, q4 = date(2024, 9, 30), date(2024, 12, 31)
    put([("A", q3, date(2024, 11, 7), 1.0, 1.0, 0.1, 9.0)], "L1")
    c = put([("A", q3, None, 1.0, 1.0, 0.1, 9.0), ("A", q4, date(2025, 1, 31), 2.0, 2.0, 0.2, 9.0)], "L2")
    assert (c.inserted, c.changed) == (1, 0)  # no date is not a change
    c = put([("A", q3, None, 1.5, 1.5, 0.1, 9.0)], "L3")  # a restated figure, still no date
    assert (c.inserted, c.changed) == (0, 1)
    c = put([("A", q4, date(2025, 2, 3), 2.0, 2.0, 0.2, 9.0)], "L4")  # a corrected date wins
    assert (c.inserted, c.changed) == (0, 1)
    stored = con.execute("SELECT period_end_date, report_date, net_income_usd FROM raw.fundamentals ORDER BY 1").fetchall()
    assert stored == [(q3, date(2024, 11, 7), 1.5), (q4, date(2025, 2, 3), 2.0)]
    rev = con.execute("SELECT load_id, column_name, old_value, new_value FROM raw.revisions ORDER BY 1, 2").fetchall()
    assert rev == [
        ("L3", "net_income_common_usd", "1.0", "1.5"),
        ("L3", "net_income_usd", "1.0", "1.5"),
        ("L4", "report_date", "2025-01-31", "2025-02-03"),
    ]


def test_merge_refuses_duplicate_keys_and_rolls_back(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    d = date(2025, 1, 2)
    with pytest.raises(ValueError, match="share a key"):
        load(con, bars([("A", d, 1, 1, 1, 1, 1, 1), ("A", d, 2, 2, 2, 2, 2, 2)]), "L1")
    assert con.execute("SELECT count(*) FROM raw.equity_bars").fetchone()[0] == 0


row = st.tuples(
    st.sampled_from(["A", "B", "C"]),
    st.integers(0, 20).map(lambda i: date(2025, 1, 1) + timedelta(days=i)),
    st.floats(1, 100, allow_nan=False),
)


@pytest.mark.slow  # over ~10 s: kept out of `make test-fast`, run by `make test`
@hsettings(max_examples=examples(40), deadline=None)
@given(st.lists(row, max_size=30, unique_by=lambda r: r[:2]), st.lists(row, max_size=30, unique_by=lambda r: r[:2]))
def test_merge_is_idempotent_and_last_write_wins(first, second):
    con = duckdb.connect()
    migrate(con)
    as_bars = lambda rs: bars([(s, d, p, p, p, p, p, 1) for s, d, p in rs])
    load(con, as_bars(first), "L1")
    load(con, as_bars(second), "L2")
    after = checksums(con, ["raw.equity_bars"])
    load(con, as_bars(second), "L3")  # a rerun of the same load changes nothing
    assert checksums(con, ["raw.equity_bars"]) == after
    expected = {(s, d): p for s, d, p in first} | {(s, d): p for s, d, p in second}
    got = {(s, d): p for s, d, p in con.execute("SELECT symbol, session_date, close FROM raw.equity_bars").fetchall()}
    assert got == expected


def _derived_tables(con):
    from ground.registry import DATASETS
    from warehouse.datasets import sync

    sync(con, DATASETS)
    return DATASETS


def test_publish_renames_a_complete_snapshot_into_place(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    _derived_tables(con)
    load(con, bars([("A", date(2025, 1, 2), 1, 1, 1, 1, 1, 1)]), "L1")
    con.execute("INSERT INTO core.sessions VALUES ('2025-01-02', 2025, false)")
    pub = tmp_path / "published"
    p1 = publish(con, pub, as_of=date(2025, 1, 2), load_id="L1", source="test", keep=2)
    reader = duckdb.connect(str(p1.path), read_only=True)
    assert reader.execute("SELECT count(*) FROM core.sessions").fetchone()[0] == 1
    con.execute("INSERT INTO core.sessions VALUES ('2025-01-03', 2025, false)")
    publish(con, pub, as_of=date(2025, 1, 3), load_id="L2", source="test", keep=2)
    # The open reader still sees its night; a new connection (another process: DuckDB caches open
    # files per process) sees the new one.
    assert reader.execute("SELECT count(*) FROM core.sessions").fetchone()[0] == 1
    assert _count_in_new_process(p1.path) == 2
    reader.close()
    old = duckdb.connect(str(snapshot_for(pub, date(2025, 1, 2))), read_only=True)
    assert old.execute("SELECT as_of_date FROM meta.snapshot").fetchone()[0] == date(2025, 1, 2)
    con.execute("INSERT INTO core.sessions VALUES ('2025-01-06', 2025, false)")
    publish(con, pub, as_of=date(2025, 1, 6), load_id="L3", source="test", keep=2)
    assert sorted(p.stem for p in (pub / "nights").glob("*.duckdb")) == ["2025-01-03", "2025-01-06"]
    with pytest.raises(FileNotFoundError, match="kept nights: 2025-01-03, 2025-01-06"):
        snapshot_for(pub, date(2025, 1, 2))
    assert not list(pub.glob(".tmp-*"))


def _count_in_new_process(path) -> int:
    import subprocess
    import sys

    code = f"import duckdb; print(duckdb.connect({str(path)!r}, read_only=True).execute('SELECT count(*) FROM core.sessions').fetchone()[0])"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def _hold_lock(home, ready, release):
    with load_lock(home):
        ready.set()
        release.wait(10)


def test_load_lock_excludes_a_second_load_and_dies_with_its_holder(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    p.start()
    assert ready.wait(10)
    with pytest.raises(LoadLocked, match=f"pid {p.pid}"):
        with load_lock(tmp_path):
            pass
    os.kill(p.pid, 9)  # a holder killed mid-load leaves no lock behind
    p.join(10)
    with load_lock(tmp_path):
        pass


def test_a_load_waits_for_a_brief_reader_of_the_private_file_instead_of_failing(tmp_path):
    import subprocess
    import sys

    from warehouse import db

    path = tmp_path / "w.duckdb"
    db.connect(path).close()
    # Another process holds the file read-only for a moment, as `smallcaps status` does.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('open', flush=True); time.sleep(2); c.close()", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "open"
    t = time.monotonic()
    con = db.connect(path)  # waits for the reader, then opens
    waited = time.monotonic() - t
    con.close()
    holder.wait(timeout=30)
    assert 0.5 < waited < 30
    # A holder that does not let go within the wait: a clear error, not a hang.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('open', flush=True); time.sleep(30)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(duckdb.IOException, match="held by another process for more than 1 s"):
            db._connect_writer(path, wait_s=1.0)
    finally:
        holder.kill()
        holder.wait()


def test_a_patched_snapshot_equals_one_written_whole(tmp_path):
    """Publishing a night as the previous snapshot plus the night's changes gives the same tables,
    with the same keys and comments, as copying every table."""
    import polars as pl

    from warehouse.db import content_checksums
    from warehouse.publish import Patch

    con = connect(tmp_path / "w.duckdb")
    declared = _derived_tables(con)
    con.execute("INSERT INTO core.sessions VALUES ('2025-01-02', 2025, false), ('2025-01-03', 2025, false)")
    con.execute("INSERT INTO core.equity_returns VALUES ('A', '2025-01-02', 10, NULL), ('A', '2025-01-03', 11, 0.1), ('B', '2025-01-03', 5, NULL)")
    pub = tmp_path / "published"
    publish(con, pub, as_of=date(2025, 1, 3), load_id="L1", source="test", keep=5, declared=declared)
    # The night: a new session, a revised row, a deleted row.
    con.execute("INSERT INTO core.sessions VALUES ('2025-01-06', 2025, false)")
    con.execute("UPDATE core.equity_returns SET adj_close = 12, ret_1d = 0.2 WHERE symbol = 'A' AND session_date = '2025-01-03'")
    con.execute("DELETE FROM core.equity_returns WHERE symbol = 'B'")
    sessions = Patch(("session_date",), pl.DataFrame(schema={"session_date": pl.Date}),
                     pl.DataFrame({"session_date": [date(2025, 1, 6)], "year": [2025], "is_early_close": [False]},
                                  schema={"session_date": pl.Date, "year": pl.Int32, "is_early_close": pl.Boolean}))
    returns = Patch(("symbol", "session_date"),
                    pl.DataFrame({"symbol": ["A", "B"], "session_date": [date(2025, 1, 3)] * 2}),
                    pl.DataFrame({"symbol": ["A"], "session_date": [date(2025, 1, 3)], "adj_close": [12.0], "ret_1d": [0.2]}))
    patched = publish(con, pub, as_of=date(2025, 1, 6), load_id="L2", source="test", keep=5, declared=declared,
                      patches={"core.sessions": sessions, "core.equity_returns": returns})
    whole = publish(con, tmp_path / "whole", as_of=date(2025, 1, 6), load_id="L2", source="test", keep=5, declared=declared)
    tables = [d.name for d in declared]
    a, b = duckdb.connect(str(patched.path), read_only=True), duckdb.connect(str(whole.path), read_only=True)
    assert content_checksums(a, tables) == content_checksums(b, tables) == content_checksums(con, tables)
    comments = "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'core' ORDER BY 1"
    assert a.execute(comments).fetchall() == b.execute(comments).fetchall()
    keys = ("SELECT table_name, constraint_column_names FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
            "AND schema_name IN ('core', 'marts') ORDER BY 1")
    assert a.execute(keys).fetchall() == b.execute(keys).fetchall() and len(a.execute(keys).fetchall()) == len(declared)


def test_a_snapshot_patched_into_a_copy_made_ahead_equals_one_patched_into_its_own_copy(tmp_path):
    """The copy a night makes of the current snapshot while it loads (BaseCopy) is taken once and
    gives the snapshot publish's own copy gives; a copy of a snapshot replaced since, or of none
    wanted, is removed and never published."""
    from warehouse.db import content_checksums
    from warehouse.publish import BaseCopy, Patch, base_copy

    con = connect(tmp_path / "w.duckdb")
    declared = _derived_tables(con)
    tables = [d.name for d in declared]
    con.execute("INSERT INTO core.sessions VALUES ('2025-01-02', 2025, false), ('2025-01-03', 2025, false)")
    pub = tmp_path / "published"
    assert base_copy(pub, "L0", "v1.4.0") is None  # nothing published yet: nothing to copy
    publish(con, pub, as_of=date(2025, 1, 3), load_id="L1", source="test", keep=5, declared=declared)
    assert base_copy(pub, "L0", "v1.0.0") is None  # another storage version: published whole
    con.execute("INSERT INTO core.sessions VALUES ('2025-01-06', 2025, false)")
    night = {"core.sessions": Patch(
        ("session_date",), pl.DataFrame(schema={"session_date": pl.Date}),
        pl.DataFrame({"session_date": [date(2025, 1, 6)], "year": [2025], "is_early_close": [False]},
                     schema={"session_date": pl.Date, "year": pl.Int32, "is_early_close": pl.Boolean}),
    )}
    base = base_copy(pub, "L2", "v1.4.0")
    assert isinstance(base, BaseCopy)
    base.start()
    patched = publish(con, pub, as_of=date(2025, 1, 6), load_id="L2", source="test", keep=5, declared=declared,
                      patches=night, base=base)
    assert base.take() is None  # taken once: a retried publish copies again
    base.discard()
    assert patched.path.exists() and not list(pub.glob(".tmp-*"))
    snap = duckdb.connect(str(patched.path), read_only=True)
    assert content_checksums(snap, tables) == content_checksums(con, tables)
    assert snap.execute("SELECT count(*) FROM core.sessions").fetchone()[0] == 3
    snap.close()

    # A copy of a snapshot replaced since is not used: the night copies the new one. (A publish
    # replaces it, and one would remove the copy too; here another file is renamed over it.)
    stale = base_copy(pub, "L3", "v1.4.0")
    stale.start()
    stale._join()
    con.execute("INSERT INTO core.sessions VALUES ('2025-01-07', 2025, false)")
    other = publish(con, tmp_path / "other", as_of=date(2025, 1, 7), load_id="L2b", source="test", keep=5, declared=declared)
    os.replace(other.path, pub / "smallcaps.duckdb")
    assert stale.path.exists()
    con.execute("INSERT INTO core.sessions VALUES ('2025-01-08', 2025, false)")
    night["core.sessions"] = Patch(
        ("session_date",), pl.DataFrame(schema={"session_date": pl.Date}),
        pl.DataFrame({"session_date": [date(2025, 1, 8)], "year": [2025], "is_early_close": [False]},
                     schema={"session_date": pl.Date, "year": pl.Int32, "is_early_close": pl.Boolean}),
    )
    again = publish(con, pub, as_of=date(2025, 1, 8), load_id="L3", source="test", keep=5, declared=declared,
                    patches=night, base=stale)
    assert not list(pub.glob(".tmp-*"))
    snap = duckdb.connect(str(again.path), read_only=True)
    assert content_checksums(snap, tables) == content_checksums(con, tables)
    snap.close()

    # A night that publishes whole (no patches) removes its copy.
    unused = base_copy(pub, "L4", "v1.4.0")
    unused.start()
    publish(con, pub, as_of=date(2025, 1, 8), load_id="L4", source="test", keep=5, declared=declared, base=unused)
    assert not unused.path.exists() and not list(pub.glob(".tmp-*"))
